"""The options of `sanitize` and their checks (all before any model or file is touched)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from distill_audit.errors import UsageError
from distill_audit.levels import LEVELS

DEFAULT_DROP = 0.2  # the scan's top quintile (SignatureConfig.top_fraction)
DEFAULT_SEEDS = 20  # random arms: 20 draws let the rank test reach p = 1/21 < 0.05


@dataclass
class SanitizeOptions:
    data: str
    student: str
    out: str
    drop: float | None = None
    target: str | None = None
    seeds: int = DEFAULT_SEEDS
    reference: str | None = None
    budget: str | None = None
    signature_rows: int | None = None  # None: every row (capped by the scan's MAX_ROWS) unless --budget
    suites: list[str] | None = None
    seed: int = 0
    reports: str = "distill-audit-sanitize"
    fail_on: str | None = "high"
    no_cache: bool = False
    device: str = "cpu"
    threads: int | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False

    @property
    def mode(self) -> str:
        return "target" if self.target is not None else "drop"

    @property
    def fraction(self) -> float:
        return DEFAULT_DROP if self.drop is None else self.drop


def _writable(folder: Path) -> bool:
    """The nearest existing folder of `folder` lets us create files in it."""
    p = folder
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def validate(opts: SanitizeOptions) -> None:
    if opts.drop is not None and opts.target is not None:
        raise UsageError("give --drop FRACTION or --target LEVEL, not both")
    if opts.drop is not None and not (0.0 < opts.drop < 1.0):
        raise UsageError(f"--drop: expected a fraction strictly between 0 and 1, got {opts.drop}")
    if opts.target is not None and opts.target not in LEVELS:
        raise UsageError(f"--target: expected one of {', '.join(LEVELS)}, got {opts.target!r}")
    if opts.fail_on is not None and opts.fail_on not in LEVELS:
        raise UsageError(f"--fail-on: expected one of {', '.join(LEVELS)} or never, got {opts.fail_on!r}")
    if opts.seeds < 1:
        raise UsageError(f"--seeds: expected at least 1 random draw, got {opts.seeds}")
    src, out = Path(opts.data), Path(opts.out)
    if not src.is_file():
        raise UsageError(f"{opts.data}: sanitize reads a local data file (JSONL, JSON, CSV/TSV or Parquet)")
    if out.exists() and (out.is_dir() or out.resolve() == src.resolve() or os.path.samefile(out, src)):
        raise UsageError(
            f"--out {opts.out}: "
            + ("is a folder; give a file path" if out.is_dir() else "is the input; give a new file")
        )
    if out.resolve() == src.resolve():
        raise UsageError(f"--out {opts.out}: is the input; give a new file")
    if out.suffix.lower() != src.suffix.lower():
        raise UsageError(f"--out {opts.out}: the kept rows are written in the input's format; end it in {src.suffix}")
    for label, folder in (("--out", out.parent), ("--reports", Path(opts.reports))):
        if not _writable(folder):
            raise UsageError(f"{label} {folder}: the folder is not writable")
