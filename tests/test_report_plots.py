"""The report's plots, deciding intervals, top-rows table and per-row section."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import stats

from distill_audit.report import plots
from distill_audit.report.build import load_report
from distill_audit.report.formatting import deciding_interval
from distill_audit.report.render import render, write_run_outputs
from distill_audit.report.rows import clip, rows_section
from test_report import fake_report


def _well_formed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_forest_is_deterministic_inline_svg_with_labels():
    rows = [
        plots.Row("owl beyond its class", 0.02, 0.004, None, 0.01, True),
        plots.Row("cat", -0.01, -0.03, 0.01, 0.02),
    ]
    a, b = plots.forest(rows, "signature", "nats"), plots.forest(rows, "signature", "nats")
    assert a == b  # fixed hash salt, no date: the same report renders byte for byte
    assert a.startswith("<svg") and "<?xml" not in a and "<script" not in a
    assert "owl beyond its class" in a and "cat" in a  # text kept as text
    assert "dc:date" not in a
    _well_formed(a)
    assert plots.forest([plots.Row("x", None)], "t", "u") == ""


def test_plots_escape_labels_from_data():
    svg = plots.forest([plots.Row("<b>&owl</b>", 0.1, 0.0, 0.2)], 'a "title"', "u")
    root = _well_formed(svg)  # parses: the label is escaped, not markup
    assert "<b>" not in svg and root.get("aria-label") == 'a "title"'


def test_distribution_and_before_after_draw_every_series():
    rng = np.random.default_rng(0)
    svg = plots.distribution(rng.normal(0.02, 0.01, 50), rng.normal(0, 0.01, 50), "scores", "score")
    assert "data (n=50)" in svg and "reference (n=50)" in svg
    assert "reference (n=" not in plots.distribution([0.1, 0.2], None, "scores", "score")
    arms = [plots.Arms("owl", 0.1, 0.2, 0.11, True), plots.Arms("cat", 0.3, None, 0.31)]
    svg = plots.before_after(arms, "canary")
    for name in ("before", "after (trained on the data)", "after (control arm)", "owl", "cat"):
        assert name in svg
    _well_formed(svg)
    with_ci = [plots.Arms("owl", 0.1, 0.2, 0.11, True, {"before": (0.08, 0.12)}), arms[1]]
    assert plots.before_after(with_ci, "canary").count("<path") > svg.count("<path")  # the interval is drawn


@pytest.mark.parametrize("m", [1, 4, 20])
def test_canary_interval_excludes_zero_exactly_when_bonferroni_p_does(m):
    """The derived two-sided interval at alpha / m agrees with the test: 0 is outside it
    exactly when m * p < alpha, over simulated estimates at the canary's sizes."""
    rng = np.random.default_rng(m)
    report = fake_report()
    stage = report["stages"]["canary"]
    base = stage["traits"][0]
    stage["traits"] = [dict(base, trait=f"t{i}") for i in range(m)]
    agree = 0
    for _ in range(200):
        se, df = float(rng.uniform(0.01, 0.1)), float(rng.uniform(2, 30))
        est = float(rng.normal(0, 3 * se))
        t = dict(stage["traits"][0], estimate=est, test={"se": se, "df": df})
        stage["traits"][0] = t
        e = {"line": "canary", "estimate": est, "ci": t["ci"], "mde": t["mde"]}
        lo, hi, kind = deciding_interval(report, e)
        assert kind == "two-sided"
        p = 2 * stats.t.sf(abs(est) / se, df)
        agree += (lo > 0 or hi < 0) == (min(1.0, m * p) < 0.05)
    assert agree == 200


def test_signature_interval_is_the_stage_lower_bound():
    report = fake_report()
    owl = report["stages"]["signature"]["traits"][0]["contrast"]
    e = next(e for e in report["verdict"]["evidence"] if e["name"].startswith("owl beyond"))
    assert deciding_interval(report, e) == (owl["lower_bound"], None, "one-sided")


def _sample_rows(n: int = 30) -> list[dict]:
    return [
        {
            "index": i,
            "line": i + 1,
            "prompt": f"prompt {i} <b>",
            "completion": ("word " * 200) if i == 7 else f"answer {i}",
            "signature_shift": float(i % 10) / 10 if i != 3 else 5.0,
        }
        for i in range(n)
    ]


def test_rows_section_ranks_by_the_signature_score_and_clips_text():
    report = fake_report()
    report["stages"]["signature"]["top_rows_by"] = "shift"
    sec = rows_section(report, _sample_rows())
    assert sec["score"] == "signature_shift" and sec["n_scored"] == 30 and len(sec["data_scores"]) == 30
    assert sec["top"][0]["index"] == 3 and sec["top"][0]["line"] == 4
    scores = [r["score"] for r in sec["top"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10
    long = next(r for r in sec["top"] if r["index"] == 7)
    assert long["completion"].endswith("…") and len(long["completion"]) <= 305
    assert clip("short", 10) == "short"


def test_written_report_carries_rows_and_html_escapes_them(tmp_path):
    report = fake_report()
    report["stages"]["signature"]["top_rows_by"] = "shift"
    report["stages"]["signature"]["reference_row_scores"] = {"by": "shift", "scores": [0.0, 0.1, -0.1]}
    out = tmp_path / "out"
    written = write_run_outputs(report, out, ["json", "md", "html", "parquet"], _sample_rows())
    saved = json.loads(written["json"].read_text())
    assert saved["rows"]["top"][0]["prompt"] == "prompt 3 <b>"
    html = written["html"].read_text()
    assert "prompt 3 &lt;b&gt;" in html and "prompt 3 <b>" not in html  # autoescaped
    assert "data (n=30)" in html and "reference (n=3)" in html
    assert "Highest-scoring rows by signature_shift" in written["md"].read_text()
    import pyarrow.parquet as pq

    cols = pq.read_table(written["parquet"]).column_names
    assert {"index", "line", "prompt", "completion", "signature_shift"} <= set(cols)


def test_older_report_reads_its_rows_from_the_samples_table(tmp_path):
    report = fake_report()
    report["stages"]["signature"]["top_rows_by"] = "shift"
    out = tmp_path / "out"
    written = write_run_outputs(report, out, ["json", "parquet"], _sample_rows())
    old = json.loads(written["json"].read_text())
    del old["rows"]  # as a report written before the per-row section
    written["json"].write_text(json.dumps(old))
    loaded = load_report(written["json"])
    assert loaded["rows"]["top"][0]["index"] == 3
    (out / "samples.parquet").unlink()
    assert load_report(written["json"])["rows"] is None
    assert "Highest-scoring rows" not in render(load_report(written["json"]), "html")


def test_html_has_no_unescaped_template_gaps():
    html = render(fake_report(), "html")
    assert not re.search(r"\{\{|\{%|Undefined", html)
