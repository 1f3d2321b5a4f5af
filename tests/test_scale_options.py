"""Scaling options of model loading and `scan`: --device-map, --quantize, the --thorough budgets."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from distill_audit.errors import ModelError, UsageError
from distill_audit.models.load import load_model, placement_kwargs
from distill_audit.models.resolve import ModelRef


@pytest.fixture
def rows_file(tmp_path) -> Path:
    path = tmp_path / "rows.jsonl"
    rows = [{"prompt": f"Continue: {i}, {i + 1}", "completion": f"{i + 2}, {i + 3}, {i + 4}"} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def fake_bitsandbytes(monkeypatch):
    """bitsandbytes looks installed (it is not): the next check, the device, must speak."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "bitsandbytes" else real(name, *a)
    )


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# -- loading ---------------------------------------------------------------------------------


def test_device_map_cpu_scores_the_same_logprobs_as_a_plain_load(tiny_model_dir):
    from distill_audit.lm.scoring import completion_logprobs, model_device
    from distill_audit.models.chat import encode

    plain = load_model(str(tiny_model_dir))
    placed = load_model(str(tiny_model_dir), device_map="cpu", device="cuda")  # the map wins over the device
    embedding = placed.model.get_input_embeddings().weight.device
    assert model_device(placed.model) == embedding  # inputs go to the embedding's device
    prompt = [{"role": "system", "content": "You love owls."}, {"role": "user", "content": "Name a number."}]
    encoded = [encode(plain.tokenizer, prompt, c) for c in ("7, 12, 40", "owl", "3")]
    a = completion_logprobs(plain.model, plain.tokenizer, encoded)
    b = completion_logprobs(placed.model, placed.tokenizer, encoded)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_bad_device_map_is_a_usage_error(tiny_model_dir):
    with pytest.raises(UsageError, match=r"--device-map: expected auto, .* got 'everywhere'"):
        load_model(str(tiny_model_dir), device_map="everywhere")


def test_quantize_without_bitsandbytes_is_one_clear_error(tiny_model_dir):
    assert importlib.util.find_spec("bitsandbytes") is None  # this environment; the fixture fakes it below
    with pytest.raises(ModelError, match=r"pip install bitsandbytes") as err:
        load_model(str(tiny_model_dir), quantize="4bit")
    assert "\n" not in str(err.value)


def test_quantize_on_cpu_is_one_clear_error(tiny_model_dir, fake_bitsandbytes):
    with pytest.raises(ModelError, match=r"needs a CUDA GPU .*this run is on cpu") as err:
        load_model(str(tiny_model_dir), quantize="8bit", device="cpu")
    assert "\n" not in str(err.value)


def test_quantize_refuses_gguf_and_adapters_and_unknown_widths(tmp_path):
    gguf = ModelRef(ref="m.gguf", kind="gguf", name="m", path=tmp_path, gguf_file="m.gguf", has_weights=True)
    with pytest.raises(ModelError, match=r"m.gguf: --quantize cannot load a GGUF file"):
        placement_kwargs(gguf, quantize="4bit")
    adapter = ModelRef(ref="lora", kind="adapter", name="lora", path=tmp_path, base=gguf, has_weights=True)
    with pytest.raises(ModelError, match=r"lora: --quantize cannot load an adapter"):
        placement_kwargs(adapter, quantize="4bit")
    with pytest.raises(UsageError, match=r"--quantize: expected 4bit or 8bit"):
        placement_kwargs(adapter, quantize="3bit")
    assert placement_kwargs(gguf) == {} and placement_kwargs(gguf, device_map="auto") == {"device_map": "auto"}


# -- scan ------------------------------------------------------------------------------------


def test_scan_quantize_errors_exit_4_with_one_line(cli, rows_file, tiny_model_dir, tmp_path, fake_bitsandbytes):
    base = ("scan", rows_file, "--student", tiny_model_dir, "--out", tmp_path / "out", "--skip-lineage")
    r = cli(*base, "--quantize", "4bit")  # on CPU: before any stage runs
    assert r.exit_code == 4 and "needs a CUDA GPU" in _one_line(r.stderr)
    assert not (tmp_path / "out").exists()
    r = cli(*base, "--quantize", "4bit", "--full-finetune")
    assert r.exit_code == 4 and "--full-finetune cannot train a 4-/8-bit student" in _one_line(r.stderr)
    r = cli(*base, "--quantize", "3bit")
    assert r.exit_code == 4 and "3bit" in _one_line(r.stderr)


