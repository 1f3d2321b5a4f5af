"""`distill-audit report REPORT.json --format md|html|junit`: re-render a scan report."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill_audit import ui
from distill_audit.atomic import write_text
from distill_audit.cli.main import ConfigOpt, QuietOpt, app, check_out_file, read_report_file
from distill_audit.errors import UsageError
from distill_audit.report.formats import rendered_formats
from distill_audit.report.render import render


@app.command("report")
def report_cmd(
    report_path: Annotated[str, typer.Argument(metavar="REPORT.json", help="A report.json written by scan.")],
    format: Annotated[str, typer.Option("--format", "-f", help="md, html, junit or json.")] = "md",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Re-render a scan report from its JSON (nothing is recomputed)."""
    ui.set_quiet(quiet)
    if format not in rendered_formats():
        raise UsageError(f"--format: unknown format {format!r} (choose {', '.join(rendered_formats())})")
    check_out_file(out)
    text = render(read_report_file(report_path), format)
    if out:
        write_text(out, text)
        ui.info(f"wrote {out}")
    else:
        typer.echo(text, nl=False)
