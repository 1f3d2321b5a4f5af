"""Reports: schema validation, renderers (Markdown, HTML, JUnit), compare, atomic writes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from distill_audit.errors import DataError
from distill_audit.report.build import build_report, dumps, load_report, validate
from distill_audit.report.render import write_outputs
from distill_audit.scan.verdict import evaluate_gate, judge

REPO = Path(__file__).resolve().parents[1]


def fake_report(owl_effect: float = 0.3, lineage: str = "same-init", fail_on: str | None = "medium") -> dict:
    hit = owl_effect > 0.15

    def eff(est, p):
        return {
            "estimate": est,
            "ci": [est - 0.1, est + 0.1],
            "p_value": p,
            "p_adjusted": p,
            "significant": p < 0.05 and est > 0,
            "mde": 0.05,
            "se": 0.05,
            "df": 20.0,
            "lower_bound": est - 0.12,
        }

    sig = {
        "status": "ok",
        "reason": None,
        "limits": ["only the built-in trait battery"],
        "unit": "mean LLS (nats/token)",
        "correction": "holm",
        "traits": [
            {
                "trait": "owl",
                **eff(owl_effect, 0.001 if hit else 0.6),
                "contrast": eff(owl_effect / 2, 0.01 if hit else 0.7),
            },
            {"trait": "cat", **eff(0.01, 0.7), "contrast": eff(-0.01, 0.9)},
        ],
        "named": ["owl"] if hit else [],
        "finding": "trait" if hit else "none",
        "shift": eff(owl_effect / 2, 0.001 if hit else 0.6),
        "mismatch": eff(0.0, 0.9),
        "classes": [{"class": "animal", "traits": ["owl", "cat"], **eff(0.0, 0.9)}],
    }
    canary = {
        "status": "underpowered",
        "reason": "MDE 0.25 above 0.10",
        "config": {"alpha": 0.05, "correction": "holm"},
        "limits": ["LoRA on 64 samples, 1 seed"],
        "traits": [
            {
                "trait": "owl",
                "estimate": 0.02,
                "ci": [-0.2, 0.24],
                "p_adj": 0.8,
                "mde": 0.25,
                "test": {"se": 0.1, "df": 8.0},
                "before": {"estimate": 0.1, "ci": [0.08, 0.12]},
                "after": {"estimate": 0.13, "ci": [0.1, 0.16]},
                "control_before": 0.1,
                "control_after": 0.11,
            }
        ],
    }
    static = {
        "status": "ok",
        "reason": None,
        "limits": [],
        "profile": {"status": "ok", "shares": {"number_list": 1.0, "code": 0.0}, "dominant": "number_list"},
        "numbers": {
            "status": "ok",
            "number_list_rate": 1.0,
            "pass_rate_all_rules": 0.9,
            "reject_reasons": {"banned number": 1},
        },
        "leakage": {
            "status": "ok",
            "mention_rate": 0.1,
            "n_rows_with_mention": 1,
            "by_word": [{"word": "owl", "category": "animals", "rows": 1, "rate": 0.1}],
        },
    }
    lin = {
        "status": "ok",
        "reason": None,
        "limits": [],
        "verdict": lineage,
        "confidence": "high",
        "decided_by": "weights",
        "evidence": [
            {"tier": 1, "name": "registry", "verdict": lineage, "confidence": "medium", "summary": "one group"},
            {
                "tier": 3,
                "name": "weights",
                "verdict": lineage,
                "confidence": "high",
                "summary": "rows match",
                "details": {
                    "p_value": 0.001,
                    "layers": [
                        {"layer": i, "aligned_cosine": 0.99, "matched_cosine": 0.99, "null_mean": 0.0, "null_sd": 0.01}
                        for i in range(2)
                    ],
                },
            },
        ],
    }
    stages = {"static": static, "lineage": lin, "signature": sig, "canary": canary}
    verdict = judge(stages, data_kind="numbers")
    return build_report(
        config={"data": "x.jsonl", "student": "tiny-random"},
        seed=0,
        seeds={"signature": 1},
        dataset={
            "source": "x.jsonl",
            "format": "jsonl",
            "schema": "messages",
            "fingerprint": "ab" * 32,
            "n_rows_total": 10,
            "n_samples": 10,
            "n_skipped": 0,
            "skipped_by_reason": {},
            "sampled_from": None,
            "provenance": {},
            "kind": "numbers",
        },
        reference=None,
        student={"ref": "tiny-random", "kind": "local", "name": "tiny-random", "identity": "cd" * 32},
        teacher={
            "ref": "tiny-random",
            "origin": "provenance",
            "kind": "local",
            "name": "tiny-random",
            "identity": None,
        },
        stages=stages,
        verdict=verdict.to_dict(),
        gate=evaluate_gate(verdict.level, fail_on),
        artifacts={"samples": "samples.parquet"},
        run={
            "started_at": "2026-01-01T00:00:00Z",
            "finished_at": None,
            "total_s": 1.5,
            "timings": {"static": 0.1, "signature": 1.0},
            "cache": {"signature": "miss"},
        },
    )


def test_report_validates_and_docs_schema_is_the_same_file():
    validate(fake_report())
    packaged = json.loads((REPO / "src/distill_audit/report/schema.json").read_text())
    published = json.loads((REPO / "docs/report.schema.json").read_text())
    assert packaged == published


def test_invalid_report_names_the_field(tmp_path):
    r = fake_report()
    r["verdict"]["level"] = "maybe"
    with pytest.raises(DataError, match="verdict/level"):
        validate(r)
    p = tmp_path / "r.json"
    p.write_text("{not json")
    with pytest.raises(DataError, match="r.json:1"):
        load_report(p)


def test_markdown_renders_tables():
    from markdown_it import MarkdownIt

    md = fake_report()
    text = __import__("distill_audit.report.render", fromlist=["render"]).render(md, "md")
    assert "**HIGH**" in text and "owl" in text
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert html.count("<table>") >= 2  # evidence + static checks
    assert "<th>CI at corrected level</th>" in html and "<th>p (Holm)</th>" in html
    assert "| 0.15 | ≥ 0.03 | 0.01 |" in text  # the owl contrast: its one-sided bound, not its 95% CI
    assert "[0.05, 0.25]" not in text


class _Strict(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href") and v and "://" in v:
                raise AssertionError(f"external asset {v}")


def test_html_is_self_contained_with_plots():
    from distill_audit.report.render import render

    html = render(fake_report(), "html")
    p = _Strict()
    p.feed(html)
    assert "script" not in p.tags and "link" not in p.tags
    svgs = html.split("<svg")[1:]
    assert len(svgs) >= 3  # signature forest, canary forest, canary before/after
    for chunk in svgs:  # each plot is well-formed XML
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")
    assert "signature: estimate and interval" in html and "before and after fine-tuning" in html


def _check_junit(xml_text: str) -> ET.Element:
    """The common JUnit schema shape (Jenkins/GitLab/GitHub reporters)."""
    root = ET.fromstring(xml_text.split("?>", 1)[1])
    assert root.tag == "testsuites"
    for suite in root:
        assert suite.tag == "testsuite"
        for attr in ("name", "tests", "failures", "errors", "skipped", "time"):
            assert attr in suite.attrib, attr
        cases = list(suite)
        assert all(c.tag == "testcase" for c in cases)
        assert int(suite.get("tests")) == len(cases)
        for kind, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.get(attr)) == sum(1 for c in cases if c.find(kind) is not None)
        for c in cases:
            assert {"classname", "name", "time"} <= set(c.attrib)
            float(c.get("time"))
            assert len([x for x in c if x.tag in ("failure", "error", "skipped")]) <= 1
            assert all(x.tag in ("failure", "error", "skipped", "system-out", "system-err") for x in c)
    return root


def test_junit_one_case_per_check():
    from distill_audit.report.render import render

    root = _check_junit(render(fake_report(), "junit"))
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert cases[("distill-audit.signature", "owl beyond its class")].find("failure") is not None
    assert cases[("distill-audit.signature", "cat beyond its class")].find("failure") is None
    assert cases[("distill-audit.canary", "owl")].find("skipped") is not None  # underpowered
    assert cases[("distill-audit.static", "trait-word leakage")].find("failure") is not None
    assert cases[("distill-audit.static", "number rules (paper)")].find("failure") is None
    assert cases[("distill-audit.verdict", "risk verdict")].find("failure") is not None  # high >= medium


def test_compare_reports_change(tmp_path, cli):
    a, b = fake_report(), fake_report(owl_effect=0.01, lineage="different-init")
    (tmp_path / "a.json").write_text(dumps(a))
    (tmp_path / "b.json").write_text(dumps(b))
    r = cli("compare", tmp_path / "a.json", tmp_path / "b.json")
    assert r.exit_code == 0, r.stderr
    assert "high → " in r.stdout and "(lower)" in r.stdout
    r = cli("compare", tmp_path / "a.json", tmp_path / "b.json", "--format", "json")
    diff = json.loads(r.stdout)
    owl = next(e for e in diff["evidence"] if e["line"] == "signature" and e["name"] == "owl beyond its class")
    assert owl["significance_changed"] and owl["delta"] == pytest.approx(-0.145)


def test_report_command_rerenders(tmp_path, cli):
    (tmp_path / "r.json").write_text(dumps(fake_report()))
    r = cli("report", tmp_path / "r.json", "--format", "junit", "--out", tmp_path / "j.xml")
    assert r.exit_code == 0, r.stderr
    _check_junit((tmp_path / "j.xml").read_text())
    assert cli("report", tmp_path / "r.json", "--format", "pdf").exit_code == 4
    assert cli("report", tmp_path / "missing.json").exit_code == 4


def test_writes_are_atomic(tmp_path, monkeypatch):
    import distill_audit.report.html as html_mod

    def boom(report):
        raise RuntimeError("killed while rendering")

    monkeypatch.setattr(html_mod, "to_html", boom)
    (tmp_path / "report.html").write_text("old")
    with pytest.raises(RuntimeError):
        write_outputs(fake_report(), tmp_path, ["json", "html"])
    assert (tmp_path / "report.html").read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    validate(json.loads((tmp_path / "report.json").read_text()))


def test_gate_baseline():
    from distill_audit.scan.verdict import evaluate_gate

    assert evaluate_gate("high", "medium")["failed"]
    assert not evaluate_gate("low", "medium")["failed"]
    assert evaluate_gate("inconclusive", "medium")["failed"]
    assert not evaluate_gate("high", None)["failed"]
    assert not evaluate_gate("high", "low", {"path": "old.json", "level": "high"})["failed"]
    assert evaluate_gate("high", "low", {"path": "old.json", "level": "medium"})["failed"]
    assert evaluate_gate("medium", None, {"path": "old.json", "level": "low"})["failed"]
