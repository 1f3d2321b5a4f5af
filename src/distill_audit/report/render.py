"""Render a canonical report dict to a format, and write the formats a scan asked for.

The top of report/: it dispatches to the renderers (markdown, html, junit) and the
canonical JSON (build), which share their display helpers through `formatting`.
Renderers read the report only; they never recompute an estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_audit.atomic import write_text
from distill_audit.errors import UsageError
from distill_audit.report.build import SUFFIX, dumps, validate


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "md":
        from distill_audit.report.markdown import to_markdown

        return to_markdown(report)
    if fmt == "html":
        from distill_audit.report.html import to_html

        return to_html(report)
    if fmt == "junit":
        from distill_audit.report.junit import to_junit

        return to_junit(report)
    if fmt == "json":
        return dumps(report)
    raise UsageError(f"--format: unknown format {fmt!r} (choose md, html, junit or json)")


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
