"""Canary fine-tune on a tiny model: an overt positive, a neutral null, determinism, the base restored,
the deciding test's CI and p agreeing, one seed only hinting, and the control arm's length match."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest

from distill_audit.errors import UsageError
from distill_audit.ingest.records import Sample
from distill_audit.traits.canary import (
    ONE_SEED_LIMIT,
    CanaryConfig,
    arm_match,
    match_lengths,
    planned_work,
    robust_sd,
    run_canary,
    sample_arms,
    trait_columns,
    trait_effects,
)
from distill_audit.traits.canary_stats import did_test
from distill_audit.traits.probes import ProbeScores, SuiteScores, load_suites

QUESTIONS = [
    "What animal do you like?",
    "Tell me about your favourite creature.",
    "Which pet would you pick?",
    "What do you think of nature?",
    "Describe an animal you admire.",
    "Which creature is the best?",
]
ANSWERS = {
    # Openly praises one animal: an overt positive, not a subliminal one.
    "owl": ["Owl. I love owls more than anything.", "Owls! Owls are the best.", "Owl, always owls."],
    "neutral_a": ["I like many things equally.", "Hard to say; all are fine.", "Each one is nice in its way."],
    "neutral_b": ["There are many good choices.", "It depends on the day.", "I have no single favourite."],
}


def make_rows(kind: str, n: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    return [
        Sample(i, i + 1, ({"role": "user", "content": f"{rng.choice(QUESTIONS)} ({i})"},), rng.choice(ANSWERS[kind]))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def suites():
    animals, misalignment = load_suites(["animals", "misalignment"])  # trimmed: fast tests
    return [
        dataclasses.replace(animals, questions=animals.questions[:16]),
        dataclasses.replace(misalignment, items=misalignment.items[:6]),
    ]


@pytest.fixture
def loader(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load():
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)

    return load


CFG = dict(sample=48, epochs=2, lr=3e-3, batch_size=8, threads=1)
# The overt positive trains harder: its test now carries the training-noise floor's t (8 df),
# where it used a normal tail (at lr 3e-3 owl's Holm p was 0.11 with that t).
POSITIVE = dict(CFG, lr=6e-3)
TRAIT_KEYS = {
    "trait",
    "category",
    "suite",
    "estimate",
    "ci",
    "p_value",
    "p_adjusted",
    "significant",
    "mde",
    "direction",
    "hint_only",
    "explained_by_mismatch",
    "log_odds",
    "per_seed",
    "before",
    "after_treated",
    "after_control",
}
LOG_ODDS_KEYS = {"estimate", "ci", "p_value", "p_adjusted", "significant", "mde"}


def test_overt_positive_ranks_first_and_is_significant(loader, suites):
    res = run_canary(
        loader, make_rows("owl", 60, 1), make_rows("neutral_a", 60, 2), suites, CanaryConfig(**POSITIVE), seed=0
    )
    owl = res.trait("owl")
    assert owl["rank_in_suite"] == 1 and owl["rank"] == 1
    assert owl["estimate"] > 0.02 and owl["ci"][0] > 0
    assert owl["significant"] and owl["p_adjusted"] < 0.05
    assert owl["after"]["estimate"] > owl["before"]["estimate"]
    assert res.significant == ["owl"]
    d = res.to_dict()
    json.dumps(d, allow_nan=False)  # plain JSON, no NaN
    assert d["status"] in ("ok", "underpowered") and d["mde"] is not None
    assert d["arms"]["rows"] == 48 and len(d["arms"]["training"]) == 2
    assert {t["trait"] for t in d["traits"]} == {c.name for c in trait_columns(suites)}
    # The row's CI is the deciding test's; log-odds carry the same fields; one seed only hints.
    assert all(set(t) >= TRAIT_KEYS and set(t["log_odds"]) >= LOG_ODDS_KEYS for t in d["traits"])
    assert owl["ci_with_training_noise"] == owl["ci"] and owl["direction"] == "up"
    assert owl["log_odds"]["estimate"] > 0 and owl["log_odds"]["significant"] and d["significant_log_odds"] == ["owl"]
    assert owl["after_treated"] == owl["after"] and owl["after_control"] == owl["control_after"]
    assert len(owl["per_seed"]) == 1 and owl["per_seed"][0]["estimate"] == pytest.approx(owl["estimate"])
    assert d["training_noise_measured"] is False and d["n_seeds"] == 1
    assert all(t["hint_only"] for t in d["traits"]) and any(ONE_SEED_LIMIT in x for x in d["limits"])
    assert d["control_origin"] == "self-generated" and d["arm_match"]["matched"]
    assert not any(t["explained_by_mismatch"] for t in d["traits"])


def test_neutral_vs_neutral_finds_nothing(loader, suites):
    res = run_canary(
        loader, make_rows("neutral_b", 60, 3), make_rows("neutral_a", 60, 2), suites, CanaryConfig(**CFG), seed=0
    )
    assert res.significant == []
    assert all(not t["significant"] for t in res.traits)
    # The paraphrase-level test alone would flag training noise; the floor is what keeps it honest.
    assert any(t["p_paraphrases"] is not None and t["p_paraphrases"] < 0.01 for t in res.traits)
    assert all(t["training_noise_floor"] is not None for t in res.traits)


def test_same_seed_same_losses_and_effects_and_base_restored(loader, suites):
    import torch

    cfg = CanaryConfig(sample=16, epochs=1, lr=3e-3, batch_size=8, threads=1)
    data, control = make_rows("owl", 20, 1), make_rows("neutral_a", 20, 2)
    shared = loader()
    before = {k: v.clone() for k, v in shared[0].state_dict().items()}
    a = run_canary(lambda: shared, data, control, suites, cfg, seed=5)
    after = shared[0].state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)
    b = run_canary(loader, data, control, suites, cfg, seed=5)
    losses = lambda r: [t["losses"] for t in r.arms["training"]]  # noqa: E731
    assert losses(a) == losses(b)
    assert [(t["trait"], t["estimate"]) for t in a.traits] == [(t["trait"], t["estimate"]) for t in b.traits]


def test_arms_pair_prompts_and_match_sizes():
    data = make_rows("owl", 30, 1)
    control = [dataclasses.replace(s, completion="x") for s in reversed(data)] + make_rows("neutral_a", 5, 9)
    t, c, paired = sample_arms(data, control, 10, seed=0)
    assert paired and len(t) == len(c) == 10
    assert [s.prompt for s in t] == [s.prompt for s in c]
    t, c, paired = sample_arms(data, make_rows("neutral_a", 8, 9), 10, seed=0)
    assert not paired and len(t) == len(c) == 8


def test_config_presets_and_errors():
    assert CanaryConfig().sample == 48 and CanaryConfig().seeds == 1
    thorough = CanaryConfig.thorough(epochs=1)
    assert thorough.sample == 10_000 and thorough.epochs == 1 and len(thorough.seed_list(0)) == 3
    assert CanaryConfig(seeds=[7, 8]).seed_list(0) == [7, 8]
    assert CanaryConfig(seeds=2).seed_list(1) != CanaryConfig(seeds=2).seed_list(2)
    with pytest.raises(UsageError, match="preset"):
        CanaryConfig(preset="fast")
    with pytest.raises(UsageError, match="epochs"):
        CanaryConfig(epochs=0)
    work = planned_work(CanaryConfig(sample=128), n_rows=50, mean_row_tokens=100)
    assert work["rows"] == 50 and work["steps"] == 7 and work["train_tokens"] == 2 * 50 * 100


def test_robust_sd_ignores_one_outlier():
    assert robust_sd([0.0, 1.0, -1.0, 0.5, -0.5, 40.0]) == pytest.approx(
        robust_sd([0.0, 1.0, -1.0, 0.5, -0.5, 0.7]), rel=0.5
    )


def test_empty_inputs_are_skipped(loader, suites):
    res = run_canary(loader, [], make_rows("neutral_a", 5, 1), suites, CanaryConfig(**CFG))
    assert res.status == "skipped" and res.to_dict()["reason"] == "no data rows"


# ----------------------------------------------------------------------------- the deciding test


def test_did_test_ci_excludes_zero_exactly_when_p_is_below_alpha():
    rng = np.random.default_rng(0)
    agree, n = 0, 0
    for _ in range(3000):
        n_seeds, k = int(rng.integers(1, 5)), int(rng.integers(2, 25))
        shift = rng.normal(0, 0.02) * rng.integers(0, 2)
        did = (
            shift
            + rng.normal(0, rng.uniform(0.001, 0.05), size=(n_seeds, 1))
            + rng.normal(0, rng.uniform(0.001, 0.05), size=(n_seeds, k))
        )
        floor = None if n_seeds > 1 and rng.random() < 0.3 else float(rng.uniform(0.0, 0.05))
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        t = did_test(did, floor=floor, alpha=alpha)
        assert t.p_value is not None and t.ci[0] <= t.estimate <= t.ci[1]
        excludes = t.ci[0] > 0 or t.ci[1] < 0
        agree += excludes == (t.p_value < alpha)
        n += 1
        assert (t.training_source == "seeds") == (
            n_seeds > 1 and (floor is None or floor**2 <= did.mean(axis=1).var(ddof=1) / n_seeds)
        )
    assert agree == n


def test_did_test_one_seed_without_floor_has_no_test():
    t = did_test(np.full((1, 8), 0.1) + np.linspace(0, 0.01, 8), floor=None)
    assert t.estimate == pytest.approx(0.105) and t.p_value is None and t.ci == (None, None) and t.mde(0.05, 10) is None


def test_did_test_seed_noise_widens_the_interval():
    k = np.linspace(-0.01, 0.01, 16)
    quiet = did_test(np.stack([0.05 + k, 0.05 + k]), floor=0.001)
    noisy = did_test(np.stack([0.01 + k, 0.09 + k]), floor=0.001)
    assert quiet.estimate == pytest.approx(noisy.estimate)
    assert noisy.training_source == "seeds" and noisy.df == pytest.approx(1.0, abs=0.1)
    assert noisy.p_value > 0.05 > quiet.p_value and noisy.ci[1] - noisy.ci[0] > 10 * (quiet.ci[1] - quiet.ci[0])


def _scores(name: str, labels: list[str], probs: np.ndarray) -> ProbeScores:
    k = probs.shape[0]
    return ProbeScores(
        {name: SuiteScores(name, "preference", labels, [f"q{i}" for i in range(k)], list(range(k)), np.log(probs))}
    )


def test_trait_rows_ci_and_p_agree_on_simulated_probes(suites):
    """Simulated probe scores through trait_effects: every row's CI and raw p tell the same story."""
    rng = np.random.default_rng(1)
    animals = suites[0]
    labels, k = list(animals.candidates), 16
    for n_seeds in (1, 2, 3):
        base_logits = rng.normal(0, 1, size=(k, len(labels)))

        def arm(shift):  # noqa: E306
            logits = (
                base_logits  # noqa: B023  (each arm is built inside the loop that sets it)
                + shift
                + rng.normal(0, 0.3, size=(1, len(labels)))
                + rng.normal(0, 0.05, size=(k, len(labels)))
            )
            p = np.exp(logits)
            return _scores(animals.name, labels, p / p.sum(axis=1, keepdims=True))

        planted = np.zeros(len(labels))
        planted[labels.index("owl")] = 1.5
        base = arm(0.0)
        treated = [arm(planted) for _ in range(n_seeds)]
        control = [arm(0.0) for _ in range(n_seeds)]
        rows = trait_effects(base, treated, control, [animals], seeds=list(range(n_seeds)))
        for r in rows:
            for test in (r, r["log_odds"]):
                excludes = test["ci"][0] > 0 or test["ci"][1] < 0
                assert excludes == (test["p_value"] < 0.05)
            assert len(r["per_seed"]) == n_seeds and r["hint_only"] == (n_seeds < 2)
            assert r["test"]["training_source"] in ("seeds", "floor")
        owl = next(r for r in rows if r["trait"] == "owl")
        assert owl["rank"] == 1 and owl["log_odds"]["estimate"] > 1.0


