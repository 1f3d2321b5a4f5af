"""`distill-audit sanitize DATA --student MODEL --out CLEAN`: drop the rows carrying the signature."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill_audit import ui
from distill_audit.cli.main import ConfigOpt, QuietOpt, SeedOpt, ThreadsOpt, app
from distill_audit.devices import DEVICE_HELP


@app.command("sanitize")
def sanitize_cmd(
    data: Annotated[str, typer.Argument(help="The data file (JSONL, JSON, CSV/TSV or Parquet).")],
    student: Annotated[str, typer.Option("--student", "-s", help="The student whose signature ranks the rows.")],
    out: Annotated[
        str, typer.Option("--out", "-o", help="File for the kept rows (the input's format; never the input).")
    ],
    drop: Annotated[
        Optional[float],
        typer.Option("--drop", help="Fraction of scored rows to drop, top first (default 0.2).", show_default=False),
    ] = None,
    target: Annotated[
        Optional[str],
        typer.Option(
            "--target",
            help="Drop the fewest rows that re-audit at or under this level (low, medium).",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Random-removal draws beside the targeted removal.")] = 20,
    reference: Annotated[
        Optional[str],
        typer.Option("--reference", help="Neutral data to compare against (as scan).", show_default=False),
    ] = None,
    budget: Annotated[
        Optional[str],
        typer.Option(
            "--budget", help="Size the signature to a duration, as scan (default: score every row).", show_default=False
        ),
    ] = None,
    signature_rows: Annotated[
        Optional[int],
        typer.Option(
            "--signature-rows", min=2, help="Rows per side to score (default: every row).", show_default=False
        ),
    ] = None,
    suites: Annotated[
        Optional[str], typer.Option("--suites", help="Comma list of probe suites, as scan.", show_default=False)
    ] = None,
    reports: Annotated[
        str, typer.Option("--reports", help="Folder for sanitize.json/.md/.html.")
    ] = "distill-audit-sanitize",
    fail_on: Annotated[
        str,
        typer.Option("--fail-on", help="Exit 1 when the kept rows still re-audit at or above this level (or never)."),
    ] = "high",
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Score again even if the scan's stage cache holds the scores.")
    ] = False,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    threads: ThreadsOpt = None,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> int:
    """Drop the rows that carry the data signature, re-audit the rest beside random removals, write them."""
    from distill_audit.sanitize.options import SanitizeOptions
    from distill_audit.sanitize.run import run_sanitize

    ui.set_quiet(quiet)
    outcome = run_sanitize(
        SanitizeOptions(
            data=data,
            student=student,
            out=out,
            drop=drop,
            target=target,
            seeds=seeds,
            reference=reference,
            budget=budget,
            signature_rows=signature_rows,
            suites=[x.strip() for x in suites.split(",") if x.strip()] if suites else None,
            seed=seed,
            reports=reports,
            fail_on=None if fail_on == "never" else fail_on,
            no_cache=no_cache,
            device=device,
            threads=threads,
        )
    )
    ui.out.print(outcome.report["conclusion"], highlight=False, markup=False)
    if outcome.written:
        ui.out.print("wrote: " + ", ".join(str(p) for p in outcome.written.values()), highlight=False, markup=False)
    return outcome.exit_code
