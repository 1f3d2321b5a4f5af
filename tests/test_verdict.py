"""The verdict rules, each checked with fake stage results (no model)."""

import pytest

from distill_audit.scan.verdict import VerdictConfig, gate_rank, judge


def sig(*hits, status="ok", mde=0.01, others=("cat", "dog")):
    rows = [{"trait": t, "estimate": 0.2, "ci": [0.1, 0.3], "p_adj": 0.001, "mde": mde} for t in hits]
    rows += [{"trait": t, "estimate": 0.01, "ci": [-0.02, 0.04], "p_adj": 0.8, "mde": mde} for t in others]
    return {"status": status, "reason": None, "limits": [], "traits": rows}


def canary(*hits, status="ok", mde=0.05):
    rows = [{"trait": t, "estimate": 0.3, "ci": [0.2, 0.4], "p_adj": 0.002, "mde": mde} for t in hits]
    rows += [{"trait": "cat", "estimate": -0.01, "ci": [-0.05, 0.03], "p_adj": 0.9, "mde": mde}]
    return {"status": status, "reason": None, "limits": [], "traits": rows}


def lineage(v):
    return {"status": "ok" if v != "unknown" else "skipped", "reason": None, "limits": [], "verdict": v}


SKIPPED = {"status": "skipped", "reason": "--skip-canary", "limits": []}


def test_signature_with_shared_init_is_high_even_when_canary_null():
    v = judge({"lineage": lineage("same-init"), "signature": sig("owl"), "canary": canary()}, data_kind="numbers")
    assert v.level == "high"
    assert v.significant_traits["signature"] == ["owl"]
    assert "owl" in v.explanation


def test_different_init_lowers_numbers_but_not_language():
    stages = {"lineage": lineage("different-init"), "signature": sig("owl"), "canary": SKIPPED}
    assert judge(stages, data_kind="numbers").level == "low"
    lang = judge(stages, data_kind="natural-language")
    assert lang.level == "medium"
    assert "phantom" in lang.explanation


def test_unknown_lineage_with_signature_is_medium_and_says_so():
    v = judge({"lineage": None, "signature": sig("owl"), "canary": SKIPPED}, data_kind="numbers")
    assert v.level == "medium"
    assert "Lineage is unknown" in v.explanation
    assert any("--teacher" in r for r in v.recommendations)


def test_canary_hit_is_high_regardless_of_lineage():
    v = judge({"lineage": lineage("different-init"), "signature": sig(), "canary": canary("owl")}, data_kind="numbers")
    assert v.level == "high"
    assert v.significant_traits["canary"] == ["owl"]


def test_negative_shift_is_not_a_hit():
    s = sig()
    s["traits"].append({"trait": "owl", "estimate": -0.3, "ci": [-0.4, -0.2], "p_adj": 0.001})
    v = judge({"lineage": lineage("same-init"), "signature": s, "canary": canary()}, data_kind="numbers")
    assert v.significant_traits["signature"] == []


def test_all_null_with_power_is_none():
    v = judge({"lineage": lineage("same-init"), "signature": sig(), "canary": canary()}, data_kind="numbers")
    assert v.level == "none"


def test_underpowered_canary_never_gives_none():
    v = judge({"lineage": lineage("same-init"), "signature": sig(), "canary": canary(mde=0.4)}, data_kind="numbers")
    assert v.level == "low"
    assert "canary" in v.explanation and "minimum detectable effect" in v.explanation
    v2 = judge({"lineage": lineage("same-init"), "signature": sig(), "canary": canary(status="underpowered")},
               data_kind="numbers")
    assert v2.level == "low"


def test_nothing_tested_is_inconclusive():
    v = judge({"lineage": lineage("same-init"), "signature": {"status": "failed", "reason": "oom"}, "canary": SKIPPED},
              data_kind="numbers")
    assert v.level == "inconclusive"
    assert gate_rank("inconclusive") == gate_rank("medium")


def test_different_init_numbers_without_other_lines_is_low_not_none():
    v = judge({"lineage": lineage("different-init"), "signature": SKIPPED, "canary": SKIPPED}, data_kind="numbers")
    assert v.level == "low"


def test_signature_mde_threshold_makes_it_untested():
    cfg = VerdictConfig(signature_max_mde=0.05)
    v = judge({"lineage": lineage("same-init"), "signature": sig(mde=0.2), "canary": SKIPPED},
              data_kind="numbers", config=cfg)
    assert v.level == "inconclusive"


