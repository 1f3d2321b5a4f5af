"""Re-audit kept rows from their cached scores, beside random removals and a selection-aware null.

A row's per-prompt LLS do not change when other rows are removed, so `analyse` on the
kept rows is the re-audit, with no forward pass: the random arms cost milliseconds.

Two cautions the numbers carry:
- The targeted rows were chosen on the very scores the re-audit reads, so even rows of
  pure noise lose part of their estimate when their top is cut (the winner's curse). A
  random arm does not pay that, so "targeted left less than random" holds on any data.
- The selection test asks the fair question instead: does cutting the top of the data
  remove more than cutting the top of rows that carry nothing (a permutation against the
  reference's own rows) removes? Under a shift shared by every row (nothing to
  find row by row) both drops are alike and the test keeps its level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from distill_audit.levels import LEVELS, gate_rank
from distill_audit.sanitize.rank import Units, top
from distill_audit.sanitize.scores import Scored
from distill_audit.traits.signature import MIN_ROWS, analyse

N_BOOT = 2000  # bootstrap draws for the ratio's CI and the selection null
TARGET_LOOKS = 12  # at most this many re-audits in a --target search


def reaudit(scored: Scored, keep: np.ndarray) -> dict[str, Any]:
    """The signature's analysis of the kept rows (their reference partners too when paired)."""
    d = {k: v[keep] for k, v in scored.data_lls().items()}
    r = {k: (v[keep] if scored.paired else v) for k, v in scored.reference_lls.items()}
    idx = [row["index"] for row, k in zip(scored.rows, keep) if k]
    res = analyse(d, r, scored.traits, scored.config(), paired=scored.paired, data_index=idx)
    out = res.to_dict()
    return {k: out[k] for k in ("status", "reason", "n_data", "n_reference", "finding", "named", "shift", "classes")}


def level_of(audit: dict[str, Any], max_mde: float | None) -> str:
    """The level the signature alone supports (as the verdict reads it, before lineage)."""
    finding = audit.get("finding") or "none"
    if finding == "trait" and audit.get("named"):
        return "high"
    if finding in ("trait", "class", "shift"):
        return "medium"
    mdes = [e.get("mde") for e in [audit.get("shift") or {}, *(audit.get("classes") or [])] if e.get("mde") is not None]
    powered = audit.get("status") == "ok" and mdes and (max_mde is None or max(mdes) <= max_mde)
    return "low" if powered else "inconclusive"


def under(level: str, target: str) -> bool:
    return gate_rank(level) <= gate_rank(target)


@dataclass
class Arm:
    """One removal: which units it kept and what the re-audit found."""

    name: str
    keep: np.ndarray
    estimate: float
    left: float | None  # estimate after / before
    audit: dict[str, Any] = field(default_factory=dict)
    level: str = "inconclusive"


def left_ci(u: Units, keep: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT) -> list[float | None]:
    """95% percentile bootstrap of after/before for a fixed removal (units resampled; reference
    rows resampled on their own in a two-sample design)."""
    n = len(u.data)
    before0 = u.estimate()
    if not np.isfinite(before0) or before0 <= 0:
        return [None, None]
    ratios = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        ki = keep[i]
        if ki.sum() < 2:
            continue
        if u.paired:
            e = u.data[i] - u.reference[i]
            b, a = e.mean(), e[ki].mean()
        else:
            rm = u.reference[rng.integers(0, len(u.reference), len(u.reference))].mean()
            b, a = u.data[i].mean() - rm, u.data[i][ki].mean() - rm
        if b > 0:
            ratios.append(a / b)
    if len(ratios) < n_boot // 2:
        return [None, None]
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return [float(lo), float(hi)]


def arm(name: str, scored: Scored, u: Units, keep: np.ndarray, max_mde: float | None) -> Arm:
    before = u.estimate()
    est = u.estimate(keep)
    audit = reaudit(scored, keep)
    return Arm(name, keep, est, est / before if before > 0 else None, audit, level_of(audit, max_mde))


