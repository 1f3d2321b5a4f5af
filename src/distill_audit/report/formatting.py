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


def _tests(node: Any) -> list[dict[str, Any]]:
    """Every test dict inside a stage result (a dict with an estimate and an interval)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "estimate" in node and "ci" in node:
            found.append(node)
        for v in node.values():
            found += _tests(v)
    elif isinstance(node, list):
        for v in node:
            found += _tests(v)
    return found


def _source_test(report: dict[str, Any], e: dict[str, Any]) -> dict[str, Any] | None:
    """The stage's own test dict behind an evidence line: the one with its estimate, interval and MDE."""
    stage = report["stages"].get(e["line"])
    if e["estimate"] is None or not stage:
        return None
    for t in _tests(stage):
        if t.get("estimate") == e["estimate"] and t.get("ci") == e["ci"] and t.get("mde") == e["mde"]:
            return t
    return None


def _family_size(node: Any, t: dict[str, Any]) -> int:
    """How many tests share the container holding `t` (its correction family: traits, or one block's measures)."""
    children = list(node.values()) if isinstance(node, dict) else list(node) if isinstance(node, list) else []
    if any(c is t for c in children):
        return max(1, sum(1 for c in children if isinstance(c, dict) and "estimate" in c and "ci" in c))
    for c in children:
        if isinstance(c, (dict, list)) and (m := _family_size(c, t)):
            return m
    return 0


def deciding_interval(report: dict[str, Any], e: dict[str, Any]) -> tuple[float | None, float | None, str]:
    """(low, high, kind) of the test that decided an evidence line, at its corrected level.

    The stages store a plain 95% interval beside a Holm-adjusted p; the interval that
    matches the call is the one at Holm's strictest step, alpha / m, which the MDE uses
    too. Signature tests are one-sided (toward the persona), so their interval is the
    lower bound the stage stores (high None). A canary test is two-sided; its interval
    is derived here from the stage's own se and df. kind: "one-sided", "two-sided",
    "uncorrected" (only the plain interval is known) or "" (no interval).
    """
    t = _source_test(report, e)
    if t is not None and t.get("lower_bound") is not None:
        return t["lower_bound"], None, "one-sided"
    if e["line"] == "canary" and t is not None:
        stage = report["stages"]["canary"]
        test = t.get("test") if isinstance(t.get("test"), dict) else {}
        se, df = test.get("se", t.get("se")), test.get("df", t.get("df"))
        alpha = (stage.get("config") or {}).get("alpha") or report["verdict"].get("config", {}).get("alpha") or 0.05
        m = max(1, _family_size(stage, t))
        if se is not None and df:
            from scipy import stats

            half = float(stats.t.ppf(1 - alpha / (2 * m), df)) * se
            return e["estimate"] - half, e["estimate"] + half, "two-sided"
    if e["ci"] and any(v is not None for v in e["ci"]):
        return e["ci"][0], e["ci"][1], "uncorrected"
    return None, None, ""


def interval_text(low: float | None, high: float | None, kind: str) -> str:
    if kind == "one-sided":
        return f"≥ {num(low)}"
    if not kind:
        return "—"
    return f"[{num(low)}, {num(high)}]" + (" †" if kind == "uncorrected" else "")


def p_label(report: dict[str, Any]) -> str:
    """The p column's header: which adjustment its values carry."""
    corrections = set()
    for line in {e["line"] for e in report["verdict"]["evidence"] if e["p"] is not None}:
        stage = report["stages"].get(line) or {}
        corrections.add(str(stage.get("correction") or (stage.get("config") or {}).get("correction") or ""))
    corrections -= {"", "none"}
    names = {"holm": "Holm", "bh": "BH", "fdr": "BH"}
    if len(corrections) == 1:
        return f"p ({names.get(next(iter(corrections)), next(iter(corrections)))})"
    return "p (adjusted)"


CI_HEADER = "CI at corrected level"
MDE_HEADER = "MDE (corrected)"


def evidence_rows(report: dict[str, Any], top: int | None = None) -> list[dict[str, str]]:
    """The verdict's evidence table as display strings (one row per line and trait).

    One column set everywhere: the estimate, the interval of the test that decided
    (at the corrected level), the adjusted p and the MDE at that same level.
    """
    p_head = p_label(report)
    rows = []
    for e in shown_evidence(report, top)[0]:
        rows.append(
            {
                "line": e["line"],
                "measured": e["name"] + (f" ({e['note']})" if e.get("note") else ""),
                "status": e["status"],
                "estimate": num(e["estimate"]),
                CI_HEADER: interval_text(*deciding_interval(report, e)),
                p_head: num(e["p"]),
                MDE_HEADER: num(e["mde"]),
                "significant": "**yes**" if e["significant"] else ("no" if e["significant"] is False else "—"),
                "not tested": e["untested"] or "",
            }
        )
    return rows


def has_uncorrected(report: dict[str, Any]) -> bool:
    return any(deciding_interval(report, e)[2] == "uncorrected" for e in report["verdict"]["evidence"])


EVIDENCE_NOTE = (
    "CI: the interval of the test that decided, at the corrected level (alpha / m, Holm's strictest step); "
    "signature tests are one-sided (toward the persona), so their interval is a lower bound (≥). "
    "p: adjusted across the line's family. MDE: the smallest effect found 80% of the time at that level."
)
UNCORRECTED_NOTE = "†: only the plain 95% interval is stored for this test."


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
