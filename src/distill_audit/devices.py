"""`--device` for every command that loads a model: `auto` picks cuda, then mps, then cpu.

`resolve_device` turns the flag into a torch device string and checks that it exists
on this machine, so a typo (`tpu9`) or a missing GPU is one line before any stage runs.
"""

from __future__ import annotations

from distill_audit.errors import UsageError

AUTO = "auto"
DEVICE_HELP = "torch device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps."


def auto_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(value: str | None, flag: str = "--device") -> str:
    """The device to use for `value` ("auto"/None: the best present), checked to exist."""
    import torch

    text = (value or AUTO).strip()
    if text.lower() == AUTO:
        return auto_device()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"{flag}: unknown device {text!r} (expected auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cpu":
        return str(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{flag} {text}: no CUDA device on this machine (use --device cpu or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UsageError(f"{flag} {text}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return str(device)
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError(f"{flag} {text}: MPS is not available on this machine (use --device cpu or auto)")
        return str(device)
    raise UsageError(
        f"{flag} {text}: device type {device.type!r} is not supported (expected auto, cpu, cuda, cuda:N or mps)"
    )
