"""JUnit XML for CI dashboards: one test case per check.

A significant trait is a failure, a line that could not run is an error (stage
failed) or skipped (not run, or too little power: not evidence of safety), and the
verdict itself is a test case that fails when the gate fails.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from distill_audit.report.formatting import deciding_interval, interval_text, num, p_label, static_rows

FAILING_STATIC = {"fail", "failed", "error"}


def _case(suite: ET.Element, classname: str, name: str, time: float | None = None) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{time or 0:.3f}")


def to_junit(report: dict[str, Any]) -> str:
    v = report["verdict"]
    timings = report["run"].get("timings") or {}
    root = ET.Element("testsuites", name="distill-audit")
    suite = ET.SubElement(root, "testsuite", name=f"distill-audit scan {report['dataset']['source']}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def outcome(case: ET.Element, kind: str | None, message: str, text: str = "") -> None:
        counts["tests"] += 1
        if kind:
            el = ET.SubElement(case, kind, message=message)
            if kind != "skipped":
                el.set("type", kind)
            if text:
                el.text = text
            counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[kind]] += 1
        elif message:
            ET.SubElement(case, "system-out").text = message

    gate = report["gate"]
    case = _case(suite, "distill-audit.verdict", "risk verdict", report["run"].get("total_s"))
    outcome(case, "failure" if gate["failed"] else None, f"{v['level']}: {gate['reason']}", v["explanation"])

    p_head = p_label(report)
    for e in v["evidence"]:
        case = _case(suite, f"distill-audit.{e['line']}", e["name"], timings.get(e["line"]))
        detail = (
            f"estimate {num(e['estimate'])} CI at corrected level {interval_text(*deciding_interval(report, e))} "
            f"{p_head} {num(e['p'])} MDE {num(e['mde'])}"
        )
        if e["status"] == "failed":
            outcome(case, "error", e["untested"] or "stage failed")
        elif e["status"] == "skipped":
            outcome(case, "skipped", e["untested"] or "not run")
        elif e["significant"]:
            outcome(case, "failure", f"significant {e['line']} evidence for {e['name']}", detail)
        elif e["status"] == "underpowered":
            outcome(case, "skipped", f"underpowered: {e['untested'] or detail}")
        else:
            outcome(case, None, detail + (f" ({e['note']})" if e.get("note") else ""))

    for row in static_rows(report):
        case = _case(suite, "distill-audit.static", row["check"], timings.get("static"))
        failing = row["status"].lower() in FAILING_STATIC
        outcome(case, "failure" if failing else None, row["finding"] or row["status"])

    for key, value in counts.items():
        suite.set(key, str(value))
        root.set(key, str(value))
    total = report["run"].get("total_s")
    suite.set("time", f"{total or 0:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
