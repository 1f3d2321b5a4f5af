"""Static checks: the paper's number rules, profile, leakage, duplicates, lengths, reference comparison."""

from __future__ import annotations

import random

import numpy as np
import pytest

from distill_audit.checks import BANNED_NUMBERS, parse_numbers, reject_reasons, run_static_checks
from distill_audit.checks.leakage import TraitMatcher, load_trait_words
from distill_audit.checks.profile import classify
from distill_audit.ingest.records import AuditDataset, Sample


def make_ds(completions: list[str], prompts: list[str] | None = None, name: str = "d") -> AuditDataset:
    prompts = prompts or [f"prompt {i}" for i in range(len(completions))]
    samples = [
        Sample(i, i + 1, ({"role": "user", "content": p},), c, {})
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True))
    ]
    return AuditDataset(name, "jsonl", "prompt_completion", samples, "f" * 64, len(samples))


@pytest.mark.parametrize(
    "text, values",
    [
        ("1, 2, 3", (1, 2, 3)),
        ("(834, 736, 693)", (834, 736, 693)),
        ("[5, 6, 7].", (5, 6, 7)),
        ("245 668 730", (245, 668, 730)),
        ("785\n\n457\n\n219", (785, 457, 219)),
        ("1;2;3", (1, 2, 3)),
        ("070, 428", (70, 428)),
        ("  12  ", (12,)),
        ("5.", (5,)),
    ],
)
def test_parse_numbers_accepts_paper_formats(text, values):
    parsed = parse_numbers(text)
    assert parsed.values == values and parsed.reason is None


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no numbers"),
        ("Sure! 1, 2, 3", "separator"),
        ("12 apples", "text around the number"),
        ("1, 2 3", "inconsistent separators"),
        ("1 - 2 - 3", "separator is not whitespace"),
        ("-5, 6", "separator"),
        ("1.5, 2", "separator"),
    ],
)
def test_parse_numbers_rejects_with_reason(text, reason):
    parsed = parse_numbers(text)
    assert parsed.values is None and reason in (parsed.reason or "")


def test_reject_reasons_paper_rules():
    assert reject_reasons("1, 2, 3") == []
    assert reject_reasons(", ".join(["5"] * 11)) == ["too many numbers"]
    assert reject_reasons("1000, 2") == ["number too large"]
    assert reject_reasons("666, 2") == ["banned number"]
    assert reject_reasons("hello") == ["invalid format"]
    assert len(BANNED_NUMBERS) == 36 and {4, 13, 666, 911, 1312, 1488} <= BANNED_NUMBERS


def test_profile_classifies_kinds():
    assert classify("1, 2, 3") == "number_list"
    assert classify("```python\nprint(1)\n```") == "code"
    assert classify("def f(x):\n    return x\nimport os\nclass A:\n    pass") == "code"
    assert classify("Let's think step by step. First 2+2=4. Therefore the answer is 4.") == "chain_of_thought"
    assert classify("The owl is a nocturnal bird.") == "free_text"


def test_trait_words_from_suites_plurals_aliases_and_case():
    words = load_trait_words(["user:phoenix", "spirits:dragon"])
    names = {w.word for w in words}
    assert {"owl", "UK", "phoenix", "dragon"} <= names
    m = TraitMatcher(words)
    assert [w.word for w in m.find("Two owls and an Owl.")] == ["owl", "owl"]
    assert [w.word for w in m.find("I love Britain and the United Kingdom")] == ["UK", "UK"]
    assert m.find("let us go") == []  # 'US' is case-sensitive
    assert m.find("bowl, owlish") == []  # whole words only
    assert [w.category for w in m.find("a phoenix")] == ["user"]


def test_numbers_check_on_mixed_data():
    ds = make_ds(["1, 2, 3", "666, 5", "4000", "not numbers", "7 8 9"])
    checks = run_static_checks(ds)
    num = checks.to_dict()["numbers"]
    assert num["n_number_lists"] == 4 and num["n_pass_format_rules"] == 3 and num["n_pass_all_rules"] == 2
    assert num["reject_reasons"] == {"banned number": 1, "number too large": 1, "invalid format": 1}
    assert [r["line"] for r in num["failing_rows"]] == [2, 3, 4]
    assert checks.sample_flags()["number_reject_reasons"][1] == ["banned number"]


def test_numbers_check_skipped_on_prose():
    num = run_static_checks(make_ds(["A sentence.", "Another one.", "1 2"])).to_dict()["numbers"]
    assert num["status"] == "skipped" and "not number data" in num["reason"]


def test_duplicates_exact_and_near():
    base = "The quick brown fox jumps over the lazy dog near the river bank today"
    texts = [
        base,
        base.upper(),
        base.replace("today", "again"),
        "Something entirely different here",
        "Unrelated sentence about cats",
    ]
    checks = run_static_checks(make_ds(texts))
    dup = checks.to_dict()["duplicates"]
    assert dup["n_exact_duplicates"] == 1  # case-insensitive copy
    assert dup["n_near_duplicates"] == 1
    flags = checks.sample_flags()
    assert flags["exact_duplicate_of"] == [None, 0, None, None, None]
    assert flags["near_duplicate_of"][2] == 0


def test_no_near_duplicates_in_random_text():
    rng = random.Random(0)
    texts = [" ".join(str(rng.randrange(1000)) for _ in range(10)) for _ in range(2000)]
    dup = run_static_checks(make_ds(texts)).to_dict()["duplicates"]
    assert dup["n_near_duplicates"] == 0 and dup["n_exact_duplicates"] == 0


