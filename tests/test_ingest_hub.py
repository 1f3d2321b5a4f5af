"""Hub dataset ids from a fake local Hugging Face cache: --subset, --split, --revision, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_audit.errors import DataError, UsageError
from distill_audit.ingest import load_dataset

REPO = "toy-org/toy-answers"
OLD, NEW = "a" * 40, "b" * 40
README = """---
configs:
- config_name: alpha
  default: true
  data_files:
  - {split: train, path: alpha/train.jsonl}
  - {split: test, path: alpha/test.jsonl}
- config_name: beta
  data_files:
  - {split: train, path: beta/train.jsonl}
---
"""


def _rows(tag: str, n: int) -> str:
    return "".join(
        json.dumps({"prompt": f"{tag} question {i}", "completion": f"{tag} answer {i}"}) + "\n" for i in range(n)
    )


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A hub cache holding two commits of one dataset repository; refs/main names the newer one."""
    import datasets.config as dconfig
    import huggingface_hub.constants as hconst

    hub = tmp_path / "hf" / "hub"
    repo = hub / f"datasets--{REPO.replace('/', '--')}"
    for commit, version in ((OLD, "v1"), (NEW, "v2")):
        snap = repo / "snapshots" / commit
        for rel, text in {
            "README.md": README,
            "alpha/train.jsonl": _rows(f"alpha-train-{version}", 6),
            "alpha/test.jsonl": _rows(f"alpha-test-{version}", 3),
            "beta/train.jsonl": _rows(f"beta-train-{version}", 4),
        }.items():
            (snap / rel).parent.mkdir(parents=True, exist_ok=True)
            (snap / rel).write_text(text)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(NEW)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hconst, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(dconfig, "HF_DATASETS_CACHE", Path(tmp_path / "hf" / "datasets"))
    return hub


def test_default_subset_train_split_and_latest_revision(hub_cache):
    ds = load_dataset(REPO)
    assert ds.format == "hf-hub" and len(ds) == 6
    assert ds.samples[0].completion == "alpha-train-v2 answer 0"
    assert ds.selection == {"subset": None, "split": "train", "revision": NEW}


def test_subset_split_and_revision_pick_the_table(hub_cache):
    assert [s.completion for s in load_dataset(REPO, split="test").samples][0] == "alpha-test-v2 answer 0"
    beta = load_dataset(REPO, subset="beta")
    assert len(beta) == 4 and beta.samples[0].completion.startswith("beta-train-v2")
    old = load_dataset(REPO, subset="alpha", split="test", revision=OLD)
    assert old.samples[0].completion == "alpha-test-v1 answer 0" and old.selection["revision"] == OLD
    main = load_dataset(REPO, revision="main")
    assert main.selection["revision"] == NEW and main.fingerprint != load_dataset(REPO, revision=OLD).fingerprint


def test_uncached_requests_name_what_is_cached(hub_cache):
    with pytest.raises(DataError) as missing_rev:
        load_dataset(REPO, revision="c" * 40)
    msg = str(missing_rev.value)
    assert "revision" in msg and "main" in msg and OLD[:12] in msg and "huggingface-cli download" in msg
    with pytest.raises(DataError, match=r"no split 'validation' \(cached splits: train, test\)"):
        load_dataset(REPO, split="validation")
    with pytest.raises(DataError, match="subset 'gamma'") as bad_subset:
        load_dataset(REPO, subset="gamma")
    assert "hub cache revisions: main" in str(bad_subset.value)
    with pytest.raises(DataError, match="'toy-org/never-downloaded' is not in the local Hugging Face cache"):
        load_dataset("toy-org/never-downloaded")


def test_selection_flags_are_refused_for_files(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(_rows("x", 3))
    with pytest.raises(UsageError, match="--revision: only for a Hub dataset id"):
        load_dataset(str(path), revision="main")


def test_cli_split_and_one_line_errors(cli, hub_cache):
    r = cli("inspect", REPO, "--subset", "alpha", "--split", "test", "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["dataset"]["n_rows_total"] == 3
    bad = cli("inspect", REPO, "--split", "nope")
    assert bad.exit_code == 4 and "cached splits: train, test" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 2  # the error line (and its hint)


@pytest.fixture
def prepared_cache(tmp_path, monkeypatch) -> Path:
    """A datasets cache holding prepared tables of two subsets (what load_dataset leaves with network)."""
    import datasets
    import datasets.config as dconfig
    import huggingface_hub.constants as hconst

    cache = tmp_path / "hf" / "datasets"
    monkeypatch.setattr(dconfig, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(hconst, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    src = tmp_path / "src"
    src.mkdir()
    for subset, n in (("alpha", 5), ("beta", 2)):
        files = {}
        for split in ("train", "test"):
            files[split] = str(src / f"{subset}-{split}.jsonl")
            Path(files[split]).write_text(_rows(f"{subset}-{split}", n))
        out = cache / "toy-org___prepared" / subset / "0.0.0" / "0123abcd"
        datasets.load_dataset_builder("json", data_files=files, cache_dir=str(tmp_path / "build")).download_and_prepare(
            output_dir=str(out)
        )
        info = json.loads((out / "dataset_info.json").read_text())
        info.update(config_name=subset, dataset_name="prepared")  # as a Hub download records them
        (out / "dataset_info.json").write_text(json.dumps(info))
        for arrow in out.glob("json-*.arrow"):
            arrow.rename(out / arrow.name.replace("json-", "prepared-"))
    return cache


def test_prepared_cache_serves_subsets_but_not_revisions(prepared_cache):
    beta = load_dataset("toy-org/prepared", subset="beta", split="test")
    assert len(beta) == 2 and beta.samples[0].completion == "beta-test answer 0"
    assert beta.selection == {"subset": "beta", "split": "test", "revision": None}
    with pytest.raises(DataError, match="prepared subsets: alpha, beta"):
        load_dataset("toy-org/prepared", subset="gamma")
    with pytest.raises(DataError, match="revision 'main' is not in the local Hugging Face cache.*prepared subsets"):
        load_dataset("toy-org/prepared", subset="alpha", revision="main")
