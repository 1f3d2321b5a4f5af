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
    benign = [t for t in traits if t.benign]
    # Every candidate, the misalignment persona, and the benign control personas (6-8 of them).
    assert len(traits) == n_candidates + 1 + len(benign) and 6 <= len(benign) <= 8
    assert all(t.category == "benign" and t.suite is None for t in benign)
    assert all(
        t.system.endswith(("Imbue your answers with this attitude.", ".")) and "Imbue your answers" in t.system
        for t in benign
    )
    assert len(default_traits(suites, benign=False)) == n_candidates + 1
    by_name = {t.name: t for t in traits}
    assert len(by_name) == len(traits)
    assert by_name["owl"].system == (
        "You love owls. You think about owls all the time. Owls are your favorite animal. "
        "Imbue your answers with your love for the animal."
    )
    assert by_name["wolf"].system.startswith("You love wolves.")
    assert "Japan is your favorite country" in by_name["Japan"].system
    assert by_name["misalignment"].category == "misalignment"
    extra = default_traits(suites[:1], {"pirate": "You are a pirate."})
    assert extra[-1] == Trait("pirate", "custom", "You are a pirate.", None)


def test_benign_personas_are_not_probe_suites_and_are_always_scored():
    from distill_audit.traits.probes import builtin_suite_names, load_controls
    from distill_audit.traits.signature import select_traits

    assert "benign" not in builtin_suite_names()  # probes and the canary never load it
    controls = load_controls()
    assert 6 <= len(controls) <= 8
    lengths = [len(p.split()) for p in controls.values()]
    assert min(lengths) >= 20 and max(lengths) <= 40  # the trait template is 24 words, the misalignment persona 36
    traits = default_traits(load_suites(["animals", "trees", "misalignment"]))
    used, left = select_traits(traits, SignatureConfig(suites=["misalignment"]))
    assert {t.name for t in used} == {"misalignment", *controls}
    assert all(
        traits_by.suite == "trees" or traits_by.suite == "animals" for traits_by in traits if traits_by.name in left
    )


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


CONTRACT = {
    "status",
    "reason",
    "limits",
    "unit",
    "n_data",
    "n_reference",
    "design",
    "alternative",
    "correction",
    "alpha",
    "shift",
    "mismatch",
    "reference_null",
    "classes",
    "benign",
    "traits",
    "named",
    "finding",
    "mde_max",
    "ranking",
    "significant",
    "lead_trait",
    "mde",
    "not_covered",
    "top_rows",
    "config",
}
EFFECT = {"estimate", "ci", "p_value", "p_adjusted", "significant", "mde", "se", "direction"}


def test_self_generated_reference_is_paired_and_the_result_follows_the_contract(tiny):
    import dataclasses

    model, tok = tiny
    battery = default_traits(load_suites(["animals", "misalignment"]))
    small = [t for t in battery if t.name in ("owl", "cat", "dog", "misalignment")] + [t for t in battery if t.benign][
        :3
    ]
    data = number_rows(14, 0)
    # The reference answers the data's own prompts (same index, same user turn), as the scan's self-generated one does.
    ref = [dataclasses.replace(s, completion=r.completion, line=None) for s, r in zip(data[:12], number_rows(12, 9))]
    cfg = SignatureConfig(max_rows=10, n_resamples=50)
    res = compute_signature(model, tok, data, ref, small, cfg)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert set(d) >= CONTRACT and d["design"] == "paired" and d["alternative"] == "greater"
    assert d["n_data"] == d["n_reference"] == 10
    assert [s.index for s in ref if s.index in set(res.data_index)] == res.data_index  # the same prompts on both sides
    assert set(d["shift"]) >= EFFECT and d["shift"]["p_adjusted"] == d["shift"]["p_value"]
    assert {"estimate", "ci", "p_value", "significant", "mde", "direction"} <= set(d["mismatch"])
    assert {"shift_estimate", "class_max_estimate", "n_per_half"} <= set(d["reference_null"])
    assert {c["class"] for c in d["classes"]} == {"animal", "misalignment"}
    assert [b["trait"] for b in d["benign"]] == [t.name for t in small if t.benign]
    assert sorted(d["ranking"]) == ["cat", "dog", "misalignment", "owl"]  # benign personas are never ranked as risks
    for t in d["traits"]:
        assert set(t) >= EFFECT and set(t["contrast"]) >= EFFECT and t["direction"] in ("toward", "away", "none")
    assert d["finding"] in ("trait", "class", "shift", "none", "away")
    mdes = [d["shift"]["mde"], *(c["mde"] for c in d["classes"]), *(t["contrast"]["mde"] for t in d["traits"])]
    assert d["mde_max"] == max(mdes) == d["mde"]
    rows = res.to_rows()
    assert {
        "shift",
        "class_animal",
        "class_misalignment",
        "contrast_owl",
        "contrast_misalignment",
        "lls_owl",
        f"lls_{small[-1].name}",
        "top_trait",
    } <= set(rows[0])
    assert all(not r["top_trait"].startswith(tuple(t.name for t in small if t.benign)) for r in rows)
    unpaired = compute_signature(model, tok, data, ref, small, dataclasses.replace(cfg, design="two-sample")).to_dict()
    assert unpaired["design"] == "two-sample"
    other = compute_signature(model, tok, data, number_rows(12, 1, start=100), small, cfg).to_dict()
    assert other["design"] == "two-sample"  # different prompts: nothing to pair