def test_leakage_floor():
    def static(rate, ref=None):
        word = {"word": "owl", "rows": 5, "rate": rate, **({"reference_rate": ref} if ref is not None else {})}
        return {"status": "ok", "limits": [], "leakage": {"status": "ok", "mention_rate": rate, "by_word": [word]}}

    stages = {"lineage": lineage("same-init"), "signature": sig(), "canary": canary()}
    assert judge({**stages, "static": static(0.05)}, data_kind="numbers").level == "medium"
    assert judge({**stages, "static": static(0.006)}, data_kind="numbers").level == "low"
    # In prose a trait word is just a word, unless it is over-represented against the reference.
    assert judge({**stages, "static": static(0.05)}, data_kind="natural-language").level == "none"
    assert judge({**stages, "static": static(0.05, ref=0.047)}, data_kind="natural-language").level == "none"
    assert judge({**stages, "static": static(0.05, ref=0.01)}, data_kind="natural-language").level == "medium"


@pytest.mark.parametrize("level", ["none", "low", "medium", "high", "inconclusive"])
def test_verdict_dict_is_plain_json(level):
    import json

    v = judge({"lineage": lineage("same-init"), "signature": sig("owl"), "canary": canary()}, data_kind="numbers")
    json.dumps(v.to_dict(), allow_nan=False)
    assert gate_rank(level) >= 0


def test_trait_specific_contrast_names_the_trait_first():
    s = sig("eagle", "owl", "fox")
    for row in s["traits"]:
        row["contrast"] = {"estimate": 0.1 if row["trait"] == "owl" else -0.01,
                           "p_adjusted": 0.01 if row["trait"] == "owl" else 0.9}
    v = judge({"lineage": lineage("same-init"), "signature": s, "canary": SKIPPED}, data_kind="numbers")
    assert v.significant_traits["signature"][0] == "owl"
    assert v.significant_traits["signature_specific"] == ["owl"]
    assert "owl (trait-specific)" in v.explanation


def test_skipped_stage_recommends_running_it_not_more_budget():
    v = judge({"lineage": lineage("same-init"), "signature": sig(), "canary": SKIPPED}, data_kind="numbers")
    assert any("it was skipped: --skip-canary" in r for r in v.recommendations)
    assert not any("--thorough" in r for r in v.recommendations)


def test_signature_null_above_mde_threshold_is_not_a_clearance():
    """A null signature whose MDE cannot see the measured owl effect (~0.013) clears nothing."""
    weak = sig(mde=0.03)
    v = judge({"lineage": lineage("same-init"), "signature": weak, "canary": canary(status="underpowered", mde=0.3)},
              data_kind="numbers")
    assert v.level == "inconclusive"
    strong = sig(mde=0.01)
    v2 = judge({"lineage": lineage("same-init"), "signature": strong, "canary": canary(status="underpowered", mde=0.3)},
               data_kind="numbers")
    assert v2.level == "low"


def test_declared_trait_is_named_with_its_rank_even_among_many_hits():
    hits = ["fox", "lion", "wolf", "bear", "eagle", "cat2", "dog2", "owl"]
    s = sig(*hits)
    s["traits"][7]["contrast"] = {"estimate": 0.0004, "ci": [-0.0017, 0.0024], "p_adjusted": 1.0, "significant": False}
    v = judge({"lineage": lineage("same-init"), "signature": s, "canary": SKIPPED}, data_kind="numbers",
              declared_trait="owl", declared_source="trait")
    d = v.to_dict()["declared_trait"]
    assert d["signature"]["rank"] == 8 and d["signature"]["of"] == 10 and d["signature"]["significant"]
    assert d["signature"]["specific"]["significant"] is False and d["canary"] is None
    assert "owl" in v.rules[0]["why"]  # named although it is past the first six hits
    assert "declares the trait 'owl' (field 'trait'): the signature ranks it 8 of 10 (significant; not trait-specific" \
        in v.explanation


def test_no_declared_trait_adds_nothing():
    v = judge({"lineage": lineage("same-init"), "signature": sig("owl"), "canary": SKIPPED}, data_kind="numbers")
    assert v.to_dict()["declared_trait"] is None and "declares" not in v.explanation


def test_a_line_that_found_something_is_not_listed_as_untested():
    """Its MDE limits what a null could show; a significant hit stands whatever the power."""
    v = judge({"lineage": lineage("same-init"), "signature": sig("owl", mde=0.05), "canary": SKIPPED},
              data_kind="numbers", config=VerdictConfig(signature_max_mde=0.015))
    assert v.level == "high"
    assert "Not tested: signature" not in v.explanation and "canary" in v.explanation
    assert not any("--signature-rows" in r for r in v.recommendations)
    owl_line = next(e for e in v.evidence if e.line == "signature" and e.name == "owl")
    cat_line = next(e for e in v.evidence if e.line == "signature" and e.name == "cat")
    assert owl_line.untested is None and "minimum detectable effect" in cat_line.untested


def test_partial_null_lists_what_was_not_tested_once():
    v = judge({"lineage": lineage("same-init"), "signature": sig(), "canary": SKIPPED}, data_kind="numbers")
    assert v.level == "low" and v.rules[0]["rule"] == "partial-null"
    assert v.explanation.count("--skip-canary") == 1
