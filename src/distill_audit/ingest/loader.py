"""`load_dataset` and `iter_samples`: every command reads data through these.

`iter_samples` streams `Sample`s in bounded memory (for checks over millions of
rows); `load_dataset` collects them, optionally as a seeded reservoir sample so a file
larger than memory can still be audited. Rows whose content is unusable (an empty
completion, a missing or mistyped field, a malformed line) are findings, not failures:
they are skipped and counted by reason up to `max_bad_rows` (default 1% of the rows, or
a count); past it the run stops with one line naming file, line and field and the first
bad lines. `skip_bad_rows` lifts the limit. Never dropped silently.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from typing import Any

from distill_audit.errors import AuditError, DataError, NothingToAuditError, UsageError
from distill_audit.ingest.hub import HubSelection, check_applies
from distill_audit.ingest.readers import detect_format, read_rows
from distill_audit.ingest.records import AuditDataset, Sample, SkippedRow
from distill_audit.ingest.schemas import RowNormalizer, RowProblem, SchemaSpec, detect_schema, row_schema
from distill_audit.seeding import derive_seed

DEFAULT_MAX_ROW_MB = 16.0
MAX_SKIPPED_DETAILS = 1000  # per-row details kept; counts by reason are always complete
DEFAULT_MAX_BAD_ROWS = "1%"


def parse_max_bad_rows(value: str | int | float | None) -> tuple[int | None, float | None]:
    """`--max-bad-rows`: a count ("50") or a share of the rows ("1%", "0.5%") -> (count, fraction)."""
    if value is None:
        value = DEFAULT_MAX_BAD_ROWS
    if isinstance(value, bool):
        raise UsageError(f"--max-bad-rows: expected a count or a percentage such as 1%, got {value!r}")
    if isinstance(value, int):
        count = value
    else:
        text = str(value).strip()
        try:
            if text.endswith("%"):
                pct = float(text[:-1])
                if not (0 <= pct <= 100):
                    raise ValueError
                return None, pct / 100
            count = int(text)
        except ValueError:
            raise UsageError(
                f"--max-bad-rows: expected a count (e.g. 50) or a percentage 0-100% (e.g. 1%), got {value!r}"
            ) from None
    if count < 0:
        raise UsageError(f"--max-bad-rows: must be 0 or more (got {count})")
    return count, None


class ContentHash:
    """sha256 over the prompt messages and completion of each usable row, in order.

    Strings are length-prefixed so no two different datasets hash the same bytes;
    provenance fields are left out (the fingerprint is of what a student trains on).
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.rows = 0

    def add(self, prompt: tuple[dict[str, str], ...], completion: str) -> None:
        if len(prompt) == 1:  # the common case, same bytes as the general path below
            role, content = prompt[0]["role"], prompt[0]["content"]
            text = f"1|{role}|{len(content)}|{content}{len(completion)}|{completion}"
            self._h.update(text.encode("utf-8", "surrogatepass"))
            self.rows += 1
            return
        parts = [f"{len(prompt)}|"]
        for msg in prompt:
            parts.append(f"{msg['role']}|{len(msg['content'])}|{msg['content']}")
        parts.append(f"{len(completion)}|{completion}")
        self._h.update("".join(parts).encode("utf-8", "surrogatepass"))
        self.rows += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class DatasetStream:
    """An iterable of `Sample`s from one source, read once, in bounded memory.

    After iteration: `schema`, `n_rows_total`, `skipped`, `skipped_counts` and
    `fingerprint` describe the whole source.
    """

    def __init__(
        self,
        source: str,
        *,
        schema: str | None = None,
        prompt_field: str | None = None,
        completion_field: str | None = None,
        messages_field: str | None = None,
        skip_bad_rows: bool = False,
        max_row_mb: float = DEFAULT_MAX_ROW_MB,
        max_bad_rows: str | int | None = None,
        subset: str | None = None,
        split: str | None = None,
        revision: str | None = None,
    ):
        self.source = str(source)
        self._max_count, self._max_fraction = parse_max_bad_rows(max_bad_rows)
        self.format = detect_format(self.source)
        self.hub = HubSelection(subset, split, revision)
        check_applies(self.source, self.format, self.hub)
        self.selection: dict[str, Any] = {}  # what a Hub id or datasets folder read: subset, split, revision
        self._flags = dict(
            schema=schema, prompt_field=prompt_field, completion_field=completion_field, messages_field=messages_field
        )
        self.skip_bad_rows = skip_bad_rows
        self.max_row_bytes = int(max_row_mb * 2**20)
        self.spec: SchemaSpec | None = None
        self.n_rows_total = 0
        self.skipped: list[SkippedRow] = []
        self.skipped_counts: dict[str, int] = {}
        self.n_bad = 0
        self._first_bad: str | None = None  # the full line of the first bad row
        self._bad_lines: list[str] = []  # where the first few bad rows are
        self._detected_at: int | None = None
        self._hash = ContentHash()
        self._done = False

    @property
    def schema(self) -> str | None:
        return self.spec.name if self.spec else None

    @property
    def n_usable(self) -> int:
        return self._hash.rows

    @property
    def fingerprint(self) -> str:
        if not self._done:
            raise RuntimeError("the fingerprint is known only after the whole stream was read")
        return self._hash.hexdigest()

    def _where(self, line: int | None, index: int) -> str:
        return f"{self.source}:{line}" if line is not None else f"{self.source}[row {index}]"

    def _bad(self, index: int, line: int | None, problem: RowProblem) -> None:
        self.n_bad += 1
        if self._first_bad is None:
            field = f" field {problem.field!r}:" if problem.field else ""
            detail = f" ({problem.detail})" if problem.detail else ""
            self._first_bad = f"{self._where(line, index)}:{field} {problem.reason}{detail}"
        if len(self._bad_lines) < 5:
            self._bad_lines.append(str(line) if line is not None else f"row {index}")
        self.skipped_counts[problem.reason] = self.skipped_counts.get(problem.reason, 0) + 1
        if len(self.skipped) < MAX_SKIPPED_DETAILS:
            self.skipped.append(SkippedRow(index, line, problem.field, problem.reason, problem.detail))
        if not self.skip_bad_rows and self._max_count is not None and self.n_bad > self._max_count:
            raise self._too_many(f"more than {self._max_count}")

    def _too_many(self, limit: str) -> DataError:
        first = self._first_bad or self.source
        if self.n_bad == 1:
            return DataError(
                first, hint="--skip-bad-rows skips such rows and reports them; --max-bad-rows N or P% allows some"
            )
        lines = ", ".join(self._bad_lines) + (", ..." if self.n_bad > len(self._bad_lines) else "")
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped_counts.items(), key=lambda kv: -kv[1]))
        return DataError(
            f"{first}; {self.n_bad} bad rows ({reasons}; lines {lines}), {limit} allowed (--max-bad-rows)",
            hint="--skip-bad-rows skips every bad row and reports them",
        )

    def _check_bad_share(self) -> None:
        if self.skip_bad_rows or self._max_fraction is None or not self.n_bad:
            return
        allowed = int(self._max_fraction * self.n_rows_total + 1e-9)
        if self.n_bad > allowed:
            share = f"{100 * self._max_fraction:g}% of {self.n_rows_total} rows = {allowed}"
            raise self._too_many(share)

    def _detect(self, row: dict[str, Any], line: int | None) -> SchemaSpec:
        """The schema from the first readable row's own keys (those holding a value)."""
        try:
            spec = detect_schema([k for k, v in row.items() if v is not None], source=self.source, **self._flags)
        except AuditError as first_error:
            try:
                spec = detect_schema(row.keys(), source=self.source, **self._flags)
            except AuditError:
                raise first_error from None
        self._detected_at = line
        return spec

    def _mixed(self, row: dict[str, Any], problem: RowProblem, index: int, line: int | None) -> RowProblem:
        """A row of another schema than the file's gets a message saying so."""
        assert self.spec is not None
        other = row_schema(row) if problem.reason in ("missing field", "wrong type") else None
        if other is None or other == self.spec.name:
            return problem
        at = f"line {self._detected_at}" if self._detected_at is not None else "the first row"
        return RowProblem(
            None,
            "different schema",
            f"mixed schemas: this row is {other} but the file's schema, detected at {at}, is {self.spec.describe()}",
        )

    def __iter__(self) -> Iterator[Sample]:
        if self._done:
            raise RuntimeError("a DatasetStream is read once; open a new one")
        normalize: RowNormalizer | None = None
        rows = read_rows(self.source, self.format, max_row_bytes=self.max_row_bytes, hub=self.hub, read=self.selection)
        for raw in rows:
            self.n_rows_total += 1
            row = raw.value
            if isinstance(row, RowProblem):
                self._bad(raw.index, raw.line, row)
                continue
            if normalize is None:
                self.spec = self._detect(row, raw.line)
                normalize = RowNormalizer(self.spec)
            try:
                prompt, completion, meta = normalize(row, raw.line)
            except RowProblem as problem:
                self._bad(raw.index, raw.line, self._mixed(row, problem, raw.index, raw.line))
                continue
            self._hash.add(prompt, completion)
            yield Sample(index=raw.index, line=raw.line, prompt=prompt, completion=completion, meta=meta)
        self._check_bad_share()
        self._done = True

    def nothing_usable(self) -> NothingToAuditError:
        """The error for a source that yielded no usable row, saying why."""
        if self.n_rows_total == 0:
            return NothingToAuditError(f"{self.source}: no rows")
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped_counts.items(), key=lambda kv: -kv[1]))
        return NothingToAuditError(f"{self.source}: no usable rows; all {self.n_rows_total} were skipped ({reasons})")


