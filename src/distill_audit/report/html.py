"""A self-contained HTML report: inline CSS and SVG plots, no scripts, no network."""

from __future__ import annotations

from html import escape
from typing import Any

from distill_audit.report import svg
from distill_audit.report.formatting import LEVEL_COLORS, evidence_rows, num, shown_evidence, static_rows
from distill_audit.results import lineage_weights, trait_rows

PLOT_TOP = 15  # traits per plot (by estimate), plus every significant one
EVIDENCE_TOP = 8  # trait rows per line in the evidence table; the rest are folded

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
h1{font-size:22px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
.badge{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:bold;text-transform:uppercase}
table{border-collapse:collapse;font-size:13px;margin:8px 0} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5} .sig{color:#c62828;font-weight:bold} .muted{color:#666;font-size:12px} figure{margin:12px 0}
"""


def _table(rows: list[dict[str, str]], sig_key: str | None = None) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    head = list(rows[0])
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        cls = " class='sig'" if sig_key and "yes" in r.get(sig_key, "") else ""
        cells = "".join(f"<td>{escape(str(r.get(h, '')).replace('**', ''))}</td>" for h in head)
        out.append(f"<tr{cls}>{cells}</tr>")
    return "\n".join(out) + "</table>"


def _more(report: dict[str, Any]) -> str:
    """Every evidence line, folded, when the table above shows only the top ones."""
    left_out = shown_evidence(report, EVIDENCE_TOP)[1]
    if not left_out:
        return ""
    return (
        f"<details><summary>All {len(report['verdict']['evidence'])} evidence lines "
        f"({left_out} more, none significant)</summary>{_table(evidence_rows(report), sig_key='significant')}</details>"
    )


def _limits(verdict: dict[str, Any]) -> str:
    items = "".join(
        f"<li><b>{escape(line)}</b>: {escape('; '.join(lim))}</li>"
        for line, lim in (verdict.get("limits") or {}).items()
    )
    return f"<p><b>What each line could not test</b></p><ul class='muted'>{items}</ul>" if items else ""


def _value(x: Any) -> tuple[float | None, float | None, float | None]:
    """(estimate, low, high) from a number or a {estimate, ci} dict."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x), None, None
    if isinstance(x, dict):
        est = x.get("estimate", x.get("mean", x.get("p")))
        ci = x.get("ci") or [None, None]
        return est, ci[0], ci[1]
    return None, None, None


def signature_plot(report: dict[str, Any]) -> str:
    rows = trait_rows(report["stages"].get("signature"))
    sig = set(report["verdict"]["significant_traits"].get("signature", []))
    rows = sorted((r for r in rows if r["estimate"] is not None), key=lambda r: r["estimate"])[::-1]
    rows = [r for i, r in enumerate(rows) if i < PLOT_TOP or r["trait"] in sig]
    pts = [svg.Point(r["trait"], r["estimate"], *(r["ci"] or [None, None]), highlight=r["trait"] in sig) for r in rows]
    unit = (report["stages"].get("signature") or {}).get("unit") or "signature shift vs reference"
    return svg.forest(pts, f"Data signature ranking (top {PLOT_TOP}; red: significant)", unit)


def canary_plots(report: dict[str, Any]) -> str:
    stage = report["stages"].get("canary") or {}
    rows = trait_rows(stage)
    raw = stage.get("traits") or []
    raw = [{"trait": k, **v} for k, v in raw.items()] if isinstance(raw, dict) else raw
    sig = set(report["verdict"]["significant_traits"].get("canary", []))
    shown = {
        r["trait"]
        for i, r in enumerate(sorted(rows, key=lambda r: -(r["estimate"] or 0)))
        if i < PLOT_TOP or r["trait"] in sig
    }
    rows = [r for r in rows if r["trait"] in shown]
    raw = [r for r in raw if str(r.get("trait")) in shown]
    arms = []
    for r in raw:
        # Both arms start from the same base, so one "before" serves both.
        for key, label in (
            ("before", "before"),
            ("after", "after (trained on the data)"),
            ("control_after", "after (control arm)"),
        ):
            est, lo, hi = _value(r.get(key))
            if est is not None:
                arms.append(svg.Point(str(r.get("trait")), est, lo, hi, group=label))
    colors = {"before": "#90a4ae", "after (trained on the data)": "#c62828", "after (control arm)": "#1565c0"}
    parts = [
        svg.forest(
            arms,
            f"Canary: trait probability before / after fine-tuning (95% CI; top {PLOT_TOP} by effect)",
            "probability",
            colors,
        )
    ]
    pts = [
        svg.Point(r["trait"], r["estimate"], *(r["ci"] or [None, None]), highlight=r["trait"] in sig)
        for r in rows
        if r["estimate"] is not None
    ]
    parts.append(svg.forest(pts, "Canary: change vs control (difference in differences)", "effect"))
    return "\n".join(p for p in parts if p)


def lineage_section(report: dict[str, Any]) -> str:
    lin = report["stages"].get("lineage") or {}
    head = f"<p>Verdict: <b>{escape(str(lin.get('verdict', 'unknown')))}</b>"
    if lin.get("confidence"):
        head += f" (confidence {escape(str(lin['confidence']))}, decided by {escape(str(lin.get('decided_by')))})"
    if lin.get("summary") or lin.get("reason"):
        head += f" — {escape(str(lin.get('summary') or lin.get('reason')))}"
    parts = [head + "</p>"]
    rows = [
        {
            "tier": str(e.get("tier", "")),
            "check": str(e.get("name", "")),
            "verdict": str(e.get("verdict") or "—"),
            "confidence": str(e.get("confidence") or "—"),
            "finding": str(e.get("summary") or ""),
        }
        for e in lin.get("evidence") or []
        if isinstance(e, dict)
    ]
    if rows:
        parts.append(_table(rows))
    weights = lineage_weights(lin)
    layers = weights.get("layers") or []
    pts = []
    for layer in layers:
        label = f"layer {layer.get('layer')}"
        pts.append(svg.Point(label, layer.get("aligned_cosine"), group="row-aligned"))
        pts.append(svg.Point(label, layer.get("matched_cosine"), group="Hungarian-matched"))
        pts.append(
            svg.Point(
                label,
                layer.get("null_mean"),
                layer.get("null_mean", 0) - 2 * layer.get("null_sd", 0) if layer.get("null_sd") is not None else None,
                layer.get("null_mean", 0) + 2 * layer.get("null_sd", 0) if layer.get("null_sd") is not None else None,
                group="random pairing (±2 sd)",
            )
        )
    colors = {"row-aligned": "#c62828", "Hungarian-matched": "#1565c0", "random pairing (±2 sd)": "#9e9e9e"}
    title = "Teacher vs student MLP weights per layer" + (
        f" (combined p = {num(weights.get('p_value'))})" if weights else ""
    )
    parts.append(svg.forest(pts, title, "mean cosine of matching rows", colors))
    return "\n".join(p for p in parts if p)


def to_html(report: dict[str, Any]) -> str:
    v = report["verdict"]
    ds, models = report["dataset"], report["models"]
    level = v["level"]
    color = LEVEL_COLORS.get(level, "#666")
    teacher = models.get("teacher") or {}
    recs = "".join(f"<li>{escape(r)}</li>" for r in v["recommendations"])
    timings = report["run"].get("timings") or {}
    env = report["environment"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>distill-audit report: {escape(ds["source"])}</title>
<style>{CSS}</style></head><body>
<h1>distill-audit scan <span class="badge" style="background:{color}">{escape(level)}</span></h1>
<p>{escape(v["explanation"])}</p>
<p class="muted">Data <code>{escape(ds["source"])}</code> ({ds["n_samples"]} samples, {escape(str(ds.get("kind")))},
fingerprint <code>{escape(ds["fingerprint"][:16])}</code>) · student <b>{escape(str(models["student"].get("name") or models["student"]["ref"]))}</b>
· teacher <b>{escape(str(teacher.get("name") or teacher.get("ref") or "unknown"))}</b> · lineage <b>{escape(v["lineage"])}</b>
· seed {report["seed"]} · distill-audit {escape(report["tool"]["version"])}</p>
<h2>Recommendation</h2><ul>{recs}</ul>
<h2>Evidence</h2>
{_table(evidence_rows(report, EVIDENCE_TOP), sig_key="significant")}
{_more(report)}
{_limits(v)}
<h2>Data signature</h2>
<figure>{signature_plot(report) or "<p class='muted'>no signature result</p>"}</figure>
<h2>Canary fine-tune</h2>
<figure>{canary_plots(report) or "<p class='muted'>no canary result</p>"}</figure>
<h2>Lineage</h2>
{lineage_section(report)}
<h2>Static checks</h2>
{_table(static_rows(report))}
<h2>Run</h2>
{_table([{"stage": k, "seconds": num(t), "cache": report["run"]["cache"].get(k, "—")} for k, t in timings.items()])}
<p class="muted">python {escape(env["python"])} · {escape(env["platform"])} · device {escape(env["device"])} ·
{escape(" · ".join(f"{k} {val}" for k, val in env["libraries"].items() if val))}</p>
</body></html>
"""
