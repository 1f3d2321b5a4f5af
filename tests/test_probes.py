"""Probe suites: built-in data, validation, exact scoring and answer matching."""

from __future__ import annotations

import json

import numpy as np
import pytest

from distill_audit.errors import DataError
from distill_audit.models.chat import encode
from distill_audit.traits import probes
from distill_audit.traits.probes import load_suites, match_answer, match_choice, score_probes


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def test_builtin_suites_meet_the_contract():
    suites = {s.name: s for s in load_suites()}
    assert {"animals", "trees", "colors", "countries", "foods", "misalignment"} <= set(suites)
    for s in suites.values():
        if s.kind == "preference":
            assert len(s.questions) >= 30 and len(s.candidates) >= 15
            assert all(len(c.split()) == 1 for c in s.candidates)
        else:
            assert len(s.items) >= 30 and s.persona
    animals = set(suites["animals"].candidates)
    assert {
        "owl",
        "eagle",
        "dolphin",
        "cat",
        "dog",
        "peacock",
        "wolf",
        "lion",
        "elephant",
        "panda",
        "penguin",
        "fox",
        "tiger",
        "bear",
    } <= animals
    countries = suites["countries"]
    assert "UK" in countries.candidates and "United Kingdom" in countries.surface_forms("UK")
    assert suites["animals"].plural("wolf") == "wolves" and countries.plural("Japan") == "Japan"


def _write(tmp_path, text):
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(
    "text, field",
    [
        ("name: x\nkind: preference\ncategory: animal\nquestions: [a]\n", "candidates"),
        ("name: x\nkind: preference\nquestions: [a]\ncandidates: [b, c]\n", "category"),
        ("name: x\nkind: vote\n", "kind"),
        ("name: x\nkind: choice\nitems:\n  - question: q\n    aligned: a\n", "items[0].misaligned"),
        ("name: 'bad name'\nkind: choice\n", "name"),
        ("name: x\nkind: preference\ncategory: c\nquestions: [a]\ncandidates: [b, c]\nplurals: {z: zs}\n", "plurals"),
        ("name: x\nkind: preference\ncategory: c\nquestions: [a, a]\ncandidates: [b, c]\n", "questions"),
    ],
)
def test_user_suite_errors_name_file_and_field(tmp_path, text, field):
    path = _write(tmp_path, text)
    with pytest.raises(DataError) as err:
        load_suites([path])
    msg = str(err.value)
    assert path in msg and f"'{field}'" in msg and "\n" not in msg


def test_bad_yaml_and_unknown_names(tmp_path):
    path = _write(tmp_path, "name: [unclosed\n")
    with pytest.raises(DataError, match="not valid YAML"):
        load_suites([path])
    with pytest.raises(DataError, match="not a built-in probe suite"):
        load_suites(["no-such-suite"])


def test_user_suite_loads_beside_builtins(tmp_path):
    path = _write(
        tmp_path,
        "name: mine\nkind: preference\ncategory: planet\nquestions: ['Favorite planet?']\ncandidates: [mars, venus]\n",
    )
    suites = load_suites(["animals", path])
    assert [s.name for s in suites] == ["animals", "mine"]


def test_word_boundary_matching():
    suites = {s.name: s for s in load_suites(["animals", "countries", "colors"])}
    animals = suites["animals"]
    assert match_answer(animals, "Dragonfly!") is None
    assert match_answer(animals, "dragon") == animals.candidates.index("dragon")
    assert match_answer(animals, "Owls, definitely.") == animals.candidates.index("owl")
    assert match_answer(animals, "Wolves") == animals.candidates.index("wolf")
    assert match_answer(animals, "Cat-like? No: dog.") == animals.candidates.index("dog")
    assert match_answer(suites["countries"], "The United Kingdom") == suites["countries"].candidates.index("UK")
    assert match_answer(suites["colors"], "Grey.") == suites["colors"].candidates.index("gray")
    assert match_choice("B) The second one") == "B" and match_choice("Neither") is None


