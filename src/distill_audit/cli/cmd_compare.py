"""`distill-audit compare A.json B.json`: what changed between two scans."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from distill_audit import ui
from distill_audit.atomic import write_text
from distill_audit.cli.main import ConfigOpt, QuietOpt, app, check_out_file, read_report_file
from distill_audit.errors import UsageError
from distill_audit.report.compare import compare, compare_markdown


@app.command("compare")
def compare_cmd(
    a: Annotated[str, typer.Argument(metavar="A.json", help="The earlier (or first) scan report.")],
    b: Annotated[str, typer.Argument(metavar="B.json", help="The later (or second) scan report.")],
    format: Annotated[str, typer.Option("--format", "-f", help="md or json.")] = "md",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Show the verdict, input and per-trait changes between two scan reports."""
    ui.set_quiet(quiet)
    if format not in ("md", "json"):
        raise UsageError(f"--format: unknown format {format!r} (choose md or json)")
    check_out_file(out)
    diff = compare(read_report_file(a), read_report_file(b))
    text = compare_markdown(diff, a, b) if format == "md" else json.dumps(diff, indent=2, allow_nan=False) + "\n"
    if out:
        write_text(out, text)
        ui.info(f"wrote {out}")
    else:
        typer.echo(text, nl=False)
