"""Which statistic ranks the rows, and each scored row's value of it.

The scan already says what it found (`top_rows_by`): the first named trait's contrast,
else the class that stands out, else the overall persona shift. Sanitize ranks by the
same column. In a paired design a row's value is its own minus its reference partner's
(the difference the paired test uses, free of the prompt's own pull); in a two-sample
design it is the data row's value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distill_audit.sanitize.scores import Scored
from distill_audit.traits.signature import statistic_weights


@dataclass(frozen=True)
class Units:
    """One unit per scored data row (a pair in a paired design)."""

    statistic: str  # "shift", "class_<c>", "contrast_<t>"
    data: np.ndarray  # the data row's value of the statistic
    reference: np.ndarray  # the reference rows' values (row k pairs with data row k when paired)
    paired: bool

    @property
    def effect(self) -> np.ndarray:
        """What is ranked: the pair difference (paired) or the data value (two-sample)."""
        return self.data - self.reference if self.paired else self.data

    def estimate(self, keep: np.ndarray | None = None) -> float:
        """The statistic's estimate (data minus reference) on the kept units, as the signature computes it."""
        k = np.ones(len(self.data), bool) if keep is None else keep
        if self.paired:
            return float(np.mean(self.data[k] - self.reference[k]))
        return float(np.mean(self.data[k]) - np.mean(self.reference))


def statistic_of(scored: Scored) -> str:
    return str(scored.result.get("top_rows_by") or "shift")


def units(scored: Scored) -> Units:
    """Per-row values of the ranking statistic on both sides, from the per-prompt LLS."""
    name = statistic_of(scored)
    names = scored.prompts
    traits = [t for t in scored.traits if t.name in names]
    st = statistic_weights(traits)
    col = st.labels.index(name)
    X = np.stack([scored.data_lls()[n] for n in st.names], axis=1)
    R = np.stack([scored.reference_lls[n] for n in st.names], axis=1)
    return Units(name, X @ st.weights[:, col], R @ st.weights[:, col], scored.paired)


def order(u: Units) -> np.ndarray:
    """Unit positions from the most to the least carrying (stable: ties keep file order)."""
    return np.argsort(-u.effect, kind="stable")


def top(u: Units, n_drop: int) -> np.ndarray:
    """A keep-mask that drops the `n_drop` highest-ranked units."""
    keep = np.ones(len(u.data), bool)
    keep[order(u)[:n_drop]] = False
    return keep
