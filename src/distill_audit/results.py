"""Reading the stages' result dicts: the normalized views the verdict and the reports share.

The verdict and the report renderers read the same `to_dict()` results; these
helpers normalize what the stages may spell differently (per-trait rows, confidence
intervals, the lineage weight tier) so both read them one way.
"""

from __future__ import annotations

from typing import Any


def first_value(d: dict[str, Any], *keys: str) -> Any:
    """The first of `keys` that `d` holds with a value other than None."""
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _ci(d: dict[str, Any]) -> list[float | None] | None:
    ci = first_value(d, "ci", "ci95", "confidence_interval")
    if isinstance(ci, dict):
        ci = [first_value(ci, "low", "lo", "lower"), first_value(ci, "high", "hi", "upper")]
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return [ci[0], ci[1]]
    lo, hi = first_value(d, "ci_low", "ci_lo", "lower"), first_value(d, "ci_high", "ci_hi", "upper")
    return [lo, hi] if lo is not None or hi is not None else None


def trait_rows(stage: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per-trait rows of a signature or canary result, normalized.

    Returns dicts with trait, estimate, ci, p (adjusted when the stage adjusts), mde,
    significant (None when the stage does not say).
    """
    if not stage:
        return []
    raw = first_value(stage, "traits", "per_trait", "results")
    if isinstance(raw, dict):
        raw = [{"trait": k, **v} for k, v in raw.items() if isinstance(v, dict)]
    rows = []
    for r in raw or []:
        if not isinstance(r, dict):
            continue
        rows.append(
            {
                "trait": str(first_value(r, "trait", "name", "label")),
                "estimate": first_value(r, "estimate", "effect", "did", "shift", "mean"),
                "ci": _ci(r),
                "p": first_value(r, "p_adj", "p_adjusted", "q", "p_holm", "p", "p_value"),
                "mde": first_value(r, "mde", "min_detectable_effect"),
                "significant": r.get("significant"),
            }
        )
    return rows


def lineage_weights(lineage: dict[str, Any] | None) -> dict[str, Any]:
    """The weight tier's details (mean row cosine per layer, combined p), when it ran."""
    for e in (lineage or {}).get("evidence") or []:
        if isinstance(e, dict) and e.get("name") == "weights" and (e.get("details") or {}).get("layers"):
            return e["details"]
    return {}
