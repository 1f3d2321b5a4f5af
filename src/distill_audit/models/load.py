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

from distill_audit import distributed, ui
from distill_audit.errors import ModelError, UsageError
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
    device_map: str | None = None,
    quantize: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load `ref` (an alias, folder, .gguf, adapter or cached Hub id) in eval mode.

    `device_map` ("auto", "cpu", ...) lets accelerate place the weights, possibly over
    several GPUs, instead of moving the model to `device`; `quantize` ("4bit", "8bit")
    loads the weights through bitsandbytes on `device`'s GPU (see `placement_kwargs`).
    """
    if not isinstance(ref, ModelRef):
        ref = resolve_model(ref, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    placement = placement_kwargs(ref, device=device, device_map=device_map, quantize=quantize)
    folder = local_weights_folder(ref)
    if ref.kind == "adapter":
        model, tokenizer = _load_adapter(
            ref, dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
        )
    else:
        model, tokenizer = _load_folder(ref, folder, dtype=dtype, trust_remote_code=trust_remote_code, **placement)
    if device and not placement:  # placed weights stay where accelerate / bitsandbytes put them
        model = model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, ref=ref)


def placement_kwargs(
    ref: ModelRef, *, device: str | None = None, device_map: str | None = None, quantize: str | None = None
) -> dict[str, Any]:
    """`from_pretrained` keywords that place (`device_map`) and quantize (bitsandbytes) `ref`.

    Reads no weights, so `scan` calls it up front and a combination that cannot load
    fails in one line before any stage runs. A quantized model without a device map
    goes to `device` (default: this process's device).
    """
    kwargs: dict[str, Any] = {}
    if device_map is not None:
        _check_device_map_name(device_map)
        distributed.check_device_map(device_map)
        kwargs["device_map"] = device_map
    if quantize is None:
        return kwargs
    if quantize not in distributed.QUANTIZE_BITS:
        raise UsageError(f"--quantize: expected {' or '.join(distributed.QUANTIZE_BITS)}, got {quantize!r}")
    if ref.gguf_file is not None:
        raise ModelError(
            f"{ref.ref}: --quantize cannot load a GGUF file (it is already quantized and is dequantized to float32 "
            "on loading); pass the model's safetensors folder or Hub id, or drop --quantize"
        )
    if ref.kind == "adapter":
        raise ModelError(
            f"{ref.ref}: --quantize cannot load an adapter (it is merged into its base in full precision); "
            "merge and save the model first, or drop --quantize"
        )
    kwargs["quantization_config"] = distributed.quantization_config(distributed.QUANTIZE_BITS[quantize], device=device)
    kwargs.setdefault("device_map", {"": str(device) if device else str(distributed.runtime().device)})
    return kwargs


# accelerate's placement strategies; any other device map names one device (cpu, cuda:1).
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def _check_device_map_name(device_map: str) -> None:
    if device_map in DEVICE_MAP_STRATEGIES:
        return
    try:
        torch.device(device_map)
    except (RuntimeError, ValueError):
        raise UsageError(
            f"--device-map: expected {', '.join(DEVICE_MAP_STRATEGIES)} or a device (cpu, cuda:0), got {device_map!r}"
        ) from None


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


def _load_folder(ref: ModelRef, folder: Path, *, dtype, trust_remote_code: bool, **placement: Any):
    from transformers import AutoModelForCausalLM

    if not trust_remote_code and _has_custom_code(folder):
        raise ModelError(
            f"{ref.ref}: this model ships its own Python code (config.json auto_map); pass --trust-remote-code"
            " only if you trust its authors"
        )
    use_safetensors = any(folder.glob("*.safetensors"))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(folder),
            dtype=dtype,
            local_files_only=True,
            trust_remote_code=trust_remote_code,
            use_safetensors=use_safetensors,
            **placement,
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


def _load_adapter(ref: ModelRef, *, dtype, device_map: str | None, trust_remote_code: bool, allow_pickle: bool):
    from peft import PeftModel

    assert ref.base is not None and ref.path is not None
    base = load_model(
        ref.base, dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
    )
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
