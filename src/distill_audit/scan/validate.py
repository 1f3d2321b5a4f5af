"""Every `scan` option checked before any stage runs, also when every stage is cached.

`validate_options(opts)` raises `UsageError` naming the flag; it also resolves
`--device auto` to the device that will be used (cuda, then mps, then cpu).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from distill_audit.errors import UsageError

NEVER = "never"  # --fail-on never: no risk gate


def _positive_number(name: str, value: Any) -> None:
    if value is None:
        return
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise UsageError(f"{name}: must be a finite number above 0, got {value!r}")


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{name}: must be a whole number >= {minimum}, got {value!r}")


def validate_options(opts: Any) -> None:
    """Raise UsageError for the first option of `opts` (a ScanOptions) that cannot run."""
    from distill_audit.devices import resolve_device
    from distill_audit.ingest.loader import parse_max_bad_rows
    from distill_audit.scan.verdict import LEVELS

    if not opts.student or not str(opts.student).strip():
        raise UsageError("--student: name the student you plan to train (an alias, folder, .gguf or cached Hub id)")
    if opts.fail_on is not None and opts.fail_on not in LEVELS:
        raise UsageError(f"--fail-on: expected one of {', '.join(LEVELS)} or {NEVER}, got {opts.fail_on!r}")
    if opts.device_map is None:
        opts.device = resolve_device(opts.device)
    canary = opts.canary or {}
    _positive_number("--lr", canary.get("lr"))
    for flag, key in (
        ("--canary-rows", "sample"),
        ("--epochs", "epochs"),
        ("--max-steps", "max_steps"),
        ("--seeds", "seeds"),
        ("--batch-size", "batch_size"),
        ("--threads", "threads"),
    ):
        _positive_int(flag, canary.get(key))
    _positive_int("--signature-rows", (opts.signature or {}).get("max_rows"), minimum=2)
    _positive_int("--sample", opts.sample)
    _positive_int("--threads", opts.threads)
    _positive_number("--max-row-mb", opts.max_row_mb)
    parse_max_bad_rows(getattr(opts, "max_bad_rows", None))
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {opts.out}: exists and is not a folder (the reports are a folder of files)")
    if opts.baseline and Path(opts.baseline).is_dir():
        raise UsageError(f"--baseline {opts.baseline}: is a folder; give its report.json")
