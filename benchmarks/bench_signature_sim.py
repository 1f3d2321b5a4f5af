"""The signature's error rates, power and MDE coverage on simulated per-row LLS.

Feeds the simulations of tests/test_signature_sim.py (the same helpers: a shared persona
factor + a class factor + prompt noise, per-row SD 0.04 nats, prompts correlated at
0.95) through `analyse` with the product's battery, at more simulations than the tests
run, and prints the tables of docs/statistics.md ("Simulations"). numpy only, no model.
Usage:
    python benchmarks/bench_signature_sim.py [--scale 0.25]   # fewer simulations, for a quick look

The full run takes about 10 CPU minutes on one thread (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

from distill_audit.traits import stats  # noqa: E402  (after the path setup above)
from distill_audit.traits.signature import QUESTIONS  # noqa: E402  (after the path setup above)
from test_signature_sim import ALPHA, battery, rates, run, shifted, simulate  # noqa: E402  (after the path setup above)

LEVEL = ALPHA / len(QUESTIONS)  # each question's share of alpha
TARGET = 0.012  # the verdict's signature_max_mde (nats/token)


def sims_of(n: int, scale: float) -> int:
    return max(20, round(n * scale))


def null_table(scale: float) -> None:
    print("\n## Matched nulls (no persona difference): the share of simulations that report each")
    print("| case | rows/side | sims | named trait | class | shift | any raw trait | away | any finding |")
    print("|---|---|---|---|---|---|---|---|---|")
    cases = [
        ("null, m = 4 (owl, cat, dog, misalignment)", 4, 200, 1000, False, False, 104),
        ("null, m = 21 (animals + misalignment)", 21, 200, 1000, False, False, 121),
        ("null, m = 94 (every suite)", 94, 200, 600, False, False, 194),
        ("null, m = 21, normal rows", 21, 24, 2000, False, False, 7),
        ("null, m = 21, heavy-tailed rows (t, 4 df)", 21, 24, 2000, True, False, 8),
        ("paired null, m = 21 (half of each row's variance is its prompt's)", 21, 200, 800, False, True, 9),
    ]
    for label, m, n, sims, heavy, paired, seed in cases:
        sims = sims_of(sims, scale)
        traits = battery(m)
        rng = np.random.default_rng(seed)
        if paired:
            prompt = simulate(rng, sims, n, traits)
            data = (prompt + simulate(rng, sims, n, traits)) / np.sqrt(2)
            ref = (prompt + simulate(rng, sims, n, traits)) / np.sqrt(2)
        else:
            data, ref = simulate(rng, sims, n, traits, heavy=heavy), simulate(rng, sims, n, traits, heavy=heavy)
        res = run(traits, data, ref, paired=paired)
        r = rates(res)
        away = np.mean([x.finding == "away" for x in res])
        print(
            f"| {label} | {n} | {sims} | {r['named']:.3f} | {r['class']:.3f} | {r['shift']:.3f} | {r['raw']:.3f} "
            f"| {away:.3f} | {r['finding']:.3f} |",
            flush=True,
        )


def planted_table(scale: float) -> None:
    print("\n## Planted effects (m = 21 unless said)")
    print("| planted in the data | sims | result |")
    print("|---|---|---|")
    t94, t21 = battery(94), battery(21)

    sims = sims_of(300, scale)
    rng = np.random.default_rng(11)
    res = run(t94, simulate(rng, sims, 200, t94) + shifted(t94, owl=0.008), simulate(rng, sims, 200, t94))
    owl_named = np.mean(["owl" in x.named for x in res])
    first = np.mean([x.finding == "trait" and x.named[0] == "owl" for x in res])
    other = np.mean([any(n != "owl" for n in x.named) for x in res])
    mde = np.median([next(t for t in x.traits if t["trait"] == "owl")["contrast"]["mde"] for x in res])
    print(
        f"| owl +0.008 beyond every other prompt, m = 94 | {sims} | owl named {owl_named:.1%} (first {first:.1%}); "
        f"another trait named {other:.1%}; owl's contrast MDE {mde:.4f} |",
        flush=True,
    )

    for label, kw, seed in [
        ("+0.02 under every prompt, benign included (a shared persona shift)", {"all": 0.02}, 12),
        ("every animal prompt +0.01 beyond benign and misalignment", {"class_animal": 0.01}, 13),
        ("-0.025 under every prompt (data less likely under any persona: a mismatched reference)", {"all": -0.025}, 14),
        ("+0.025 under every prompt (a mismatched reference the other way)", {"all": 0.025}, 15),
    ]:
        sims = sims_of(500, scale)
        rng = np.random.default_rng(seed)
        res = run(t21, simulate(rng, sims, 200, t21) + shifted(t21, **kw), simulate(rng, sims, 200, t21))
        r = rates(res)
        found = {f: np.mean([x.finding == f for x in res]) for f in ("trait", "class", "shift", "away", "none")}
        mism = np.mean([x.mismatch["significant"] for x in res])
        animal = np.mean([any(c["class"] == "animal" and c["significant"] for c in x.classes) for x in res])
        top = max(found, key=found.get)
        print(
            f"| {label} | {sims} | finding `{top}` {found[top]:.1%} ("
            + ", ".join(f"{k} {v:.1%}" for k, v in found.items() if k != top and v > 0)
            + f"); shift significant {r['shift']:.1%}, animal class {animal:.1%}, mismatch significant {mism:.1%}; "
            f"a trait named {r['named']:.1%}, a class {r['class']:.1%} |",
            flush=True,
        )

    sims = sims_of(400, scale)
    rng = np.random.default_rng(16)
    prompt = simulate(rng, sims, 200, t21)
    data = (prompt + simulate(rng, sims, 200, t21)) / np.sqrt(2) + shifted(t21, all=0.008)
    ref = (prompt + simulate(rng, sims, 200, t21)) / np.sqrt(2)
    paired = rates(run(t21, data, ref, paired=True))["shift"]
    unpaired = rates(run(t21, data, ref, paired=False))["shift"]
    print(
        f"| +0.008 under every prompt, paired rows (half of each row's variance is its prompt's) | {sims} | "
        f"shift found {paired:.1%} paired, {unpaired:.1%} unpaired |",
        flush=True,
    )


def power_table(scale: float) -> None:
    print(
        f"\n## Power of owl's specific contrast (Holm over 21 traits, 200 rows/side): one-sided against two-sided "
        f"on the same t statistics at the contrasts' level alpha/3 = {LEVEL:.4f}, and one-sided at the whole alpha"
    )
    print(
        "| owl planted beyond its class | sims | one-sided, alpha/3 (the product) | two-sided, alpha/3 "
        "| one-sided, alpha (before the split) |"
    )
    print("|---|---|---|---|---|")
    traits = battery(21)
    for d, seed in [(0.0035, 17), (0.0025, 18)]:
        sims = sims_of(500, scale)
        rng = np.random.default_rng(seed)
        res = run(traits, simulate(rng, sims, 200, traits) + shifted(traits, owl=d), simulate(rng, sims, 200, traits))
        one = two = whole = 0
        for x in res:
            names = [t["trait"] for t in x.traits]
            k = names.index("owl")
            p = np.array([t["contrast"]["p_value"] for t in x.traits])
            est = x.traits[k]["contrast"]["estimate"]
            adj2 = stats.holm(list(np.minimum(1.0, 2 * np.minimum(p, 1 - p))))
            adj1 = stats.holm(list(p))
            one += "owl" in x.named
            two += adj2[k] < LEVEL and est > 0
            whole += adj1[k] < ALPHA and est > 0
        print(f"| +{d} | {sims} | {one / sims:.3f} | {two / sims:.3f} | {whole / sims:.3f} |", flush=True)


def mde_table(scale: float) -> None:
    print("\n## MDE coverage: a planted effect equal to the median reported MDE (pilot: 100 nulls), found ...")
    print(
        "| rows/side | owl's specific contrast (Holm over 21, alpha/3) | the shift (one test, alpha/3) "
        "| the animal class (Holm over 2, alpha/3) |"
    )
    print("|---|---|---|---|")
    traits = battery(21)
    shift_sd = {}
    for n in (200, 100, 24):
        rng = np.random.default_rng(20 + n)
        pilot = run(traits, simulate(rng, 100, n, traits), simulate(rng, 100, n, traits))
        owl = float(np.median([next(t for t in x.traits if t["trait"] == "owl")["contrast"]["mde"] for x in pilot]))
        shift = float(np.median([x.shift["mde"] for x in pilot]))
        animal = float(np.median([next(c for c in x.classes if c["class"] == "animal")["mde"] for x in pilot]))
        shift_sd[n] = float(np.median([x.shift["se"] for x in pilot])) * np.sqrt(n)
        sims = sims_of(800, scale)
        cells = []
        for kw, hit in [
            ({"owl": owl}, lambda x: "owl" in x.named),
            ({"all": shift}, lambda x: x.shift["significant"]),
            ({"class_animal": animal}, lambda x: any(c["class"] == "animal" and c["significant"] for c in x.classes)),
        ]:
            res = run(traits, simulate(rng, sims, n, traits) + shifted(traits, **kw), simulate(rng, sims, n, traits))
            cells.append(f"MDE {next(iter(kw.values())):.4f}: found {np.mean([hit(x) for x in res]):.2f}")
        print(f"| {n} ({sims} sims) | " + " | ".join(cells) + " |", flush=True)

    print("\n## Cost of the split: the MDE multiplier (q_{1-level} + q_0.8, normal quantiles) at alpha/3 against alpha")
    for label, m in [
        ("shift", 1),
        ("animal class (m = 2)", 2),
        ("specific contrast (m = 21)", 21),
        ("specific contrast (m = 94)", 94),
    ]:
        new = stats.mde_multiplier(alpha=LEVEL, alternative="greater", m=m)
        old = stats.mde_multiplier(alpha=ALPHA, alternative="greater", m=m)
        print(
            f"- {label}: {new:.3f} against {old:.3f}: MDE +{new / old - 1:.1%}, rows for the same MDE "
            f"+{(new / old) ** 2 - 1:.1%}"
        )

    sd = shift_sd[200]  # se x sqrt(n): sqrt(2) x the per-row SD of the shift statistic (two samples)
    n = 200
    for _ in range(20):  # t quantiles at Welch's df ~ 2n - 2
        n = int(np.ceil((stats.mde_multiplier(alpha=LEVEL, alternative="greater", df=2 * n - 2) * sd / TARGET) ** 2))
    print(
        f"\nRows per side for the shift MDE to reach {TARGET} (two-sample, the simulation's per-row SD): "
        f"{n} (se x sqrt(n) = {sd:.4f}, i.e. per-row SD of the shift {sd / np.sqrt(2):.4f})"
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every simulation count (default 1)")
    ap.add_argument("--only", nargs="*", choices=["null", "planted", "power", "mde"], default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    for name, fn in [("null", null_table), ("planted", planted_table), ("power", power_table), ("mde", mde_table)]:
        if args.only is None or name in args.only:
            fn(args.scale)
    print(f"\nwall {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
