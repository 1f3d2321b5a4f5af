"""Static checks over a dataset larger than memory, read once as a stream.

`run_static_checks` holds every row; a 10M-row file does not fit. `run_streaming_checks`
reads the source once through the ingest's streaming iterator, a chunk at a time:

- checks that add up row by row cover EVERY row: the format profile, the number
  rules, trait-word leakage (the same functions as `run_static_checks`, merged over
  chunks), exact duplicates (a 64-bit hash per normalized completion) and length
  statistics and outliers (two int32 per row);
- checks that need all rows side by side (near-duplicates, repeated prompt+completion
  pairs, the comparison with a reference) run on a seeded uniform sample of `sample`
  rows drawn while streaming, and their limits say so.

Memory: one chunk, the sample, and 16 bytes per row (hash + two lengths), never the
rows' text. Number parsing fans out over `num_proc` processes with `datasets.map`
when the machine has cores to spare (on 2 cores it is slower than inline parsing).
"""

from __future__ import annotations

import hashlib
import os
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from distill_audit.checks.duplicates import DuplicateCheck, normalize
from distill_audit.checks.leakage import LeakageCheck, TraitMatcher, check_leakage, load_trait_words
from distill_audit.checks.lengths import check_lengths
from distill_audit.checks.numbers import NUMBER_DATA_SHARE, NumberCheck, ParsedNumbers, check_numbers, parse_numbers
from distill_audit.checks.profile import classify, profile
from distill_audit.checks.static import StaticChecks, run_static_checks
from distill_audit.ingest.loader import Reservoir, dataset_summary, iter_samples
from distill_audit.ingest.records import AuditDataset, Sample

CHUNK_ROWS = 50_000
DEFAULT_SAMPLE = 20_000
MAX_EXAMPLES = 20


