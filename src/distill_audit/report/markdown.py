"""Markdown for a PR comment or `$GITHUB_STEP_SUMMARY`: verdict first, then tables."""

from __future__ import annotations

from typing import Any

from distill_audit.report.formatting import (
    EVIDENCE_NOTE,
    UNCORRECTED_NOTE,
    evidence_rows,
    has_uncorrected,
    num,
    shown_evidence,
    static_rows,
)

TOP_TRAITS = 5  # per line in the evidence table, besides every significant one

ICONS = {"none": "🟢", "low": "🟢", "medium": "🟠", "high": "🔴", "inconclusive": "⚪"}


def esc(text: Any) -> str:
    """Data-derived text as inert Markdown: HTML is shown, never rendered (code hosts render
    raw HTML in Markdown), and a table row or line cannot be broken out of."""
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", " ").replace("\n", " ")
    )


def code(text: Any) -> str:
    """Text as an inline code span that its own backticks cannot close."""
    body = str(text).replace("\r", " ").replace("\n", " ")
    longest = 0
    run = 0
    for ch in body:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def _cell(text: str) -> str:
    return esc(text).replace("|", "\\|")


def table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "_none_\n"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(r.get(h, "")) for h in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _model(m: dict[str, Any] | None) -> str:
    if not m:
        return "unknown"
    ident = m.get("identity")
    if isinstance(ident, dict):
        ident = ident.get("sha256") or ident.get("revision") or ident.get("id")
    short = f" {code(str(ident)[:16])}" if ident else ""
    origin = f" (from {esc(m['origin'])})" if m.get("origin") else ""
    return f"{esc(m.get('name') or m['ref'])}{short}{origin}"


def top_rows(report: dict[str, Any]) -> list[str]:
    """The highest-scoring rows with their (clipped) text, folded: what a reviewer would drop."""
    section = report.get("rows") or {}
    rows = [
        {"line": str(r.get("line")), "score": num(r["score"]), "prompt": r["prompt"], "completion": r["completion"]}
        for r in section.get("top") or []
    ]
    if not rows:
        return []
    head = (
        f"<details><summary>Highest-scoring rows by {esc(section['score'])} "
        f"({len(rows)} of {section.get('n_scored')} scored; all in samples.parquet)</summary>"
    )
    return [head, "", table(rows), "</details>", ""]


def to_markdown(report: dict[str, Any]) -> str:
    v = report["verdict"]
    ds = report["dataset"]
    level = v["level"]
    out = [f"## {ICONS.get(level, '')} distill-audit: **{level.upper()}** risk", ""]
    out += [esc(v["explanation"]), ""]
    out += [
        f"**Data** {code(ds['source'])} · {ds['n_samples']} samples · {esc(ds.get('kind') or 'unknown')} · "
        f"fingerprint {code(ds['fingerprint'][:16])}  ",
        f"**Student** {_model(report['models']['student'])} · **Teacher** {_model(report['models']['teacher'])} · "
        f"**Lineage** {esc(v['lineage'])}",
        "",
    ]
    sig = v["significant_traits"]
    named = [esc(f"{line}: {', '.join(t)}") for line, t in sig.items() if t]
    if named:
        out += ["**Significant traits** — " + "; ".join(named), ""]
    out += ["### Evidence", "", table(evidence_rows(report, TOP_TRAITS))]
    out += ["_" + esc(EVIDENCE_NOTE + (" " + UNCORRECTED_NOTE if has_uncorrected(report) else "")) + "_", ""]
    left_out = shown_evidence(report, TOP_TRAITS)[1]
    if left_out:
        out += [f"_{left_out} more trait lines (none significant) are in report.json and report.html._", ""]
    limits = v.get("limits") or {}
    if limits:
        out += ["<details><summary>What each line could not test</summary>", ""]
        out += [f"- **{esc(line)}**: " + "; ".join(esc(i) for i in items) for line, items in limits.items()] + [
            "",
            "</details>",
            "",
        ]
    if v["recommendations"]:
        out += ["### Recommendation", ""] + [f"- {esc(r)}" for r in v["recommendations"]] + [""]
    out += top_rows(report)
    gate = report["gate"]
    out += [f"**Gate**: {'FAILED' if gate['failed'] else 'passed'} — {esc(gate['reason'])}", ""]
    srows = static_rows(report)
    if srows:
        out += ["<details><summary>Static checks</summary>", "", table(srows), "</details>", ""]
    timings = report["run"].get("timings") or {}
    rows = [{"stage": k, "seconds": num(t), "cache": report["run"]["cache"].get(k, "—")} for k, t in timings.items()]
    out += ["<details><summary>Run details</summary>", "", table(rows)]
    env = report["environment"]
    out += [
        esc(
            f"distill-audit {report['tool']['version']} · seed {report['seed']} · python {env['python']} · "
            + " · ".join(f"{k} {val}" for k, val in env["libraries"].items() if val)
        ),
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)
