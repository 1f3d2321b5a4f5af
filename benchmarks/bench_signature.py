"""The data signature on a trait-vs-neutral pair and on a neutral-vs-neutral pair.

Runs `compute_signature` with SmolLM2-135M as the student on
  1. DATA (e.g. numbers written under "You love owls") against REFERENCE (the same kind
     of prompts without the prompt): the expected trait should rank first and be
     significant after Holm, with a positive trait-specific contrast;
  2. two independent neutral samples (the reference split in halves, or --null FILE):
     nothing should be significant.
It prints the ranking, the expected trait's effect, Holm-adjusted p, rank and contrast
with CIs, and the wall time with scored tokens per second, so the CPU defaults in
SignatureConfig can be checked against the scan budget. Usage:
    python benchmarks/bench_signature.py DATA.jsonl REFERENCE.jsonl [--null OTHER.jsonl]
        [--rows 64] [--suites animals misalignment] [--traits owl cat ...] [--expect owl]
"""

from __future__ import annotations

import argparse
import sys
import time


def _run(model, tok, data, ref, traits, cfg, label: str, expect: str | None) -> dict:
    from distill_audit.traits.signature import compute_signature

    t0 = time.perf_counter()
    res = compute_signature(model, tok, data, ref, traits, cfg)
    wall = time.perf_counter() - t0
    d = res.to_dict()
    print(
        f"\n== {label}: {d['n_data']} vs {d['n_reference']} rows, {len(d['traits'])} traits, "
        f"{wall:.0f} s, status {d['status']}"
    )
    print(
        f"{'rank':>4} {'trait':<14}{'effect':>10}{'95% CI':>22}{'p':>8}{'p_holm':>8}{'contrast':>10}{'contrast CI':>22}"
    )
    for t in d["traits"][:8] + [t for t in d["traits"][8:] if t["trait"] == expect]:
        c = t["contrast"]
        print(
            f"{t['rank']:>4} {t['trait']:<14}{t['estimate']:>10.5f}  [{t['ci'][0]:>8.5f}, {t['ci'][1]:>8.5f}]"
            f"{t['p_value']:>8.3f}{t['p_adjusted']:>8.3f}{c['estimate']:>10.5f}  [{c['ci'][0]:>8.5f}, "
            f"{c['ci'][1]:>8.5f}]"
        )
    print(f"significant after {cfg.correction}: {d['significant'] or 'none'}; median MDE {d['mde']}")
    return d


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("reference")
    ap.add_argument("--null", default=None, help="a second neutral file (default: split the reference in halves)")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--suites", nargs="+", default=["animals", "misalignment"])
    ap.add_argument("--traits", nargs="+", default=None, help="restrict the battery to these trait names")
    ap.add_argument("--expect", default="owl")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from distill_audit.ingest import load_dataset
    from distill_audit.models.load import load_model
    from distill_audit.traits.probes import load_suites
    from distill_audit.traits.signature import SignatureConfig, default_traits

    loaded = load_model("smollm2-135m")
    data = load_dataset(args.data).samples
    ref = load_dataset(args.reference).samples
    traits = default_traits(load_suites(args.suites))
    if args.traits:
        traits = [t for t in traits if t.name in set(args.traits)]
    cfg = SignatureConfig(suites=list(args.suites), max_rows=args.rows, seed=args.seed)
    main_d = _run(loaded.model, loaded.tokenizer, data, ref, traits, cfg, "trait data vs reference", args.expect)
    if args.null:
        null_a, null_b = ref, load_dataset(args.null).samples
    else:
        half = len(ref) // 2
        null_a, null_b = ref[:half], ref[half:]
    null_d = _run(loaded.model, loaded.tokenizer, null_a, null_b, traits, cfg, "neutral vs neutral", args.expect)
    hit = next((t for t in main_d["traits"] if t["trait"] == args.expect), None)
    if hit:
        print(
            f"\n{args.expect}: rank {hit['rank']} of {len(main_d['traits'])}, significant={hit['significant']}; "
            f"null pair significant traits: {null_d['significant'] or 'none'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