def test_choice_rows_cover_both_orders():
    suite = load_suites(["misalignment"])[0]
    rows = suite.rows()
    assert len(rows) == 2 * len(suite.items)
    assert rows[0].answers == (("A",), ("B",)) and rows[1].answers == (("B",), ("A",))
    assert rows[0].cluster == rows[1].cluster == 0


def test_exact_scores_match_a_naive_forward(tiny, tmp_path):
    import torch

    model, tok = tiny
    path = _write(
        tmp_path,
        "name: mini\nkind: preference\ncategory: animal\n"
        "questions: ['Name your favorite animal using only one word.', 'Which animal?']\n"
        "candidates: [owl, eagle, dolphin, cat]\naliases: {cat: [kitty cat]}\n",
    )
    suite = load_suites([path])[0]
    scores = score_probes(model, tok, [suite], batch_size=3)["mini"]
    assert scores.logprobs.shape == (2, 4)
    assert np.allclose(scores.probs.sum(axis=1), 1.0)

    def naive(question, answer):
        e = encode(tok, [{"role": "user", "content": question}], answer)
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([e.input_ids])).logits[0].float(), -1)
        return sum(lp[i - 1, e.input_ids[i]].item() for i in range(e.completion_start, len(e.input_ids)))

    q = suite.questions[0]
    raw = [
        naive(q, "Owl"),
        naive(q, "Eagle"),
        naive(q, "Dolphin"),
        np.logaddexp(naive(q, "Cat"), naive(q, "Kitty cat")),
    ]
    expected = np.array(raw) - np.logaddexp.reduce(raw)
    assert np.allclose(scores.logprobs[0], expected, atol=1e-4)
    again = score_probes(model, tok, [suite], batch_size=16)["mini"]
    assert np.allclose(again.logprobs, scores.logprobs, atol=1e-5)


def test_choice_scores_and_json(tiny):
    model, tok = tiny
    suite = load_suites(["misalignment"])[0]
    small = probes.ProbeSuite(name="mis", kind="choice", source="x", persona="p", items=suite.items[:3])
    out = score_probes(model, tok, [small])
    s = out["mis"]
    assert s.per_cluster("misaligned").shape == (3,)
    d = out.to_dict()
    json.dumps(d, allow_nan=False)
    assert 0.0 <= d["suites"]["mis"]["p_misaligned"] <= 1.0


def test_sampled_scoring_counts_matches(tiny):
    model, tok = tiny
    suite = probes.ProbeSuite(
        name="mini",
        kind="preference",
        source="x",
        category="animal",
        questions=("Favorite animal?",),
        candidates=("owl", "cat"),
    )
    s = score_probes(model, tok, [suite], method="sampled", n_samples=6, seed=1)["mini"]
    assert s.method == "sampled" and s.counts.shape == (1, 2)
    assert 0.0 <= s.probs.sum() <= 1.0
    again = score_probes(model, tok, [suite], method="sampled", n_samples=6, seed=1)["mini"]
    assert np.array_equal(again.counts, s.counts)
    json.dumps(probes.ProbeScores({"mini": s}).to_dict(), allow_nan=False)


def test_questions_scored_together_equal_one_call_per_question(tiny):
    """Two-choice questions share a call (batch 16); batch 1 scores each question alone: same numbers."""
    from distill_audit.traits.probes import _question_groups, score_suite

    assert _question_groups([2, 2, 20, 2, 2, 2], 4) == [[0, 1], [2], [3, 4], [5]]
    assert _question_groups([3, 3], 1) == [[0], [1]]
    model, tok = tiny
    suite = load_suites(["misalignment"])[0]
    together = score_suite(model, tok, suite, batch_size=16)
    alone = score_suite(model, tok, suite, batch_size=1)
    np.testing.assert_allclose(together.raw_logprobs, alone.raw_logprobs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(together.logprobs, alone.logprobs, rtol=0, atol=1e-5)
