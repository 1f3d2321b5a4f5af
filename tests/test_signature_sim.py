"""The signature's analysis against simulated per-row LLS with the structure measured on SmolLM2.

Per row and prompt: LLS = shared persona factor (the same for every prompt of the row)
+ a class factor (shared by the prompts of one class) + prompt-specific noise, so two
prompts' per-row scores correlate about 0.95 (0.92 across classes, 0.95 within); total
per-row SD 0.04 nats, planted effects 0.005-0.02 nats. Every case goes through
`analyse`, the function `compute_signature` calls, with the product's battery
(default_traits: real trait names, classes and the benign controls). numpy only.
The numbers these tests measure are in docs/statistics.md ("Simulations").
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from distill_audit.traits.probes import load_suites
from distill_audit.traits.signature import SignatureConfig, analyse, default_traits, trait_class

ALPHA = 0.05
SD, RHO, CLASS_SHARE = 0.04, 0.95, 0.03
CFG = SignatureConfig(n_resamples=5)  # the split-half null is checked on its own below


def battery(m: int):
    if m == 4:
        keep = {"owl", "cat", "dog", "misalignment"}
        traits = [t for t in default_traits(load_suites(["animals", "misalignment"])) if t.benign or t.name in keep]
    elif m == 21:
        traits = default_traits(load_suites(["animals", "misalignment"]))
    else:
        traits = default_traits(load_suites())
    assert sum(not t.benign for t in traits) == m
    return traits


def simulate(rng, sims: int, n: int, traits, *, heavy: bool = False) -> np.ndarray:
    """[sims x rows x prompts] per-row LLS under the null structure."""
    cls = [("benign" if t.benign else trait_class(t)) for t in traits]
    names = sorted(set(cls))
    idx = np.array([names.index(c) for c in cls])
    draw = (lambda size: rng.standard_t(4, size) / np.sqrt(2.0)) if heavy else (lambda size: rng.standard_normal(size))
    shared = draw((sims, n, 1)) * SD * np.sqrt(RHO - CLASS_SHARE)
    by_class = draw((sims, n, len(names)))[..., idx] * SD * np.sqrt(CLASS_SHARE)
    own = draw((sims, n, len(traits))) * SD * np.sqrt(1 - RHO)
    return shared + by_class + own


def run(traits, data: np.ndarray, ref: np.ndarray, *, paired: bool = False, cfg: SignatureConfig = CFG):
    names = [t.name for t in traits]
    out = []
    for x, r in zip(data, ref):
        out.append(
            analyse(
                {n: x[:, k] for k, n in enumerate(names)},
                {n: r[:, k] for k, n in enumerate(names)},
                traits,
                cfg,
                paired=paired,
            )
        )
    return out


def rates(results) -> dict[str, float]:
    return {
        "named": np.mean([bool(r.named) for r in results]),
        "class": np.mean([any(c["significant"] for c in r.classes) for r in results]),
        "shift": np.mean([r.shift["significant"] for r in results]),
        "raw": np.mean([any(t["significant"] for t in r.traits) for r in results]),
        "finding": np.mean([r.finding in ("trait", "class", "shift") for r in results]),
    }


def upper(sims: int, p: float = ALPHA) -> float:
    """The largest rejection rate a test at level p shows in `sims` runs, 99.9% of the time."""
    return sps.binom.ppf(0.999, sims, p) / sims


def shifted(traits, **by_name_or_class) -> np.ndarray:
    """A per-prompt shift: {trait name: d}, {"all": d}, {"class_animal": d}."""
    v = np.zeros(len(traits))
    for key, d in by_name_or_class.items():
        for k, t in enumerate(traits):
            if (
                key == "all"
                or key == t.name
                or (key.startswith("class_") and not t.benign and trait_class(t) == key[6:])
            ):
                v[k] += d
    return v


@pytest.mark.parametrize("m,sims", [(4, 600), (21, 600), (94, 500)])
def test_null_familywise_false_positive_rate(m, sims):
    traits = battery(m)
    rng = np.random.default_rng(100 + m)
    res = run(traits, simulate(rng, sims, 200, traits), simulate(rng, sims, 200, traits))
    r = rates(res)
    # Each question is one family at alpha: a named trait, a class, the shift, any raw trait shift.
    for key in ("named", "class", "shift", "raw"):
        assert r[key] <= upper(sims), (key, r)
    # The three questions are one hierarchy: together (trait, class or shift found) they hold alpha.
    assert r["finding"] <= upper(sims), r
    assert np.mean([r.finding == "away" for r in res]) <= upper(sims), "a null says 'away' at most alpha of the time"
    assert all(not r.named or r.finding == "trait" for r in res)


@pytest.mark.parametrize("heavy", [False, True])
def test_null_at_the_default_24_rows_is_not_anti_conservative(heavy):
    traits = battery(21)
    sims = 1000
    rng = np.random.default_rng(7 + heavy)
    r = rates(run(traits, simulate(rng, sims, 24, traits, heavy=heavy), simulate(rng, sims, 24, traits, heavy=heavy)))
    for key in ("named", "class", "shift", "raw"):
        assert r[key] <= upper(sims), (key, r)


def test_planted_specific_effect_is_named_at_94_traits():
    traits = battery(94)
    sims = 150
    rng = np.random.default_rng(1)
    data = simulate(rng, sims, 200, traits) + shifted(traits, owl=0.008)
    res = run(traits, data, simulate(rng, sims, 200, traits))
    assert np.mean(["owl" in r.named for r in res]) >= 0.9
    assert np.mean([r.finding == "trait" and r.named[0] == "owl" for r in res]) >= 0.9
    assert np.mean([any(n != "owl" for n in r.named) for r in res]) <= upper(sims)
    owl = next(t for t in res[0].traits if t["trait"] == "owl")
    assert owl["contrast"]["mde"] < 0.008 and res[0].top_rows_by == "contrast_owl"


def test_planted_shared_shift_is_one_finding_with_no_trait_and_no_class():
    traits = battery(21)
    sims = 300
    rng = np.random.default_rng(2)
    res = run(traits, simulate(rng, sims, 200, traits) + shifted(traits, all=0.02), simulate(rng, sims, 200, traits))
    r = rates(res)
    assert r["shift"] >= 0.9 and r["raw"] >= 0.8  # every prompt, owl and benign alike, shifts
    assert r["named"] <= upper(sims) and r["class"] <= upper(sims)
    assert np.mean([x.finding == "shift" for x in res]) >= 0.85
    assert np.mean([x.mismatch["significant"] for x in res]) >= 0.8  # the benign personas shift as much


def test_planted_class_shift_is_a_class_with_no_specific_animal():
    traits = battery(21)
    sims = 300
    rng = np.random.default_rng(3)
    res = run(
        traits, simulate(rng, sims, 200, traits) + shifted(traits, class_animal=0.01), simulate(rng, sims, 200, traits)
    )
    top = [x.classes[0] for x in res]
    assert np.mean([c["class"] == "animal" and c["significant"] for c in top]) >= 0.9
    assert np.mean([x.finding == "class" for x in res]) >= 0.85
    assert np.mean([bool(x.named) for x in res]) <= upper(sims)
    assert all(x.top_rows_by == "class_animal" for x in res if x.finding == "class")


@pytest.mark.parametrize("sign", [1, -1])
def test_mismatched_reference_names_nothing_and_says_mismatch(sign):
    # Data from another model than the student: every prompt, benign included, moves by one constant.
    traits = battery(21)
    sims = 300
    rng = np.random.default_rng(4 + (sign > 0))
    res = run(
        traits, simulate(rng, sims, 200, traits) + shifted(traits, all=sign * 0.025), simulate(rng, sims, 200, traits)
    )
    assert np.mean([x.mismatch["significant"] for x in res]) >= 0.9
    assert np.mean([x.mismatch["direction"] == ("toward" if sign > 0 else "away") for x in res]) >= 0.9
    assert np.mean([bool(x.named) for x in res]) <= upper(sims)
    assert np.mean([any(c["significant"] for c in x.classes) for x in res]) <= upper(sims)
    if sign < 0:  # a shift away from every persona: a mismatched reference, never a risk
        assert np.mean([x.finding == "away" for x in res]) >= 0.85


def test_one_sided_power_is_at_least_the_two_sided_power():
    traits = battery(21)
    sims = 300
    rng = np.random.default_rng(5)
    res = run(traits, simulate(rng, sims, 200, traits) + shifted(traits, owl=0.0035), simulate(rng, sims, 200, traits))
    from distill_audit.traits.stats import holm

    one = two = 0
    for x in res:
        names = [t["trait"] for t in x.traits]
        p = np.array([t["contrast"]["p_value"] for t in x.traits])
        adj = holm(list(np.minimum(1.0, 2 * np.minimum(p, 1 - p))))  # the same t statistics, two-sided
        k = names.index("owl")
        two += adj[k] < ALPHA / 3 and p[k] < 0.5  # at the same level: the contrasts' share of alpha
        one += "owl" in x.named
    assert one >= two and one / sims >= two / sims + 0.05
    # The old test: 2,000 permutations bound the two-sided p below by 2/2001, so Holm over 94
    # traits could never reach 0.05; the analytic tail has no floor.
    assert ALPHA < 94 * 2 / 2001
    assert min(t["contrast"]["p_value"] for x in res for t in x.traits) < 1e-6


def _pilot_mde(traits, key, n=200, sims=40):
    rng = np.random.default_rng(6)
    res = run(traits, simulate(rng, sims, n, traits), simulate(rng, sims, n, traits))
    return float(np.median([key(x) for x in res]))


def test_an_effect_equal_to_the_reported_mde_is_found_about_80_percent_of_the_time():
    traits = battery(21)
    sims = 400
    owl_mde = _pilot_mde(traits, lambda x: next(t for t in x.traits if t["trait"] == "owl")["contrast"]["mde"])
    rng = np.random.default_rng(8)
    res = run(traits, simulate(rng, sims, 200, traits) + shifted(traits, owl=owl_mde), simulate(rng, sims, 200, traits))
    named = np.mean(["owl" in x.named for x in res])
    assert 0.70 <= named <= 0.90, (owl_mde, named)
    shift_mde = _pilot_mde(traits, lambda x: x.shift["mde"])
    res = run(
        traits, simulate(rng, sims, 200, traits) + shifted(traits, all=shift_mde), simulate(rng, sims, 200, traits)
    )
    found = np.mean([x.shift["significant"] for x in res])
    assert 0.70 <= found <= 0.90, (shift_mde, found)


def test_paired_design_keeps_its_level_and_gains_power():
    # A self-generated reference answers the same prompts: half of each row's variance is the prompt's.
    traits = battery(21)
    sims = 400
    rng = np.random.default_rng(9)
    prompt = simulate(rng, sims, 200, traits)
    data = (prompt + simulate(rng, sims, 200, traits)) / np.sqrt(2)
    ref = (prompt + simulate(rng, sims, 200, traits)) / np.sqrt(2)
    null = rates(run(traits, data, ref, paired=True))
    for key in ("named", "class", "shift", "raw"):
        assert null[key] <= upper(sims), (key, null)
    bump = shifted(traits, all=0.008)
    paired = rates(run(traits, data[:150] + bump, ref[:150], paired=True))["shift"]
    unpaired = rates(run(traits, data[:150] + bump, ref[:150], paired=False))["shift"]
    assert paired >= unpaired + 0.15, (paired, unpaired)
    assert run(traits, data[:1], ref[:1], paired=True)[0].design == "paired"


def test_split_half_reference_null_is_the_noise_floor():
    traits = battery(21)
    rng = np.random.default_rng(10)
    x, r = simulate(rng, 1, 400, traits), simulate(rng, 1, 400, traits)
    res = run(traits, x, r, cfg=SignatureConfig(n_resamples=1000))[0]
    null = res.reference_null
    assert null["n_per_half"] == 200 and null["n_splits"] == 1000
    # Halves of 200 against each other: the spread of a 200-vs-200 comparison of null rows.
    se_half = np.std(r[0].mean(axis=1), ddof=1) * np.sqrt(2 / 200)
    assert null["shift_abs_q95"] == pytest.approx(1.96 * se_half, rel=0.2)
    assert null["class_max_q95"] > 0 and null["class_max_q95"] < null["shift_abs_q95"]


# ------------------------------------------------------------------ rounds (group-sequential)


def _sequential(traits, data: np.ndarray, ref: np.ndarray, rounds: int, screen_names=None):
    """What `_in_rounds` decides, on simulated LLS: stop at the first look where a class crosses."""
    from distill_audit.traits.sequential import nominal_alpha

    names = [t.name for t in traits]
    fractions = [(k + 1) / rounds for k in range(rounds)]
    levels = nominal_alpha(fractions, ALPHA)
    out = []
    for x, r in zip(data, ref):
        for look, f in enumerate(fractions):
            n = round(f * x.shape[0])
            res = analyse(
                {a: x[:n, k] for k, a in enumerate(names)},
                {a: r[:n, k] for k, a in enumerate(names)},
                traits,
                SignatureConfig(n_resamples=5, alpha=levels[look]),
            )
            if any(c["significant"] for c in res.classes):
                break
        out.append(res)
    return out


@pytest.mark.parametrize("m,sims", [(4, 300), (21, 300), (94, 200)])
def test_rounds_keep_the_false_positive_rate(m, sims):
    traits = battery(m)
    rng = np.random.default_rng(300 + m)
    res = _sequential(traits, simulate(rng, sims, 200, traits), simulate(rng, sims, 200, traits), rounds=3)
    assert np.mean([x.finding in ("trait", "class", "shift") for x in res]) <= upper(sims)


def test_rounds_lose_little_power_and_usually_stop_early():
    traits = battery(21)
    sims = 300
    rng = np.random.default_rng(11)
    data = simulate(rng, sims, 200, traits) + shifted(traits, class_animal=0.006)
    ref = simulate(rng, sims, 200, traits)
    fixed = np.mean([x.finding == "class" for x in run(traits, data, ref)])
    seq = _sequential(traits, data, ref, rounds=3)
    found = np.mean([x.finding == "class" for x in seq])
    early = np.mean([x.n_data < 200 for x in seq])
    assert found >= fixed - 0.05, (found, fixed)
    assert early >= 0.3, early


def test_a_persona_that_moves_each_prompt_unevenly_names_no_trait_and_no_class():
    """Under any persona each prompt moves by its own amount (benign-persona SmolLM2 numbers moved single animal
    prompts from -0.004 to +0.031); that spread is not row noise and must not read as a trait or a class."""
    traits = battery(21)
    sims = 300
    rng = np.random.default_rng(21)
    named = classes = 0
    for _ in range(sims):
        per_prompt = rng.normal(0.012, 0.008, size=len(traits))  # a fixed, uneven shift per prompt
        data = simulate(rng, 1, 200, traits)[0] + per_prompt
        ref = simulate(rng, 1, 200, traits)[0]
        (res,) = run(traits, data[None], ref[None])
        named += bool(res.named)
        classes += any(c["significant"] for c in res.classes)
    assert named / sims <= upper(sims) and classes / sims <= upper(sims), (named, classes)
