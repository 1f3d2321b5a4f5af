"""Reading a lineage result back: shared by the verdict and the report renderers."""

from __future__ import annotations

from typing import Any


def weight_details(lineage: dict[str, Any] | None) -> dict[str, Any]:
    """The weight tier's details (mean row cosine per layer, combined p), when it ran."""
    for e in (lineage or {}).get("evidence") or []:
        if isinstance(e, dict) and e.get("name") == "weights" and (e.get("details") or {}).get("layers"):
            return e["details"]
    return {}
