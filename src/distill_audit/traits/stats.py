"""Paired statistics for trait evidence, in one place.

Every trait measurement reduces to per-item numbers (one per probe paraphrase or per
data row) compared between two conditions. This module turns them into an estimate
with a bootstrap CI (scipy.stats.bootstrap), a permutation p-value
(scipy.stats.permutation_test: sign flips when paired, relabelling when not),
a correction across traits (Holm or Benjamini-Hochberg), and the minimum detectable
effect of the run, so that a null reads as "we could have seen X" rather than "safe".

Items that share a template (several rows built from one paraphrase) are clustered:
they are averaged into one value per cluster first, so the CI and p-value never treat
correlated items as independent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.80
N_RESAMPLES = 2000
LOGIT_EPS = 1e-6


def clean(value: Any) -> Any:
    """A JSON-safe number: NaN/inf become None, numpy scalars become Python floats."""
    if value is None:
        return None
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def logit(p: np.ndarray | float, eps: float = LOGIT_EPS) -> np.ndarray:
    """Log-odds, with probabilities clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def diff_in_diff(
    before_treated: np.ndarray,
    after_treated: np.ndarray,
    before_control: np.ndarray,
    after_control: np.ndarray,
) -> np.ndarray:
    """Per-item change in the treated student minus change in the control student."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (before_treated, after_treated, before_control, after_control)]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("difference in differences needs the same items in all four conditions")
    bt, at, bc, ac = arrays
    return (at - bt) - (ac - bc)


def cluster_means(values: np.ndarray, clusters: Sequence[Any] | None) -> np.ndarray:
    """One value per cluster (mean of its items), in first-seen cluster order."""
    values = np.asarray(values, dtype=np.float64)
    if clusters is None:
        return values
    if len(clusters) != len(values):
        raise ValueError("clusters must label every item")
    order: dict[Any, list[int]] = {}
    for i, c in enumerate(clusters):
        order.setdefault(c, []).append(i)
    return np.array([values[idx].mean() for idx in order.values()], dtype=np.float64)


def minimum_detectable_effect(sd: float, n: int, *, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest true mean difference a two-sided test at `alpha` finds with `power`.

    Normal approximation: (z_{1-alpha/2} + z_{power}) * standard error.
    """
    if n < 2 or not np.isfinite(sd):
        return None
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * sd / np.sqrt(n))


