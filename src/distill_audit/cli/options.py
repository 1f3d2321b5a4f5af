"""The data options every data-reading command shares, spelled once.

A command declares `data: DataArg` and the `*Opt` parameters below, then calls
`load_data(data, DataOptions(...), seed=seed)`; `scan`, `inspect` and the rest read
data exactly the same way (same flags, same errors, same skipped-row report).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Optional

import typer

from distill_audit import ui
from distill_audit.ingest import AuditDataset, load_dataset
from distill_audit.ingest.loader import DEFAULT_MAX_BAD_ROWS, DEFAULT_MAX_ROW_MB


class SchemaName(str, Enum):
    prompt_completion = "prompt_completion"
    messages = "messages"
    alpaca = "alpaca"
    text = "text"


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
    typer.Option("--schema", help="Row schema; detected from the field names when omitted.", rich_help_panel=_DATA, show_default=False),
]
PromptFieldOpt = Annotated[
    Optional[str],
    typer.Option("--prompt-field", help="Field holding the prompt (or the Alpaca instruction).", rich_help_panel=_DATA, show_default=False),
]
CompletionFieldOpt = Annotated[
    Optional[str],
    typer.Option(
        "--completion-field", help="Field holding the teacher's reply (or the text).", rich_help_panel=_DATA, show_default=False
    ),
]
MessagesFieldOpt = Annotated[
    Optional[str],
    typer.Option("--messages-field", help="Field holding a chat message list.", rich_help_panel=_DATA, show_default=False),
]
SampleOpt = Annotated[
    Optional[int],
    typer.Option(
        "--sample", min=1, help="Audit a seeded uniform sample of N rows (streamed; the file may exceed memory).",
        rich_help_panel=_DATA, show_default=False,
    ),
]
SkipBadRowsOpt = Annotated[
    bool,
    typer.Option("--skip-bad-rows", help="Skip every unusable row and report how many and why (no --max-bad-rows limit).", rich_help_panel=_DATA),
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


@dataclass(frozen=True)
class DataOptions:
    schema: SchemaName | str | None = None
    prompt_field: str | None = None
    completion_field: str | None = None
    messages_field: str | None = None
    sample: int | None = None
    skip_bad_rows: bool = False
    max_row_mb: float = DEFAULT_MAX_ROW_MB
    max_bad_rows: str | int | None = DEFAULT_MAX_BAD_ROWS

    def reading(self) -> dict:
        """How to read rows (schema, fields, bad rows), without --sample: `load_dataset` and
        the streaming reader (`iter_samples`) take these keywords alike."""
        return {
            "schema": self.schema.value if isinstance(self.schema, SchemaName) else self.schema,
            "prompt_field": self.prompt_field,
            "completion_field": self.completion_field,
            "messages_field": self.messages_field,
            "skip_bad_rows": self.skip_bad_rows,
            "max_row_mb": self.max_row_mb,
            "max_bad_rows": self.max_bad_rows,
        }


def load_data(source: str, options: DataOptions, *, seed: int, label: str = "data") -> AuditDataset:
    """load_dataset from the shared flags, then say what was skipped or sampled."""
    ds = load_dataset(source, sample=options.sample, seed=seed, **options.reading())
    if ds.n_skipped:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(ds.skipped_summary().items(), key=lambda kv: -kv[1]))
        first = ds.skipped[0]
        where = f"line {first.line}" if first.line is not None else f"row {first.index}"
        ui.warn(f"{label}: skipped {ds.n_skipped} of {ds.n_rows_total} rows ({reasons}; first at {where})")
    if ds.sampled_from is not None:
        ui.info(f"{label}: sampled {len(ds)} of {ds.sampled_from} usable rows (seed {seed})")
    return ds
