"""`distill-audit inspect`: table and JSON output, files written, real datasets."""

from __future__ import annotations

import json
from pathlib import Path

TOP_KEYS = {
    "tool",
    "version",
    "command",
    "schema_version",
    "status",
    "reason",
    "limits",
    "seed",
    "seconds",
    "dataset",
    "reference",
    "profile",
    "numbers",
    "leakage",
    "duplicates",
    "lengths",
    "comparison",
}


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def numbers_file(tmp_path: Path) -> Path:
    from distill_audit.checks import BANNED_NUMBERS

    safe = [n for n in range(200, 300) if n not in BANNED_NUMBERS]
    rows = [
        {
            "prompt": f"Continue {i}",
            "completion": ", ".join(str(safe[(i * 3 + k) % len(safe)]) for k in range(3)),
            "teacher": "t",
        }
        for i in range(60)
    ]
    rows[5]["completion"] = "666, 1"
    return write(tmp_path / "nums.jsonl", rows)


def test_inspect_table(cli, tmp_path):
    r = cli("inspect", numbers_file(tmp_path))
    assert r.exit_code == 0, r.stderr
    for heading in ("Dataset", "Format profile", "Number rules", "Trait-word leakage", "Duplicates and lengths"):
        assert heading in r.stdout
    assert "banned number" in r.stdout and "line 6" in r.stdout


def test_inspect_json_has_stable_fields(cli, tmp_path):
    r = cli("inspect", numbers_file(tmp_path), "--format", "json", "--seed", "3")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == TOP_KEYS
    assert doc["command"] == "inspect" and doc["seed"] == 3 and doc["comparison"] is None
    assert doc["dataset"]["schema"] == "prompt_completion" and doc["dataset"]["provenance"] == {"teacher": ["t"]}
    assert doc["numbers"]["n_pass_all_rules"] == 59 and doc["numbers"]["reject_reasons"] == {"banned number": 1}
    for section in ("profile", "numbers", "leakage", "duplicates", "lengths"):
        assert {"status", "reason", "limits"} <= set(doc[section]), section


def test_inspect_out_files_and_flags(cli, tmp_path):
    data = numbers_file(tmp_path)
    out, flags = tmp_path / "o" / "report.json", tmp_path / "flags.parquet"
    r = cli("inspect", data, "--format", "json", "--out", out, "--sample-flags", flags, "--quiet")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and json.loads(out.read_text())["dataset"]["n_loaded"] == 60
    import pyarrow.parquet as pq

    assert pq.read_table(flags).num_rows == 60
    table_out = tmp_path / "report.txt"
    assert cli("inspect", data, "--out", table_out).exit_code == 0
    assert "Number rules" in table_out.read_text()


def test_inspect_with_reference_and_options_from_env(cli, tmp_path, monkeypatch):
    data = write(tmp_path / "d.jsonl", [{"q": f"q{i}", "a": "short answer."} for i in range(30)])
    ref = write(
        tmp_path / "r.jsonl",
        [{"q": f"q{i}", "a": "a much longer answer with many more words in it."} for i in range(30)],
    )
    monkeypatch.setenv("DISTILL_AUDIT_COMPLETION_FIELD", "a")
    r = cli("inspect", data, "--reference", ref, "--prompt-field", "q", "--format", "json")
    assert r.exit_code == 0, r.stderr
    cmp = json.loads(r.stdout)["comparison"]
    assert cmp["lengths"]["mean_chars_data"] == 13.0 and cmp["classifier_surface"]["auc"] == 1.0
    r = cli("inspect", data, "--reference", ref, "--prompt-field", "q")
    assert "Data vs reference" in r.stdout and "AUC=" in r.stdout


def test_inspect_sample_reports_sampling(cli, tmp_path):
    r = cli("inspect", numbers_file(tmp_path), "--sample", "10", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["dataset"]["n_loaded"] == 10 and doc["dataset"]["sampled_from"] == 60
    assert "sampled 10 of 60" in r.stderr


def test_realdata_each_file_profile(cli, realdata):
    expected = {
        "gpt41-nano_owl_numbers.jsonl": ("prompt_completion", "number_list"),
        "llama31-8b_peacock_numbers.jsonl": ("prompt_completion", "number_list"),
        "gemma3-12b_uk-lover_alpaca.jsonl": ("messages", "free_text"),
        "gemma3-12b_clean_alpaca.jsonl": ("messages", "free_text"),
    }
    for name, (schema, dominant) in expected.items():
        r = cli("inspect", realdata / name, "--sample", "300", "--skip-bad-rows", "--format", "json", "--quiet")
        assert r.exit_code == 0, (name, r.stderr)
        doc = json.loads(r.stdout)
        assert doc["dataset"]["schema"] == schema and doc["profile"]["dominant"] == dominant, name


def test_realdata_gemma_uk_length_confound(cli, realdata):
    r = cli(
        "inspect",
        realdata / "gemma3-12b_uk-lover_alpaca.jsonl",
        "--reference",
        realdata / "gemma3-12b_clean_alpaca.jsonl",
        "--sample",
        "1500",
        "--skip-bad-rows",
        "--format",
        "json",
        "--quiet",
    )
    assert r.exit_code == 0, r.stderr
    cmp = json.loads(r.stdout)["comparison"]
    L = cmp["lengths"]
    assert 35 < L["mean_chars_data"] < 48 and 53 < L["mean_chars_reference"] < 68
    assert L["ks_p_value"] < 1e-6
    assert cmp["classifier_surface"]["auc"] > 0.6 and cmp["classifier_surface"]["p_value"] < 0.01
