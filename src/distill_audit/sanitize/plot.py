"""The before / targeted / random plot as deterministic SVG text (matplotlib, Agg).

Fixed `svg.hashsalt` and no date metadata, so the same report renders the same bytes.
"""

from __future__ import annotations

import io
from typing import Any


def signature_svg(report: dict[str, Any]) -> str | None:
    """Bars of the ranking statistic's estimate: before, after targeted removal (95% CI from the
    ratio's bootstrap), after random removal (mean and 95% interval over the draws)."""
    sig, t, r = report.get("signature") or {}, report.get("targeted"), report.get("random")
    before = sig.get("estimate")
    if before is None or not t:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["before", "after targeted", "after random"]
    vals = [before, t["estimate"], (r.get("left_mean") or 0) * before]
    lo_hi = [
        (before, before),
        tuple(before * x if x is not None else t["estimate"] for x in t.get("left_ci") or [None, None]),
        tuple(before * x if x is not None else vals[2] for x in r.get("left_interval") or [None, None]),
    ]
    err = [[max(v - lo, 0) for v, (lo, _) in zip(vals, lo_hi)], [max(hi - v, 0) for v, (_, hi) in zip(vals, lo_hi)]]
    with matplotlib.rc_context({"svg.hashsalt": "distill-audit", "svg.fonttype": "none"}):
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        ax.bar(labels, vals, yerr=err, capsize=4, color=["#7a7a7a", "#c0392b", "#2e86c1"])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel(f"{sig.get('statistic')} (nats/token)")
        ax.set_title("data signature before and after removal")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]
