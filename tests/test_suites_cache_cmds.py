"""`suites` lists what load_suites reads; `cache list|clear` sees and removes each area."""

from __future__ import annotations

import json
from pathlib import Path

TINY_SUITE = Path(__file__).parent / "data" / "tiny_suite.yaml"


def test_suites_json_matches_the_suite_files(cli):
    from distill_audit.suites import builtin_suite_names, load_suites

    r = cli("suites", "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [s["name"] for s in doc["suites"]] == builtin_suite_names()
    by_name = {s["name"]: s for s in doc["suites"]}
    for suite in load_suites():
        row = by_name[suite.name]
        assert row["kind"] == suite.kind
        if suite.kind == "preference":
            assert row["traits"] == list(suite.candidates) and row["paraphrases"] == len(suite.questions)
        else:
            assert row["traits"] == [suite.name] and row["paraphrases"] == len(suite.items)
    assert {n for n, s in by_name.items() if s["default"]} == {"animals", "misalignment"}
    assert "gardening" in doc["controls"]["benign"]


def test_suites_table_and_user_files(cli, tmp_path):
    r = cli("suites", str(TINY_SUITE))
    assert r.exit_code == 0, r.stderr
    assert "tiny" in r.stdout.lower() or "preference" in r.stdout
    assert cli("suites", "nope").exit_code == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: preference\n")
    broken = cli("suites", str(bad))
    assert broken.exit_code == 4 and "bad.yaml" in broken.stderr and "Traceback" not in broken.stderr


def _fill(root: Path) -> None:
    (root / "distill-audit" / "models" / "m1").mkdir(parents=True)
    (root / "distill-audit" / "models" / "m1" / "w.safetensors").write_bytes(b"x" * 1000)
    (root / "distill-audit" / "logs").mkdir()
    (root / "distill-audit" / "logs" / "crash.log").write_text("boom")


def test_cache_list_and_clear_honour_the_variables(cli, tmp_path, monkeypatch):
    xdg, stages = tmp_path / "xdg", tmp_path / "elsewhere" / "stages"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv("DISTILL_AUDIT_STAGE_CACHE", str(stages))
    monkeypatch.delenv("DISTILL_AUDIT_CALIBRATION", raising=False)  # tests keep theirs elsewhere; here XDG decides
    _fill(xdg)
    stages.mkdir(parents=True)
    (stages / "k.json").write_text("{}")
    r = cli("cache", "list", "--format", "json")
    assert r.exit_code == 0, r.stderr
    areas = {a["area"]: a for a in json.loads(r.stdout)["areas"]}
    assert areas["models"]["bytes"] == 1000 and areas["models"]["entries"] == [{"name": "m1", "bytes": 1000}]
    assert areas["stages"]["path"] == str(stages) and areas["stages"]["files"] == 1
    assert areas["machine"]["path"] == str(stages.parent / "machine")
    assert areas["logs"]["files"] == 1 and not areas["calibration"]["exists"]
    assert "m1" in cli("cache", "list").stdout

    refused = cli("cache", "clear", "--what", "logs,stages")
    assert refused.exit_code == 4 and "--yes" in refused.stderr
    assert (xdg / "distill-audit" / "logs" / "crash.log").exists()  # nothing removed without --yes
    assert cli("cache", "clear", "--what", "bogus", "--yes").exit_code == 4

    done = cli("cache", "clear", "--what", "logs,stages", "--yes")
    assert done.exit_code == 0, done.stderr
    assert not (xdg / "distill-audit" / "logs").exists() and not stages.exists()
    assert (xdg / "distill-audit" / "models" / "m1").exists()  # only what was chosen
    assert cli("cache", "clear", "--yes").exit_code == 0
    assert not (xdg / "distill-audit" / "models").exists()
