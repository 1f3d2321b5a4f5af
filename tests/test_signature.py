"""Data signature: the trait battery, LLS against a reference, teacher divergence."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from distill_audit.ingest.records import Sample
from distill_audit.traits.probes import load_suites
from distill_audit.traits.signature import (
    SignatureConfig,
    Trait,
    compute_signature,
    default_traits,
    teacher_divergence,
)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def number_rows(n: int, seed: int, start: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        seq = ", ".join(str(rng.randint(100, 999)) for _ in range(3))
        rows.append(
            Sample(
                start + i,
                start + i + 1,
                ({"role": "user", "content": f"Look at these numbers: {seq}. Continue."},),
                ", ".join(str(rng.randint(0, 999)) for _ in range(6)),
            )
        )
    return rows


def test_default_battery_covers_every_candidate_and_the_persona():
    suites = load_suites()
    traits = default_traits(suites)
    n_candidates = sum(len(s.candidates) for s in suites if s.kind == "preference")
    assert len(traits) == n_candidates + 1
    by_name = {t.name: t for t in traits}
    assert len(by_name) == len(traits)
    assert by_name["owl"].system == ("You love owls. You think about owls all the time. Owls are your favorite animal. "
                                     "Imbue your answers with your love for the animal.")
    assert by_name["wolf"].system.startswith("You love wolves.")
    assert "Japan is your favorite country" in by_name["Japan"].system
    assert by_name["misalignment"].category == "misalignment"
    extra = default_traits(suites[:1], {"pirate": "You are a pirate."})
    assert extra[-1] == Trait("pirate", "custom", "You are a pirate.", None)


def test_signature_result_shape_and_determinism(tiny):
    model, tok = tiny
    traits = default_traits(load_suites(["animals", "trees"]))
    cfg = SignatureConfig(suites=["animals"], max_rows=10, n_resamples=200)
    small = [t for t in traits if t.name in ("owl", "cat", "dog")] + [t for t in traits if t.suite == "trees"][:2]
    data, ref = number_rows(14, 0), number_rows(12, 1, start=100)
    res = compute_signature(model, tok, data, ref, small, cfg)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["n_data"] == 10 and d["n_reference"] == 10 and d["status"] == "underpowered"
    assert sorted(d["ranking"]) == ["cat", "dog", "owl"]
    assert len(d["not_covered"]) == 2 and any("not covered" in lim for lim in d["limits"])
    estimates = [t["estimate"] for t in d["traits"]]
    assert estimates == sorted(estimates, reverse=True) and [t["rank"] for t in d["traits"]] == [1, 2, 3]
    for t in d["traits"]:
        assert t["correction"] == "holm" and t["p_adjusted"] >= t["p_value"]
        assert "estimate" in t["contrast"] and len(t["ci"]) == 2
    rows = res.to_rows()
    assert len(rows) == 10 and sum(r["top_quintile"] for r in rows) == 2
    assert {"lls_owl", "lls_cat", "lls_dog", "top_trait"} <= set(rows[0])
    again = compute_signature(model, tok, data, ref, small, cfg).to_dict()
    assert again["traits"] == d["traits"]


def test_lls_is_the_shift_under_the_trait_prompt(tiny):
    from distill_audit.traits.signature import row_logprobs

    model, tok = tiny
    data = number_rows(4, 3)
    cfg = SignatureConfig()
    trait = default_traits(load_suites(["animals"]))[0]
    res = compute_signature(model, tok, data, number_rows(4, 4), [trait], SignatureConfig(n_resamples=100))
    expected = row_logprobs(model, tok, data, trait.system, cfg) - row_logprobs(model, tok, data, None, cfg)
    assert np.allclose(res.data_lls["owl"], expected, atol=1e-6)


def test_too_few_rows_is_skipped_not_failed(tiny):
    model, tok = tiny
    res = compute_signature(
        model, tok, number_rows(1, 0), number_rows(5, 1), default_traits(load_suites(["animals"]))[:2]
    )
    assert res.status == "skipped" and res.to_rows() == []


def test_teacher_divergence(tiny, tiny_model_dir_other):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = tiny
    data = number_rows(6, 5)
    same = teacher_divergence((model, tok), (model, tok), data).to_dict()
    assert same["mean_per_token"] == 0.0 and same["n_rows"] == 6
    other = AutoModelForCausalLM.from_pretrained(tiny_model_dir_other)
    diff = teacher_divergence((model, tok), (other, tok), data)
    d = diff.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["mean_per_token"] != 0.0 and len(d["top_tokens"]) > 0 and len(diff.to_rows()) == 6
    top = d["top_tokens"]
    assert [t["total"] for t in top] == sorted([t["total"] for t in top], reverse=True)
    tok2 = AutoTokenizer.from_pretrained(tiny_model_dir_other)
    tok2.add_tokens(["zqxjk"])
    skipped = teacher_divergence((model, tok), (other, tok2), data).to_dict()
    assert skipped["status"] == "skipped" and "tokenizers differ" in skipped["reason"]
