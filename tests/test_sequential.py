"""Group-sequential boundaries, checked by simulation: alpha holds over every look, power stays near the fixed design's."""

import numpy as np
import pytest
from scipy import stats

from distill_audit.traits.sequential import boundaries, crossed, nominal_alpha, obf_spending

LOOKS = [0.25, 0.5, 0.75, 1.0]


def _paths(n_sims: int, drift: float, fractions, seed: int) -> np.ndarray:
    """z statistics at each look of a one-sided test whose final z has mean `drift`."""
    rng = np.random.default_rng(seed)
    t = np.asarray(fractions)
    steps = rng.normal(size=(n_sims, len(t))) * np.sqrt(np.diff(np.concatenate([[0.0], t])))
    brownian = np.cumsum(steps, axis=1) + drift * t
    return brownian / np.sqrt(t)


def test_spending_reaches_alpha_at_the_end():
    assert obf_spending(1.0, 0.05) == pytest.approx(0.05)
    assert obf_spending(0.25, 0.05) < 0.001


def test_one_look_is_the_fixed_test():
    assert boundaries([1.0], 0.05)[0] == pytest.approx(stats.norm.ppf(0.95), abs=1e-3)


@pytest.mark.parametrize("alpha", [0.05, 0.05 / 21, 0.05 / 94])
def test_false_positive_rate_over_all_looks_is_at_most_alpha(alpha):
    z = _paths(400_000, 0.0, LOOKS, seed=1)
    rejected = (z >= np.asarray(boundaries(LOOKS, alpha))).any(axis=1).mean()
    se = np.sqrt(alpha * (1 - alpha) / z.shape[0])
    assert rejected <= alpha + 3 * se
    naive = (z >= stats.norm.isf(alpha)).any(axis=1).mean()
    assert naive > alpha + 3 * se  # the check can fail: testing every look at the nominal level inflates alpha


def test_power_stays_within_two_points_of_the_fixed_design():
    alpha = 0.05
    drift = stats.norm.isf(alpha) + stats.norm.ppf(0.8)  # the fixed design has 80% power
    z = _paths(200_000, drift, LOOKS, seed=2)
    sequential = (z >= np.asarray(boundaries(LOOKS, alpha))).any(axis=1).mean()
    fixed = (z[:, -1] >= stats.norm.isf(alpha)).mean()
    assert fixed == pytest.approx(0.8, abs=0.01)
    assert sequential >= fixed - 0.02
    stopped_early = (z[:, :-1] >= np.asarray(boundaries(LOOKS, alpha))[:-1]).any(axis=1).mean()
    assert stopped_early > 0.3  # a real effect usually ends the scan before its last round


def test_crossed_reads_a_p_value():
    p = nominal_alpha(LOOKS, 0.05)
    assert crossed(p[1] * 0.99, 1, LOOKS, 0.05) and not crossed(p[1] * 1.01, 1, LOOKS, 0.05)
    assert not crossed(None, 0, LOOKS, 0.05)
    with pytest.raises(ValueError):
        boundaries([0.5, 0.4], 0.05)
