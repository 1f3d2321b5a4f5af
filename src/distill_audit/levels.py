"""Risk levels and their order, shared by the verdict, the reports and the gates.

`inconclusive` is not on the scale: it is what the verdict says when no line of
evidence could be used, and the gates rank it as `medium`.
"""

from __future__ import annotations

LEVELS = ("none", "low", "medium", "high")
INCONCLUSIVE = "inconclusive"
ALL_LEVELS = (*LEVELS, INCONCLUSIVE)


def gate_rank(level: str) -> int:
    """Rank for `--fail-on` and `--baseline`: inconclusive counts as `medium`.

    Untested risk must not pass a strict gate, but it is not evidence of high risk.
    """
    if level == INCONCLUSIVE:
        return LEVELS.index("medium")
    return LEVELS.index(level)
