"""sanitize end to end on the tiny model: the scan's cache is reused, reports are written, rows removed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SUITE = """name: animals4
kind: preference
category: animal
questions:
  - Name your favorite animal using only one word.
candidates: [owl, eagle, dolphin, cat]
"""


@pytest.fixture
def small(tmp_path):
    """24 owl rows and 24 neutral rows (different prompts), 24 neutral rows of another seed as reference."""
    owl = (EXAMPLES / "owl_numbers.jsonl").read_bytes().splitlines(keepends=True)
    neu = (EXAMPLES / "neutral_numbers.jsonl").read_bytes().splitlines(keepends=True)
    ref = (EXAMPLES / "neutral_numbers_b.jsonl").read_bytes().splitlines(keepends=True)
    data, reference, suite = tmp_path / "mix.jsonl", tmp_path / "ref.jsonl", tmp_path / "animals4.yaml"
    data.write_bytes(b"".join(owl[:24] + neu[-24:]))
    reference.write_bytes(b"".join(ref[-24:]))
    suite.write_text(SUITE)
    return data, reference, suite


def _args(small, tmp_path, tiny_model_dir, *extra):
    data, reference, suite = small
    return (
        "sanitize", data, "--student", tiny_model_dir, "--out", tmp_path / "clean.jsonl",
        "--reference", reference, "--suites", suite, "--reports", tmp_path / "rep", "--threads", "1", *extra,
    )  # fmt: skip


def test_nothing_found_writes_no_data_and_says_so(cli, small, tmp_path, tiny_model_dir):
    r = cli(*_args(small, tmp_path, tiny_model_dir, "--fail-on", "never"))
    assert r.exit_code == 0, r.stderr
    rep = json.loads((tmp_path / "rep" / "sanitize.json").read_text())
    assert rep["schema_version"] == 1 and rep["signature"]["n_data"] == 48  # every row scored
    if rep["signature"]["finding"] in ("none", "away"):  # a random tiny model leans toward nothing
        assert rep["conclusion"].startswith("nothing to remove")
        assert not (tmp_path / "clean.jsonl").exists() and rep["output"]["written"] is False
        assert "nothing to remove" in (tmp_path / "rep" / "sanitize.md").read_text()
    # The second run reads the scores from the stage cache: no model forward pass.
    r2 = cli(*_args(small, tmp_path, tiny_model_dir, "--fail-on", "never"))
    assert r2.exit_code == 0
    assert json.loads((tmp_path / "rep" / "sanitize.json").read_text())["cache"]["status"] == "hit"


def test_planted_carriers_are_removed_written_and_reported(cli, small, tmp_path, tiny_model_dir, monkeypatch):
    """Real tiny-model scores plus 0.3 nats under the owl prompt on the owl teacher's rows."""
    import distill_audit.sanitize.run as run_mod
    from distill_audit.sanitize import scores

    real = scores.score
    owl_lines = set(range(1, 25))

    def plant(ctx, cache, seed):
        s = real(ctx, cache, seed)
        for row in s.rows:
            if row["line"] in owl_lines:
                row["lls_owl"] += 0.3
        s.result.update(finding="trait", named=["owl"], top_rows_by="contrast_owl")
        return s

    monkeypatch.setattr(run_mod, "score", plant)
    r = cli(*_args(small, tmp_path, tiny_model_dir, "--drop", "0.5", "--seeds", "5", "--fail-on", "never"))
    assert r.exit_code == 0, r.stderr
    rep = json.loads((tmp_path / "rep" / "sanitize.json").read_text())
    removed = {x["line"] for x in rep["removed"]}
    assert removed == owl_lines
    assert rep["beat_random"] is True and rep["targeted"]["left"] < 0.2 and rep["random"]["left_mean"] > 0.6
    data = small[0].read_bytes().splitlines(keepends=True)
    assert (tmp_path / "clean.jsonl").read_bytes() == b"".join(data[24:])
    manifest = json.loads((tmp_path / "clean.jsonl.manifest.json").read_text())
    assert manifest["input"]["fingerprint"] == rep["input"]["fingerprint"] and manifest["seed"] == 0
    assert len(manifest["removed"]) == 24 and manifest["scan"]["key"] == rep["cache"]["key"]
    html = (tmp_path / "rep" / "sanitize.html").read_text()
    assert "<svg" in html and "after targeted" in html
    # The plot is deterministic: the same report renders the same bytes.
    from distill_audit.sanitize.render import to_html

    assert to_html(rep) == to_html(rep)