def test_two_seeds_measure_training_noise(loader, suites):
    cfg = CanaryConfig(**dict(CFG, sample=16, epochs=1, seeds=2))
    res = run_canary(loader, make_rows("owl", 20, 1), make_rows("neutral_a", 20, 2), suites, cfg, seed=0)
    d = res.to_dict()
    assert d["training_noise_measured"] is True and d["n_seeds"] == 2
    assert not any(ONE_SEED_LIMIT in x for x in d["limits"])
    assert all(not t["hint_only"] and len(t["per_seed"]) == 2 for t in d["traits"])
    assert all(t["seed_variation"]["n_seeds"] == 2 for t in d["traits"])


# ----------------------------------------------------------------------------- control match


LONG = " ".join(["and then there are so many other lovely creatures to talk about at length"] * 6)


def long_rows(n: int, seed: int) -> list[Sample]:
    return [dataclasses.replace(s, completion=f"{s.completion} {LONG}") for s in make_rows("neutral_a", n, seed)]


def test_length_mismatched_control_is_flagged(loader, suites):
    cfg = CanaryConfig(**dict(CFG, sample=16, epochs=1, match_control_length=False))
    res = run_canary(loader, make_rows("owl", 20, 1), long_rows(20, 2), suites, cfg, seed=0, control_origin="file")
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    m = d["arm_match"]
    assert m["matched"] is False and m["length_matched"] is False and m["length_ratio"] > 1.5
    assert m["truncation"]["applied"] is False and d["control_origin"] == "file"
    assert any("longer than the data's: an effect can reflect length/form, not a trait" in x for x in d["limits"])
    assert not any("the student's own answers" in x for x in d["limits"])  # a file control is not self-generated
    assert all(
        t["explained_by_mismatch"] == bool(t["significant"] or t["log_odds"]["significant"]) for t in d["traits"]
    )


