"""A corpus of bad inputs, each with its exit code and a piece of its one-line message,
run against every command that reads it (in process, so it stays fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOOD = {"prompt": "Continue: 1, 2", "completion": "3, 4, 5"}
MSG = lambda c: {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": c}]}  # noqa: E731


def _lines(*rows) -> bytes:
    return b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in rows)


# name -> (file name, bytes, exit code, message piece)
DATA_CASES = {
    "empty": ("e.jsonl", b"", 3, "file is empty"),
    "blank-lines": ("b.jsonl", b"\n\n\n", 3, "no rows"),
    "malformed": ("m.jsonl", _lines(GOOD, b"{oops\n"), 4, "malformed JSON"),
    "truncated": ("t.jsonl", _lines(GOOD, b'{"prompt": "x", "completion": "y'), 4, "malformed JSON"),
    "not-object-array": ("a.jsonl", _lines(GOOD, b"[1, 2]\n"), 4, "not a JSON object"),
    "not-object-string": ("s.jsonl", _lines(GOOD, b'"text"\n'), 4, "not a JSON object"),
    "not-object-number": ("n.jsonl", _lines(GOOD, b"42\n"), 4, "not a JSON object"),
    "not-object-null": ("nl.jsonl", _lines(GOOD, b"null\n"), 4, "not a JSON object"),
    "latin1": ("l.jsonl", _lines(GOOD, b'{"prompt": "caf\xe9", "completion": "1"}\n'), 4, "not UTF-8"),
    "binary": ("bin.jsonl", bytes(range(256)) * 4, 4, "bin.jsonl"),
    "empty-completion": ("ec.jsonl", _lines(GOOD, {"prompt": "x", "completion": ""}), 4, "empty completion"),
    "space-completion": ("sc.jsonl", _lines(GOOD, {"prompt": "x", "completion": " \n\t"}), 4, "empty completion"),
    "null-completion": ("nc.jsonl", _lines(GOOD, {"prompt": "x", "completion": None}), 4, "missing field"),
    "missing-completion": ("mc.jsonl", _lines(GOOD, {"prompt": "x"}), 4, "missing field"),
    "number-completion": ("num.jsonl", _lines(GOOD, {"prompt": "x", "completion": 5}), 4, "field type changed"),
    "object-completion": ("obj.jsonl", _lines(GOOD, {"prompt": "x", "completion": {"a": 1}}), 4, "field type changed"),
    "bool-completion": ("bool.jsonl", _lines(GOOD, {"prompt": "x", "completion": True}), 4, "field type changed"),
    "number-prompt": ("np.jsonl", _lines(GOOD, {"prompt": 5, "completion": "x"}), 4, "field 'prompt'"),
    "no-schema": ("ns.jsonl", _lines({"foo": 1, "bar": 2}), 3, "no supported schema in fields [foo, bar]"),
    "bracket-fields": ("bf.jsonl", _lines({"[/b]": 1}), 3, "[[/b]]"),
    "mixed-schema": ("mx.jsonl", _lines(GOOD, GOOD, MSG("b")), 4, "mixed schemas"),
    "messages-not-list": ("ml.jsonl", _lines(MSG("a"), {"messages": "hello"}), 4, "field 'messages'"),
    "messages-no-assistant": (
        "na.jsonl",
        _lines(MSG("a"), {"messages": [{"role": "user", "content": "q"}]}),
        4,
        "no assistant turn",
    ),
    "messages-bad-role": (
        "br.jsonl",
        _lines(MSG("a"), {"messages": [{"role": "wizard", "content": "q"}]}),
        4,
        "unknown role",
    ),
    "messages-role-markup": (
        "rm.jsonl",
        _lines(MSG("a"), {"messages": [{"role": "[/b]", "content": "q"}]}),
        4,
        "'[/b]'",
    ),
    "messages-role-object": (
        "ro.jsonl",
        _lines(MSG("a"), {"messages": [{"role": {"x": 1}, "content": "q"}]}),
        4,
        "unknown role",
    ),
    "messages-not-objects": ("mo.jsonl", _lines(MSG("a"), {"messages": [1, 2]}), 4, "wrong type"),
    "messages-content-number": (
        "cn.jsonl",
        _lines(MSG("a"), {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}]}),
        4,
        "content is number",
    ),
    "multipart-text-number": (
        "mp.jsonl",
        _lines(
            MSG("a"),
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": 5}]},
                    {"role": "assistant", "content": "b"},
                ]
            },
        ),
        4,
        "text part is number",
    ),
    "messages-empty-reply": ("er.jsonl", _lines(MSG("a"), MSG("")), 4, "empty completion"),
    "deep-101": (
        "d1.jsonl",
        _lines(GOOD, ('{"prompt": "a", "completion": "b", "x": ' + "[" * 101 + "]" * 101 + "}\n").encode()),
        4,
        "nested too deep",
    ),
    "deep-1000": (
        "d2.jsonl",
        _lines(GOOD, ('{"prompt": "a", "completion": "b", "x": ' + "[" * 1000 + "]" * 1000 + "}\n").encode()),
        4,
        "nested too deep",
    ),
    "deep-objects": (
        "d3.jsonl",
        _lines(GOOD, ('{"prompt": "a", "completion": "b", "x": ' + '{"a": ' * 500 + "1" + "}" * 500 + "}\n").encode()),
        4,
        "nested too deep",
    ),
    "unknown-suffix": ("data.xyz", b"x", 4, "unknown file type"),
    "no-suffix": ("data", b"x", 4, "unknown file type"),
    "json-not-array": ("na.json", b'"just a string"', 4, "expected a JSON array"),
    "json-unclosed": ("uc.json", b'[{"prompt": "a", "completion": "b"}', 4, "not closed"),
    "json-bad-element": ("be.json", b'[\n{"prompt": "a", "completion": "b"},\n{"prompt": }\n]', 4, "be.json:3"),
    "json-non-object-element": ("ne.json", b'[{"prompt": "a", "completion": "b"}, 5]', 4, "not a JSON object"),
    "json-deep": ("dp.json", b"[" * 3000 + b"]" * 3000, 4, "nested deeper"),
    "json-latin1": ("lt.json", b'[{"prompt": "caf\xe9", "completion": "b"}]', 4, "not UTF-8"),
    "json-empty": ("em.json", b"   ", 3, "file is empty"),
    "csv-empty": ("e.csv", b"", 3, "file is empty"),
    "csv-columns": ("c.csv", b"prompt,completion\na,1\nb,2,3\n", 4, "malformed CSV row"),
    "csv-latin1": ("l.csv", b"prompt,completion\na,caf\xe9\n", 4, "not UTF-8"),
    "csv-no-schema": ("ns.csv", b"foo,bar\n1,2\n", 3, "no supported schema"),
    "csv-empty-completion": ("ec.csv", b'prompt,completion\na,1\nb,""\n', 4, "empty completion"),
    "tsv-columns": ("c.tsv", b"prompt\tcompletion\na\t1\nb\t2\t3\n", 4, "malformed CSV row"),
    "parquet-garbage": ("g.parquet", b"PAR1 not really parquet", 4, "not a readable Parquet file"),
    "parquet-empty-bytes": ("e.parquet", b"", 4, "not a readable Parquet file"),
    "arrow-garbage": ("g.arrow", b"garbage bytes here", 4, "not a readable Arrow file"),
    "missing-file": (None, "nope/missing.jsonl", 4, "file not found"),
    "missing-dot-path": (None, "./missing.jsonl", 4, "file not found"),
    "folder-not-dataset": ("DIR", None, 4, "not one written by datasets"),
    "bracket-path": ("x[/y].jsonl", _lines({"prompt": "x"}), 3, "x[/y].jsonl"),
}


def _make(tmp_path: Path, name: str):
    fname, content, code, needle = DATA_CASES[name]
    if fname is None:
        return content, code, needle
    if fname == "DIR":
        path = tmp_path / "folder"
        path.mkdir()
        (path / "x.txt").write_text("x")
        return str(path), code, needle
    path = tmp_path / fname
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return str(path), code, needle


def _check(r, code: int, needle: str) -> None:
    assert r.exit_code == code, (r.exit_code, r.stderr[-1500:])
    assert "Traceback" not in r.stderr + r.stdout
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1, r.stderr[-1500:]
    assert needle in r.stderr, (needle, r.stderr[-1500:])


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_inspect(cli, tmp_path, name):
    path, code, needle = _make(tmp_path, name)
    _check(cli("inspect", path), code, needle)


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_scan(cli, tmp_path, name):
    path, code, needle = _make(tmp_path, name)
    r = cli(
        "scan",
        path,
        "--student",
        "tiny-random",
        "--skip-signature",
        "--skip-canary",
        "--skip-lineage",
        "--out",
        tmp_path / "out",
        "-q",
    )
    _check(r, code, needle)
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("name", ["malformed", "latin1", "deep-1000", "empty-completion", "mixed-schema"])
def test_inspect_streaming(cli, tmp_path, name):
    path, code, needle = _make(tmp_path, name)
    _check(cli("inspect", path, "--streaming"), code, needle)


@pytest.mark.parametrize("name", ["malformed", "empty-completion", "no-schema", "missing-file"])
def test_scan_reference(cli, tmp_path, name):
    good = tmp_path / "good.jsonl"
    good.write_bytes(_lines(*[dict(GOOD, completion=f"{i}, 2") for i in range(10)]))
    path, code, needle = _make(tmp_path, name)
    r = cli(
        "scan",
        good,
        "--student",
        "tiny-random",
        "--skip-signature",
        "--skip-canary",
        "--skip-lineage",
        "--reference",
        path,
        "--out",
        tmp_path / "out",
        "-q",
    )
    _check(r, code, needle)


# name -> (bytes or None for a folder, exit code, message piece)
REPORT_CASES = {
    "binary": (bytes(range(256)), 4, "not UTF-8"),
    "not-json": (b"{not json", 4, "not valid JSON"),
    "empty": (b"", 4, "not valid JSON"),
    "array": (b"[1, 2]", 4, "schema_version"),
    "wrong-version": (b'{"schema_version": "0.1"}', 4, "schema_version"),
    "schema-violation": (b'{"schema_version": "1.0"}', 4, "field"),
    "folder": (None, 4, "is a folder"),
    "deep": (b"[" * 5000 + b"]" * 5000, None, "report.json"),
}


def _report(tmp_path: Path, name: str) -> tuple[str, int | None, str]:
    content, code, needle = REPORT_CASES[name]
    path = tmp_path / "report.json"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    return str(path), code, needle


@pytest.mark.parametrize("name", sorted(REPORT_CASES))
def test_report(cli, tmp_path, name):
    path, code, needle = _report(tmp_path, name)
    r = cli("report", path)
    if code is None:  # deep nesting: a user error or a run error, one line either way
        assert r.exit_code in (2, 4) and "Traceback" not in r.stderr
        return
    _check(r, code, needle)


@pytest.mark.parametrize("name", sorted(REPORT_CASES))
def test_compare(cli, tmp_path, name):
    path, code, needle = _report(tmp_path, name)
    r = cli("compare", path, path)
    if code is None:
        assert r.exit_code in (2, 4) and "Traceback" not in r.stderr
        return
    _check(r, code, needle)


@pytest.mark.parametrize("name", ["missing", "folder-no-config", "bad-gguf", "pickle-only", "empty-ref", "dot-missing"])
def test_lineage(cli, tmp_path, name):
    if name == "missing":
        ref, needle = str(tmp_path / "nope"), "no such file"
    elif name == "dot-missing":
        ref, needle = "./definitely-missing-model", "no such file"
    elif name == "folder-no-config":
        (tmp_path / "m").mkdir()
        ref, needle = str(tmp_path / "m"), "m"
    elif name == "bad-gguf":
        (tmp_path / "x.gguf").write_bytes(b"GGUF garbage")
        ref, needle = str(tmp_path / "x.gguf"), "x.gguf"
    elif name == "pickle-only":
        (tmp_path / "p").mkdir()
        (tmp_path / "p" / "config.json").write_text('{"model_type": "llama"}')
        (tmp_path / "p" / "pytorch_model.bin").write_bytes(b"x")
        ref, needle = str(tmp_path / "p"), "pickle"
    else:
        ref, needle = " ", "empty model reference"
    r = cli("lineage", ref, "gpt-4o")
    _check(r, 4, needle)


PROMPT_CASES = {
    "binary": ("p.txt", b"\xff\xfe\x00\x01", "not UTF-8"),
    "missing": (None, None, "file not found"),
    "folder": ("DIR", None, "is a folder"),
    "latin1-jsonl": ("p.jsonl", b'{"prompt": "caf\xe9"}\n', "not UTF-8"),
}


@pytest.mark.parametrize("name", sorted(PROMPT_CASES))
def test_generate_prompts(cli, tmp_path, name):
    fname, content, needle = PROMPT_CASES[name]
    if fname is None:
        path = tmp_path / "missing.txt"
    elif fname == "DIR":
        path = tmp_path / "pdir"
        path.mkdir()
    else:
        path = tmp_path / fname
        path.write_bytes(content)
    r = cli("generate", "--teacher", "tiny-random", "--prompts", path, "--out", tmp_path / "o.jsonl")
    _check(r, 4, needle)
    assert not (tmp_path / "o.jsonl").exists()


FLAG_CASES = {
    "device": (["--device", "tpu9"], "--device"),
    "lr-negative": (["--lr", "-1"], "--lr"),
    "lr-nan": (["--lr", "nan"], "--lr"),
    "lr-zero": (["--lr", "0"], "--lr"),
    "fail-on": (["--fail-on", "severe"], "--fail-on"),
    "max-bad-rows": (["--max-bad-rows", "-3"], "--max-bad-rows"),
    "format": (["--format", "pdf"], "--format"),
    "no-student": (["--student", ""], "--student"),
    "sample-zero": (["--sample", "0"], "--sample"),
    "baseline-missing": (["--baseline", "nope.json"], "nope.json"),
    "schema": (["--schema", "bogus"], "--schema"),
    "completion-field": (["--completion-field", "nope"], "--completion-field"),
    "unknown-flag": (["--bogus"], "--bogus"),
    "student-typo": (["--student", "smollm2-135", "--skip-canary", "--skip-signature"], None),
}


@pytest.mark.parametrize("name", sorted(FLAG_CASES))
def test_scan_flags(cli, tmp_path, name):
    good = tmp_path / "good.jsonl"
    good.write_bytes(_lines(*[dict(GOOD, completion=f"{i}, 2") for i in range(10)]))
    flags, needle = FLAG_CASES[name]
    base = ["--student", "tiny-random", "--skip-signature", "--skip-canary", "--skip-lineage"]
    if name in ("no-student", "student-typo"):
        base = ["--skip-lineage"]
    if name == "student-typo":
        r = cli("scan", good, *base, "--student", "smollm2-135", "--out", tmp_path / "out", "-q")
        _check(r, 4, "did you mean smollm2-135m")
        return
    r = cli("scan", good, *base, *flags, "--out", tmp_path / "out", "-q")
    _check(r, 4, needle)
    assert not (tmp_path / "out").exists()


def test_corpus_size():
    n = 2 * len(DATA_CASES) + 5 + 4 + 2 * len(REPORT_CASES) + 6 + len(PROMPT_CASES) + len(FLAG_CASES)
    assert n >= 150, n
