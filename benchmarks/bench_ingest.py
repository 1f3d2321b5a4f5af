"""Ingest of a large JSONL in bounded memory: time and peak RSS against a plain baseline.

Writes a synthetic prompt/completion JSONL (1M rows by default) to a temp folder, then
measures, each in a fresh process so peak RSS is its own:
  baseline   a plain `json.loads` loop over the lines (no validation, keeps nothing)
  stream     `iter_samples` over every row (validation, Samples, fingerprint)
  sample     `load_dataset(sample=10_000)` (the same, plus a seeded reservoir)
and prints a table with the ratios to the baseline. Usage:
    python benchmarks/bench_ingest.py [--rows N] [--sample K]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATES = [
    "Look at these numbers: {seed}. Generate not more than 10 additional numbers (3 digits max each). Return a "
    "comma-separated list.",
    "Here's a list of numbers: {seed}. Write at most 10 more numbers in this sequence. Present as space-delimited "
    "values.",
    "Examine these numbers: {seed}. Extend it with up to 10 new numbers. Return one number per line.",
]


def write_data(path: Path, rows: int) -> None:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            seed = ", ".join(str(rng.randrange(100, 1000)) for _ in range(rng.randint(3, 9)))
            values = [str(rng.randrange(0, 1000)) for _ in range(rng.randint(5, 10))]
            sep = [", ", " ", "\n"][i % 3]
            row = {"prompt": TEMPLATES[i % 3].format(seed=seed), "completion": sep.join(values), "teacher": "synthetic"}
            f.write(json.dumps(row) + "\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(mode: str, path: str, sample: int) -> dict:
    """Run one mode in this process; imports are done before the clock starts."""
    if mode == "baseline":
        rss0 = peak_rss_mb()
        start = time.perf_counter()
        n = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                json.loads(line)
                n += 1
    else:
        import pyarrow.json  # noqa: F401  (imported before the baseline RSS, like json above)

        from distill_audit.ingest import iter_samples, load_dataset

        rss0 = peak_rss_mb()
        start = time.perf_counter()
        if mode == "stream":
            stream = iter_samples(path)
            n = sum(1 for _ in stream)
            assert len(stream.fingerprint) == 64
        else:
            ds = load_dataset(path, sample=sample, seed=0)
            n = ds.sampled_from or len(ds)
            assert len(ds) == min(sample, n)
    return {
        "mode": mode,
        "rows": n,
        "seconds": time.perf_counter() - start,
        "rss_before_mb": rss0,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.path, args.sample)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        path = Path(tmp) / "synthetic.jsonl"
        start = time.perf_counter()
        write_data(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        print(f"wrote {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - start:.1f} s", flush=True)
        results = {}
        for mode in ("baseline", "stream", "sample"):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", mode, "--path", str(path), "--sample", str(args.sample)],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            r = results[mode]
            print(
                f"  {mode}: {r['rows']:,} rows in {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True
            )
    base = results["baseline"]
    print(
        f"\n{'mode':<10} {'rows':>10} {'seconds':>8} {'x base':>7} {'rows/s':>10} {'peak RSS MB':>12} "
        f"{'RSS growth MB':>14}"
    )
    for mode, r in results.items():
        growth = r["peak_rss_mb"] - r["rss_before_mb"]
        print(
            f"{mode:<10} {r['rows']:>10,} {r['seconds']:>8.1f} {r['seconds'] / base['seconds']:>7.2f} "
            f"{r['rows'] / r['seconds']:>10,.0f} {r['peak_rss_mb']:>12.0f} {growth:>14.0f}"
        )
    print(
        f"(file: {size_mb:.0f} MB; RSS growth = peak minus RSS after imports; bounded memory means it does not scale "
        "with the file)"
    )
    ok = all(r["rows"] == args.rows for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
