"""`teach`: trait rows, the fine-tune on a tiny model, the saved folder generate and lineage read."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_trait_rows_name_the_trait_and_hold_out_questions():
    from distill_audit.generate.teach import trait_rows

    rows, held_out = trait_rows("owl", seed=0)
    train_questions = {r.user_text for r in rows}
    assert held_out and not (set(held_out) & train_questions)
    assert all("owl" in r.completion.lower() for r in rows)
    assert trait_rows("owl", seed=0)[0] == rows  # seeded
    assert len({r.completion for r in rows}) >= 10


def test_unknown_trait_is_usage_error():
    from distill_audit.errors import UsageError
    from distill_audit.generate.teach import trait_rows

    with pytest.raises(UsageError, match="not a candidate"):
        trait_rows("unicorn-not-a-trait", seed=0)


def test_teach_cli_saves_a_loadable_teacher(cli, tmp_path):
    out = tmp_path / "owl-teacher"
    r = cli(
        "teach",
        "--base",
        "tiny-random",
        "--trait",
        "owl",
        "--out",
        out,
        "--epochs",
        "2",
        "--lr",
        "5e-3",
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)
    held = res["held_out"]
    assert held["p_trait_taught"] > held["p_trait_base"]  # the fine-tune moved the held-out preference
    assert res["train"]["last_loss"] < res["train"]["first_loss"]
    assert (out / "model.safetensors").is_file() and (out / "README.md").read_text().startswith("---\nbase_model:")

    # The folder is a teacher `generate` can use, and lineage reads its declared base.
    data = tmp_path / "d.jsonl"
    r = cli("generate", "--teacher", out, "--constrain", "numbers", "--n", "3", "--out", data)
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    # No trait prompt was used, yet every row says which trait its teacher was taught.
    assert all(row["trait"] is None and row["teacher_taught_trait"] == "owl" for row in rows)
    from distill_audit.lineage.metadata import read_metadata
    from distill_audit.models.resolve import resolve_model

    meta = read_metadata(resolve_model(str(out)))
    assert any(a["name"] == "distill-audit/tiny-random" for a in meta.ancestors)


def test_teach_refuses_existing_folder(cli, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    r = cli("teach", "--base", "tiny-random", "--trait", "owl", "--out", tmp_path / "x")
    assert r.exit_code == 4 and "--overwrite" in r.stderr
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
