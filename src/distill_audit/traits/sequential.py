"""Group-sequential boundaries: look at the data in rounds and stop early without inflating alpha.

The signature scores rows in rounds and tests after each one. Testing K times at the
nominal level would reject a true null far more often than alpha, so each look uses a
boundary from the Lan-DeMets alpha-spending function of O'Brien-Fleming type,

    alpha(t) = 2 * (1 - Phi(z_{1 - alpha/2} / sqrt(t)))        (t: share of the planned rows seen)

which spends almost nothing early and leaves the last look's boundary within a few
hundredths of the fixed design's z, so a scan that runs to its budget loses almost no
power, while a clear effect stops it early. Boundaries are computed exactly (no
simulation) by propagating the density of the score process (a Brownian motion in the
information fraction) on a grid through the continuation regions. Tests are one-sided
(does the data lean toward a persona?), so there is one upper boundary per look;
stopping for a settled null is non-binding and never raises the false-positive rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

GRID_SD = 10.0  # the grid spans +-10 SD of the process at the last look
GRID_POINTS = 1501


def obf_spending(t: float, alpha: float) -> float:
    """Cumulative one-sided alpha spent by information fraction t (O'Brien-Fleming type)."""
    if t <= 0:
        return 0.0
    t = min(t, 1.0)
    return float(2.0 * (1.0 - stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 2.0) / np.sqrt(t))))


@lru_cache(maxsize=256)
def _boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    grid = np.linspace(-GRID_SD, GRID_SD, GRID_POINTS) * np.sqrt(fractions[-1])
    dx = grid[1] - grid[0]
    density = None  # density of B(t_k) on the grid, restricted to paths that never crossed
    previous_t, spent = 0.0, 0.0
    out = []
    for t in fractions:
        step = t - previous_t
        if density is None:
            density = stats.norm.pdf(grid, scale=np.sqrt(step))
        else:
            kernel = stats.norm.pdf(grid[:, None] - grid[None, :], scale=np.sqrt(step))
            density = kernel @ density * dx
        target = obf_spending(t, alpha) - spent
        # P(B(t) >= x) on the grid, interpolated between grid points so it is continuous in x.
        tail = (np.cumsum(density[::-1])[::-1] - 0.5 * density) * dx  # trapezoid rule

        def crossing(c: float, tail=tail, t=t, target=target) -> float:
            return float(np.interp(c * np.sqrt(t), grid, tail)) - target

        c = np.inf if target <= 1e-12 else float(optimize.brentq(crossing, -5.0, 12.0, xtol=1e-6))
        out.append(c)
        if np.isfinite(c):
            spent += float(np.interp(c * np.sqrt(t), grid, tail))
            density = np.where(grid < c * np.sqrt(t), density, 0.0)
        previous_t = t
    return tuple(out)


def boundaries(fractions: Sequence[float], alpha: float) -> list[float]:
    """One-sided z boundary for each look at the given information fractions (the last is 1)."""
    fr = tuple(round(float(f), 6) for f in fractions)
    if not fr or any(b <= a for a, b in zip(fr, fr[1:])) or fr[0] <= 0 or fr[-1] > 1.0 + 1e-9:
        raise ValueError("information fractions must increase within (0, 1]")
    return list(_boundaries(fr, float(alpha)))


def nominal_alpha(fractions: Sequence[float], alpha: float) -> list[float]:
    """The one-sided p each look must reach: 1 - Phi(boundary)."""
    return [float(stats.norm.sf(c)) for c in boundaries(fractions, alpha)]


def crossed(p_value: float | None, look: int, fractions: Sequence[float], alpha: float) -> bool:
    """Does a one-sided p at look `look` (0-based) cross that look's boundary?"""
    if p_value is None or not np.isfinite(p_value):
        return False
    return p_value <= nominal_alpha(fractions, alpha)[look]
