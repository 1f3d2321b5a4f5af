"""Reading stage results back from a report: shared by the verdict's stages and the renderers.

The producers' own keys only (see each stage's `to_dict`); nothing here guesses aliases.
"""

from __future__ import annotations

from typing import Any


def trait_rows(stage: dict[str, Any] | None) -> list[dict[str, Any]]:
    """(trait, estimate, ci) of each trait row a signature or canary result reports."""
    return [
        {"trait": str(r.get("trait")), "estimate": r.get("estimate"), "ci": r.get("ci")}
        for r in (stage or {}).get("traits") or []
        if isinstance(r, dict)
    ]


def lineage_weights(lineage: dict[str, Any] | None) -> dict[str, Any]:
    """The weight tier's details (mean row cosine per layer, combined p), when it ran."""
    for e in (lineage or {}).get("evidence") or []:
        if isinstance(e, dict) and e.get("name") == "weights" and (e.get("details") or {}).get("layers"):
            return e["details"]
    return {}