def iter_samples(source: str, **options: Any) -> DatasetStream:
    """Stream the samples of `source` without holding them (options as `load_dataset`)."""
    return DatasetStream(source, **options)


class Reservoir:
    """A seeded uniform sample of k items from a stream of unknown length (Algorithm R).

    Fed one item at a time, so a caller that also does other work per row (the
    streaming checks) draws exactly the sample `reservoir_sample` would.
    """

    def __init__(self, k: int, seed: int):
        self.k = k
        self.n = 0
        self._rng = random.Random(derive_seed(seed, "ingest", "sample"))
        self._items: list[Sample] = []

    def add(self, item: Sample) -> None:
        self.n += 1
        if self.n <= self.k:
            self._items.append(item)
        else:
            j = self._rng.randrange(self.n)
            if j < self.k:
                self._items[j] = item

    def sample(self) -> list[Sample]:
        """The kept items in source order."""
        return sorted(self._items, key=lambda s: s.index)


def reservoir_sample(items: Iterator[Sample], k: int, seed: int) -> tuple[list[Sample], int]:
    """A uniform sample of k items from a stream of unknown length (Algorithm R), in source order.

    Returns the sample and how many items the stream held. Same stream + seed -> same sample.
    """
    reservoir = Reservoir(k, seed)
    for item in items:
        reservoir.add(item)
    return reservoir.sample(), reservoir.n


