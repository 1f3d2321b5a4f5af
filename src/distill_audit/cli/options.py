"""The data options every data-reading command shares, spelled once.

A command declares `data: DataArg` and the `*Opt` parameters below, then calls
`load_data(data, DataOptions(...), seed=seed)`; `scan`, `inspect` and the rest read
data exactly the same way (same flags, same errors, same skipped-row report).
`DataOptions` and `load_data` live in `ingest/options.py`, so the scan pipeline reads
data the same way without importing the CLI; this module only spells the flags.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill_audit.ingest.options import SchemaName

_DATA = "Data options"

DataArg = Annotated[
    str,
    typer.Argument(
        help="Dataset: .jsonl/.ndjson, .json, .parquet, .csv/.tsv, .arrow, a datasets save_to_disk folder, "
        "or a Hugging Face dataset id in the local cache.",
        show_default=False,
    ),
]
SchemaOpt = Annotated[
    Optional[SchemaName],
    typer.Option(
        "--schema",
        help="Row schema; detected from the field names when omitted.",
        rich_help_panel=_DATA,
        show_default=False,
    ),
]
PromptFieldOpt = Annotated[
    Optional[str],
    typer.Option(
        "--prompt-field",
        help="Field holding the prompt (or the Alpaca instruction).",
        rich_help_panel=_DATA,
        show_default=False,
    ),
]
CompletionFieldOpt = Annotated[
    Optional[str],
    typer.Option(
        "--completion-field",
        help="Field holding the teacher's reply (or the text).",
        rich_help_panel=_DATA,
        show_default=False,
    ),
]
MessagesFieldOpt = Annotated[
    Optional[str],
    typer.Option(
        "--messages-field", help="Field holding a chat message list.", rich_help_panel=_DATA, show_default=False
    ),
]
SampleOpt = Annotated[
    Optional[int],
    typer.Option(
        "--sample",
        min=1,
        help="Audit a seeded uniform sample of N rows (streamed; the file may exceed memory).",
        rich_help_panel=_DATA,
        show_default=False,
    ),
]
SkipBadRowsOpt = Annotated[
    bool,
    typer.Option(
        "--skip-bad-rows",
        help="Skip every unusable row and report how many and why (no --max-bad-rows limit).",
        rich_help_panel=_DATA,
    ),
]
MaxBadRowsOpt = Annotated[
    str,
    typer.Option(
        "--max-bad-rows",
        help="Unusable rows (empty reply, missing or mistyped field, malformed line) are skipped and reported up to "
        "this many: a count (50) or a share of the rows (1%); past it the command exits 4 naming the first lines.",
        rich_help_panel=_DATA,
    ),
]
MaxRowMbOpt = Annotated[
    float,
    typer.Option("--max-row-mb", min=0.001, help="Rows larger than this are bad rows.", rich_help_panel=_DATA),
]
SubsetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--subset",
        help="A Hub dataset id's subset (config name); read from the local cache only.",
        rich_help_panel=_DATA,
        show_default=False,
    ),
]
SplitOpt = Annotated[
    Optional[str],
    typer.Option(
        "--split",
        help="The split of a Hub dataset id or datasets folder (default: train, else the only one).",
        rich_help_panel=_DATA,
        show_default=False,
    ),
]
RevisionOpt = Annotated[
    Optional[str],
    typer.Option(
        "--revision",
        help="A Hub dataset id's branch, tag or commit, as cached by huggingface-cli download --revision.",
        rich_help_panel=_DATA,
        show_default=False,
    ),
]
