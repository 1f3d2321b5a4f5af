"""`calibrate` end to end on the tiny model at the tiny budget: every step runs, the record is stored
where `scan` finds it for that student, a rerun resumes from the finished steps, and the scan's
canary names the calibration it used. (The tiny budget tests mechanics: its controls need not pass.)"""

from __future__ import annotations

import json

import pytest

from distill_audit.scan.calibration import BUDGETS, calibration_root, find, judge, record_path, student_id


def test_calibration_root_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("DISTILL_AUDIT_CALIBRATION", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert calibration_root() == tmp_path / "distill-audit" / "calibration"


def test_student_id_is_file_safe_and_depends_on_the_weights():
    a = student_id({"id": "org/model name", "sha256": "1"})
    assert "/" not in a and " " not in a and a != student_id({"id": "org/model name", "sha256": "2"})


def test_judge_needs_the_positive_detected_and_the_negative_quiet():
    hit = {"estimate": 0.002, "mde": 0.001, "significant": True}
    miss = {"estimate": 0.0, "mde": 0.001, "significant": False}
    assert judge({"weight_cosine": hit}, {"weight_cosine": miss})[0] == ["weight_cosine"]
    assert judge({"weight_cosine": hit}, {"weight_cosine": hit})[0] == []
    assert judge({"weight_cosine": miss}, {"weight_cosine": miss})[0] == []


@pytest.mark.parametrize("budget", ["tiny"])
def test_calibrate_end_to_end_on_the_tiny_model(cli, tmp_path, budget):
    from distill_audit.models.resolve import resolve_model

    r = cli("calibrate", "--student", "tiny-random", "--budget", budget, "--threads", "1")
    assert r.exit_code == 0, r.stderr
    identity = resolve_model("tiny-random").identity()
    path = record_path(identity)
    stored = json.loads(path.read_text())
    assert stored["student"] == "tiny-random" and stored["budget"] == budget
    assert stored["budget_settings"] == BUDGETS[budget] and stored["tool_version"]
    assert isinstance(stored["passed"], bool) and "measures" in stored["positive"]
    assert {"probe probability", "weight_cosine", "weight_cosine_specific"} <= set(stored["positive"]["measures"])
    assert stored["passed"] == bool(stored["detected_by"])
    for name in stored["detected_by"]:  # a measure passes only when it stayed quiet on the negative
        assert not stored["negative"]["measures"][name]["significant"]
    cal = find(identity)
    assert cal is not None and cal.path == str(path)
    # A rerun resumes: every step's output exists, so nothing is recomputed.
    r = cli("calibrate", "--student", "tiny-random", "--budget", budget, "--threads", "1")
    assert r.exit_code == 0 and r.stderr.count("done before") + r.stdout.count("done before") >= 7
    # The scan finds the calibration for this student and its canary names it.
    data = tmp_path.parent / "calibration"  # any number data: reuse the calibration's own
    work = next(path.parent.glob(f"{student_id(identity)}/{budget}-seed0"))
    out = tmp_path / "scan"
    r = cli(
        "scan",
        work / "taught.jsonl",
        "--student",
        "tiny-random",
        "--control",
        work / "control.jsonl",
        "--skip-signature",
        "--suites",
        "animals",
        "--canary-rows",
        "8",
        "--max-steps",
        "1",
        "--seeds",
        "2",
        "--threads",
        "1",
        "--out",
        out,
        "--fail-on",
        "never",
    )
    assert r.exit_code == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    used = report["stages"]["canary"]["calibration"]
    assert used["path"] == str(path) and used["passed"] == stored["passed"]
    assert data is not None
