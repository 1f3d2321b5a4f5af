"""The prepared scale script runs its whole path on CPU with a tiny shape; the scan benchmark is opt-in."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_scale_runs_scorer_and_training_on_a_tiny_shape(capsys):
    mod = _load("gpu_scale")
    assert mod.SHAPES["llama3-8b"]["hidden_size"] == 4096 and mod.SHAPES["llama3-8b"]["num_key_value_heads"] == 8
    assert (
        mod.main(["--shape", "tiny", "--device", "cpu", "--rows", "8", "--batch-size", "4", "--steps", "2", "--json"])
        == 0
    )
    printed = capsys.readouterr().out
    out = json.loads(printed[printed.index("{") :])
    assert out["shape"] == "tiny" and out["scorer_finite"] and out["train_steps"] == 2
    assert out["scorer_tokens_per_s"] > 0 and out["train_tokens_per_s"] > 0 and out["train_peak_gib"] > 0


def test_bench_scan_is_opt_in(capsys, monkeypatch):
    monkeypatch.delenv("DISTILL_AUDIT_BENCH_SCAN", raising=False)
    assert _load("bench_scan").main([]) == 0
    assert "skipped (opt-in" in capsys.readouterr().out
