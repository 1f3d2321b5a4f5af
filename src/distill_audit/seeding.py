"""One --seed reaches every random number generator."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    except ImportError:  # pragma: no cover
        pass


def derive_seed(seed: int, *labels: str | int) -> int:
    """A stable sub-seed for one use (e.g. derive_seed(seed, 'canary', 'control', 1))."""
    import hashlib

    h = hashlib.sha256(repr((seed, *labels)).encode()).digest()
    return int.from_bytes(h[:4], "little")
