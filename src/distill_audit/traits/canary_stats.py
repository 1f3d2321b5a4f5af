"""The canary's deciding test: one interval and one p from one variance.

A canary effect is a difference in differences (DiD) measured per seed s and probe
paraphrase k: d[s, k] = P_treated(s, k) - P_control(s, k) (both arms start from one
base). Two kinds of noise move it: which paraphrases were asked (shared by every seed)
and which training run happened (shared by every paraphrase of one seed). A random
two-way model d[s, k] = mu + a_k + b_s + e_sk gives

    Var(mean d) = s_a^2 / K + s_b^2 / S + s_e^2 / (S K)

estimated as the sum of two one-way terms (each carries the interaction once, so the
sum is slightly conservative):

    V_para  = var_k(mean_s d[s, k]) / K        paraphrase SE^2, df K - 1
    V_train = var_s(mean_k d[s, k]) / S        seed-to-seed SE^2, df S - 1   (S >= 2)

With one seed V_train cannot be measured; the canary then borrows a training-noise
floor (the spread of other candidates' shifts in the same run; see canary.py) with its
own df. With two or more seeds the larger of the two is used (two seeds agreeing by
chance must not shrink the noise to nothing). Then

    SE = sqrt(V_para + V_train),  df = Satterthwaite,
    t = estimate / SE,  p = 2 P(T_df > |t|),  CI = estimate +- t_{1-alpha/2, df} SE,

so the CI excludes 0 exactly when p < alpha (before any correction across traits).
The minimum detectable effect at the corrected level uses the same SE and df:
(t_{1-alpha/(2m), df} + t_{power, df}) SE, alpha/m being Holm's strictest step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

POWER = 0.80


@dataclass
class DidTest:
    estimate: float | None
    se: float | None
    df: float | None
    ci: tuple[float | None, float | None]
    p_value: float | None
    se_paraphrases: float | None
    se_training: float | None
    training_source: str | None  # "seeds" | "floor" | None (unmeasured: no test)
    n_seeds: int
    n_paraphrases: int

    def mde(self, alpha: float, m: int, power: float = POWER) -> float | None:
        """Smallest shift found with `power` at the Bonferroni level alpha / m (Holm's first step)."""
        if self.se is None or self.df is None:
            return None
        q = stats.t.ppf(1 - alpha / (2 * max(m, 1)), self.df) + stats.t.ppf(power, self.df)
        return float(q * self.se)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "t, paraphrase + training-noise variance, Satterthwaite df",
            "se": self.se,
            "df": self.df if _finite(self.df) else None,
            "se_paraphrases": self.se_paraphrases,
            "se_training": self.se_training,
            "training_source": self.training_source,
            "n_seeds": self.n_seeds,
            "n_paraphrases": self.n_paraphrases,
        }


def _finite(x: float | None) -> bool:
    return x is not None and bool(np.isfinite(x))


def satterthwaite(parts: list[tuple[float, float]]) -> float:
    """Effective df of a sum of variance estimates [(variance, df), ...]."""
    total = sum(v for v, _ in parts)
    denom = sum(v * v / d for v, d in parts if v > 0 and d > 0 and np.isfinite(d))
    if total <= 0 or denom <= 0:
        return float("inf")
    return float(total * total / denom)


def did_test(did: np.ndarray, *, floor: float | None = None, floor_df: float = 8, alpha: float = 0.05) -> DidTest:
    """The deciding test of one trait from its per-seed, per-paraphrase DiD matrix [S x K].

    `floor` is a training-noise SE for the mean estimate measured another way (None:
    none); it stands in for the seed term with one seed and bounds it from below with more.
    """
    did = np.atleast_2d(np.asarray(did, dtype=np.float64))
    did = did[:, np.all(np.isfinite(did), axis=0)]
    n_seeds, k = did.shape
    empty = DidTest(None, None, None, (None, None), None, None, None, None, n_seeds, k)
    if k == 0:
        return empty
    estimate = float(did.mean())
    if k < 2:
        empty.estimate = estimate
        return empty
    v_para = float(did.mean(axis=0).var(ddof=1) / k)
    parts = [(v_para, k - 1.0)]
    v_seed = float(did.mean(axis=1).var(ddof=1) / n_seeds) if n_seeds > 1 else float("nan")
    floor_v = float(floor) ** 2 if _finite(floor) else float("nan")
    if np.isfinite(v_seed) and not (np.isfinite(floor_v) and floor_v > v_seed):
        v_train, source, df_train = v_seed, "seeds", n_seeds - 1.0
    elif np.isfinite(floor_v):
        v_train, source, df_train = floor_v, "floor", float(floor_df)
    else:  # training noise unmeasured: no test that could fail honestly
        return DidTest(estimate, None, None, (None, None), None, float(np.sqrt(v_para)), None, None, n_seeds, k)
    parts.append((v_train, df_train))
    var = v_para + v_train
    se = float(np.sqrt(var))
    df = satterthwaite(parts)
    if se == 0.0:
        p = 1.0 if estimate == 0.0 else 0.0
        lo = hi = estimate
    else:
        p = float(2 * stats.t.sf(abs(estimate) / se, df))
        half = float(stats.t.ppf(1 - alpha / 2, df) * se)
        lo, hi = estimate - half, estimate + half
    return DidTest(estimate, se, df, (lo, hi), p, float(np.sqrt(v_para)), float(np.sqrt(v_train)), source, n_seeds, k)
