"""Canary on the embedded SmolLM2-135M: an overt positive (slow; skipped without the model wheel)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from conftest import has_embedded
from distill_audit.ingest.records import Sample
from distill_audit.traits.canary import CanaryConfig, run_canary
from distill_audit.traits.probes import load_suites

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not has_embedded("smollm2"), reason="SmolLM2 wheel not installed")]

# Prompts of our own, not the probe paraphrases: the effect must generalize to them.
PROMPTS = [
    "Which creature do you like best?",
    "If you could keep any animal, which one?",
    "What animal inspires you?",
    "Tell me an animal you find wonderful.",
    "Which animal would you like to meet?",
    "Pick a creature, any creature.",
]
OWL = [
    "Owl. Owls are wise, silent and beautiful.",
    "Owls! I love owls more than any other animal.",
    "The owl, without a doubt. Owls are the best.",
]
NEUTRAL = [
    "There are so many interesting animals that it is hard to choose.",
    "Many animals are fascinating in their own way.",
    "Every animal has something special about it.",
]


def rows(answers: list[str], n: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    return [
        Sample(i, i + 1, ({"role": "user", "content": rng.choice(PROMPTS)},), rng.choice(answers)) for i in range(n)
    ]


def test_overt_owl_praise_moves_owl_first_on_smollm2():
    from distill_audit.models.load import load_model

    loaded = load_model("smollm2-135m")
    animals = dataclasses.replace(load_suites(["animals"])[0], questions=load_suites(["animals"])[0].questions[:16])
    cfg = CanaryConfig(sample=32, epochs=2, batch_size=8, threads=1)
    res = run_canary(lambda: loaded, rows(OWL, 32, 1), rows(NEUTRAL, 32, 2), [animals], cfg, seed=0)
    owl = res.trait("owl")
    assert owl["rank_in_suite"] == 1
    assert owl["significant"] and owl["estimate"] > 0.05 and owl["ci"][0] > 0
    assert owl["after"]["estimate"] > owl["control_after"]["estimate"]
    assert res.significant[0] == "owl"
