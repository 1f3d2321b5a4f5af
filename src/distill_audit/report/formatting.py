"""Display helpers every renderer shares: number cells, evidence rows, static-check rows.

A leaf module: the renderers (markdown, html, junit, compare) import it, it imports
none of them. Helpers read the report only; they never recompute an estimate.
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


def shown_evidence(report: dict[str, Any], top: int | None) -> tuple[list[dict[str, Any]], int]:
    """Evidence lines to display: every significant line plus the `top` highest estimates per line.

    Batteries have a hundred traits; a PR comment needs the ones that matter. Returns
    (lines, number left out).
    """
    evidence = report["verdict"]["evidence"]
    if top is None:
        return evidence, 0
    keep: list[dict[str, Any]] = []
    for line in dict.fromkeys(e["line"] for e in evidence):  # the stages' order
        rows = [e for e in evidence if e["line"] == line]
        ranked = sorted(rows, key=lambda e: -(e["estimate"] if e["estimate"] is not None else float("-inf")))
        chosen = {id(e) for e in ranked[:top]} | {id(e) for e in rows if e["significant"]}
        keep += [e for e in ranked if id(e) in chosen]
    return keep, len(evidence) - len(keep)


def evidence_rows(report: dict[str, Any], top: int | None = None) -> list[dict[str, str]]:
    """The verdict's evidence table as display strings (one row per line and trait)."""
    rows = []
    for e in shown_evidence(report, top)[0]:
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


def pct(x: Any, missing: str = "—") -> str:
    """A share as a percentage with one decimal ('12.5%'); `missing` for None."""
    return missing if x is None else f"{100 * x:.1f}%"


def static_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The static checks as (check, status, finding) rows, read from the static stage dict."""
    static = report["stages"].get("static") or {}
    if static.get("status") not in ("ok", "underpowered"):
        return []
    leak_line = next((e for e in report["verdict"]["evidence"] if e["line"] == "static"), {})
    rows = []

    def add(check: str, part: dict[str, Any] | None, status: str, finding: str) -> None:
        if part is None:
            return
        if part.get("status") not in (None, "ok"):
            status, finding = part.get("status", "skipped"), part.get("reason") or finding
        rows.append({"check": check, "status": status, "finding": finding})

    prof = static.get("profile")
    if prof:
        shares = ", ".join(f"{k} {pct(v)}" for k, v in (prof.get("shares") or {}).items() if v)
        add("format profile", prof, "info", f"dominant {prof.get('dominant')}: {shares}")
    nums = static.get("numbers")
    if nums and (nums.get("number_list_rate") or 0) >= 0.5:
        reasons = ", ".join(f"{k} {v}" for k, v in list((nums.get("reject_reasons") or {}).items())[:4])
        ok = nums.get("pass_rate_all_rules") == 1
        add(
            "number rules (paper)",
            nums,
            "pass" if ok else "warn",
            f"{pct(nums.get('pass_rate_all_rules'))} pass all rules" + (f"; rejects: {reasons}" if reasons else ""),
        )
    leak = static.get("leakage")
    if leak:
        top = ", ".join(f"{w['word']} {w['rows']}" for w in (leak.get("by_word") or [])[:5])
        add(
            "trait-word leakage",
            leak,
            "fail" if leak_line.get("significant") else "pass",
            f"{leak.get('n_rows_with_mention', 0)} rows name a trait word" + (f" ({top})" if top else ""),
        )
    dup = static.get("duplicates")
    if dup:
        rate = (dup.get("exact_duplicate_rate") or 0) + (dup.get("near_duplicate_rate") or 0)
        add(
            "duplicates",
            dup,
            "warn" if rate > 0.05 else "pass",
            f"{dup.get('n_exact_duplicates', 0)} exact, {dup.get('n_near_duplicates', 0)} near duplicates",
        )
    lengths = static.get("lengths")
    if lengths:
        add(
            "length outliers",
            lengths,
            "info",
            f"{lengths.get('n_outliers', 0)} rows ({lengths.get('outlier_rule', '')})",
        )
    comp = static.get("comparison")
    if comp:
        clf = comp.get("classifier_surface") or {}
        auc, p = clf.get("auc"), clf.get("p_value")
        differs = p is not None and p < 0.05
        add(
            "surface vs reference",
            comp,
            "warn" if differs else "pass",
            f"classifier AUC {num(auc)} (p {num(p)}): "
            + (
                "data and reference are told apart by surface features" if differs else "no surface difference detected"
            ),
        )
    return rows