def random_keeps(n: int, n_drop: int, draws: int, seed: int) -> list[np.ndarray]:
    """`draws` keep-masks, each dropping `n_drop` units at random (one seeded stream)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        keep = np.ones(n, bool)
        keep[rng.choice(n, size=n_drop, replace=False)] = False
        out.append(keep)
    return out


def _drop(x: np.ndarray, n_drop: int) -> float:
    """mean(x) - mean(x without its top n_drop): what cutting the top removes (location-free)."""
    s = np.sort(x)[::-1]
    return float(x.mean() - s[n_drop:].mean())


def selection_test(u: Units, n_drop: int, rng: np.random.Generator, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Does cutting the data's top `n_drop` rows remove more than cutting the top of carrier-free rows?

    Observed: the drop on the data rows' values of the ranking statistic. Null: a
    permutation test against the reference's rows (written without the trait), each side
    centred on its own median first (robust to the carriers it looks for), so a shift every row shares is allowed: under the null
    the centred values of both sides are exchangeable and any n of them drop alike.
    p = (1 + #null >= observed) / (1 + draws). It assumes the reference's rows spread like a
    carrier-free version of the data (a matched reference); a reference of another source
    can spread otherwise.
    """
    x, ref = u.data, u.reference
    n = len(x)
    observed = _drop(x, n_drop)
    pooled = np.concatenate([x - np.median(x), ref - np.median(ref)])
    null = np.array([_drop(pooled[rng.permutation(len(pooled))[:n]], n_drop) for _ in range(n_boot)])
    p = float((1 + np.sum(null >= observed)) / (1 + n_boot))
    return {
        "observed_drop": observed,
        "null_drop_mean": float(null.mean()),
        "null_drop_q95": float(np.quantile(null, 0.95)),
        "p_value": p,
        "n_reference_rows": int(len(ref)),
        "draws": n_boot,
    }


def versus_random(targeted: Arm, randoms: list[Arm]) -> dict[str, Any]:
    """Targeted's share left against the random arms': their mean, a 95% interval over draws, and
    a one-sided prediction-interval t (is targeted below a new random draw?). In-sample: see the
    module note; the selection test is what decides whether targeting beat chance."""
    vals = np.array([a.left for a in randoms if a.left is not None], dtype=np.float64)
    out: dict[str, Any] = {"draws": int(len(vals)), "left_mean": None, "left_interval": [None, None], "p_value": None}
    if len(vals) == 0 or targeted.left is None:
        return out
    out["left_mean"] = float(vals.mean())
    out["left_interval"] = [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))]
    out["rank_p"] = float((1 + np.sum(vals <= targeted.left)) / (1 + len(vals)))
    if len(vals) >= 2 and vals.std(ddof=1) > 0:
        t = (vals.mean() - targeted.left) / (vals.std(ddof=1) * np.sqrt(1 + 1 / len(vals)))
        out["p_value"] = float(sps.t.sf(t, df=len(vals) - 1))
    return out


def search_target(
    scored: Scored, u: Units, target: str, max_mde: float | None, max_fraction: float = 0.9
) -> tuple[int | None, list[dict[str, Any]]]:
    """The fewest top units whose removal re-audits at or under `target`, by bisection (levels fall as
    carriers go, but also as rows go: an underpowered re-audit is `inconclusive`, never `low`).
    Returns (n_drop or None when even the most allowed does not reach it, the looks taken)."""
    if target not in LEVELS:
        raise ValueError(target)
    n = len(u.data)
    hi = max(1, min(int(max_fraction * n), n - MIN_ROWS))
    looks: list[dict[str, Any]] = []

    def ok(k: int) -> bool:
        level = level_of(reaudit(scored, top(u, k)), max_mde)
        looks.append({"n_drop": k, "level": level})
        return under(level, target)

    if hi < 1 or not ok(hi):
        return None, looks
    lo = 0  # not known to reach (the full data is above target, else nothing to do)
    while hi - lo > 1 and len(looks) < TARGET_LOOKS:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi, looks
