"""How a command reads its data: the shared data options and the one loader that honours them.

`DataOptions` carries what the shared data flags say (schema, fields, --sample, bad
rows); `load_data` reads a dataset with them and reports what was skipped or sampled,
so `scan`, `inspect` and the rest read data exactly the same way. The command-line
spelling of these options lives in `cli/options.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum

from distill_audit import ui
from distill_audit.ingest import AuditDataset, load_dataset
from distill_audit.ingest.loader import DEFAULT_MAX_BAD_ROWS, DEFAULT_MAX_ROW_MB


class SchemaName(str, Enum):
    prompt_completion = "prompt_completion"
    messages = "messages"
    alpaca = "alpaca"
    text = "text"


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
    subset: str | None = None  # a Hub dataset id's config name
    split: str | None = None  # a Hub id's or datasets folder's split (default: train, else the only one)
    revision: str | None = None  # a Hub id's branch, tag or commit (hub cache snapshots)

    def without_selection(self) -> DataOptions:
        """The options for a --reference or --control file: --subset/--split/--revision pick DATA's table only."""
        return dataclasses.replace(self, subset=None, split=None, revision=None)

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
            "subset": self.subset,
            "split": self.split,
            "revision": self.revision,
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
