"""Load a resolved model and its tokenizer for scoring or fine-tuning, offline only.

A GGUF is dequantized by transformers once (tens of seconds) and saved as safetensors
in the content-addressed model cache; later loads read that copy (well under a second
for the embedded models). Hub ids load from the local cache only, so a missing model
fails at once with its name instead of hanging on the network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distill_audit import ui
from distill_audit.errors import ModelError
from distill_audit.models import cache
from distill_audit.models.resolve import TINY_SEED, ModelRef, resolve_model


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel in eval mode
    tokenizer: Any
    ref: ModelRef


def load_model(
    ref: ModelRef | str,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load `ref` (an alias, folder, .gguf, adapter or cached Hub id) in eval mode."""
    if not isinstance(ref, ModelRef):
        ref = resolve_model(ref, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    folder = local_weights_folder(ref)
    if ref.kind == "adapter":
        model, tokenizer = _load_adapter(ref, dtype=dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    else:
        model, tokenizer = _load_folder(ref, folder, dtype=dtype, trust_remote_code=trust_remote_code)
    if device:
        model = model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, ref=ref)


def local_weights_folder(ref: ModelRef) -> Path:
    """A folder with config.json and safetensors for `ref`, converting a GGUF if needed."""
    if ref.kind in ("api", "unknown") or (ref.kind == "hf" and ref.path is None):
        raise ModelError(_not_local_message(ref))
    if ref.kind == "adapter":
        return ref.path  # type: ignore[return-value]
    if ref.gguf_file is not None:
        return gguf_cache_folder(ref, convert=True)
    if ref.name == "distill-audit/tiny-random":
        return _tiny_random_folder(ref.path)  # type: ignore[arg-type]
    return ref.path  # type: ignore[return-value]


def _not_local_message(ref: ModelRef) -> str:
    if ref.kind == "api":
        return f"{ref.ref}: an API model ({ref.vendor or 'closed weights'}); there are no weights to load"
    if ref.kind == "hf":
        return (
            f"{ref.ref}: not in the local Hugging Face cache and the hub is not used (offline); download it where"
            f" the hub is reachable (huggingface-cli download {ref.ref}) or pass a local folder or .gguf file"
        )
    return f"{ref.ref}: unknown model (not an alias, a local folder, a .gguf file or a cached Hub id)"


# -- GGUF -> safetensors cache -----------------------------------------------------------


def gguf_cache_folder(ref: ModelRef, *, convert: bool) -> Path:
    """The content-addressed safetensors copy of a GGUF (made when `convert`)."""
    gguf_path = ref.gguf_path
    assert gguf_path is not None
    sha = cache.file_sha256(gguf_path)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ref.name.split("/")[-1]).strip("-")[:60] or "model"
    target = cache.model_cache_dir() / f"{slug}-{sha[:16]}"
    if cache.is_complete(target) or not convert:
        return target
    ui.info(f"converting {gguf_path.name} to safetensors once (cached in {target.parent})")
    with cache.atomic_dir(target) as tmp:
        _convert_gguf(ref, gguf_path, tmp, sha)
    return target


def _convert_gguf(ref: ModelRef, gguf_path: Path, out: Path, sha: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(gguf_file=gguf_path.name, local_files_only=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{gguf_path}: transformers cannot load this GGUF ({detail})") from None
    clear_quantization_mark(model)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    source = {"gguf_file": gguf_path.name, "sha256": sha, "name": ref.name}
    (out / "distill_audit_source.json").write_text(json.dumps(source, indent=2), encoding="utf-8")


def clear_quantization_mark(model) -> None:
    """transformers marks GGUF-loaded models as quantized and refuses to save them.

    The weights are already dequantized to the requested dtype, so the mark is stale.
    """
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:  # a read-only property derived from hf_quantizer
            pass
    config = model.config
    if hasattr(config, "quantization_config"):
        try:
            delattr(config, "quantization_config")
        except AttributeError:
            config.quantization_config = None


# -- tiny smoke model --------------------------------------------------------------------


def _tiny_random_folder(folder: Path) -> Path:
    from distill_audit.models.tiny import build_tiny_model

    if not cache.is_complete(folder):
        with cache.atomic_dir(folder) as tmp:
            build_tiny_model(tmp, seed=TINY_SEED)
    return folder


# -- transformers / peft -----------------------------------------------------------------


def _load_folder(ref: ModelRef, folder: Path, *, dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM

    if not trust_remote_code and _has_custom_code(folder):
        raise ModelError(
            f"{ref.ref}: this model ships its own Python code (config.json auto_map); pass --trust-remote-code"
            " only if you trust its authors"
        )
    use_safetensors = any(folder.glob("*.safetensors"))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=dtype, local_files_only=True, trust_remote_code=trust_remote_code,
            use_safetensors=use_safetensors,
        )
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{ref.ref}: cannot load model from {folder} ({_first_line(exc)})") from None
    tokenizer = _load_tokenizer(ref, folder, trust_remote_code=trust_remote_code)
    return model, tokenizer


def _has_custom_code(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("auto_map"))
    except (OSError, ValueError):
        return False


def _load_tokenizer(ref: ModelRef, folder: Path, *, trust_remote_code: bool):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust_remote_code)
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(f"{ref.ref}: cannot load the tokenizer from {folder} ({_first_line(exc)})") from None


def _load_adapter(ref: ModelRef, *, dtype, trust_remote_code: bool, allow_pickle: bool):
    from peft import PeftModel

    assert ref.base is not None and ref.path is not None
    base = load_model(ref.base, dtype=dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    try:
        peft_model = PeftModel.from_pretrained(base.model, str(ref.path), is_trainable=False)
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{ref.ref}: cannot apply the adapter to {ref.base.name} ({_first_line(exc)})") from None
    model = peft_model.merge_and_unload()  # later stages see a plain causal LM
    has_tokenizer = any((ref.path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = _load_tokenizer(ref, ref.path, trust_remote_code=trust_remote_code) if has_tokenizer else base.tokenizer
    return model, tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
