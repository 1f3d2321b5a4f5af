"""A new line of evidence is one module plus its registration: a fake stage goes through every part of the scan."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pyarrow.parquet as pq
import pytest

from distill_audit.scan.stage import (
    Assessment,
    Stage,
    StagePlan,
    StageResult,
    StageRun,
    register,
    registered,
    registered_stage,
)
from distill_audit.scan.verdict import EvidenceLine, Finding


@pytest.fixture
def numbers_data(tmp_path):
    path = tmp_path / "nums.jsonl"
    rows = [
        {"prompt": f"Continue: {i}, {i + 1}, {i + 2}.", "completion": ", ".join(str(i + k) for k in range(3, 9))}
        for i in range(30)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


FAST = ("--skip-signature", "--skip-canary", "--skip-lineage")


class FakeStage(Stage):
    """Scores every row by its completion's length and calls the data medium risk."""

    name = "fake"
    title = "fake line"
    runs = 0

    def cache_key(self, ctx):
        return {"models": {}, "data": ctx.data_key, "config": {"version": 1}}

    def run(self, ctx) -> StageRun:
        FakeStage.runs += 1
        rows = [{"index": s.index, "score": len(s.completion)} for s in ctx.ds.samples]
        return StageRun(StageResult("ok", None, ["a fake line sees only lengths"], {"score": 0.7}), rows=rows)

    def plan(self, ctx, speed) -> StagePlan:
        return StagePlan(self.name, True, "fake scoring of every row", tokens=1, seconds=0.0)

    def assess(self, result: StageResult, facts) -> Assessment:
        line = EvidenceLine(self.name, "fake score", result.status, estimate=result.get("score"), significant=True)
        return Assessment(lines=[line], findings=[Finding("fake-risk", "medium", "the fake line scored 0.7")])


def test_registry_order_and_needs():
    names = [s.name for s in registered()]
    assert names == ["lineage", "reference", "static", "signature", "canary"]

    class Needy(Stage):
        name = "needy"
        needs = ("nowhere",)

    with pytest.raises(ValueError, match="needs nowhere"):
        register(Needy())
    with pytest.raises(ValueError, match="twice"):
        register(registered()[0])


def test_a_fake_stage_flows_through_plan_cache_verdict_and_every_format(cli, numbers_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_AUDIT_STAGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    args = ("scan", numbers_data, "--student", "tiny-random", "--out", out, "--quiet", *FAST)
    with registered_stage(FakeStage()):
        plan = cli(*args, "--dry-run")
        assert plan.exit_code == 0, plan.stderr
        assert "fake scoring of every row" in plan.stdout

        FakeStage.runs = 0
        r = cli(*args)
        assert r.exit_code in (0, 1), r.stderr
        report = json.loads((out / "report.json").read_text())
        assert report["stages"]["fake"] == {
            "status": "ok",
            "reason": None,
            "limits": ["a fake line sees only lengths"],
            "score": 0.7,
        }
        assert report["verdict"]["level"] == "medium"
        assert {"rule": "fake-risk", "level": "medium", "why": "the fake line scored 0.7"} in report["verdict"]["rules"]
        assert any(e["line"] == "fake" and e["name"] == "fake score" for e in report["verdict"]["evidence"])
        assert report["run"]["cache"]["fake"] == "miss" and FakeStage.runs == 1
        assert "fake score" in (out / "report.md").read_text()
        assert "fake score" in (out / "report.html").read_text()
        cases = [
            c
            for c in ET.parse(out / "junit.xml").getroot().iter("testcase")
            if c.get("classname") == "distill-audit.fake"
        ]
        assert cases and cases[0].find("failure") is not None
        table = pq.read_table(out / "samples.parquet").to_pydict()
        assert "fake_score" in table and len(table["fake_score"]) == len(table["index"])

        r2 = cli(*args)  # the re-run reuses the cached stage
        assert r2.exit_code in (0, 1)
        assert json.loads((out / "report.json").read_text())["run"]["cache"]["fake"] == "hit" and FakeStage.runs == 1
    assert "fake" not in [s.name for s in registered()]


def test_a_new_report_format_is_one_registration(cli, numbers_data, tmp_path, monkeypatch):
    from distill_audit.report.formats import register_format, unregister_format

    monkeypatch.setenv("DISTILL_AUDIT_STAGE_CACHE", str(tmp_path / "cache"))

    def to_text(report):
        return f"level: {report['verdict']['level']}\n"

    register_format("txt", "report.txt", to_text)
    try:
        out = tmp_path / "out"
        r = cli(
            "scan", numbers_data, "--student", "tiny-random", "--out", out, "--quiet", "--format", "json,txt", *FAST
        )
        assert r.exit_code in (0, 1), r.stderr
        level = json.loads((out / "report.json").read_text())["verdict"]["level"]
        assert (out / "report.txt").read_text() == f"level: {level}\n"
        again = cli("report", out / "report.json", "--format", "txt")
        assert again.exit_code == 0 and again.stdout == f"level: {level}\n"
    finally:
        unregister_format("txt")
    assert cli("report", out / "report.json", "--format", "txt").exit_code == 4
