"""The sanitize report as JSON, Markdown and HTML (jinja2, autoescaped; the plot inline as SVG)."""

from __future__ import annotations

import json
from typing import Any


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, allow_nan=False, default=str) + "\n"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _ci(ci: list[float | None] | None) -> str:
    if not ci or None in ci:
        return "n/a"
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def _num(x: float | None, fmt: str = "+.4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def rows(report: dict[str, Any]) -> list[list[str]]:
    """The table both formats show: one line per arm."""
    sig, t, r = report["signature"], report.get("targeted"), report.get("random")
    out = [["before", str(sig.get("n_data")), _num(sig.get("estimate")), "100%", "", sig.get("level") or ""]]
    if t:
        out.append(
            ["targeted", str(t["n_kept"]), _num(t["estimate"]), _pct(t["left"]), _ci(t.get("left_ci")), t["level"]]
        )
    if r and r.get("arms"):
        levels = sorted({a["level"] for a in r["arms"]})
        out.append(
            [
                f"random ({r['draws']} draws)",
                str(r["arms"][0]["n_kept"]),
                _num((r.get("left_mean") or 0) * (sig.get("estimate") or 0)),
                _pct(r.get("left_mean")),
                _ci(r.get("left_interval")),
                ", ".join(levels),
            ]
        )
    return out


def _shift_line(sig: dict[str, Any]) -> str:
    e = sig.get("shift") or {}
    ci = e.get("ci") or [None, None]
    return (
        f"- persona shift before: {_num(e.get('estimate'))} [{_num(ci[0])}, {_num(ci[1])}], "
        f"p {_num(e.get('p_value'), '.3g')}, MDE {_num(e.get('mde'), '.3g')} (nats/token)"
    )


HEAD = ["arm", "rows kept", "estimate", "signature left", "95% interval", "level"]


def to_markdown(report: dict[str, Any]) -> str:
    sig = report["signature"]
    lines = [
        "# distill-audit sanitize",
        "",
        f"**{report['conclusion']}**",
        "",
        f"- data: `{report['input']['path']}` ({report['input']['format']}, {report['input']['n_samples']} rows)",
        f"- signature: finding `{sig['finding']}`"
        + (f", named {', '.join(sig['named'])}" if sig["named"] else "")
        + f"; ranked by `{sig['statistic']}` ({sig.get('design')} design)",
        _shift_line(sig),
        f"- scores: {report['cache']['status']} (signature cache key `{report['cache']['key']}`)",
    ]
    out = report.get("output") or {}
    lines.append(
        f"- kept rows: `{out['data']}`, manifest `{out['manifest']}`" if out.get("written") else "- nothing written"
    )
    if report.get("targeted"):
        lines += ["", "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
        lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
        s = report["selection_test"]
        lines += [
            "",
            f"Selection test (does cutting the data's top remove more than cutting the top of carrier-free rows?): "
            f"observed drop {s['observed_drop']:+.4f}, carrier-free drop {s['null_drop_mean']:+.4f} "
            f"(95th percentile {s['null_drop_q95']:+.4f}, {s['n_reference_rows']} reference rows), p = {s['p_value']:.3g}. "
            f"Targeted beat random: **{'yes' if report['beat_random'] else 'no'}**.",
            "",
            f"Random arms (in-sample): rank p = {_num(report['random'].get('rank_p'), '.3g')}, "
            f"prediction-interval p = {_num(report['random'].get('p_value'), '.3g')}. {report['random']['note']}.",
        ]
    if report.get("limits"):
        lines += ["", "## Limits", ""] + [f"- {x}" for x in report["limits"]]
    return "\n".join(lines) + "\n"


def to_html(report: dict[str, Any]) -> str:
    from importlib.resources import files

    import jinja2

    from distill_audit.sanitize.plot import signature_svg

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(files("distill_audit.sanitize").joinpath("templates/sanitize.html").read_text())
    svg = signature_svg(report)
    return template.render(
        report=report,
        head=HEAD,
        rows=rows(report) if report.get("targeted") else [],
        markdown=to_markdown(report),
        plot=jinja2.utils.markupsafe.Markup(svg) if svg else None,
    )
