"""`distill-audit inspect DATA [--reference REF]`: the model-free checks on a dataset.

A thin shell: read the data (shared data options), run `checks.run_static_checks`
(or, with --streaming, `checks.streaming.run_streaming_checks`, which reads a file
larger than memory once), and hand the result to `report.inspect` for the rich tables or the documented JSON
(docs/inspect.md).
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Optional

import typer

from distill_audit import atomic, ui
from distill_audit.checks import run_static_checks
from distill_audit.checks.static import StaticChecks
from distill_audit.checks.streaming import DEFAULT_SAMPLE as DEFAULT_STREAM_SAMPLE
from distill_audit.cli.main import ConfigOpt, QuietOpt, SeedOpt, app, check_out_file
from distill_audit.cli.options import (
    CompletionFieldOpt,
    DataArg,
    MaxBadRowsOpt,
    MaxRowMbOpt,
    MessagesFieldOpt,
    PromptFieldOpt,
    RevisionOpt,
    SampleOpt,
    SchemaOpt,
    SkipBadRowsOpt,
    SplitOpt,
    SubsetOpt,
)
from distill_audit.ingest.loader import DEFAULT_MAX_BAD_ROWS, DEFAULT_MAX_ROW_MB
from distill_audit.ingest.options import DataOptions, load_data
from distill_audit.report.inspect import inspect_json, render_tables
from distill_audit.seeding import seed_everything


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


@app.command("inspect")
def inspect(
    data: DataArg,
    reference: Annotated[
        Optional[str],
        typer.Option(
            "--reference",
            "-r",
            help="A dataset to compare against (e.g. the same prompts without the trait).",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table (terminal) or json.")
    ] = OutputFormat.table,  # noqa: A002
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="Write the output to this file instead of stdout.", show_default=False),
    ] = None,
    sample_flags: Annotated[
        Optional[Path],
        typer.Option("--sample-flags", help="Write per-sample flags to this Parquet file.", show_default=False),
    ] = None,
    trait_word: Annotated[
        Optional[list[str]],
        typer.Option(
            "--trait-word", help="Extra leakage word ('word' or 'category:word'); repeatable.", show_default=False
        ),
    ] = None,
    streaming: Annotated[
        bool,
        typer.Option(
            "--streaming",
            help="Read DATA once in bounded memory (files larger than memory): row checks cover every row; "
            "near-duplicates and the reference comparison a seeded sample of --sample rows (default "
            f"{DEFAULT_STREAM_SAMPLE}).",
        ),
    ] = False,
    schema: SchemaOpt = None,
    prompt_field: PromptFieldOpt = None,
    completion_field: CompletionFieldOpt = None,
    messages_field: MessagesFieldOpt = None,
    sample: SampleOpt = None,
    skip_bad_rows: SkipBadRowsOpt = False,
    max_row_mb: MaxRowMbOpt = DEFAULT_MAX_ROW_MB,
    max_bad_rows: MaxBadRowsOpt = DEFAULT_MAX_BAD_ROWS,
    subset: SubsetOpt = None,
    split: SplitOpt = None,
    revision: RevisionOpt = None,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Model-free checks: format profile, number rules, trait-word leakage, duplicates, lengths, and a reference comparison."""  # noqa: E501 (typer's help text)
    ui.set_quiet(quiet)
    check_out_file(out)
    checks = inspect_checks(dict(locals()))
    if format == OutputFormat.json:
        text = inspect_json(checks.to_dict())
        if out is not None:
            atomic.write_text(out, text + "\n")
            ui.info(f"wrote {out}")
        else:
            ui.out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    if out is not None:
        from rich.console import Console

        with atomic.atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
            render_tables(checks.to_dict(), Console(file=f, width=120, no_color=True, markup=False))
        ui.info(f"wrote {out}")
    else:
        render_tables(checks.to_dict(), ui.out)


def inspect_checks(given: dict[str, Any]) -> StaticChecks:
    """The checks from the command's parameter values (the CLI and `distill_audit.inspect` share it)."""
    p = SimpleNamespace(**given)
    seed_everything(p.seed)
    check_out_file(p.sample_flags, "--sample-flags")
    names = [f.name for f in dataclasses.fields(DataOptions)]
    options = DataOptions(**{name: given[name] for name in names})
    ds = None if p.streaming else load_data(p.data, options, seed=p.seed)
    ref = load_data(p.reference, options.without_selection(), seed=p.seed, label="reference") if p.reference else None
    against = f" against {len(ref)} reference rows" if ref else ""
    if ds is None:
        from distill_audit.checks.streaming import run_streaming_checks

        ui.info(f"streaming {p.data}{against}")
        checks = run_streaming_checks(
            p.data,
            ref,
            sample=p.sample or DEFAULT_STREAM_SAMPLE,
            seed=p.seed,
            extra_trait_words=p.trait_word or (),
            **options.reading(),
        )
    else:
        ui.info(f"checking {len(ds)} rows{against}")
        checks = run_static_checks(ds, ref, seed=p.seed, extra_trait_words=p.trait_word or ())
    if p.sample_flags is not None:
        checks.write_sample_flags(p.sample_flags)
        ui.info(f"per-sample flags: {p.sample_flags}")
    return checks
