"""Run every benchmark script (benchmarks/bench_*.py) and print their results.

Each script measures its target against a baseline in the same run and prints the
ratio, so numbers stay comparable across machines. Usage:
    python benchmarks/run.py [name ...]     # e.g. `python benchmarks/run.py ingest probes`
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv]
    failed = 0
    for script in scripts:
        print(f"== {script.stem} ==", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"-- {script.stem}: exit {rc} in {time.perf_counter() - start:.1f} s\n", flush=True)
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
