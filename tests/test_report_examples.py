"""The committed example reports are what the current renderer writes from their report.json."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distill_audit.report.build import load_report
from distill_audit.report.render import render

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples" / "reports").glob("*/report.json"))
SVG = re.compile(r"<svg.*?</svg>", re.S)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_renderings_match_the_renderer(path):
    report = load_report(path)
    hint = f"re-render: distill-audit report {path} --format FMT --out FILE"
    assert render(report, "md") == (path.parent / "report.md").read_text(encoding="utf-8"), hint
    assert render(report, "junit") == (path.parent / "junit.xml").read_text(encoding="utf-8"), hint
    html = render(report, "html")
    committed = (path.parent / "report.html").read_text(encoding="utf-8")
    # Plot markup varies with the matplotlib release; the page around it must not.
    assert SVG.sub("<svg/>", html) == SVG.sub("<svg/>", committed), hint
    assert html.count("<svg") == committed.count("<svg")