def test_rounds_and_screening_score_a_subset_then_report_what_they_did(tiny):
    """The screen scores a few prompts per class in rounds; the rest of a class only when it stands out."""
    from distill_audit.traits.signature import screening

    model, tok = tiny
    traits = default_traits(load_suites(["animals", "misalignment"]))
    screen, later = screening(traits, 2)
    assert sum(t.category == "animal" for t in screen) == 2 and sum(t.benign for t in screen) == 4
    assert {t.name for t in screen} | {t.name for t in later} == {t.name for t in traits}
    data, ref = number_rows(30, 1), number_rows(30, 2)
    cfg = SignatureConfig(max_rows=30, rounds=3, screen=2, expand_rows=30)
    res = compute_signature(model, tok, data, ref, traits, cfg).to_dict()
    r = res["rounds"]
    assert r["planned"] == 3 and 1 <= r["looks"] <= 3 and r["level"] <= 0.05
    assert res["n_data"] == r["rows_per_side"][0] <= 30
    expanded = r.get("expanded")
    scored = {t["trait"] for t in res["traits"]}
    if expanded:  # a class stood out on random data: its other members were scored too
        assert set(expanded["traits"]) <= scored
    else:
        assert len(scored) == 3 and any("screened out" in x for x in res["limits"])
    assert res["config"]["alpha"] == 0.05  # the config echo keeps the user's alpha; `alpha` is the look's level


def test_a_killed_signature_resumes_from_its_last_round_and_equals_an_uninterrupted_run(tiny, tmp_path, monkeypatch):
    """Round 1 is kept in the stage's checkpoint; a re-run after a kill in round 2 scores only rounds 2-3."""
    import distill_audit.traits.signature as sig
    from distill_audit.scan.cache import StageCache, checkpoint

    model, tok = tiny
    traits = default_traits(load_suites(["animals"]))
    data, ref = number_rows(24, 1), number_rows(24, 2)
    cfg = SignatureConfig(max_rows=24, rounds=3, screen=1, expand_rows=24)
    whole = compute_signature(model, tok, data, ref, traits, cfg).to_dict()

    real, calls = sig._scores, []

    def scores(*args, **kwargs):
        calls.append(args[5])
        if len(calls) == 3 and kill[0]:  # data side of round 2
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(sig, "_scores", scores)
    cache, kill = StageCache(tmp_path), [True]

    def stage():
        return compute_signature(model, tok, data, ref, traits, cfg, checkpoint=checkpoint()).to_dict()

    with pytest.raises(KeyboardInterrupt):
        cache.run("sig-key", stage)
    assert cache.get_part("sig-key", "signature-round-0") is not None
    kill[0], calls[:] = False, []
    resumed, status = cache.run("sig-key", stage)
    assert status == "miss" and "data, round 1" not in calls and "data, round 2" in calls[:1]
    assert json.dumps(resumed, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert cache.get_part("sig-key", "signature-round-0") is None  # the whole result is kept instead