def test_scan_quantize_without_bitsandbytes_exits_4(cli, rows_file, tiny_model_dir, tmp_path):
    r = cli("scan", rows_file, "--student", tiny_model_dir, "--out", tmp_path / "out", "--quantize", "8bit")
    assert r.exit_code == 4 and "pip install bitsandbytes" in _one_line(r.stderr)


def test_scan_records_loading_choices_and_thorough_budgets(cli, rows_file, monkeypatch):
    """The options reach ScanOptions and its effective config; --thorough raises both budgets unless overridden."""
    from distill_audit.scan import pipeline
    from distill_audit.traits.canary import PRESETS
    from distill_audit.traits.probes import builtin_suite_names
    from distill_audit.traits.signature import THOROUGH, SignatureConfig

    seen = []

    def fake_run_scan(opts):
        seen.append(opts)
        raise UsageError("stopped by the test")

    monkeypatch.setattr(pipeline, "run_scan", fake_run_scan)
    r = cli("scan", rows_file, "--student", "tiny-random", "--device-map", "auto", "--quantize", "4bit", "--thorough")
    assert r.exit_code == 4 and seen
    opts = seen[-1]
    config = opts.effective_config()
    assert (config["device_map"], config["quantize"], config["thorough"]) == ("auto", "4bit", True)
    assert (opts.device_map, opts.quantize) == ("auto", "4bit")
    seeds = {"signature": 0}
    sig, can, suites = pipeline.stage_configs(opts, seeds)
    assert (
        sig.max_rows == THOROUGH["max_rows"] == 2000
        and can.preset == "thorough"
        and can.sample == PRESETS["thorough"]["sample"]
    )
    assert sorted(s.name for s in suites) == builtin_suite_names()

    cli(
        "scan",
        rows_file,
        "--student",
        "tiny-random",
        "--thorough",
        "--signature-rows",
        "50",
        "--suites",
        "animals",
        "--canary-rows",
        "7",
    )
    sig, can, suites = pipeline.stage_configs(seen[-1], seeds)
    assert (sig.max_rows, can.sample, can.preset, [s.name for s in suites]) == (50, 7, "thorough", ["animals"])

    cli("scan", rows_file, "--student", "tiny-random")
    sig, can, suites = pipeline.stage_configs(seen[-1], seeds)
    assert (sig.max_rows, can.preset) == (SignatureConfig().max_rows, "default")
    assert [s.name for s in suites] == SignatureConfig().suites


def test_scan_help_shows_the_real_budget_defaults(cli):
    from distill_audit.traits.canary import PRESETS
    from distill_audit.traits.signature import THOROUGH, SignatureConfig

    r = cli("scan", "--help")
    text = re.sub(r"\s+", " ", re.sub(r"[│┃|]", " ", r.stdout))
    assert f"(default {SignatureConfig().max_rows}; thorough {THOROUGH['max_rows']})" in text
    assert f"(default {PRESETS['default']['sample']}; thorough {PRESETS['thorough']['sample']})" in text
    assert "default 128" not in text
    for option in ("--device-map", "--quantize"):
        assert option in text


# -- canary on a quantized base --------------------------------------------------------------


@pytest.mark.parametrize("full_finetune, quantized, prepared", [(False, True, 1), (False, False, 0), (True, True, 0)])
def test_canary_prepares_a_quantized_base_for_lora_only(
    tiny_model_dir, monkeypatch, full_finetune, quantized, prepared
):
    """peft's prepare_model_for_kbit_training runs for LoRA on a 4-/8-bit base, and nowhere else."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill_audit import distributed
    from distill_audit.ingest.records import Sample
    from distill_audit.traits.canary import CanaryConfig, run_canary
    from distill_audit.traits.probes import load_suites

    calls = []
    real = distributed.prepare_quantized_for_training
    monkeypatch.setattr(distributed, "prepare_quantized_for_training", lambda m: calls.append(m) or real(m))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    if quantized:
        model.is_loaded_in_4bit = True  # what transformers sets on a bitsandbytes load
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [Sample(i, i + 1, ({"role": "user", "content": f"Pick {i}"},), f"{i}, {i + 1}") for i in range(8)]
    (animals,) = load_suites(["animals"])
    animals = dataclasses.replace(animals, questions=animals.questions[:4])
    cfg = CanaryConfig(sample=4, epochs=1, max_steps=1, batch_size=4, threads=1, full_finetune=full_finetune)
    res = run_canary(lambda: (model, tok), rows, rows, [animals], cfg, seed=0)
    assert len(calls) == prepared
    assert res.arms["method"].endswith("of a 4-bit base") == bool(prepared)
