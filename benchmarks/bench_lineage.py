"""Weight-tier cost per layer for a Llama-7B-sized MLP matrix (11008 x 4096).

One layer of the lineage weight test = the row-aligned permutation test plus the
Hungarian-matched variant, each with T permutations on up to --max-rows rows. The
script times it on an independent pair and on a shared-origin pair (noisy copy with
permuted rows), and compares with a plain matmul of the two full matrices
(11008x4096 @ 4096x11008, the cost of comparing every row with every row once) in the
same run. Peak memory is the largest allocation the test itself makes (tracemalloc,
which numpy reports to) and the process's peak RSS. Usage:
    python benchmarks/bench_lineage.py [--threads 2] [--permutations 9999] [--max-rows 1024]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=11008)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--permutations", type=int, default=None)
    ap.add_argument("--max-rows", type=int, default=None)
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import resource
    import tracemalloc

    import numpy as np

    from distill_audit.lineage.weights import DEFAULT_MAX_ROWS, DEFAULT_PERMUTATIONS, aligned_test, matched_test

    n_perm = args.permutations or DEFAULT_PERMUTATIONS
    max_rows = args.max_rows or DEFAULT_MAX_ROWS
    rng = np.random.default_rng(0)
    shape = (args.rows, args.cols)
    a = rng.standard_normal(shape, dtype=np.float32)
    independent = rng.standard_normal(shape, dtype=np.float32)
    shared = (a + 0.5 * rng.standard_normal(shape, dtype=np.float32))[rng.permutation(args.rows)]

    def one_layer(b):
        test_rng = np.random.default_rng(1)
        t0 = time.perf_counter()
        aligned = aligned_test(a, b, n_perm=n_perm, rng=test_rng, max_rows=max_rows)
        t1 = time.perf_counter()
        matched = matched_test(a, b, n_perm=n_perm, rng=test_rng, max_rows=max_rows)
        t2 = time.perf_counter()
        return aligned, matched, t1 - t0, t2 - t1

    warm = rng.standard_normal((64, 32), dtype=np.float32)
    matched_test(warm, warm, n_perm=9, rng=rng, max_rows=64)  # imports and first-call costs
    tracemalloc.start()
    results = {name: one_layer(b) for name, b in (("independent", independent), ("shared, permuted", shared))}
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    t0 = time.perf_counter()
    product = a @ independent.T
    t_matmul = time.perf_counter() - t0
    del product
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"matrix pair {shape[0]}x{shape[1]} float32, {args.threads} threads, "
        f"T={n_perm} permutations per test, rows used {min(max_rows, shape[0])}"
    )
    print(f"{'pair':<18}{'aligned s':>10}{'matched s':>11}{'layer s':>9}{'aligned p':>11}{'matched p':>11}")
    for name, (aligned, matched, ta, tm) in results.items():
        print(f"{name:<18}{ta:>10.2f}{tm:>11.2f}{ta + tm:>9.2f}{aligned[1]:>11.2g}{matched[1]:>11.2g}")
    layer_s = max(ta + tm for _, _, ta, tm in results.values())
    print(f"baseline: plain matmul {shape[0]}x{shape[1]} @ {shape[1]}x{shape[0]}: {t_matmul:.2f} s")
    print(f"ratio layer test / matmul: {layer_s / t_matmul:.2f}")
    print(
        f"peak memory of the test (tracemalloc): {peak / 2**20:.0f} MiB; process peak RSS {rss_mb:.0f} MiB "
        f"(includes the three {shape[0]}x{shape[1]} inputs, {3 * a.nbytes / 2**20:.0f} MiB, and the matmul output)"
    )
    ok_power = results["shared, permuted"][1][1] <= 1.0 / n_perm * 1.01
    print("shared-origin pair found by the matched test:", "yes" if ok_power else "NO")
    return 0 if ok_power else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
