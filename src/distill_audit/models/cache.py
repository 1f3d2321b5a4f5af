"""The user model cache: converted GGUF copies, the tiny smoke model, file hashes.

Lives under `$XDG_CACHE_HOME/distill-audit/models/` (default `~/.cache`). Folders are
content-addressed (named by the source file's sha256) and published by renaming a
finished temp folder, so a conversion killed halfway never leaves a broken copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from distill_audit import atomic

COMPLETE_MARKER = ".complete"


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/distill-audit` (or `~/.cache/distill-audit`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "distill-audit"


def model_cache_dir() -> Path:
    return cache_root() / "models"


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temp folder beside `target`; publish it as `target` only on success.

    The folder is marked complete before it is published. If another process published
    `target` first, ours is discarded (same content); an incomplete leftover of an
    older, broken writer is replaced.
    """
    _remove_stale_temps(target)
    # 0o755: the cache is meant to be shared.
    with atomic.atomic_dir(target, keep_existing=is_complete, mode=0o755) as tmp:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")


def _remove_stale_temps(target: Path, max_age_s: float = 3600.0) -> None:
    """Temp folders of killed writers (older than any live conversion) are removed."""
    import time

    for old in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if time.time() - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def _hash_index_path() -> Path:
    return cache_root() / "file-hashes.json"


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so big files hash once."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    index_path = _hash_index_path()
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    index[key] = value
    try:
        atomic.write_text(index_path, json.dumps(index, indent=0, sort_keys=True))
    except OSError:  # a read-only cache only costs a re-hash next time
        pass
    return value
