"""Render a canonical report dict to a format, and write the formats a scan asked for.

The top of report/: it dispatches to the renderers (markdown, html, junit) and the
canonical JSON (build), which share their display helpers through `formatting`.
Renderers read the report only; they never recompute an estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_audit.atomic import write_text
from distill_audit.errors import DataError, UsageError
from distill_audit.report.build import SUFFIX, dumps, validate, write_samples_parquet
from distill_audit.report.formats import get_format, rendered_formats


def render(report: dict[str, Any], fmt: str) -> str:
    """The report in a registered format (report/formats.py)."""
    found = get_format(fmt)
    if found is None or found.renderer is None:
        raise UsageError(f"--format: unknown format {fmt!r} (choose {', '.join(rendered_formats())})")
    return found.render(report)


def write_outputs(report: dict[str, Any], out_dir: str | Path, formats: list[str]) -> dict[str, Path]:
    """Validate, then write report.json and each rendered format atomically."""
    validate(report)
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for fmt in formats:
        if fmt == "parquet":
            continue  # written by the pipeline, which holds the per-sample rows
        text = dumps(report) if fmt == "json" else render(report, fmt)
        written[fmt] = write_text(out / SUFFIX[fmt], text)
    return written


def write_run_outputs(
    report: dict[str, Any], out_dir: str | Path, formats: list[str], sample_rows: list[dict[str, Any]] | None = None
) -> dict[str, Path]:
    """Write a run's whole output set so the folder holds either the old set or the new one.

    Everything is rendered into a temp folder beside `out_dir` first (a failure there
    leaves the old set untouched). A folder holding only distill-audit outputs is then
    replaced by the new one with two renames; a folder that also holds other files keeps
    them, and the new files are renamed in, report.json last. Returns the final paths.
    """
    import os
    import shutil
    import tempfile

    if sample_rows is not None and report.get("rows") is None:
        from distill_audit.report.rows import rows_section

        report = {**report, "rows": rows_section(report, sample_rows)}
    validate(report)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder (--out names the folder for the reports)")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_output_temps(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    names: dict[str, str] = {}
    try:
        for fmt in formats:
            if fmt == "parquet":
                if sample_rows is not None:
                    write_samples_parquet(sample_rows, tmp / SUFFIX["parquet"])
                    names["parquet"] = SUFFIX["parquet"]
                continue
            text = dumps(report) if fmt == "json" else render(report, fmt)
            (tmp / SUFFIX[fmt]).write_text(text, encoding="utf-8")
            names[fmt] = SUFFIX[fmt]
        mode = 0o777 & ~_umask()
        os.chmod(tmp, mode)
        for name in names.values():
            os.chmod(tmp / name, 0o666 & ~_umask())
        ours = set(SUFFIX.values())
        if not out.exists():
            os.rename(tmp, out)
        elif all(p.name in ours or p.name.startswith(".") for p in out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".tmp", dir=out.parent))
            os.rmdir(old)
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            for stale in ours - set(names.values()):  # an older set's file the new set does not have
                (out / stale).unlink(missing_ok=True)
            for name in sorted(names.values(), key=lambda n: n == SUFFIX["json"]):
                os.replace(tmp / name, out / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {fmt: out / name for fmt, name in names.items()}


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_output_temps(out: Path, max_age_s: float = 3600.0) -> None:
    """Temp folders that a killed writer left beside `out` (older than any live write)."""
    import shutil
    import time

    for old in out.parent.glob(f".{out.name}.*.tmp"):
        try:
            if time.time() - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
