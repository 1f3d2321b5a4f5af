"""A Hugging Face dataset id read from the local caches only: subset, split and revision.

Two caches can hold a Hub dataset. The hub cache (`$HF_HUB_CACHE/datasets--org--name/
snapshots/<commit>/`) keeps the repository's files per commit, so it is the one that can
honour `--revision` (a branch, tag or commit); its files are read with
`datasets.load_dataset(<snapshot folder>, name=subset)`. The datasets cache
(`$HF_DATASETS_CACHE/org___name/<subset>/...`) keeps prepared Arrow tables per subset
but records no revision, so it serves requests without `--revision`. Nothing touches
the network (`readers.hub_offline`). A request the caches cannot serve fails with one
line naming what is cached (subsets, splits, revisions) and how to fetch the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill_audit.errors import DataError, NothingToAuditError, UsageError


@dataclass(frozen=True)
class HubSelection:
    """What to read of a dataset: --subset (config name), --split, --revision."""

    subset: str | None = None
    split: str | None = None
    revision: str | None = None

    def given(self) -> list[str]:
        return [f"--{k}" for k, v in (("subset", self.subset), ("split", self.split), ("revision", self.revision)) if v]


def _hub_cache() -> Path:
    import huggingface_hub.constants as hconst

    return Path(hconst.HF_HUB_CACHE)


def _datasets_cache() -> Path:
    import datasets.config as dconfig

    return Path(dconfig.HF_DATASETS_CACHE)


def cached_revisions(repo_id: str) -> dict[str, list[str]]:
    """The hub cache's snapshots of a dataset: {"refs": branch/tag names, "commits": commit hashes}."""
    folder = _hub_cache() / f"datasets--{repo_id.replace('/', '--')}"
    refs = sorted(p.relative_to(folder / "refs").as_posix() for p in (folder / "refs").rglob("*") if p.is_file())
    commits = sorted(p.name for p in (folder / "snapshots").glob("*") if p.is_dir())
    return {"refs": refs, "commits": commits}


def cached_subsets(repo_id: str) -> list[str]:
    """The subsets the datasets cache holds prepared tables of."""
    from datasets.naming import camelcase_to_snakecase

    parts = repo_id.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    root = _datasets_cache() / "___".join(parts)
    return sorted(p.name for p in root.glob("*") if p.is_dir() and any(p.glob("*/*/dataset_info.json")))


def _snapshot(repo_id: str, revision: str | None) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision or None, local_files_only=True))
    except Exception:  # noqa: BLE001 - the hub client raises several types for "not cached"
        return None


def _what_is_cached(repo_id: str) -> str:
    revs, subsets = cached_revisions(repo_id), cached_subsets(repo_id)
    parts = []
    if revs["refs"] or revs["commits"]:
        named = revs["refs"] + [c[:12] for c in revs["commits"]]
        parts.append(f"hub cache revisions: {', '.join(named)}")
    if subsets:
        parts.append(f"prepared subsets: {', '.join(subsets)}")
    return "; ".join(parts) or "nothing of it is cached"


def _fetch_hint(repo_id: str, sel: HubSelection) -> str:
    rev = f" --revision {sel.revision}" if sel.revision else ""
    return f"fetch it where the hub is reachable: huggingface-cli download --repo-type dataset {repo_id}{rev}"


def load_hub(repo_id: str, sel: HubSelection) -> tuple[Any, dict[str, Any]]:
    """The selected split of a cached dataset id and what was read ({subset, split, revision})."""
    import datasets

    from distill_audit.ingest.readers import hub_offline

    with hub_offline():
        snapshot = _snapshot(repo_id, sel.revision)
        if snapshot is None and sel.revision:
            raise DataError(
                f"{repo_id}: revision {sel.revision!r} is not in the local Hugging Face cache ({_what_is_cached(repo_id)})",
                hint=_fetch_hint(repo_id, sel),
            )
        if snapshot is None and not cached_subsets(repo_id) and not any(cached_revisions(repo_id).values()):
            raise DataError(
                f"{repo_id}: not a local file, and dataset id {repo_id!r} is not in the local Hugging Face cache (offline)",
                hint=_fetch_hint(repo_id, sel) + " or pass a file path",
            )
        source = str(snapshot) if snapshot is not None else repo_id
        try:
            data = datasets.load_dataset(source, name=sel.subset)
        except Exception as exc:  # noqa: BLE001 - datasets raises many types for "not cached" / "no such subset"
            what = f"subset {sel.subset!r} of dataset id {repo_id!r}" if sel.subset else f"dataset id {repo_id!r}"
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"{repo_id}: not a local file, and {what} could not be read from the local Hugging Face cache "
                f"(offline: {first}; {_what_is_cached(repo_id)})",
                hint=_fetch_hint(repo_id, sel) + " or pass a file path",
            ) from None
    data, split = pick_split(data, repo_id, sel.split)
    revision = snapshot.name if snapshot is not None else None
    return data, {"subset": sel.subset, "split": split, "revision": revision}


def pick_split(data: Any, source: str, split: str | None) -> tuple[Any, str | None]:
    """The requested split of a DatasetDict, else 'train', else its only split (a warning names the others)."""
    if not (hasattr(data, "keys") and not hasattr(data, "features")):
        if split:
            raise UsageError(f"--split {split}: {source} holds a single table, not splits")
        return data, None
    splits = list(data.keys())
    if not splits:
        raise NothingToAuditError(f"{source}: the dataset has no splits")
    if split is not None:
        if split not in splits:
            raise DataError(f"{source}: no split {split!r} (cached splits: {', '.join(splits)})")
        return data[split], split
    name = "train" if "train" in splits else splits[0]
    if len(splits) > 1:
        from distill_audit import ui

        ui.warn(f"{source}: reading split {name!r} of {', '.join(splits)} (--split chooses)")
    return data[name], name


def check_applies(source: str, fmt: str, sel: HubSelection) -> None:
    """--subset and --revision are for a Hub id, --split also for a datasets folder."""
    allowed = {"hf-hub": (), "hf-disk": ("--subset", "--revision")}.get(fmt)
    bad = sel.given() if allowed is None else [g for g in sel.given() if g in allowed]
    if bad:
        what = (
            "a Hub dataset id" if fmt == "hf-disk" or "--split" not in bad else "a Hub dataset id or a datasets folder"
        )
        raise UsageError(f"{' and '.join(bad)}: only for {what}, not for {source} ({fmt})")


__all__ = ["HubSelection", "cached_revisions", "cached_subsets", "check_applies", "load_hub", "pick_split"]