def default_num_proc() -> int:
    """Processes for per-row parsing: 1 unless the machine has cores to spare."""
    cores = os.cpu_count() or 1
    return 1 if cores < 8 else min(8, cores // 2)


def _parse_batch(batch: dict[str, list]) -> dict[str, list]:
    """Per-row number parse and format kind, as plain columns (runs in `datasets` workers)."""
    values, reasons, separators, kinds = [], [], [], []
    for text in batch["completion"]:
        parsed = parse_numbers(text)
        values.append(list(parsed.values) if parsed.values is not None else None)
        reasons.append(parsed.reason)
        separators.append(parsed.separator)
        kinds.append(classify(text, parsed))
    return {"values": values, "reason": reasons, "separator": separators, "kind": kinds}


def parse_rows(completions: list[str], num_proc: int) -> tuple[list[ParsedNumbers], list[str]]:
    if num_proc > 1 and len(completions) >= 10 * num_proc:
        import datasets

        cols = (
            datasets.Dataset.from_dict({"completion": completions})
            .map(_parse_batch, batched=True, batch_size=2_000, num_proc=num_proc, remove_columns=["completion"])
            .to_dict()
        )
    else:
        cols = _parse_batch({"completion": completions})
    parsed = [
        ParsedNumbers(tuple(v) if v is not None else None, r, s)
        for v, r, s in zip(cols["values"], cols["reason"], cols["separator"], strict=True)
    ]
    return parsed, cols["kind"]


def _merge_numbers(parts: list[NumberCheck]) -> NumberCheck:
    n = sum(p.n_rows for p in parts)
    n_lists = sum(p.n_number_lists for p in parts)
    merged = NumberCheck(
        "ok",
        None,
        n,
        n_lists,
        sum(p.n_pass_format_rules for p in parts),
        sum(p.n_pass_all_rules for p in parts),
        dict(sum((Counter(p.reject_reasons) for p in parts), Counter())),
        dict(sum((Counter(p.format_problems) for p in parts), Counter())),
        [row for p in parts for row in p.failing_rows][:MAX_EXAMPLES],
        dict(sum((Counter(p.value_counts) for p in parts), Counter())),
    )
    if n == 0:  # the same status rule as check_numbers
        merged.status, merged.reason = "skipped", "no rows"
    elif n_lists / n < NUMBER_DATA_SHARE:
        merged.status, merged.reason = "skipped", f"not number data: {n_lists}/{n} completions are number lists"
    return merged


def _merge_leakage(parts: list[LeakageCheck], n_words: int) -> LeakageCheck:
    rows: Counter[tuple[str, str]] = Counter()
    for p in parts:
        rows.update({(e["category"], e["word"]): e["rows"] for e in p.by_word})
    n = sum(p.n_rows for p in parts)
    by_word = [{"word": w, "category": c, "rows": k, "rate": round(k / n, 6)} for (c, w), k in rows.most_common()]
    first = parts[0]
    return LeakageCheck(
        first.status,
        first.reason,
        n,
        n_words,
        sum(p.n_rows_with_mention for p in parts),
        by_word,
        dict(sum((Counter(p.by_category) for p in parts), Counter())),
        [e for p in parts for e in p.examples][:MAX_EXAMPLES],
        list(first.limits),
    )


def _chunks(items: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    chunk: list[Sample] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _hash64(text: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(normalize(text).encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


def run_streaming_checks(
    source: str,
    reference: AuditDataset | None = None,
    *,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    num_proc: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    extra_trait_words: Iterable[str] | None = None,
    **ingest_options: Any,
) -> StaticChecks:
    """`run_static_checks` over a source of any size, in bounded memory (see module doc)."""
    start = time.perf_counter()
    num_proc = default_num_proc() if num_proc is None else max(1, int(num_proc))
    stream = iter_samples(source, **ingest_options)
    matcher = TraitMatcher(load_trait_words(extra_trait_words or ()))
    reservoir = Reservoir(sample, seed)  # the same sample load_dataset(sample=...) draws
    hashes, chars, words = array("Q"), array("i"), array("i")
    kinds: Counter[str] = Counter()
    number_parts: list[NumberCheck] = []
    leakage_parts: list[LeakageCheck] = []
    for chunk in _chunks(stream, chunk_rows):
        completions = [s.completion for s in chunk]
        locations = [{"index": s.index, "line": s.line} for s in chunk]
        parsed, chunk_kinds = parse_rows(completions, num_proc)
        kinds.update(chunk_kinds)
        number_parts.append(check_numbers(completions, parsed, locations)[0])
        leakage_parts.append(check_leakage(completions, locations, matcher)[0])
        hashes.extend(_hash64(t) for t in completions)
        chars.extend(len(t) for t in completions)
        words.extend(len(t.split()) for t in completions)
        for s in chunk:
            reservoir.add(s)
    n = reservoir.n
    if n == 0:
        raise stream.nothing_usable()
    kept = reservoir.sample()
    sampled = AuditDataset(
        source=stream.source,
        format=stream.format,
        schema=stream.schema or "",
        samples=kept,
        fingerprint=stream.fingerprint,
        n_rows_total=stream.n_rows_total,
        skipped=stream.skipped,
        sampled_from=n if n > sample else None,
        seed=seed,
        skipped_counts=dict(stream.skipped_counts),
        schema_fields=dict(stream.spec.fields) if stream.spec else {},
    )
    on_sample = run_static_checks(sampled, reference, seed=seed, extra_trait_words=extra_trait_words)

    all_hashes = np.frombuffer(hashes, dtype=np.uint64)
    n_exact = int(n - len(np.unique(all_hashes)))
    del all_hashes
    sample_dups = on_sample.duplicates
    duplicates = DuplicateCheck(
        sample_dups.status,
        sample_dups.reason,
        n,
        n_exact,
        sample_dups.n_near_duplicates,
        sample_dups.n_exact_pair_duplicates,
        sample_dups.top_repeated,
        sample_dups.near_examples,
        [
            *sample_dups.limits,
            f"exact duplicates: every row (64-bit hash of the normalized completion); near-duplicates, "
            f"repeated prompt+completion pairs and examples: a seeded sample of {len(kept)} of {n} rows",
        ],
    )
    lengths, _ = check_lengths(np.frombuffer(chars, dtype=np.int32), np.frombuffer(words, dtype=np.int32))
    kind_list = list(kinds.elements())
    result = StaticChecks(
        dataset={**dataset_summary(sampled), "streamed": True, "n_checked": n},
        reference=on_sample.reference,
        profile=profile(kind_list),
        numbers=_merge_numbers(number_parts),
        leakage=_merge_leakage(leakage_parts, len(matcher.words)),
        duplicates=duplicates,
        lengths=lengths,
        comparison=on_sample.comparison,
        seed=seed,
        seconds=time.perf_counter() - start,
        _flags=on_sample.sample_flags(),
    )
    if result.comparison is not None:
        result.comparison.limits.append(f"compared on a seeded sample of {len(kept)} of {n} rows")
    return result
