"""`distill-audit cache list|clear`: what the local cache holds, and removing it.

The cache is a set of areas, each a folder or file with one owner: converted model
copies and the tiny model (models/cache.py), stage results (scan/cache.py, which
honours DISTILL_AUDIT_STAGE_CACHE), this machine's measured speed (beside the stage
results), stored calibrations, crash logs and the file-hash index. Each location is
asked of its owner, so XDG_CACHE_HOME and DISTILL_AUDIT_STAGE_CACHE move them here as
they do for scan. The Hugging Face cache is not ours and is never touched. The
subcommands take no --config (a nested command has no config section); their flags
read DISTILL_AUDIT_CACHE_<SUBCOMMAND>_<FLAG> like every other flag.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from distill_audit import ui
from distill_audit.cli.main import QuietOpt, app
from distill_audit.errors import UsageError

cache_app = typer.Typer(
    help="List or clear the local cache (models, stage results, machine speed, calibrations, logs).",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


def _stages() -> Path:
    from distill_audit.scan.cache import default_root

    return default_root()


def _root() -> Path:
    from distill_audit.models.cache import cache_root

    return cache_root()


def _calibrations() -> Path:
    from distill_audit.scan.calibration import calibration_root

    return calibration_root()


@dataclass(frozen=True)
class Area:
    name: str
    what: str
    location: Callable[[], Path]


# The registry of cache areas; a new kind of cached file adds one line here.
AREAS: tuple[Area, ...] = (
    Area("models", "converted model copies (GGUF -> safetensors) and the tiny test model", lambda: _root() / "models"),
    Area("stages", "cached stage results of earlier scans", _stages),
    Area("machine", "this machine's measured scoring speed (sizes --budget)", lambda: _stages().parent / "machine"),
    Area("calibration", "stored canary calibrations per student", _calibrations),
    Area("logs", "crash logs with tracebacks", lambda: _root() / "logs"),
    Area(
        "hashes",
        "the file-hash index (sha256 of large files by path, size and time)",
        lambda: _root() / "file-hashes.json",
    ),
)
AREA_NAMES = tuple(a.name for a in AREAS)


def _size(path: Path) -> tuple[int, int]:
    """(bytes, files) under a path, not following symlinks."""
    if path.is_symlink() or path.is_file():
        return (path.lstat().st_size, 1)
    total = files = 0
    for p in path.rglob("*"):
        if p.is_symlink() or p.is_file():
            total += p.lstat().st_size
            files += 1
    return total, files


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


def cache_listing(names: tuple[str, ...] = AREA_NAMES) -> list[dict[str, Any]]:
    """Each area: where it is, whether it exists, its size and files (models: one entry per model)."""
    rows = []
    for area in AREAS:
        if area.name not in names:
            continue
        path = area.location()
        exists = path.exists()
        size, files = _size(path) if exists else (0, 0)
        row: dict[str, Any] = {
            "area": area.name,
            "what": area.what,
            "path": str(path),
            "exists": exists,
            "bytes": size,
            "files": files,
        }
        if area.name == "models" and exists and path.is_dir():
            row["entries"] = []
            for child in sorted(p for p in path.iterdir() if p.is_dir()):
                for entry in sorted(child.iterdir()) if child.name == "gguf" else [child]:
                    b, _ = _size(entry)
                    row["entries"].append({"name": str(entry.relative_to(path)), "bytes": b})
        rows.append(row)
    return rows


def _selected(what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(w.strip() for w in what.split(",") if w.strip()))
    if "all" in names:
        return AREA_NAMES
    bad = [n for n in names if n not in AREA_NAMES]
    if bad or not names:
        raise UsageError(f"--what: unknown area {', '.join(bad) or repr(what)} (choose all or {', '.join(AREA_NAMES)})")
    return names


class ListFormat(str, Enum):
    table = "table"
    json = "json"


WhatOpt = Annotated[
    str,
    typer.Option("--what", "-w", help=f"Comma list of areas: all, {', '.join(AREA_NAMES)}."),
]


@cache_app.command("list")
def cache_list(
    what: WhatOpt = "all",
    format: Annotated[ListFormat, typer.Option("--format", "-f", help="table or json.")] = ListFormat.table,  # noqa: A002
    quiet: QuietOpt = False,
) -> None:
    """Show each cache area: its folder, size and files (each cached model with its size)."""
    ui.set_quiet(quiet)
    rows = cache_listing(_selected(what))
    if format == ListFormat.json:
        ui.out.print(json.dumps({"areas": rows}, indent=2), markup=False, highlight=False, soft_wrap=True)
        return
    from rich.table import Table

    table = Table("area", "size", "files", "path")
    for r in rows:
        table.add_row(r["area"], _human(r["bytes"]) if r["exists"] else "-", str(r["files"]), r["path"])
        for e in r.get("entries", []):
            table.add_row("", _human(e["bytes"]), "", f"  {e['name']}")
    ui.out.print(table)
    ui.out.print(f"total: {_human(sum(r['bytes'] for r in rows))}", highlight=False)


@cache_app.command("clear")
def cache_clear(
    what: WhatOpt = "all",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Remove without asking (required: nothing is removed without it).")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Remove the chosen cache areas (models are rebuilt and results recomputed when next needed)."""
    ui.set_quiet(quiet)
    rows = [r for r in cache_listing(_selected(what)) if r["exists"]]
    summary = ", ".join(f"{r['area']} ({_human(r['bytes'])})" for r in rows) or "nothing"
    if not rows:
        ui.out.print("cache: nothing to remove", highlight=False)
        return
    if not yes:
        raise UsageError(f"cache clear would remove {summary}; nothing removed: add --yes to remove it")
    for r in rows:
        path = Path(r["path"])
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    ui.out.print(f"removed {summary}", highlight=False)