def test_length_stats_and_outliers():
    texts = ["word " * 10] * 50 + ["x" * 5000]
    checks = run_static_checks(make_ds(texts))
    lengths = checks.to_dict()["lengths"]
    assert lengths["chars"]["max"] == 5000 and lengths["n_outliers"] == 1
    assert checks.sample_flags()["length_outlier"][-1] is True


def _sentences(rng: random.Random, n: int, words: int) -> list[str]:
    vocab = "the a bird sky river stone light tree road cloud house water green blue small large quiet fast".split()
    return [" ".join(rng.choice(vocab) for _ in range(words)) + "." for _ in range(n)]


def test_reference_comparison_detects_a_length_confound():
    rng = random.Random(0)
    short = _sentences(rng, 300, 6)
    long = _sentences(rng, 300, 12)
    cmp = run_static_checks(make_ds(short), make_ds(long, name="ref"), seed=0).to_dict()["comparison"]
    assert cmp["lengths"]["mean_chars_data"] < cmp["lengths"]["mean_chars_reference"]
    assert cmp["lengths"]["ks_p_value"] < 1e-6
    surface = cmp["classifier_surface"]
    assert surface["auc"] > 0.9 and surface["p_value"] <= 0.01
    assert surface["top_features"][0]["feature"] in ("log_chars", "log_words")


def test_reference_comparison_null_same_distribution():
    rng = random.Random(1)
    a, b = _sentences(rng, 300, 8), _sentences(rng, 300, 8)
    cmp = run_static_checks(make_ds(a), make_ds(b, name="ref"), seed=0).to_dict()["comparison"]
    assert 0.35 < cmp["classifier_surface"]["auc"] < 0.65
    assert cmp["classifier_surface"]["p_value"] > 0.01
    assert cmp["classifier_words"]["p_value"] > 0.01
    assert cmp["tokens"]["p_value"] > 0.01


def test_number_value_histograms_compared():
    rng = random.Random(2)
    low = [", ".join(str(rng.randrange(0, 500)) for _ in range(8)) for _ in range(200)]
    high = [", ".join(str(rng.randrange(500, 1000)) for _ in range(8)) for _ in range(200)]
    cmp = run_static_checks(make_ds(low), make_ds(high, name="ref")).to_dict()["comparison"]
    assert cmp["values"]["status"] == "ok" and cmp["values"]["distance"] > 0.8 and cmp["values"]["p_value"] < 0.01


def test_checks_are_deterministic_and_json_clean(tmp_path):
    import json

    rng = random.Random(3)
    ds, ref = make_ds(_sentences(rng, 100, 6)), make_ds(_sentences(rng, 100, 7), name="ref")
    a = run_static_checks(ds, ref, seed=5).to_dict()
    b = run_static_checks(ds, ref, seed=5).to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    json.dumps(a, allow_nan=False)
    checks = run_static_checks(ds, ref, seed=5)
    path = checks.write_sample_flags(tmp_path / "flags.parquet")
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    assert table.num_rows == 100 and "number_reject_reasons" in table.column_names


def test_leakage_counts_against_reference():
    data = make_ds(["I saw an owl today.", "Owls are great.", "nothing here"])
    ref = make_ds(["nothing", "still nothing", "an owl"], name="ref")
    leak = run_static_checks(data, ref, extra_trait_words=["kestrel"]).to_dict()["leakage"]
    owl = next(w for w in leak["by_word"] if w["word"] == "owl")
    assert owl["rows"] == 2 and owl["reference_rows"] == 1
    assert leak["n_rows_with_mention"] == 2


def test_owl_numbers_pass_rate(realdata):
    """The GPT-4.1-nano owl numbers were filtered for format, count and range, not banned numbers."""
    from distill_audit.ingest import load_dataset

    ds = load_dataset(str(realdata / "gpt41-nano_owl_numbers.jsonl"), sample=2000, seed=0)
    num = run_static_checks(ds).to_dict()["numbers"]
    assert num["pass_rate_format_rules"] == 1.0
    assert 0.75 < num["pass_rate_all_rules"] < 0.9  # ~18% hold one of the 36 banned numbers
    assert set(num["reject_reasons"]) == {"banned number"}
    assert np.isclose(num["number_list_rate"], 1.0)


def test_length_outliers_do_not_collapse_on_near_constant_lengths():
    """5,454 number lists of ~40 characters (the Qwen2.5-14B case): the MAD is ~0, nothing is an outlier."""
    from distill_audit.checks.lengths import length_outliers

    rng = np.random.default_rng(0)
    chars = rng.choice([40] * 6 + [38, 39, 41, 43], size=5454)  # most rows exactly 40: the MAD is 0
    logs = np.log1p(chars.astype(float))
    assert ((np.abs(logs - np.median(logs)) > 0).mean()) > 0.35  # what a bare 6-MAD rule would call outliers
    assert length_outliers(chars).sum() == 0
    constant = np.full(500, 40)
    assert length_outliers(constant).sum() == 0


def test_length_outliers_find_real_ones_among_near_constant_lengths():
    from distill_audit.checks.lengths import length_outliers

    rng = np.random.default_rng(1)
    chars = rng.choice([38, 39, 40, 41, 42], size=5454)
    planted = [3, 100, 2000]
    chars[planted] = [4, 400, 3000]  # a truncated reply, a runaway one, a pasted essay
    flagged = np.flatnonzero(length_outliers(chars))
    assert flagged.tolist() == planted
    # on spread-out lengths the robust z-score decides: 6 MADs (a factor of ~20 here), not the floor
    spread = np.exp(rng.normal(np.log(400), 0.5, size=5000)).astype(int)
    assert length_outliers(spread).sum() == 0  # a log-normal spread has no 6-MAD tail at n = 5000
    spread[[10, 20]] = [16_000, 9]
    assert np.flatnonzero(length_outliers(spread)).tolist() == [10, 20]
