"""Static checks over a stream: every row-level check equals the in-memory result."""

from __future__ import annotations

import json

import pytest

from distill_audit.checks import run_static_checks
from distill_audit.checks.streaming import run_streaming_checks
from distill_audit.ingest.loader import load_dataset


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    import random

    rng = random.Random(3)
    path = tmp_path_factory.mktemp("stream") / "rows.jsonl"
    lines = []
    for i in range(3000):
        roll = rng.random()
        if roll < 0.8:
            completion = ", ".join(str(rng.randrange(0, 1200)) for _ in range(rng.randrange(1, 13)))
        elif roll < 0.95:
            completion = " ".join(
                rng.choice(["owl", "oak", "the", "a", "blue", "France"]) for _ in range(rng.randrange(2, 20))
            )
        else:
            completion = "1, 2, 3"  # exact repeats
        lines.append(json.dumps({"prompt": f"Row {i}: continue 1, 2, 3", "completion": completion}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _row_level(d: dict) -> dict:
    return {k: d[k] for k in ("profile", "numbers", "leakage", "lengths")}


@pytest.mark.parametrize("num_proc", [1, 2])
def test_streaming_equals_in_memory_on_every_row_level_check(synthetic, num_proc):
    full = run_static_checks(load_dataset(str(synthetic)), seed=0).to_dict()
    streamed = run_streaming_checks(str(synthetic), sample=500, seed=0, num_proc=num_proc, chunk_rows=700).to_dict()
    assert _row_level(streamed) == _row_level(full)
    assert streamed["duplicates"]["n_exact_duplicates"] == full["duplicates"]["n_exact_duplicates"] > 0
    assert streamed["duplicates"]["n_rows"] == 3000
    assert streamed["dataset"]["n_checked"] == 3000 and streamed["dataset"]["n_loaded"] == 500
    assert streamed["dataset"]["fingerprint"] == full["dataset"]["fingerprint"]
    assert any("sample of 500 of 3000" in limit for limit in streamed["duplicates"]["limits"])


def test_streaming_sample_is_seeded(synthetic):
    a = run_streaming_checks(str(synthetic), sample=200, seed=1).sample_flags()["index"]
    b = run_streaming_checks(str(synthetic), sample=200, seed=1).sample_flags()["index"]
    c = run_streaming_checks(str(synthetic), sample=200, seed=2).sample_flags()["index"]
    assert a == b != c and len(a) == 200


def test_inspect_streaming_flag(cli, synthetic, tmp_path):
    """`inspect --streaming`: the row-level checks equal plain `inspect`; --sample sizes the side-by-side checks."""
    plain = cli("inspect", synthetic, "--format", "json", "--quiet")
    streamed = cli(
        "inspect",
        synthetic,
        "--streaming",
        "--sample",
        "400",
        "--format",
        "json",
        "--quiet",
        "--sample-flags",
        tmp_path / "flags.parquet",
    )
    assert plain.exit_code == streamed.exit_code == 0, streamed.stderr
    full, d = json.loads(plain.stdout), json.loads(streamed.stdout)
    assert _row_level(d) == _row_level(full)
    assert d["duplicates"]["n_exact_duplicates"] == full["duplicates"]["n_exact_duplicates"]
    assert d["dataset"]["streamed"] is True and d["dataset"]["n_checked"] == 3000 and d["dataset"]["n_loaded"] == 400
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "flags.parquet").num_rows == 400  # flags cover the sample
    table = cli("inspect", synthetic, "--streaming", "--sample", "400")
    assert "all 3000 streamed through the row checks" in " ".join(table.stdout.replace("│", " ").split())


def test_streaming_draws_the_same_sample_as_load_dataset(synthetic):
    from distill_audit.ingest.loader import load_dataset

    streamed = run_streaming_checks(str(synthetic), sample=300, seed=4).sample_flags()["index"]
    loaded = [s.index for s in load_dataset(str(synthetic), sample=300, seed=4).samples]
    assert list(streamed) == loaded