@dataclass
class Effect:
    """One estimated difference with its uncertainty."""

    name: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_items: int
    n_clusters: int
    mde: float | None  # minimum detectable effect at 80% power, alpha 0.05, same units as estimate
    paired: bool
    p_adjusted: float | None = None
    correction: str | None = None
    significant: bool = False
    status: str = "ok"
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "estimate": clean(self.estimate),
            "ci": [clean(self.ci_low), clean(self.ci_high)],
            "p_value": clean(self.p_value),
            "p_adjusted": clean(self.p_adjusted),
            "correction": self.correction,
            "significant": bool(self.significant),
            "n_items": self.n_items,
            "n_clusters": self.n_clusters,
            "mde": clean(self.mde),
            "paired": self.paired,
            "status": self.status,
            "reason": self.reason,
            **{k: clean(v) for k, v in self.extra.items()},
        }


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _diff_of_means(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _bootstrap_ci(data: tuple[np.ndarray, ...], statistic, *, paired: bool, alpha: float, seed: int) -> tuple[float, float]:
    """Percentile-type bootstrap CI (BCa when it is defined, percentile otherwise)."""
    rng = np.random.default_rng(seed)
    for method in ("BCa", "percentile"):
        try:
            res = stats.bootstrap(
                data,
                statistic,
                n_resamples=N_RESAMPLES,
                confidence_level=1 - alpha,
                method=method,
                paired=paired,
                vectorized=True,
                rng=rng,
            )
        except (ValueError, FloatingPointError):
            continue
        lo, hi = res.confidence_interval
        if np.isfinite(lo) and np.isfinite(hi):
            return float(lo), float(hi)
    return float("nan"), float("nan")


def paired_effect(
    diffs: np.ndarray,
    clusters: Sequence[Any] | None = None,
    *,
    name: str = "effect",
    alpha: float = ALPHA,
    seed: int = 0,
    n_permutations: int = N_RESAMPLES,
    with_ci: bool = True,
) -> Effect:
    """Mean of paired per-item differences: bootstrap CI and sign-flip permutation p.

    `clusters` labels items that share a template/paraphrase; they are averaged first,
    so resampling and sign flips happen per cluster.
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    n_items = int(diffs.size)
    values = cluster_means(diffs, clusters)
    values = values[np.isfinite(values)]
    k = int(values.size)
    if k < 2:
        return Effect(name, clean(values.mean()) if k else None, None, None, None, n_items, k, None, True,
                      status="underpowered", reason=f"only {k} cluster(s) of items")
    estimate = float(values.mean())
    sd = float(values.std(ddof=1))
    if sd == 0.0:
        p = 1.0 if estimate == 0.0 else 2.0 ** (1 - k)  # all signs equal: the smallest sign-flip p
        lo = hi = estimate
    else:
        res = stats.permutation_test(
            (values,), _mean, permutation_type="samples", n_resamples=n_permutations,
            vectorized=True, alternative="two-sided", rng=np.random.default_rng(seed),
        )
        p = float(res.pvalue)
        lo, hi = _bootstrap_ci((values,), _mean, paired=True, alpha=alpha, seed=seed + 1) if with_ci else (np.nan, np.nan)
    return Effect(name, estimate, clean(lo), clean(hi), p, n_items, k,
                  minimum_detectable_effect(sd, k, alpha=alpha), True, significant=p < alpha)


def two_sample_effect(
    treated: np.ndarray,
    reference: np.ndarray,
    *,
    name: str = "effect",
    alpha: float = ALPHA,
    seed: int = 0,
    n_permutations: int = N_RESAMPLES,
    with_ci: bool = True,
) -> Effect:
    """Difference in means of two independent samples: bootstrap CI and permutation p."""
    x = np.asarray(treated, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n = int(min(x.size, y.size))
    if n < 2:
        return Effect(name, None, None, None, None, int(x.size + y.size), int(x.size + y.size), None, False,
                      status="underpowered", reason="fewer than 2 items on one side")
    estimate = float(x.mean() - y.mean())
    se = float(np.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size))
    if se == 0.0:
        p, lo, hi = (1.0 if estimate == 0.0 else 0.0), estimate, estimate
    else:
        res = stats.permutation_test(
            (x, y), _diff_of_means, permutation_type="independent", n_resamples=n_permutations,
            vectorized=True, alternative="two-sided", rng=np.random.default_rng(seed),
        )
        p = float(res.pvalue)
        lo, hi = _bootstrap_ci((x, y), _diff_of_means, paired=False, alpha=alpha, seed=seed + 1) if with_ci else (np.nan, np.nan)
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER))
    return Effect(name, estimate, clean(lo), clean(hi), p, int(x.size + y.size), int(x.size + y.size),
                  z * se if se > 0 else None, False, significant=p < alpha, extra={"se": se})


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values (family-wise error); None stays None."""
    idx = [i for i, p in enumerate(p_values) if p is not None and np.isfinite(p)]
    out: list[float | None] = [None] * len(p_values)
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):  # type: ignore[arg-type,return-value]
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate); None stays None."""
    idx = [i for i, p in enumerate(p_values) if p is not None and np.isfinite(p)]
    out: list[float | None] = [None] * len(p_values)
    if idx:
        adjusted = stats.false_discovery_control(np.array([p_values[i] for i in idx], dtype=np.float64), method="bh")
        for i, q in zip(idx, adjusted):
            out[i] = float(q)
    return out


def correct(effects: Sequence[Effect], method: str = "holm", *, alpha: float = ALPHA) -> list[Effect]:
    """Adjust the p-values of a family of effects in place and mark what survives."""
    methods = {"holm": holm, "bh": benjamini_hochberg, "fdr": benjamini_hochberg}
    if method not in methods:
        raise ValueError(f"unknown correction {method!r} (use holm or bh)")
    adjusted = methods[method]([e.p_value for e in effects])
    for effect, q in zip(effects, adjusted):
        effect.p_adjusted = q
        effect.correction = "bh" if method == "fdr" else method
        effect.significant = q is not None and q < alpha
    return list(effects)


def probability_did(
    before_treated: np.ndarray,
    after_treated: np.ndarray,
    before_control: np.ndarray,
    after_control: np.ndarray,
    clusters: Sequence[Any] | None = None,
    *,
    name: str = "effect",
    seed: int = 0,
) -> dict[str, Effect]:
    """Difference in differences of probabilities, on log-odds and in probability points."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (before_treated, after_treated, before_control, after_control)]
    return {
        "log_odds": paired_effect(diff_in_diff(*[logit(a) for a in arrays]), clusters, name=name, seed=seed),
        "prob_points": paired_effect(diff_in_diff(*arrays), clusters, name=name, seed=seed),
    }


def seed_summary(estimates: Mapping[int, float | None] | Sequence[float | None]) -> dict[str, Any]:
    """Seed-to-seed variation of one estimate (reported beside, never pooled into, the CI)."""
    values = list(estimates.values()) if isinstance(estimates, Mapping) else list(estimates)
    finite = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return {"n_seeds": 0, "mean": None, "sd": None, "min": None, "max": None, "same_sign": None}
    return {
        "n_seeds": int(finite.size),
        "mean": clean(finite.mean()),
        "sd": clean(finite.std(ddof=1)) if finite.size > 1 else None,
        "min": clean(finite.min()),
        "max": clean(finite.max()),
        "same_sign": bool(np.all(finite > 0) or np.all(finite < 0)),
        "values": [clean(v) for v in values],
    }
