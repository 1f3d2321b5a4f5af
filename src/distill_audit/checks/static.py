"""`run_static_checks`: every model-free check over one dataset (and a reference).

These run in seconds on 100k rows and need no model: format profile, the paper's
number rules, trait-word leakage, duplicates, lengths, and the comparison with a
reference dataset. The scan embeds `StaticChecks.to_dict()`; `sample_flags()` gives
one row per sample for the per-sample Parquet file.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distill_audit.atomic import atomic_path
from distill_audit.checks.compare import ReferenceComparison, compare_to_reference
from distill_audit.checks.duplicates import DuplicateCheck, check_duplicates
from distill_audit.checks.leakage import LeakageCheck, TraitMatcher, check_leakage, load_trait_words
from distill_audit.checks.lengths import check_lengths
from distill_audit.checks.numbers import NumberCheck, check_numbers, parse_numbers
from distill_audit.checks.profile import classify, profile
from distill_audit.ingest.loader import dataset_summary
from distill_audit.ingest.records import AuditDataset

SCHEMA_VERSION = 1


@dataclass
class StaticChecks:
    dataset: dict
    reference: dict | None
    profile: dict
    numbers: NumberCheck
    leakage: LeakageCheck
    duplicates: DuplicateCheck
    lengths: dict
    comparison: ReferenceComparison | None
    seed: int
    seconds: float
    _flags: dict = field(default_factory=dict, repr=False)

    @property
    def status(self) -> str:
        return "ok"

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "status": self.status,
            "reason": None,
            "limits": ["model-free checks: a trait carried without visible marks needs the data signature or a canary"],
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "dataset": self.dataset,
            "reference": self.reference,
            "profile": self.profile,
            "numbers": self.numbers.to_dict(),
            "leakage": self.leakage.to_dict(),
            "duplicates": self.duplicates.to_dict(),
            "lengths": self.lengths,
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
        }

    def sample_flags(self) -> dict[str, list]:
        """Columns, one entry per sample (in dataset order), for a per-sample Parquet file."""
        return self._flags

    def write_sample_flags(self, path: str | Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(self._flags)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return Path(path)


def run_static_checks(
    ds: AuditDataset,
    reference: AuditDataset | None = None,
    *,
    seed: int = 0,
    extra_trait_words: Iterable[str] | None = None,
) -> StaticChecks:
    start = time.perf_counter()
    samples = ds.samples
    completions = [s.completion for s in samples]
    locations = [{"index": s.index, "line": s.line} for s in samples]
    parsed = [parse_numbers(t) for t in completions]
    kinds = [classify(t, p) for t, p in zip(completions, parsed, strict=True)]
    numbers, number_reasons = check_numbers(completions, parsed, locations)
    matcher = TraitMatcher(load_trait_words(extra_trait_words or ()))
    ref_completions = [s.completion for s in reference.samples] if reference is not None else None
    leakage, words = check_leakage(completions, locations, matcher, ref_completions)
    prompts = ["\x1e".join(m["content"] for m in s.prompt) for s in samples]
    duplicates, exact_of, near_of = check_duplicates(completions, prompts, locations, seed)
    chars = np.array([len(t) for t in completions], dtype=np.int64)
    n_words = np.array([len(t.split()) for t in completions], dtype=np.int64)
    lengths, outliers = check_lengths(chars, n_words)
    comparison = None
    if reference is not None and ref_completions is not None:
        comparison = compare_to_reference(
            completions,
            ref_completions,
            [p.values for p in parsed],
            [parse_numbers(t).values for t in ref_completions],
            seed=seed,
        )

    def position(i: int | None) -> int | None:
        return samples[i].index if i is not None else None

    flags = {
        "index": [s.index for s in samples],
        "line": [s.line for s in samples],
        "kind": kinds,
        "chars": chars.tolist(),
        "words": n_words.tolist(),
        "number_reject_reasons": number_reasons,
        "trait_words": words,
        "exact_duplicate_of": [position(i) for i in exact_of],
        "near_duplicate_of": [position(i) for i in near_of],
        "length_outlier": outliers.tolist(),
    }
    return StaticChecks(
        dataset=dataset_summary(ds),
        reference=dataset_summary(reference) if reference is not None else None,
        profile=profile(kinds),
        numbers=numbers,
        leakage=leakage,
        duplicates=duplicates,
        lengths=lengths,
        comparison=comparison,
        seed=seed,
        seconds=time.perf_counter() - start,
        _flags=flags,
    )
