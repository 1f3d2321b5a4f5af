"""A content-addressed cache of stage results, so a re-run resumes instead of recomputing.

A stage's result is stored under the hash of everything it depends on: the models'
identities, the data fingerprint, the stage name and its config, the seed and the
tool version. A crashed scan, or a re-run for another output format, finds the
finished stages here; anything that changes an input changes the key. Failed stages
are never cached, so a re-run retries them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill_audit import __version__, distributed
from distill_audit.atomic import write_text

CACHE_FORMAT = 1


def default_root() -> Path:
    """$DISTILL_AUDIT_STAGE_CACHE, else $XDG_CACHE_HOME/distill-audit/stages (~/.cache by default)."""
    explicit = os.environ.get("DISTILL_AUDIT_STAGE_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "distill-audit" / "stages"


def stage_key(stage: str, *, models: dict[str, Any], data: dict[str, Any], config: dict[str, Any], seed: int) -> str:
    """sha256 over the canonical JSON of the stage's inputs."""
    payload = {
        "format": CACHE_FORMAT,
        "tool": __version__,
        "stage": stage,
        "models": models,
        "data": data,
        "config": config,
        "seed": seed,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class StageCache:
    """get/put JSON payloads by key; `enabled=False` (--no-cache) computes everything."""

    def __init__(self, root: str | Path | None = None, *, enabled: bool = True):
        self.root = Path(root) if root is not None else default_root()
        self.enabled = enabled

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        if not self.enabled:
            return None
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # missing or unreadable: recompute

    def put(self, key: str, value: Any) -> None:
        if self.enabled:
            write_text(self._path(key), json.dumps(value, allow_nan=False, sort_keys=True))

    def run(
        self, key: str, compute: Callable[[], Any], *, cacheable: Callable[[Any], bool] | None = None
    ) -> tuple[Any, str]:
        """(payload, "hit" | "miss" | "off"): the cached payload, or compute and store it.

        Under `accelerate launch` rank 0 alone reads and writes the cache and tells the
        other processes what it found, so every process takes the same branch (and the
        machines of a multi-node run need no shared cache folder).
        """
        if not self.enabled:
            return compute(), "off"
        hit = distributed.broadcast(self.get(key) if distributed.is_main() else None)
        if hit is not None:
            return hit, "hit"
        value = compute()
        if (cacheable is None or cacheable(value)) and distributed.is_main():
            self.put(key, value)
        return value, "miss"
