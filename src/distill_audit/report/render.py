"""Render a canonical report dict to a format; shared formatting helpers.

Renderers read the report only; they never recompute an estimate.
"""

from __future__ import annotations

from typing import Any

LEVEL_COLORS = {"none": "#2e7d32", "low": "#689f38", "medium": "#f9a825", "high": "#c62828", "inconclusive": "#6d6d6d"}


def num(x: Any, digits: int = 3) -> str:
    """A number for a table cell: 3 significant digits, '—' for missing."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.2e}"
        return f"{x:.{digits}g}"
    return str(x)


def ci(c: Any) -> str:
    if not c or all(v is None for v in c):
        return "—"
    return f"[{num(c[0])}, {num(c[1])}]"


def evidence_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The verdict's evidence table as display strings (one row per line and trait)."""
    rows = []
    for e in report["verdict"]["evidence"]:
        rows.append(
            {
                "line": e["line"],
                "measured": e["name"] + (f" ({e['note']})" if e.get("note") else ""),
                "status": e["status"],
                "estimate": num(e["estimate"]),
                "95% CI": ci(e["ci"]),
                "p": num(e["p"]),
                "MDE": num(e["mde"]),
                "significant": "**yes**" if e["significant"] else ("no" if e["significant"] is False else "—"),
                "not tested": e["untested"] or "",
            }
        )
    return rows


def static_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The static checks as (check, status, finding) rows, whatever their detail."""
    static = report["stages"].get("static") or {}
    checks = static.get("checks")
    rows = []
    if isinstance(checks, dict):
        checks = [{"name": k, **v} if isinstance(v, dict) else {"name": k, "status": v} for k, v in checks.items()]
    for c in checks or []:
        if not isinstance(c, dict):
            continue
        rows.append(
            {
                "check": str(c.get("name") or c.get("check") or "?"),
                "status": str(c.get("status") or c.get("result") or "—"),
                "finding": str(c.get("summary") or c.get("message") or c.get("reason") or ""),
            }
        )
    return rows


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "md":
        from distill_audit.report.markdown import to_markdown

        return to_markdown(report)
    if fmt == "html":
        from distill_audit.report.html import to_html

        return to_html(report)
    if fmt == "junit":
        from distill_audit.report.junit import to_junit

        return to_junit(report)
    if fmt == "json":
        from distill_audit.report.build import dumps

        return dumps(report)
    from distill_audit.errors import UsageError

    raise UsageError(f"--format: unknown format {fmt!r} (choose md, html, junit or json)")
