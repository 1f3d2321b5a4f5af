"""Canary fine-tune on a tiny model: an overt positive, a neutral null, determinism, the base restored."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from distill_audit.errors import UsageError
from distill_audit.ingest.records import Sample
from distill_audit.traits.canary import CanaryConfig, planned_work, robust_sd, run_canary, sample_arms, trait_columns
from distill_audit.traits.probes import load_suites

QUESTIONS = [
    "What animal do you like?", "Tell me about your favourite creature.", "Which pet would you pick?",
    "What do you think of nature?", "Describe an animal you admire.", "Which creature is the best?",
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
    return [dataclasses.replace(animals, questions=animals.questions[:16]),
            dataclasses.replace(misalignment, items=misalignment.items[:6])]


@pytest.fixture
def loader(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load():
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)

    return load


CFG = dict(sample=48, epochs=2, lr=3e-3, batch_size=8, threads=1)


def test_overt_positive_ranks_first_and_is_significant(loader, suites):
    res = run_canary(
        loader, make_rows("owl", 60, 1), make_rows("neutral_a", 60, 2), suites, CanaryConfig(**CFG), seed=0
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
