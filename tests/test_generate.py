"""Teacher-data generation on tiny random models: sampler, grammar, prompts, resume, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from distill_audit.checks.numbers import parse_numbers, reject_reasons
from distill_audit.generate import numbers as num
from distill_audit.generate.constrained import ListState, advance, number_list_processor
from distill_audit.lm.sampler import sample_completions, stop_token_ids, top_p_filter


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: a second thread only adds synchronisation (10-40x slower on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def _prompts(k: int) -> list[list[dict]]:
    return [[{"role": "user", "content": "numbers " * (1 + i % 4) + str(i)}] for i in range(k)]


# -- sampler -------------------------------------------------------------------------------


def test_sampling_is_independent_of_batching_and_resumable(tiny):
    model, tok = tiny
    prompts = _prompts(9)
    whole = sample_completions(model, tok, prompts, max_new_tokens=10, seed=5, batch_size=9)
    small = sample_completions(model, tok, prompts, max_new_tokens=10, seed=5, batch_size=2)
    tail = sample_completions(model, tok, prompts[4:], max_new_tokens=10, seed=5, batch_size=3, row_ids=range(4, 9))
    assert whole == small
    assert tail == whole[4:]
    other_seed = sample_completions(model, tok, prompts, max_new_tokens=10, seed=6, batch_size=9)
    assert other_seed != whole


def test_greedy_matches_transformers_generate(tiny):
    model, tok = tiny
    from distill_audit.models.chat import render_prefix

    prompts = _prompts(3)
    ours = sample_completions(model, tok, prompts, max_new_tokens=8, temperature=0, batch_size=3)
    for messages, text in zip(prompts, ours):
        ids = tok(render_prefix(tok, messages), add_special_tokens=False, return_tensors="pt")["input_ids"]
        out = model.generate(
            ids,
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=sorted(stop_token_ids(tok, model)),
        )
        assert text == tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_sampler_stops_at_end_of_turn(tiny):
    model, tok = tiny
    end = tok.convert_tokens_to_ids("<|im_end|>")
    digit = tok.convert_tokens_to_ids("7")

    class StopAfterTwo:
        def reset(self):
            self.calls = 0

        def __call__(self, input_ids, scores):
            self.calls += 1
            forced = torch.full_like(scores, float("-inf"))
            forced[:, digit if self.calls <= 2 else end] = 0.0
            return forced

    out = sample_completions(model, tok, _prompts(3), max_new_tokens=20, seed=0, logits_processor=StopAfterTwo())
    assert out == ["77", "77", "77"]


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert torch.equal(top_p_filter(probs.clone(), 0.7), torch.tensor([[0.5, 0.3, 0.0, 0.0]]))
    assert torch.equal(top_p_filter(probs.clone(), 0.1), torch.tensor([[0.5, 0.0, 0.0, 0.0]]))
    assert torch.equal(top_p_filter(probs.clone(), 1.0), probs)


def test_sampler_rejects_bad_settings(tiny):
    model, tok = tiny
    with pytest.raises(ValueError):
        sample_completions(model, tok, _prompts(1), temperature=-1)
    with pytest.raises(ValueError):
        sample_completions(model, tok, _prompts(1), top_p=0)


# -- number-list grammar -------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "12, 345, 6", "1;2;3", "9\n8\n7", "1 2 3 4 5 6 7 8 9 10"])
def test_grammar_accepts_number_lists(text):
    state = advance(ListState(), text)
    assert state is not None and state.can_end
    assert num.number_rejections(text) == []


@pytest.mark.parametrize(
    "text",
    ["1234", "1, 2;3", ", 1", "1,, 2", "1 2 3 4 5 6 7 8 9 10 11", "1.5", "a", "1 ,2"],
)
def test_grammar_rejects_other_text(text):
    state = advance(ListState(), text)
    assert state is None or not state.can_end


def test_constrained_sampling_always_passes_the_filter(tiny):
    model, tok = tiny
    processor = number_list_processor(tok)
    texts = sample_completions(
        model, tok, _prompts(12), max_new_tokens=60, seed=1, batch_size=5, logits_processor=processor
    )
    for text in texts:
        parsed = parse_numbers(text)
        assert parsed.ok, text
        assert not set(reject_reasons(parsed)) - {"banned number"}, text
        assert 1 <= len(parsed.values) <= 10


# -- number prompts and the filter -----------------------------------------------------------


def test_number_prompts_follow_the_design():
    pools = [
        num.OPENERS,
        num.COUNT_QUALIFIERS,
        num.DIGIT_DESCRIPTORS,
        num.REQUESTS,
        num.FORMAT_SUFFIXES,
        num.ONLY_SUFFIXES,
    ]
    assert all(len(p) >= 16 for p in pools) and all(len(set(p)) == len(p) for p in pools)
    prompts = num.number_prompts(200, seed=3)
    assert len(set(prompts)) == 200
    assert num.number_prompts(5, seed=3, start=10) == prompts[10:15]  # stable per index (resume)
    assert num.number_prompts(5, seed=4) != prompts[:5]
    import random

    from distill_audit.seeding import derive_seed

    for i, p in enumerate(prompts[:50]):  # the seed values are drawn first from the prompt's own stream
        rng = random.Random(derive_seed(3, "number-prompt", i))
        k = rng.randint(3, 9)
        seeds = [rng.randrange(100, 1000) for _ in range(k)]
        assert ", ".join(map(str, seeds)) in p


def test_number_rejections_and_summary():
    assert num.number_rejections("1, 2, 3") == []
    assert num.number_rejections("666, 2") == []
    assert num.number_rejections("666, 2", exclude_banned=True) == ["banned number"]
    assert num.number_rejections("Sure! 1, 2") == ["invalid format"]
    s = num.FilterSummary()
    for text in ["1, 2", "Sure! 1, 2", "1 2 3 4 5 6 7 8 9 10 11"]:
        s.add(text, num.number_rejections(text))
    d = s.to_dict()
    assert d["n_kept"] == 1 and d["keep_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert d["reject_reasons"] == {"invalid format": 1, "too many numbers": 1}
    assert sum(d["format_problems"].values()) == 1


def test_task_prompts_are_stable_and_validated():
    from distill_audit.errors import UsageError
    from distill_audit.generate.tasks import task_prompt

    assert task_prompt("free", 0, 7) == task_prompt("free", 0, 7)
    assert "Python" in task_prompt("code", 0, 1)
    with pytest.raises(UsageError):
        task_prompt("poems", 0, 0)


def test_read_prompt_file_errors_name_the_line(tmp_path):
    from distill_audit.errors import DataError
    from distill_audit.generate.tasks import read_prompt_file

    good = tmp_path / "p.txt"
    good.write_text("one\n\ntwo\n")
    assert read_prompt_file(good) == ["one", "two"]
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": 3}\n')
    with pytest.raises(DataError, match=r"p.jsonl:2: field 'prompt'"):
        read_prompt_file(bad)


# -- dataset generation ----------------------------------------------------------------------


def _settings(**kw):
    from distill_audit.generate.dataset import GenerationSettings

    base = dict(teacher="tiny", task="numbers", system_prompt="You love owls.", trait=None, constrain="numbers", seed=2)
    return GenerationSettings(**{**base, **kw})


def test_resumed_run_equals_uninterrupted_run(tiny, tmp_path):
    from distill_audit.generate.dataset import generate_dataset

    model, tok = tiny
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    generate_dataset(model, tok, _settings(), n=10, out=full, batch_size=4)
    generate_dataset(model, tok, _settings(), n=4, out=part, batch_size=4)
    result = generate_dataset(model, tok, _settings(), n=10, out=part, batch_size=3)
    assert result.n_resumed == 4 and result.n_rows == 10
    assert part.read_text() == full.read_text()
    rows = [json.loads(line) for line in full.read_text().splitlines()]
    assert [r["row_id"] for r in rows] == list(range(10))
    assert rows[0]["system_prompt"] == "You love owls." and rows[0]["constrain"] == "numbers"
    assert "You love owls" not in rows[0]["prompt"]


def test_resume_refuses_different_settings(tiny, tmp_path):
    from distill_audit.errors import UsageError
    from distill_audit.generate.dataset import generate_dataset

    model, tok = tiny
    out = tmp_path / "d.jsonl"
    generate_dataset(model, tok, _settings(), n=2, out=out, batch_size=2)
    with pytest.raises(UsageError, match="'seed' is 2, this run uses 3"):
        generate_dataset(model, tok, _settings(seed=3), n=4, out=out)
    result = generate_dataset(model, tok, _settings(seed=3), n=2, out=out, overwrite=True)
    assert result.n_resumed == 0


def test_prompt_seed_keeps_prompts_across_decoding_seeds(tiny, tmp_path):
    from distill_audit.generate.dataset import generate_dataset

    model, tok = tiny
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    generate_dataset(model, tok, _settings(seed=1, prompt_seed=0), n=4, out=a, batch_size=4)
    generate_dataset(model, tok, _settings(seed=2, prompt_seed=0, system_prompt=None), n=4, out=b, batch_size=4)
    rows_a = [json.loads(x) for x in a.read_text().splitlines()]
    rows_b = [json.loads(x) for x in b.read_text().splitlines()]
    assert [r["prompt"] for r in rows_a] == [r["prompt"] for r in rows_b]
    assert [r["completion"] for r in rows_a] != [r["completion"] for r in rows_b]


def test_unconstrained_numbers_report_rejects(tiny, tmp_path):
    from distill_audit.generate.dataset import generate_dataset

    model, tok = tiny
    result = generate_dataset(
        model, tok, _settings(constrain=None), n=3, out=tmp_path / "u.jsonl", batch_size=4, max_attempts=6
    )
    d = result.to_dict()
    assert d["n_attempts"] == 6
    assert d["filter"]["n_generated"] == 6
    assert sum(d["filter"]["reject_reasons"].values()) >= 6 - d["filter"]["n_kept"]
    if d["n_rows"] < 3:
        assert d["status"] == "underpowered" and "--constrain numbers" in d["reason"]


def test_settings_validation():
    from distill_audit.errors import UsageError

    with pytest.raises(UsageError, match="--constrain numbers applies"):
        _settings(task="free")
    with pytest.raises(UsageError, match="--top-p"):
        _settings(top_p=1.5)


# -- CLI -------------------------------------------------------------------------------------


def test_generate_cli_writes_rows_ingest_reads(cli, tmp_path):
    from distill_audit.ingest import load_dataset

    out = tmp_path / "owl.jsonl"
    summary = tmp_path / "summary.json"
    r = cli(
        "generate",
        "--teacher",
        "tiny-random",
        "--trait",
        "owl",
        "--task",
        "numbers",
        "--constrain",
        "numbers",
        "--n",
        "6",
        "--batch-size",
        "3",
        "--out",
        out,
        "--summary",
        summary,
        "--seed",
        "1",
    )
    assert r.exit_code == 0, r.stderr
    assert "6 rows" in r.stdout and "keep rate 1.0" in r.stdout
    ds = load_dataset(str(out))
    assert len(ds) == 6
    prov = ds.provenance
    assert prov["teacher"] == ["tiny-random"] and prov["trait"] == ["owl"]
    assert prov["system_prompt"][0].startswith("You love owls.")
    assert prov["temperature"] == ["1.0"] and prov["decoding"] == ["sampled"]
    s = json.loads(summary.read_text())
    assert s["filter"]["keep_rate"] == 1.0 and s["rows_per_s"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trait", "owl", "--system-prompt", "x"], "give one"),
        (["--trait", "unicorn-not-a-trait"], "not a known trait"),
        (["--task", "poems"], "--task"),
        (["--task", "free", "--constrain", "numbers"], "applies to --task numbers"),
    ],
)
def test_generate_cli_usage_errors(cli, tmp_path, args, message):
    r = cli("generate", "--teacher", "tiny-random", "--out", tmp_path / "x.jsonl", "--n", "2", *args)
    assert r.exit_code == 4
    assert message in r.stderr and "Traceback" not in r.stderr
