"""The records every later stage consumes.

A `Sample` is one teacher turn to audit: the chat messages that led to it (`prompt`)
and the teacher's reply (`completion`). All schemas (prompt/completion, messages,
Alpaca, plain text) normalize to this, so checks, signature and canary never branch
on the input format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


@dataclass(frozen=True)
class Sample:
    index: int  # 0-based row index in the source
    line: int | None  # 1-based line number in a text file (jsonl/csv), else None
    prompt: tuple[Message, ...]  # messages before the completion; () for plain text
    completion: str  # the teacher's reply: what a student is trained on
    meta: dict[str, Any] = field(default_factory=dict)  # provenance (model, teacher, system_prompt, ...)

    @property
    def user_text(self) -> str:
        """The last user message (what most checks and templates key on)."""
        for msg in reversed(self.prompt):
            if msg.get("role") == "user":
                return msg.get("content", "")
        return ""

    @property
    def system_prompt(self) -> str | None:
        for msg in self.prompt:
            if msg.get("role") == "system":
                return msg.get("content")
        return None

    def where(self, source: str) -> str:
        return f"{source}:{self.line}" if self.line is not None else f"{source}[row {self.index}]"


@dataclass(frozen=True)
class SkippedRow:
    index: int
    line: int | None
    field: str | None
    reason: str  # a short category ("malformed JSON", "empty completion", ...) for summaries
    detail: str = ""  # the specifics (column, byte, type) for this row


@dataclass
class AuditDataset:
    source: str  # path or dataset id as given
    format: str  # jsonl, json, parquet, csv, tsv, arrow, hf-disk, hf-hub
    schema: str  # prompt_completion, messages, alpaca, text
    samples: list[Sample]
    fingerprint: str  # sha256 over the normalized content of ALL usable rows (before sampling)
    n_rows_total: int  # rows in the source (usable + skipped)
    skipped: list[SkippedRow] = field(default_factory=list)
    sampled_from: int | None = None  # usable rows before --sample, when sampled
    seed: int | None = None
    skipped_counts: dict[str, int] = field(
        default_factory=dict
    )  # reason -> rows; complete even when `skipped` is capped
    schema_fields: dict[str, str] = field(
        default_factory=dict
    )  # schema role -> column read (e.g. completion -> output)
    selection: dict[str, Any] | None = None  # a Hub id's or datasets folder's subset, split and revision read

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def provenance(self) -> dict[str, list[str]]:
        """Distinct values of provenance fields (e.g. teacher names) across samples."""
        seen: dict[str, set[str]] = {}
        for s in self.samples:
            for k, v in s.meta.items():
                if isinstance(v, (str, int, float)):
                    seen.setdefault(k, set()).add(str(v))
        return {k: sorted(v)[:20] for k, v in sorted(seen.items())}

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped_summary().values())

    def skipped_summary(self) -> dict[str, int]:
        if self.skipped_counts:
            return dict(self.skipped_counts)
        out: dict[str, int] = {}
        for row in self.skipped:
            out[row.reason] = out.get(row.reason, 0) + 1
        return out
