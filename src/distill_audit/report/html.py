"""A self-contained HTML report: one jinja2 template (autoescaped), inline CSS, inline SVG
plots drawn by matplotlib, no scripts, no network assets.

This module turns the report dict into plain display values and plots; the template
(templates/report.html.j2) only lays them out, so no text reaches the page unescaped
except the SVG the plots module wrote.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from markupsafe import Markup

from distill_audit.report import plots
from distill_audit.report.formatting import (
    EVIDENCE_NOTE,
    LEVEL_COLORS,
    UNCORRECTED_NOTE,
    deciding_interval,
    evidence_rows,
    has_uncorrected,
    num,
    shown_evidence,
    static_rows,
)
from distill_audit.results import lineage_weights

PLOT_TOP = 15  # trait rows per plot (by estimate), plus every significant one
EVIDENCE_TOP = 8  # trait rows per line in the evidence table; the rest are folded
FOREST_LINES = {  # evidence lines drawn as a forest plot, with their unit
    "signature": "shift per completion token (nats)",
    "canary": "probability points (treated change minus control change)",
}


@lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("distill_audit.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2")


def _svg(text: str) -> Markup | None:
    """Plot SVG for the page: matplotlib escaped every label it drew."""
    return Markup(text) if text else None


def forest_plots(report: dict[str, Any]) -> list[Markup]:
    """One forest plot per line of evidence: estimate, deciding interval, zero line, MDE band."""
    shown = shown_evidence(report, PLOT_TOP)[0]
    out = []
    for line, unit in FOREST_LINES.items():
        rows = []
        for e in shown:
            if e["line"] != line or e["estimate"] is None:
                continue
            low, high, _kind = deciding_interval(report, e)
            rows.append(plots.Row(e["name"], e["estimate"], low, high, e["mde"], bool(e["significant"])))
        svg = plots.forest(rows, f"{line}: estimate and interval at the corrected level (red: significant)", unit)
        if svg:
            out.append(Markup(svg))
    return out


def distribution_plot(report: dict[str, Any]) -> tuple[Markup | None, str]:
    """(ECDF of per-row signature scores, data vs reference; a caption saying what is missing)."""
    section = report.get("rows") or {}
    stage = report["stages"].get("signature") or {}
    ref = stage.get("reference_row_scores") or {}
    by = stage.get("top_rows_by")
    data = section.get("data_scores") or []
    reference = ref.get("scores") if ref.get("by") == by else None
    if not data:
        return None, "no per-row signature scores in this report (no signature result, or no samples table)"
    caption = f"Per-row score: the row's {by} statistic, the one the signature ranks rows by."
    if not reference:
        caption += " The reference rows' scores are not stored in this report (written by an older version)."
    return _svg(
        plots.distribution(data, reference, f"Per-row signature score ({by}): data vs reference", "score")
    ), caption


def _value(x: Any) -> float | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    if isinstance(x, dict):
        v = x.get("estimate", x.get("mean"))
        return float(v) if isinstance(v, (int, float)) else None
    return None


def _interval(x: Any) -> tuple[float, float] | None:
    ci = x.get("ci") if isinstance(x, dict) else None
    if ci and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def canary_plot(report: dict[str, Any]) -> Markup | None:
    """Trait probability before and after fine-tuning, per arm, for the traits the table shows."""
    stage = report["stages"].get("canary") or {}
    raw = stage.get("traits") or []
    raw = [{"trait": k, **v} for k, v in raw.items()] if isinstance(raw, dict) else raw
    shown = {e["name"] for e in shown_evidence(report, PLOT_TOP)[0] if e["line"] == "canary"}
    sig = set(report["verdict"]["significant_traits"].get("canary", []))
    arms = []
    for r in raw:
        if not isinstance(r, dict) or str(r.get("trait")) not in shown:
            continue
        series = {
            "before": r.get("before"),
            "after (trained on the data)": r.get("after_treated", r.get("after")),
            "after (control arm)": r.get("after_control", r.get("control_after")),
        }
        values = [_value(v) for v in series.values()]
        intervals = {k: iv for k, v in series.items() if (iv := _interval(v))}
        arms.append(plots.Arms(str(r.get("trait")), *values, str(r.get("trait")) in sig, intervals))
    title = "canary: trait probability before and after fine-tuning (bars: 95% CI of each mean over paraphrases)"
    return _svg(plots.before_after(arms, title))


def lineage_view(report: dict[str, Any]) -> dict[str, Any]:
    lin = report["stages"].get("lineage") or {}
    evidence = [
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
    weights = lineage_weights(lin)
    layers = [
        {
            "layer": str(layer.get("layer")),
            "row-aligned cosine": num(layer.get("aligned_cosine")),
            "Hungarian-matched cosine": num(layer.get("matched_cosine")),
            "random pairing mean": num(layer.get("null_mean")),
            "random pairing sd": num(layer.get("null_sd")),
        }
        for layer in weights.get("layers") or []
    ]
    return {
        "verdict": str(lin.get("verdict", "unknown")),
        "confidence": lin.get("confidence"),
        "decided_by": lin.get("decided_by"),
        "summary": lin.get("summary") or lin.get("reason"),
        "evidence": evidence,
        "layers": layers,
        "weights_p": num(weights.get("p_value")) if weights else None,
    }


def to_html(report: dict[str, Any]) -> str:
    v = report["verdict"]
    ds, models = report["dataset"], report["models"]
    teacher = models.get("teacher") or {}
    dist, dist_caption = distribution_plot(report)
    section = report.get("rows") or {}
    env = report["environment"]
    timings = report["run"].get("timings") or {}
    return _template().render(
        report=report,
        verdict=v,
        level=v["level"],
        color=LEVEL_COLORS.get(v["level"], "#666"),
        dataset=ds,
        student=str(models["student"].get("name") or models["student"]["ref"]),
        teacher=str(teacher.get("name") or teacher.get("ref") or "unknown"),
        evidence=evidence_rows(report, EVIDENCE_TOP),
        all_evidence=evidence_rows(report) if shown_evidence(report, EVIDENCE_TOP)[1] else [],
        left_out=shown_evidence(report, EVIDENCE_TOP)[1],
        evidence_note=EVIDENCE_NOTE,
        uncorrected_note=UNCORRECTED_NOTE if has_uncorrected(report) else None,
        forests=forest_plots(report),
        distribution=dist,
        distribution_caption=dist_caption,
        top_rows=[{**r, "score": num(r["score"])} for r in section.get("top") or []],
        top_score=section.get("score"),
        n_scored=section.get("n_scored"),
        canary=canary_plot(report),
        canary_stage=report["stages"].get("canary") or {},
        lineage=lineage_view(report),
        static=static_rows(report),
        timings=[
            {"stage": k, "seconds": num(t), "cache": report["run"]["cache"].get(k, "—")} for k, t in timings.items()
        ],
        libraries=" · ".join(f"{k} {val}" for k, val in env["libraries"].items() if val),
        env=env,
    )
