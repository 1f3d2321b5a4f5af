"""Report plots drawn with matplotlib, returned as inline SVG text (no scripts, no assets).

Plain functions of plain values, so any page (the scan report, a sanitize report) can
embed them. Output is deterministic: a fixed SVG hash salt, no date, text kept as text
(so the page is searchable and a test can read the labels).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

ACCENT = "#c62828"
MUTED = "#455a64"
BAND = "#fff3cd"
SERIES = {"before": "#90a4ae", "after (trained on the data)": "#c62828", "after (control arm)": "#1565c0"}
WIDTH_IN = 7.5
ROW_IN = 0.32


@dataclass(frozen=True)
class Row:
    """One forest row: an estimate, its interval (high None: a one-sided lower bound), its MDE."""

    label: str
    estimate: float | None
    low: float | None = None
    high: float | None = None
    mde: float | None = None
    highlight: bool = False


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.hashsalt": "distill-audit",
            "svg.fonttype": "none",
            "font.family": "sans-serif",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def _svg(fig, title: str) -> str:
    """The figure as an <svg> element with an accessible title, and the figure closed."""
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Title": title})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and doctype: the element goes inline
    return re.sub(r"<svg ", f'<svg role="img" aria-label="{_attr(title)}" ', text, count=1)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def forest(rows: Sequence[Row], title: str, xlabel: str) -> str:
    """Estimates with their deciding intervals, a zero line and each row's MDE as a band.

    A row whose interval has no upper end (a one-sided test) gets an arrow to the edge.
    Returns "" when no row has an estimate.
    """
    rows = [r for r in rows if _finite(r.estimate)]
    if not rows:
        return ""
    plt = _pyplot()
    height = 0.9 + ROW_IN * len(rows)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height))
    values = [v for r in rows for v in (r.estimate, r.low, r.high, r.mde) if _finite(v)] + [0.0]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or 1.0
    left, right = lo - pad, hi + pad
    ys = list(range(len(rows)))[::-1]
    for y, r in zip(ys, rows):
        color = ACCENT if r.highlight else MUTED
        if _finite(r.mde):
            ax.barh(y, r.mde, left=0, height=0.6, color=BAND, edgecolor="#e0c36a", linewidth=0.6, zorder=1)
        low = r.low if _finite(r.low) else None
        high = r.high if _finite(r.high) else None
        if low is not None and high is not None:
            ax.plot([low, high], [y, y], color=color, lw=2, zorder=2)
        elif low is not None:
            ax.annotate(
                "",
                xy=(right, y),
                xytext=(low, y),
                arrowprops={"arrowstyle": "->", "color": color, "lw": 2},
                zorder=2,
            )
            ax.plot([low, low], [y - 0.18, y + 0.18], color=color, lw=2, zorder=2)
        ax.plot([r.estimate], [y], "o", color=color, ms=6, zorder=3)
    ax.axvline(0, color="#333", lw=0.8, ls="--", zorder=1)
    ax.set_xlim(left, right)
    ax.set_yticks(ys, [r.label for r in rows])
    for tick, r in zip(ax.get_yticklabels(), rows):
        if r.highlight:
            tick.set_color(ACCENT)
            tick.set_fontweight("bold")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    band = "; shaded: MDE, the smallest effect found 80% of the time" if any(_finite(r.mde) for r in rows) else ""
    ax.set_xlabel(xlabel + band)
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    ax.grid(axis="x", color="#eee", zorder=0)
    return _svg(fig, title)


def distribution(data: Sequence[float], reference: Sequence[float] | None, title: str, xlabel: str) -> str:
    """Empirical CDFs of per-row scores, data against reference (reference optional).

    An ECDF needs no bin choice and shows a shifted tail as plainly as a shifted centre.
    """
    data = sorted(float(v) for v in data if _finite(v))
    ref = sorted(float(v) for v in (reference if reference is not None else []) if _finite(v))
    if not data:
        return ""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 2.8))
    for values, label, color in ((data, "data", ACCENT), (ref, "reference", "#1565c0")):
        if values:
            y = np.arange(1, len(values) + 1) / len(values)
            ax.step(values, y, where="post", color=color, lw=1.6, label=f"{label} (n={len(values)})")
            ax.axvline(float(np.median(values)), color=color, lw=0.8, ls=":")
    ax.axvline(0, color="#333", lw=0.8, ls="--")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("share of rows ≤ x")
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    ax.grid(color="#eee")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _svg(fig, title)


@dataclass(frozen=True)
class Arms:
    """One trait's probability before fine-tuning and after, in each arm (None: not measured)."""

    label: str
    before: float | None
    after: float | None
    control_after: float | None = None
    highlight: bool = False
    intervals: dict[str, tuple[float, float]] | None = None  # series name -> (low, high), where measured


def before_after(traits: Sequence[Arms], title: str, xlabel: str = "trait probability") -> str:
    """Per trait: before, after on the data and after on the control, on separate offsets
    of one row (each with its interval where given), a thin line from before to each
    after so a move reads as a direction."""
    traits = [t for t in traits if any(_finite(v) for v in (t.before, t.after, t.control_after))]
    if not traits:
        return ""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 1.3 + 0.42 * len(traits)), layout="constrained")
    ys = list(range(len(traits)))[::-1]
    offsets = {"before": 0.0, "after (trained on the data)": 0.15, "after (control arm)": -0.15}
    seen: set[str] = set()
    for y, t in zip(ys, traits):
        points = {
            "before": t.before,
            "after (trained on the data)": t.after,
            "after (control arm)": t.control_after,
        }
        for name, value in points.items():
            if not _finite(value):
                continue
            dy = offsets[name]
            low, high = (t.intervals or {}).get(name, (None, None))
            if _finite(low) and _finite(high):
                ax.plot([low, high], [y + dy, y + dy], color=SERIES[name], lw=2.5, alpha=0.5, zorder=2)
            if name != "before" and _finite(t.before):
                ax.plot([t.before, value], [y, y + dy], color=SERIES[name], lw=1, alpha=0.6)
            ax.plot([value], [y + dy], "o", color=SERIES[name], ms=6, label=None if name in seen else name, zorder=3)
            seen.add(name)
    ax.set_yticks(ys, [t.label for t in traits])
    for tick, t in zip(ax.get_yticklabels(), traits):
        if t.highlight:
            tick.set_color(ACCENT)
            tick.set_fontweight("bold")
    ax.set_ylim(-0.7, len(traits) - 0.3)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    ax.grid(axis="x", color="#eee")
    fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return _svg(fig, title)
