"""Small inline SVG plots for the HTML report (no scripts, no network assets)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

WIDTH = 720
LABEL_W = 170
ROW_H = 22
PAD = 30
ACCENT = "#c62828"
MUTED = "#455a64"


@dataclass
class Point:
    label: str
    estimate: float | None
    low: float | None = None
    high: float | None = None
    highlight: bool = False
    group: str | None = None  # series name within a label (e.g. "before", "after")


def _svg_open(title: str, height: float) -> list[str]:
    """The opening tag and title every plot starts with."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f'<text x="{LABEL_W}" y="16" font-weight="bold">{escape(title)}</text>',
    ]


def _scale(values: list[float], include_zero: bool = True) -> tuple[float, float]:
    vals = [v for v in values if v is not None]
    if include_zero:
        vals.append(0.0)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi == lo:
        hi, lo = hi + 1.0, lo - 1.0
    span = hi - lo
    return lo - 0.05 * span, hi + 0.05 * span


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def forest(points: list[Point], title: str, xlabel: str, series_colors: dict[str, str] | None = None) -> str:
    """Estimates with CI whiskers, one row per point; highlighted rows in red.

    Points sharing a label are drawn on one row, offset by series (before/after).
    """
    if not points:
        return ""
    labels = list(dict.fromkeys(p.label for p in points))
    series = list(dict.fromkeys(p.group for p in points))
    lo, hi = _scale([v for p in points for v in (p.estimate, p.low, p.high)])
    plot_w = WIDTH - LABEL_W - PAD
    height = PAD * 2 + ROW_H * len(labels) + (18 if len(series) > 1 else 0)

    def x(v: float) -> float:
        return LABEL_W + (v - lo) / (hi - lo) * plot_w

    out = _svg_open(title, height)
    base = PAD + ROW_H * len(labels)
    for t in _ticks(lo, hi):
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{PAD - 6}" y2="{base}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{x(t):.1f}" y="{base + 14}" text-anchor="middle" fill="#555">{t:.3g}</text>')
    if lo < 0 < hi:
        out.append(
            f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{PAD - 6}" y2="{base}" stroke="#333" stroke-dasharray="3,3"/>'
        )
    out.append(
        f'<text x="{LABEL_W + plot_w / 2:.1f}" y="{base + 28}" text-anchor="middle" fill="#333">{escape(xlabel)}</text>'
    )
    colors = series_colors or {}
    for i, label in enumerate(labels):
        y = PAD + ROW_H * i + ROW_H / 2
        row = [p for p in points if p.label == label]
        bold = any(p.highlight for p in row)
        weight = ' font-weight="bold"' if bold else ""
        out.append(f'<text x="{LABEL_W - 8}" y="{y + 4:.1f}" text-anchor="end"{weight}>{escape(label)}</text>')
        for p in row:
            if p.estimate is None:
                continue
            k = series.index(p.group)
            dy = (k - (len(series) - 1) / 2) * 6
            color = colors.get(p.group or "", ACCENT if p.highlight else MUTED)
            if p.low is not None and p.high is not None:
                out.append(
                    f'<line x1="{x(p.low):.1f}" x2="{x(p.high):.1f}" y1="{y + dy:.1f}" y2="{y + dy:.1f}" '
                    f'stroke="{color}" stroke-width="2"/>'
                )
            out.append(
                f'<circle cx="{x(p.estimate):.1f}" cy="{y + dy:.1f}" r="4" fill="{color}"><title>{escape(label)}'
                f"{' ' + escape(p.group) if p.group else ''}: {p.estimate:.4g}</title></circle>"
            )
    if len(series) > 1:
        lx = LABEL_W
        for s in series:
            color = colors.get(s or "", MUTED)
            out.append(
                f'<circle cx="{lx}" cy="{height - 8}" r="4" fill="{color}"/>'
                f'<text x="{lx + 8}" y="{height - 4}">{escape(s or "")}</text>'
            )
            lx += 16 + 7 * len(s or "")
    out.append("</svg>")
    return "\n".join(out)


def bars(items: list[tuple[str, float | None]], title: str, xlabel: str, threshold: float | None = None) -> str:
    """Horizontal bars (e.g. per-layer weight similarity), with an optional threshold line."""
    pts = [Point(label, v, None, None) for label, v in items if v is not None]
    if not pts:
        return ""
    lo, hi = _scale([p.estimate for p in pts] + ([threshold] if threshold is not None else []))
    plot_w = WIDTH - LABEL_W - PAD
    height = PAD * 2 + ROW_H * len(pts)

    def x(v: float) -> float:
        return LABEL_W + (v - lo) / (hi - lo) * plot_w

    out = _svg_open(title, height)
    base = PAD + ROW_H * len(pts)
    for t in _ticks(lo, hi):
        out.append(f'<text x="{x(t):.1f}" y="{base + 14}" text-anchor="middle" fill="#555">{t:.3g}</text>')
    out.append(f'<text x="{LABEL_W + plot_w / 2:.1f}" y="{base + 28}" text-anchor="middle">{escape(xlabel)}</text>')
    for i, p in enumerate(pts):
        y = PAD + ROW_H * i
        x0, x1 = sorted((x(0.0 if lo <= 0 <= hi else lo), x(p.estimate)))
        out.append(f'<text x="{LABEL_W - 8}" y="{y + 15}" text-anchor="end">{escape(p.label)}</text>')
        out.append(
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1):.1f}" height="{ROW_H - 8}" fill="{MUTED}">'
            f"<title>{escape(p.label)}: {p.estimate:.4g}</title></rect>"
        )
    if threshold is not None:
        out.append(
            f'<line x1="{x(threshold):.1f}" x2="{x(threshold):.1f}" y1="{PAD - 6}" y2="{base}" stroke="{ACCENT}" '
            'stroke-dasharray="4,3"/>'
        )
    out.append("</svg>")
    return "\n".join(out)
