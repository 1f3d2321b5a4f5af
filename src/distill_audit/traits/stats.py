"""Paired statistics for trait evidence, in one place.

Every trait measurement reduces to per-item numbers (one per probe paraphrase or per
data row) compared between two conditions. This module turns them into an estimate
with a confidence interval, a p-value, a correction across traits (Holm or
Benjamini-Hochberg), and the minimum detectable effect of the run, so that a null
reads as "we could have seen X" rather than "safe".

Two kinds of test:
- resampling (the canary's default): a bootstrap CI (scipy.stats.bootstrap) and a
  permutation p (scipy.stats.permutation_test: sign flips when paired, relabelling
  when not); its smallest p is about 1/B, so it suits small families;
- analytic (`test="t"`, and `location_tests` for a whole battery at once, which the
  data signature uses): a one-sample t for paired differences, Welch's t for two
  independent samples, with the t interval of the same standard error and degrees of
  freedom. Its p reaches any level, so it clears Holm over any battery size.

Items that share a template (several rows built from one paraphrase) are clustered:
they are averaged into one value per cluster first, so the CI and p-value never treat
correlated items as independent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy
from scipy import special, stats

ALPHA = 0.05
POWER = 0.80
N_RESAMPLES = 2000
LOGIT_EPS = 1e-6
ALTERNATIVES = ("two-sided", "greater", "less")


def _rng(seed: int) -> dict[str, Any]:
    """The seed keyword of scipy's resampling functions (`rng=` from scipy 1.15, `random_state=` before)."""
    major, minor = (int(x) for x in scipy.__version__.split(".")[:2])
    key = "rng" if (major, minor) >= (1, 15) else "random_state"
    return {key: np.random.default_rng(seed)}


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")


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


def mde_multiplier(
    *,
    alpha: float = ALPHA,
    power: float = POWER,
    alternative: str = "two-sided",
    m: int = 1,
    df: float | np.ndarray | None = None,
) -> float | np.ndarray:
    """(q_{1-level} + q_{power}): the MDE in standard errors, at level alpha/m.

    q are normal quantiles, or t quantiles with `df` degrees of freedom when given;
    level is alpha/m one-sided ("greater"/"less") or alpha/(2m) per tail two-sided.
    alpha/m is the first (strictest) step of Holm over m tests, the level a single
    real effect in a null family has to clear.
    """
    _check_alternative(alternative)
    level = alpha / max(int(m), 1)
    tail = level if alternative != "two-sided" else level / 2
    normal = float(stats.norm.isf(tail) + stats.norm.ppf(power))
    if df is None:
        return normal
    d = np.asarray(df, dtype=np.float64)
    out = np.where(
        np.isfinite(d),
        t_isf(tail, np.where(np.isfinite(d), d, 1.0)) + t_isf(1 - power, np.where(np.isfinite(d), d, 1.0)),
        normal,
    )
    return float(out) if out.ndim == 0 else out


def minimum_detectable_effect(
    sd: float,
    n: int,
    *,
    alpha: float = ALPHA,
    power: float = POWER,
    alternative: str = "two-sided",
    m: int = 1,
    df: float | None = None,
) -> float | None:
    """Smallest true mean difference a test at `alpha` (over m tests) finds with `power`.

    (q_{1-alpha/m'} + q_{power}) * sd / sqrt(n), normal quantiles unless `df` is given;
    alpha/m' is alpha/(2m) two-sided, alpha/m one-sided. The defaults (two-sided, one
    test, normal) are the canary's.
    """
    if n < 2 or not np.isfinite(sd):
        return None
    return float(mde_multiplier(alpha=alpha, power=power, alternative=alternative, m=m, df=df) * sd / np.sqrt(n))


def t_isf(q: float, df: np.ndarray | float) -> np.ndarray:
    """The t quantile with upper tail q (scipy.special.stdtrit, elementwise)."""
    return -special.stdtrit(np.asarray(df, dtype=np.float64), q)


def t_p_value(t: np.ndarray | float, df: np.ndarray | float, alternative: str = "two-sided") -> np.ndarray:
    """The t distribution's tail for a statistic t (elementwise; scipy.special.stdtr)."""
    _check_alternative(alternative)
    t = np.asarray(t, dtype=np.float64)
    df = np.asarray(df, dtype=np.float64)
    if alternative == "greater":
        return special.stdtr(df, -t)
    if alternative == "less":
        return special.stdtr(df, t)
    return np.minimum(1.0, 2 * special.stdtr(df, -np.abs(t)))


