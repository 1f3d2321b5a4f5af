"""Every bad input gives one clear line (file, line, field) and its exit code; never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOOD = {"prompt": "Continue: 1, 2", "completion": "3, 4"}


def jsonl(path: Path, lines: list) -> Path:
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else (json.dumps(line) + "\n").encode())
    return path


def assert_error(r, code: int, *needles: str) -> None:
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr)


def test_malformed_json_line(cli, tmp_path):
    path = jsonl(tmp_path / "bad.jsonl", [GOOD, GOOD, b'{"prompt": "x", "completion": }\n', GOOD])
    assert_error(cli("inspect", path), 4, "bad.jsonl:3:", "malformed JSON", "column")


def test_field_type_changes_between_rows(cli, tmp_path):
    path = jsonl(tmp_path / "types.jsonl", [GOOD, GOOD, {"prompt": "x", "completion": {"text": "3"}}])
    assert_error(
        cli("inspect", path), 4, "types.jsonl:3:", "field 'completion'", "field type changed", "object here but string"
    )


def test_missing_field(cli, tmp_path):
    path = jsonl(tmp_path / "missing.jsonl", [GOOD, {"prompt": "only a prompt"}])
    assert_error(cli("inspect", path), 4, "missing.jsonl:2:", "field 'completion'", "missing field")


def test_empty_completion(cli, tmp_path):
    path = jsonl(tmp_path / "empty.jsonl", [GOOD, GOOD, GOOD, {"prompt": "x", "completion": "   "}])
    assert_error(cli("inspect", path), 4, "empty.jsonl:4:", "field 'completion'", "empty completion", "--skip-bad-rows")


def test_non_utf8_bytes(cli, tmp_path):
    path = jsonl(tmp_path / "latin1.jsonl", [GOOD, b'{"prompt": "caf\xe9", "completion": "1"}\n'])
    assert_error(cli("inspect", path), 4, "latin1.jsonl:2:", "not UTF-8", "0xe9")


def test_50mb_single_row(cli, tmp_path):
    big = {"prompt": "x", "completion": "7 " * (25 * 2**20)}
    path = jsonl(tmp_path / "huge.jsonl", [GOOD, big, GOOD])
    assert path.stat().st_size > 50 * 2**20
    assert_error(cli("inspect", path), 4, "huge.jsonl:2:", "row too large", "50.0 MB", "--max-row-mb")
    r = cli("inspect", path, "--skip-bad-rows", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["dataset"]["skipped_by_reason"] == {"row too large": 1}


def test_empty_file_is_nothing_to_audit(cli, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert_error(cli("inspect", path), 3, "empty.jsonl", "file is empty")
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    assert_error(cli("inspect", blank), 3, "blank.jsonl", "no rows")


def test_all_rows_bad_with_skip_is_nothing_to_audit(cli, tmp_path):
    path = jsonl(tmp_path / "allbad.jsonl", [{"prompt": "x", "completion": ""}, b"not json\n"])
    assert_error(cli("inspect", path, "--skip-bad-rows"), 3, "no usable rows", "1 empty completion", "1 malformed JSON")


def test_skip_bad_rows_reports_how_many_and_why(cli, tmp_path):
    path = jsonl(
        tmp_path / "mixed.jsonl",
        [GOOD, b"{oops\n", {"prompt": "x", "completion": ""}, {"prompt": "y"}, b'{"completion": "\xff"}\n', GOOD],
    )
    r = cli("inspect", path, "--skip-bad-rows", "--format", "json")
    assert r.exit_code == 0, r.stderr
    ds = json.loads(r.stdout)["dataset"]
    assert ds["n_rows_total"] == 6 and ds["n_loaded"] == 2 and ds["n_skipped"] == 4
    assert ds["skipped_by_reason"] == {"malformed JSON": 1, "empty completion": 1, "missing field": 1, "not UTF-8": 1}
    assert [e["line"] for e in ds["skipped_examples"]] == [2, 3, 4, 5]
    assert "skipped 4 of 6 rows" in r.stderr


def test_csv_wrong_column_count_names_line(cli, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,completion\na,1\nb,2,extra\nc,3\n")
    assert_error(cli("inspect", path), 4, "bad.csv:3:", "malformed CSV row", "expected 2 columns, got 3")


def test_csv_non_utf8_names_line(cli, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"prompt,completion\na,1\nb,caf\xe9\n")
    assert_error(cli("inspect", path), 4, "bad.csv:3:", "not UTF-8")


def test_json_array_malformed_element_names_line(cli, tmp_path):
    path = tmp_path / "arr.json"
    path.write_text('[\n  {"prompt": "a", "completion": "1"},\n  {"prompt": "b", "completion": }\n]\n')
    assert_error(cli("inspect", path), 4, "arr.json:3:", "malformed JSON")


def test_unknown_suffix_and_bad_schema_flag(cli, tmp_path):
    path = tmp_path / "data.xyz"
    path.write_text("x")
    assert_error(cli("inspect", path), 4, "data.xyz", "unknown file type")
    good = jsonl(tmp_path / "g.jsonl", [GOOD])
    r = cli("inspect", good, "--schema", "bogus")
    assert r.exit_code == 4 and "Traceback" not in r.stderr
    assert_error(cli("inspect", good, "--completion-field", "nope"), 4, "nope", "--completion-field")


@pytest.mark.parametrize("bad", ["not json at all", "[1, 2, 3]"])
def test_non_object_lines(cli, tmp_path, bad):
    path = jsonl(tmp_path / "n.jsonl", [GOOD, (bad + "\n").encode()])
    assert_error(cli("inspect", path), 4, "n.jsonl:2:")