def load_dataset(
    source: str,
    *,
    schema: str | None = None,
    prompt_field: str | None = None,
    completion_field: str | None = None,
    messages_field: str | None = None,
    sample: int | None = None,
    seed: int = 0,
    skip_bad_rows: bool = False,
    max_row_mb: float = DEFAULT_MAX_ROW_MB,
    max_bad_rows: str | int | None = None,
    subset: str | None = None,
    split: str | None = None,
    revision: str | None = None,
) -> AuditDataset:
    """Read `source` (file, datasets folder or cached hub id) into an `AuditDataset`.

    With `sample=N`, keeps a seeded uniform sample of N usable rows while streaming;
    the fingerprint and counts still cover every row of the source.
    """
    if sample is not None and sample < 1:
        raise UsageError(f"--sample must be at least 1 (got {sample})")
    stream = DatasetStream(
        source,
        schema=schema,
        prompt_field=prompt_field,
        completion_field=completion_field,
        messages_field=messages_field,
        skip_bad_rows=skip_bad_rows,
        max_row_mb=max_row_mb,
        max_bad_rows=max_bad_rows,
        subset=subset,
        split=split,
        revision=revision,
    )
    if sample is not None:
        samples, n_usable = reservoir_sample(iter(stream), sample, seed)
        sampled_from = n_usable if n_usable > sample else None
    else:
        samples, sampled_from = list(stream), None
    if not samples:
        raise stream.nothing_usable()
    assert stream.spec is not None
    return AuditDataset(
        source=stream.source,
        format=stream.format,
        schema=stream.spec.name,
        samples=samples,
        fingerprint=stream.fingerprint,
        n_rows_total=stream.n_rows_total,
        skipped=stream.skipped,
        sampled_from=sampled_from,
        seed=seed if sample is not None else None,
        skipped_counts=dict(stream.skipped_counts),
        schema_fields=dict(stream.spec.fields),
        selection=dict(stream.selection) or None,
    )


def dataset_summary(ds: AuditDataset) -> dict[str, Any]:
    """The plain-JSON description of a loaded dataset that reports embed."""
    return {
        "source": ds.source,
        "format": ds.format,
        "schema": ds.schema,
        "schema_fields": dict(ds.schema_fields),
        "fingerprint": ds.fingerprint,
        "n_rows_total": ds.n_rows_total,
        "n_usable": ds.n_rows_total - ds.n_skipped,
        "n_loaded": len(ds.samples),
        "sampled_from": ds.sampled_from,
        "seed": ds.seed,
        "n_skipped": ds.n_skipped,
        "skipped_by_reason": ds.skipped_summary(),
        "skipped_examples": [
            {"index": r.index, "line": r.line, "field": r.field, "reason": r.reason, "detail": r.detail}
            for r in ds.skipped[:20]
        ],
        "provenance": ds.provenance,
        **({"selection": ds.selection} if ds.selection else {}),
    }
