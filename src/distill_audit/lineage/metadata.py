"""Tier 2: what local files say about a model's ancestry, shape and tokenizer.

- Declared ancestors: an adapter's base (adapter_config.json), `base_model` in the
  model card's YAML header (README.md), GGUF `general.base_model.*`, and the Hub id a
  saved model was loaded from (config.json `_name_or_path`). Self-reported, so a shared
  ancestor gives `same-init` with medium confidence only.
- Shape (architecture, depth, widths, vocabulary): different shapes rule out a shared
  full initialization unless the registry knows a pruning or upscaling.
- Tokenizer hash: equal tokenizers mean the same family at most (Qwen2.5-0.5B and
  -7B share one), never the same initialization.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from distill_audit.models.resolve import HF_ID, ModelRef

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.S)


@dataclass
class ModelMetadata:
    ancestors: list[dict] = field(default_factory=list)  # {"name": ..., "source": ...}, nearest first
    shape: dict | None = None
    tokenizer_sha256: str | None = None
    tokenizer_format: str | None = None  # "hf" or "gguf": hashes only compare within a format
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def read_metadata(ref: ModelRef, *, _depth: int = 0) -> ModelMetadata:
    """Ancestors, shape and tokenizer hash from whatever local files `ref` has."""
    meta = ModelMetadata()
    if ref.kind == "adapter" and ref.base is not None:
        meta.ancestors.append({"name": ref.base.name, "source": "adapter_config.json base_model_name_or_path"})
        base_meta = read_metadata(ref.base, _depth=_depth + 1) if _depth < 4 else ModelMetadata()
        meta.ancestors += base_meta.ancestors
        meta.shape, meta.tokenizer_sha256, meta.tokenizer_format = (
            base_meta.shape,
            base_meta.tokenizer_sha256,
            base_meta.tokenizer_format,
        )
        return meta
    if ref.gguf_path is not None:
        _from_gguf(ref.gguf_path, meta)
        return meta
    if ref.path is not None and ref.path.is_dir():
        _from_folder(ref.path, meta)
    return meta


def _from_gguf(path: Path, meta: ModelMetadata) -> None:
    from distill_audit.models.gguf_index import read_gguf_index

    index = read_gguf_index(path)
    md = index.metadata
    count = int(md.get("general.base_model.count", 0) or 0)
    for i in range(count):
        prefix = f"general.base_model.{i}."
        name = md.get(prefix + "repo_url") or md.get(prefix + "name")
        org = md.get(prefix + "organization")
        if isinstance(name, str) and name.startswith("https://huggingface.co/"):
            name = name.removeprefix("https://huggingface.co/")
        elif org and name and "/" not in str(name):
            name = f"{org}/{name}"
        if name:
            meta.ancestors.append({"name": str(name), "source": f"GGUF {prefix}*"})
    arch = index.architecture
    meta.shape = {
        "architecture": arch,
        "layers": index.arch_value("block_count"),
        "hidden_size": index.arch_value("embedding_length"),
        "intermediate_size": index.arch_value("feed_forward_length"),
        "heads": index.arch_value("attention.head_count"),
        "kv_heads": index.arch_value("attention.head_count_kv"),
        "vocab_size": index.array_lengths.get("tokenizer.ggml.tokens") or index.arch_value("vocab_size"),
    }
    digest = index.array_digest("tokenizer.ggml.tokens")
    if digest:
        meta.tokenizer_sha256, meta.tokenizer_format = digest, "gguf"


def _from_folder(folder: Path, meta: ModelMetadata) -> None:
    readme = folder / "README.md"
    if readme.is_file():
        for name in _card_base_models(readme, meta):
            meta.ancestors.append({"name": name, "source": "README.md base_model"})
    config_path = folder / "config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            meta.problems.append(f"{config_path}: unreadable ({exc})")
            config = {}
        source = config.get("_name_or_path")
        if isinstance(source, str) and HF_ID.match(source) and not Path(source).exists():
            meta.ancestors.append({"name": source, "source": "config.json _name_or_path"})
        text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
        meta.shape = {
            "architecture": config.get("model_type"),
            "layers": text.get("num_hidden_layers") or text.get("n_layer"),
            "hidden_size": text.get("hidden_size") or text.get("n_embd"),
            "intermediate_size": text.get("intermediate_size") or text.get("n_inner"),
            "heads": text.get("num_attention_heads") or text.get("n_head"),
            "kv_heads": text.get("num_key_value_heads"),
            "vocab_size": text.get("vocab_size"),
        }
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file():
        try:
            data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
            vocab = (data.get("model") or {}).get("vocab")
            canonical = json.dumps(vocab, sort_keys=True) if vocab is not None else json.dumps(data.get("model"))
            meta.tokenizer_sha256 = hashlib.sha256(canonical.encode()).hexdigest()
            meta.tokenizer_format = "hf"
        except (OSError, ValueError) as exc:
            meta.problems.append(f"{tokenizer_json}: unreadable ({exc})")


def _card_base_models(readme: Path, meta: ModelMetadata) -> list[str]:
    try:
        match = _FRONT_MATTER.match(readme.read_text(encoding="utf-8"))
        header = yaml.safe_load(match.group(1)) if match else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        meta.problems.append(f"{readme}: model card header unreadable ({str(exc).splitlines()[0]})")
        return []
    value = header.get("base_model") if isinstance(header, dict) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if v]
    return []


def shape_difference(a: dict | None, b: dict | None) -> list[str]:
    """Shape fields both sides report and that differ ("hidden_size 576 vs 640")."""
    if not a or not b:
        return []
    return [f"{k} {a[k]} vs {b[k]}" for k in a if a.get(k) is not None and b.get(k) is not None and a[k] != b[k]]
