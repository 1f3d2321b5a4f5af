"""Static checks on datasets larger than memory: peak RSS, rows/s, and time vs rows.

For each size (default 1M and 10M rows) a synthetic JSONL of number-sequence rows
(with some free text, trait words and duplicates) is written to a temp folder, then
each measurement runs in a fresh process so its peak RSS is its own:

- ingest: the streaming ingest alone (`iter_samples`), the baseline;
- stream: `run_streaming_checks` (every row-level check over every row, near-duplicates
  and the like on a 20k-row sample);
- memory: the in-memory path (`load_dataset` + `run_static_checks`), at sizes up to
  --memory-max-rows only (it holds every row).

Prints wall and CPU time, rows/s, peak RSS, the checks/ingest CPU-time ratio, and the
time ratio between the largest and the smallest size (linear scaling: ratio ~ rows
ratio). CPU time is the robust number on a machine shared with other jobs. Generating and
checking 10M rows takes many minutes on 2 cores; `--rows 100000,1000000` runs smaller.

    python benchmarks/bench_scale.py [--rows 1000000,10000000] [--num-proc N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ["owl", "eagle", "oak", "maple", "the", "a", "numbers", "sequence", "next", "value", "France", "blue"]


def write_synthetic(path: Path, n_rows: int, seed: int = 0) -> float:
    """n_rows of prompt/completion JSONL; ~90% number lists, ~7% free text, ~3% exact repeats."""
    rng = random.Random(seed)
    start = time.perf_counter()
    previous = "1, 2, 3"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n_rows):
            seeds = ", ".join(str(rng.randrange(100, 1000)) for _ in range(rng.randrange(3, 10)))
            roll = rng.random()
            if roll < 0.90:
                completion = ", ".join(str(rng.randrange(0, 1000)) for _ in range(rng.randrange(1, 12)))
            elif roll < 0.97:
                completion = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 30)))
            else:
                completion = previous
            previous = completion
            f.write(
                f'{{"prompt": "Row {i}. The sequence starts with: {seeds}. Add up to 10 more values.", '
                f'"completion": "{completion}"}}\n'
            )
    return time.perf_counter() - start


def measure(path: str, mode: str, num_proc: int | None) -> dict:
    """One measurement in this process; peak RSS is this process's own."""
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage0.ru_utime + usage0.ru_stime
    start = time.perf_counter()
    if mode == "ingest":
        from distill_audit.ingest.loader import iter_samples

        rows = sum(1 for _ in iter_samples(path))
    elif mode == "stream":
        from distill_audit.checks.streaming import run_streaming_checks

        result = run_streaming_checks(path, num_proc=num_proc)
        rows = result.dataset["n_checked"]
    else:
        from distill_audit.checks import run_static_checks
        from distill_audit.ingest.loader import load_dataset

        rows = run_static_checks(load_dataset(path)).numbers.n_rows
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0  # CPU time: robust to other jobs on a shared machine
    peak_mb = usage.ru_maxrss / 1024  # Linux: KiB
    return {
        "mode": mode,
        "rows": rows,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "rows_per_s": round(rows / seconds),
        "rows_per_cpu_s": round(rows / cpu),
        "peak_rss_mb": round(peak_mb),
    }


def run_child(path: Path, mode: str, num_proc: int | None) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(path), "--mode", mode]
    if num_proc is not None:
        cmd += ["--num-proc", str(num_proc)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes (default 1M and 10M)")
    ap.add_argument("--num-proc", type=int, default=None, help="processes for per-row parsing (default: auto)")
    ap.add_argument("--memory-max-rows", type=int, default=1_000_000, help="largest size for the in-memory baseline")
    ap.add_argument("--modes", default="ingest,stream,memory", help="which measurements (ingest,stream,memory)")
    ap.add_argument("--keep", type=Path, default=None, help="write the files here and keep them")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="stream", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.mode, args.num_proc)))
        return 0

    sizes = sorted(int(x) for x in args.rows.split(","))
    results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            path = folder / f"synthetic-{n}.jsonl"
            gen_s = write_synthetic(path, n)
            print(f"{n:>11,} rows: wrote {path.stat().st_size / 2**20:,.0f} MiB in {gen_s:.0f} s", flush=True)
            wanted = args.modes.split(",")
            modes = [
                m
                for m in ("ingest", "stream", "memory")
                if m in wanted and (m != "memory" or n <= args.memory_max_rows)
            ]
            results[n] = {}
            for mode in modes:
                r = run_child(path, mode, args.num_proc)
                results[n][mode] = r
                print(
                    f"{n:>11,} rows {mode:>6}: {r['seconds']:8.1f} s wall ({r['rows_per_s']:>7,} rows/s), "
                    f"{r['cpu_seconds']:8.1f} s CPU ({r['rows_per_cpu_s']:>7,} rows/CPU-s), peak RSS "
                    f"{r['peak_rss_mb']:>6,} MB",
                    flush=True,
                )
            if not args.keep:
                path.unlink()
            stream = results[n].get("stream")
            if stream and "ingest" in results[n]:
                ratio = stream["cpu_seconds"] / results[n]["ingest"]["cpu_seconds"]
                print(f"{n:>11,} rows: checks/ingest CPU-time ratio {ratio:.2f}", flush=True)
            if stream and "memory" in results[n]:
                mem = results[n]["memory"]
                print(
                    f"{n:>11,} rows: peak RSS streaming/in-memory {stream['peak_rss_mb'] / mem['peak_rss_mb']:.2f}",
                    flush=True,
                )
    if len(sizes) > 1 and all("stream" in results[n] for n in sizes):
        lo, hi = (results[sizes[0]]["stream"], results[sizes[-1]]["stream"])
        print(
            f"{sizes[-1]:,}/{sizes[0]:,} rows (x{sizes[-1] / sizes[0]:.0f}): CPU-time ratio "
            f"{hi['cpu_seconds'] / lo['cpu_seconds']:.2f}, "
            f"wall-time ratio {hi['seconds'] / lo['seconds']:.2f}, peak RSS ratio "
            f"{hi['peak_rss_mb'] / lo['peak_rss_mb']:.2f}"
        )
    print(json.dumps({str(n): r for n, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
