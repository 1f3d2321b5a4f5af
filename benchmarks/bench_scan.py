"""The default scan's wall time and verdict on the owl example and on a neutral example.

Runs `distill-audit scan FILE --student smollm2-135m --out DIR` (the `make demo` scan,
default `--budget 10m`, fresh stage cache) on examples/owl_numbers.jsonl and on
examples/neutral_numbers_b.jsonl, and prints each one's wall time, the scan time the
report records, and the verdict. Each scan takes about 8 minutes on 2 CPU cores, so it
is opt-in: without `--run` (or DISTILL_AUDIT_BENCH_SCAN=1) it prints what it would run
and exits 0, which keeps `make bench` usable. Usage:
    python benchmarks/bench_scan.py --run [--budget 10m] [--threads N] [--data FILE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ["examples/owl_numbers.jsonl", "examples/neutral_numbers_b.jsonl"]


def scan_once(data: Path, budget: str | None, threads: int | None, work: Path) -> dict:
    out = work / data.stem
    cmd = [sys.executable, "-m", "distill_audit", "scan", str(data), "--student", "smollm2-135m", "--out", str(out)]
    if budget:
        cmd += ["--budget", budget]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "DISTILL_AUDIT_STAGE_CACHE": str(work / "stage-cache")}  # nothing reused
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    row = {"data": str(data.relative_to(ROOT)) if data.is_relative_to(ROOT) else str(data), "exit": proc.returncode}
    row["wall_s"] = round(wall, 1)
    report = out / "report.json"
    if report.is_file():
        rep = json.loads(report.read_text(encoding="utf-8"))
        row["level"] = rep["verdict"]["level"]
        row["stage_s"] = round(float((rep.get("run") or {}).get("total_s") or 0.0), 1)
        sig = (rep.get("stages") or {}).get("signature") or {}
        row["signature_rows"] = sig.get("n_data", (sig.get("body") or {}).get("n_data"))
    else:
        row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no report"]
    return row


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="store_true", help="run the scans (about 8 minutes each on 2 cores)")
    ap.add_argument("--budget", default=None, help="--budget for the scans (default: the scan's own, 10m)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data", nargs="*", default=DEFAULT_DATA)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not (args.run or os.environ.get("DISTILL_AUDIT_BENCH_SCAN") == "1"):
        print(f"skipped (opt-in, ~8 min per file): pass --run or set DISTILL_AUDIT_BENCH_SCAN=1 to scan {args.data}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        for name in args.data:
            path = Path(name) if Path(name).is_absolute() else ROOT / name
            rows.append(scan_once(path, args.budget, args.threads, Path(tmp)))
            r = rows[-1]
            print(
                f"{r['data']}: verdict {r.get('level', '?')}, wall {r['wall_s'] / 60:.1f} min "
                f"(scan {r.get('stage_s', 0) / 60:.1f} min), signature rows per side {r.get('signature_rows')}, "
                f"exit {r['exit']}" + (f", {r['error'][0]}" if "error" in r else ""),
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0 if all("level" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