@dataclass
class LocationTests:
    """Mean differences of many statistics at once (columns), with their t tests."""

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    n: tuple[int, int]  # (items on the data side, on the reference side); paired: (pairs, pairs)
    paired: bool

    def t(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                self.se > 0,
                self.estimate / np.where(self.se > 0, self.se, 1.0),
                np.where(self.estimate > 0, np.inf, np.where(self.estimate < 0, -np.inf, 0.0)),
            )

    def p_value(self, alternative: str = "greater") -> np.ndarray:
        return t_p_value(self.t(), np.where(np.isfinite(self.df), self.df, 1.0), alternative)

    def ci(self, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
        """The two-sided (1 - alpha) t interval: the same se and df as the test."""
        q = t_isf(alpha / 2, np.where(np.isfinite(self.df), self.df, 1.0))
        return self.estimate - q * self.se, self.estimate + q * self.se


def location_tests(x: np.ndarray, y: np.ndarray | None = None, *, paired: bool = False) -> LocationTests:
    """Column-wise mean differences: x - y (paired: rows correspond) or mean(x) - mean(y) (Welch).

    x, y: [items x statistics]. Paired: the one-sample t of the per-item differences
    (df = n - 1). Two independent samples: Welch's standard error and the
    Welch-Satterthwaite degrees of freedom. y None: the one-sample t of x itself.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if y is not None:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
    if y is None or paired:
        d = x if y is None else x - y
        n = d.shape[0]
        est = d.mean(axis=0)
        sd = d.std(axis=0, ddof=1) if n > 1 else np.full(d.shape[1], np.nan)
        se = sd / np.sqrt(n)
        return LocationTests(est, se, np.full(d.shape[1], float(n - 1)), (n, n), True)
    nx, ny = x.shape[0], y.shape[0]
    vx = x.var(axis=0, ddof=1) / nx if nx > 1 else np.full(x.shape[1], np.nan)
    vy = y.var(axis=0, ddof=1) / ny if ny > 1 else np.full(y.shape[1], np.nan)
    se = np.sqrt(vx + vy)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (vx + vy) ** 2 / (vx**2 / max(nx - 1, 1) + vy**2 / max(ny - 1, 1))
    df = np.where(np.isfinite(df), df, float(nx + ny - 2))
    return LocationTests(x.mean(axis=0) - y.mean(axis=0), se, df, (nx, ny), False)


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


def _bootstrap_ci(
    data: tuple[np.ndarray, ...], statistic, *, paired: bool, alpha: float, seed: int
) -> tuple[float, float]:
    """Percentile-type bootstrap CI (BCa when it is defined, percentile otherwise)."""
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
                **_rng(seed),
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
    alternative: str = "two-sided",
    test: str = "permutation",
    m: int = 1,
) -> Effect:
    """Mean of paired per-item differences: a CI and a p-value.

    `clusters` labels items that share a template/paraphrase; they are averaged first,
    so resampling, sign flips and the t test happen per cluster.
    test="permutation" (default): bootstrap CI and sign-flip permutation p.
    test="t": the one-sample t test and its t interval (same se, df = k - 1).
    `alternative` is the tested direction; `m` the family size the MDE is corrected for
    (alpha/m, the first step of Holm).
    """
    _check_alternative(alternative)
    if test not in ("permutation", "t"):
        raise ValueError("test must be 'permutation' or 't'")
    diffs = np.asarray(diffs, dtype=np.float64)
    n_items = int(diffs.size)
    values = cluster_means(diffs, clusters)
    values = values[np.isfinite(values)]
    k = int(values.size)
    if k < 2:
        return Effect(
            name,
            clean(values.mean()) if k else None,
            None,
            None,
            None,
            n_items,
            k,
            None,
            True,
            status="underpowered",
            reason=f"only {k} cluster(s) of items",
        )
    estimate = float(values.mean())
    sd = float(values.std(ddof=1))
    extra: dict[str, Any] = {"se": sd / np.sqrt(k)}
    if alternative != "two-sided":
        extra["alternative"] = alternative
    if test == "t":
        lt = location_tests(values)
        p = float(lt.p_value(alternative)[0])
        lo, hi = (float(v[0]) for v in lt.ci(alpha))
        extra.update(test="t", df=float(k - 1))
        mde = minimum_detectable_effect(sd, k, alpha=alpha, alternative=alternative, m=m, df=k - 1) if sd > 0 else None
    elif sd == 0.0:
        # All values equal: every sign flip of the same sign is the extreme; the smallest sign-flip p.
        one = 2.0 ** (-k)
        if estimate == 0.0:
            p = 1.0
        elif alternative == "two-sided":
            p = 2 * one
        else:
            p = one if (estimate > 0) == (alternative == "greater") else 1.0
        lo = hi = estimate
        mde = minimum_detectable_effect(sd, k, alpha=alpha, alternative=alternative, m=m)
    else:
        res = stats.permutation_test(
            (values,),
            _mean,
            permutation_type="samples",
            n_resamples=n_permutations,
            vectorized=True,
            alternative=alternative,
            **_rng(seed),
        )
        p = float(res.pvalue)
        lo, hi = (
            _bootstrap_ci((values,), _mean, paired=True, alpha=alpha, seed=seed + 1) if with_ci else (np.nan, np.nan)
        )
        mde = minimum_detectable_effect(sd, k, alpha=alpha, alternative=alternative, m=m)
    return Effect(name, estimate, clean(lo), clean(hi), p, n_items, k, mde, True, significant=p < alpha, extra=extra)


def two_sample_effect(
    treated: np.ndarray,
    reference: np.ndarray,
    *,
    name: str = "effect",
    alpha: float = ALPHA,
    seed: int = 0,
    n_permutations: int = N_RESAMPLES,
    with_ci: bool = True,
    alternative: str = "two-sided",
    test: str = "permutation",
    m: int = 1,
) -> Effect:
    """Difference in means of two independent samples: a CI and a p-value.

    test="permutation" (default): bootstrap CI and relabelling permutation p.
    test="welch": Welch's t test and its t interval (Welch-Satterthwaite df).
    `alternative` and `m` as in `paired_effect`.
    """
    _check_alternative(alternative)
    if test not in ("permutation", "welch", "t"):
        raise ValueError("test must be 'permutation' or 'welch'")
    x = np.asarray(treated, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n = int(min(x.size, y.size))
    if n < 2:
        return Effect(
            name,
            None,
            None,
            None,
            None,
            int(x.size + y.size),
            int(x.size + y.size),
            None,
            False,
            status="underpowered",
            reason="fewer than 2 items on one side",
        )
    lt = location_tests(x, y)
    estimate = float(lt.estimate[0])
    se = float(lt.se[0])
    df = float(lt.df[0])
    extra: dict[str, Any] = {"se": se}
    if alternative != "two-sided":
        extra["alternative"] = alternative
    if se == 0.0:
        if estimate == 0.0:
            p = 1.0
        elif alternative == "two-sided":
            p = 0.0
        else:
            p = 0.0 if (estimate > 0) == (alternative == "greater") else 1.0
        lo = hi = estimate
    elif test in ("welch", "t"):
        p = float(lt.p_value(alternative)[0])
        lo, hi = (float(v[0]) for v in lt.ci(alpha))
        extra.update(test="welch", df=df)
    else:
        res = stats.permutation_test(
            (x, y),
            _diff_of_means,
            permutation_type="independent",
            n_resamples=n_permutations,
            vectorized=True,
            alternative=alternative,
            **_rng(seed),
        )
        p = float(res.pvalue)
        lo, hi = (
            _bootstrap_ci((x, y), _diff_of_means, paired=False, alpha=alpha, seed=seed + 1)
            if with_ci
            else (np.nan, np.nan)
        )
    z = mde_multiplier(alpha=alpha, alternative=alternative, m=m, df=df if test in ("welch", "t") else None)
    return Effect(
        name,
        estimate,
        clean(lo),
        clean(hi),
        p,
        int(x.size + y.size),
        int(x.size + y.size),
        z * se if se > 0 else None,
        False,
        significant=p < alpha,
        extra=extra,
    )


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
