"""A content-addressed cache of stage results, so a re-run resumes instead of recomputing.

A stage's result is stored under the hash of everything it depends on: the models'
identities, the data fingerprint, the stage name and its config, the seed and the
tool version. A crashed scan, or a re-run for another output format, finds the
finished stages here; anything that changes an input changes the key. Failed stages
are never cached, so a re-run retries them.

A long stage can also keep *parts* (a finished signature round, one canary seed) under
its key while it runs: `checkpoint()` inside a stage's compute gives the running
stage's `Checkpoint`, whose parts a killed run finds again on the re-run. Parts are
dropped once the whole stage result is stored.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from distill_audit import __version__, distributed
from distill_audit.atomic import write_text

CACHE_FORMAT = 1
_PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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

    def _parts_dir(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.parts"

    def _part_path(self, key: str, part: str) -> Path:
        if not _PART_NAME.match(part):
            raise ValueError(f"cache part name {part!r}: use letters, digits, '.', '_' or '-'")
        return self._parts_dir(key) / f"{part}.json"

    def get_part(self, key: str, part: str) -> Any | None:
        """A part stored under the stage `key` (None if missing, unreadable or the cache is off).

        Under `accelerate launch` rank 0 reads it and every process gets rank 0's answer,
        so all ranks resume from the same part; call it on every rank alike.
        """
        if not self.enabled:
            return None
        path = self._part_path(key, part)
        value = None
        if distributed.is_main():
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                value = None
        return distributed.broadcast(value)

    def put_part(self, key: str, part: str, value: Any) -> None:
        """Store a part atomically (rank 0 only): a kill mid-write leaves the old part or none."""
        path = self._part_path(key, part)
        if self.enabled and distributed.is_main():
            write_text(path, json.dumps(value, allow_nan=False, sort_keys=True))

    def drop_parts(self, key: str) -> None:
        """Remove the stage's parts (its whole result is stored, or its inputs are gone)."""
        if self.enabled and distributed.is_main():
            shutil.rmtree(self._parts_dir(key), ignore_errors=True)

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
            with _active(Checkpoint(self, key)):
                return compute(), "off"
        hit = distributed.broadcast(self.get(key) if distributed.is_main() else None)
        if hit is not None:
            return hit, "hit"
        with _active(Checkpoint(self, key)):
            value = compute()
        if (cacheable is None or cacheable(value)) and distributed.is_main():
            self.put(key, value)
            self.drop_parts(key)
        return value, "miss"


class Checkpoint:
    """The parts of one running stage: `get(part)` / `put(part, value)` under its cache key.

    A disabled cache (`--no-cache`) or a stage run outside the cache gives a checkpoint
    that stores nothing and finds nothing, so stage code needs no special case.
    """

    def __init__(self, cache: StageCache | None, key: str | None):
        self.cache, self.key = cache, key

    @property
    def enabled(self) -> bool:
        return self.cache is not None and self.key is not None and self.cache.enabled

    def get(self, part: str) -> Any | None:
        if not self.enabled:
            return None
        return self.cache.get_part(self.key, part)  # type: ignore[union-attr,arg-type]

    def put(self, part: str, value: Any) -> None:
        if self.enabled:
            self.cache.put_part(self.key, part, value)  # type: ignore[union-attr,arg-type]


_NO_CHECKPOINT = Checkpoint(None, None)
_current: contextvars.ContextVar[Checkpoint] = contextvars.ContextVar("stage_checkpoint", default=_NO_CHECKPOINT)


@contextlib.contextmanager
def _active(point: Checkpoint) -> Iterator[Checkpoint]:
    token = _current.set(point)
    try:
        yield point
    finally:
        _current.reset(token)


def checkpoint() -> Checkpoint:
    """The running stage's checkpoint (inside `StageCache.run`'s compute), else one that keeps nothing."""
    return _current.get()