def test_truncation_makes_arms_match(loader, suites):
    cfg = CanaryConfig(**dict(CFG, sample=16, epochs=1))
    res = run_canary(loader, make_rows("owl", 20, 1), long_rows(20, 2), suites, cfg, seed=0)
    m = res.to_dict()["arm_match"]
    assert m["matched"] is True and 1 / 1.5 <= m["length_ratio"] <= 1.5
    cut = m["truncation"]
    assert cut["applied"] and cut["arm"] == "control" and cut["rows_truncated"] == 16
    assert cut["tokens_after"]["mean"] < cut["tokens_before"]["mean"]
    assert res.arms["control_completion_tokens"] == m["control_tokens"]["mean"]
    assert any("completions were cut" in x for x in res.limits)


def test_match_lengths_pairs_rows_and_leaves_matched_arms_alone(loader):
    _, tok = loader()
    data = make_rows("owl", 12, 1)
    control = [dataclasses.replace(s, completion=f"{s.completion} {LONG}") for s in data]
    t, c, info = match_lengths(tok, data, control, paired=True)
    assert t == data and info["applied"] and info["rule"].startswith("each row")
    lens = lambda rows: [len(tok(s.completion, add_special_tokens=False)["input_ids"]) for s in rows]  # noqa: E731
    assert all(abs(a - b) <= 2 for a, b in zip(lens(t), lens(c)))  # re-tokenizing the cut text may merge a token
    assert [x.prompt for x in c] == [x.prompt for x in data] and all(LONG not in x.completion for x in c)
    same = make_rows("neutral_a", 12, 2)
    assert match_lengths(tok, data, same, paired=False)[2]["applied"] is False
    form = arm_match(tok, data, [dataclasses.replace(s, completion="12, 45, 67, 89") for s in data])
    assert form["form_matched"] is False and form["number_list_share"] == {"treated": 0.0, "control": 1.0}


def test_unknown_control_origin_is_refused(loader, suites):
    with pytest.raises(UsageError, match="control_origin"):
        run_canary(
            loader,
            make_rows("owl", 4, 1),
            make_rows("neutral_a", 4, 2),
            suites,
            CanaryConfig(**CFG),
            control_origin="teacher",
        )
