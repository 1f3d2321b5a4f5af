"""`scan` end to end with the tiny random student: reports, exit codes, cache, determinism."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from distill_audit.report.build import validate

FAST = ("--skip-signature", "--skip-canary")


@pytest.fixture(scope="module")
def numbers_data(tmp_path_factory) -> Path:
    """40 number-list rows whose provenance names the tiny-random teacher."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "nums.jsonl"
    with path.open("w") as f:
        for _ in range(40):
            seed = ", ".join(str(rng.randint(0, 999)) for _ in range(3))
            nums = ", ".join(str(rng.randint(0, 999)) for _ in range(6))
            row = {
                "prompt": f"Look at these numbers: {seed}. Add up to 10 more numbers.",
                "completion": nums,
                "teacher": "tiny-random",
                "temperature": 1.0,
            }
            f.write(json.dumps(row) + "\n")
    return path


def _report(out: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    validate(report)
    return report


TIMING_KEYS = {"seconds", "tokens_per_s", "rows_per_s", "kept_rows_per_s"}


def _without_timings(x):
    if isinstance(x, dict):
        return {k: _without_timings(v) for k, v in x.items() if k not in TIMING_KEYS}
    if isinstance(x, list):
        return [_without_timings(v) for v in x]
    return x


def _stable(report: dict) -> dict:
    """The report without what varies between identical runs: `run` and the stages' own durations."""
    return _without_timings({k: v for k, v in report.items() if k != "run"})


def test_scan_writes_every_format(cli, numbers_data, tmp_path):
    out = tmp_path / "out"
    r = cli("scan", numbers_data, "--student", "tiny-random", "--out", out, *FAST)
    assert r.exit_code == 0, r.stderr
    report = _report(out)
    assert report["models"]["teacher"]["origin"] == "provenance field 'teacher'"
    assert report["stages"]["lineage"]["verdict"] == "same-init"
    assert report["dataset"]["kind"] == "numbers" and report["dataset"]["n_samples"] == 40
    assert report["verdict"]["level"] == "inconclusive"  # nothing that measures a trait ran
    assert "verdict: INCONCLUSIVE" in r.stdout
    for name in ("report.md", "report.html", "junit.xml", "samples.parquet"):
        assert (out / name).stat().st_size > 0
    import pyarrow.parquet as pq

    table = pq.read_table(out / "samples.parquet")
    assert table.num_rows == 40 and "static_kind" in table.column_names


def test_exit_codes(cli, numbers_data, tmp_path):
    base = ("scan", numbers_data, "--student", "tiny-random", *FAST)
    assert cli(*base, "--out", tmp_path / "a", "--fail-on", "medium").exit_code == 1  # inconclusive counts as medium
    assert cli(*base, "--out", tmp_path / "b", "--fail-on", "high").exit_code == 0
    # A baseline at the same level: the risk did not grow.
    r = cli(*base, "--out", tmp_path / "c", "--fail-on", "low", "--baseline", tmp_path / "a" / "report.json")
    assert r.exit_code == 0, r.stderr
    assert "did not grow" in _report(tmp_path / "c")["gate"]["reason"]
    bad = cli(*base, "--out", tmp_path / "d", "--fail-on", "severe")
    assert bad.exit_code == 4 and "--fail-on" in bad.stderr
    assert cli(*base, "--out", tmp_path / "e", "--format", "pdf").exit_code == 4
    missing = cli("scan", tmp_path / "nope.jsonl", "--student", "tiny-random", "--out", tmp_path / "g")
    assert missing.exit_code == 4 and "Traceback" not in missing.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli("scan", empty, "--student", "tiny-random", "--out", tmp_path / "h").exit_code == 3
    unknown = cli("scan", numbers_data, "--student", "no/such-model-here", "--out", tmp_path / "f")
    assert unknown.exit_code == 4 and "no/such-model-here" in unknown.stderr


def test_config_echo_reruns_the_same_scan(cli, numbers_data, tmp_path):
    r = cli("scan", numbers_data, "--student", "tiny-random", "--out", tmp_path / "a", "--seed", "3", *FAST)
    assert r.exit_code == 0, r.stderr
    first = _report(tmp_path / "a")
    cfg = dict(first["config"], out=str(tmp_path / "b"))
    (tmp_path / "scan.yaml").write_text(yaml.safe_dump({"scan": cfg}))
    r = cli("scan", numbers_data, "--config", tmp_path / "scan.yaml")
    assert r.exit_code == 0, r.stderr
    second = _report(tmp_path / "b")
    assert second["seed"] == 3
    assert _stable(second) | {"config": None} == _stable(first) | {"config": None}
    assert second["config"] == cfg


TINY = (
    "--suites",
    str(Path(__file__).parent / "data" / "tiny_suite.yaml"),
    "--signature-rows",
    "12",
    "--canary-rows",
    "8",
    "--max-steps",
    "1",
    "--batch-size",
    "4",
    "--threads",
    "1",
)


@pytest.fixture(scope="module")
def full_scan(numbers_data, tmp_path_factory):
    """One scan with every stage on the tiny student (tiny budgets), run twice with --no-cache."""
    from distill_audit.cli.main import run

    out = tmp_path_factory.mktemp("full")
    for name in ("a", "b"):
        code = run(
            [
                "scan",
                str(numbers_data),
                "--student",
                "tiny-random",
                "--out",
                str(out / name),
                "--no-cache",
                "--quiet",
                *TINY,
            ]
        )
        assert code in (0, 1)
    return out


def test_full_scan_runs_every_stage(full_scan):
    report = _report(full_scan / "a")
    stages = report["stages"]
    assert stages["lineage"]["verdict"] == "same-init"
    assert stages["signature"]["status"] == "underpowered"  # 12 rows per side < the signature's minimum
    assert stages["canary"]["status"] in ("ok", "underpowered")
    assert {t["trait"] for t in stages["canary"]["traits"]} == {"owl", "cat", "dog"}
    assert report["reference"]["origin"] == "self-generated"
    assert report["reference"]["provenance"]["decoding"]["constrain"] == "numbers"
    assert set(report["run"]["cache"].values()) == {"off"}
    assert report["verdict"]["level"] in ("none", "low", "medium", "high", "inconclusive")
    import pyarrow.parquet as pq

    cols = pq.read_table(full_scan / "a" / "samples.parquet").column_names
    assert "signature_lls_owl" in cols and "static_trait_words" in cols


def test_quiet_prints_only_results(cli, numbers_data, tmp_path, recwarn):
    """--quiet while loading and fine-tuning a model: the verdict, no library bars, logs or warnings."""
    r = cli("scan", numbers_data, "--student", "tiny-random", "--out", tmp_path / "out", "--no-cache", "--quiet", *TINY)
    assert r.exit_code in (0, 1), r.stderr
    assert "verdict:" in r.stdout
    assert r.stderr == ""
    for noise in ("Loading weights", "Warning", "it/s"):
        assert noise not in r.stdout
    # pytest records warnings instead of printing them: none may reach the recorder either.
    assert [str(w.message) for w in recwarn] == []


def test_same_seed_same_json(full_scan):
    a, b = _report(full_scan / "a"), _report(full_scan / "b")
    a_cfg, b_cfg = a.pop("config"), b.pop("config")
    assert a_cfg["out"] != b_cfg["out"]
    assert _stable(a) == _stable(b)


def test_dry_run_plans_without_running(cli, numbers_data, tmp_path):
    r = cli("scan", numbers_data, "--student", "tiny-random", "--out", tmp_path / "out", "--dry-run", *TINY)
    assert r.exit_code == 0, r.stderr
    for stage in ("reference", "signature", "canary", "estimated total"):
        assert stage in r.stdout
    assert not (tmp_path / "out").exists()
    bad = cli("scan", numbers_data, "--student", "tiny-random", "--dry-run", "--teacher", "/no/such/dir")
    assert bad.exit_code == 4


def test_killed_scan_resumes_from_cache(cli, numbers_data, tmp_path, monkeypatch):
    """Stopped right after the signature, a re-run reuses every finished stage and runs only the canary."""
    from distill_audit.scan import pipeline

    def crash(name: str) -> None:
        if name == "signature":
            raise KeyboardInterrupt  # the process is stopped right after a finished stage

    monkeypatch.setenv("DISTILL_AUDIT_STAGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pipeline, "after_stage", crash)
    args = ("scan", numbers_data, "--student", "tiny-random", "--out", tmp_path / "out", "--quiet", *TINY)
    assert cli(*args).exit_code not in (0, 1)  # interrupted (130, like Ctrl-C)
    assert not (tmp_path / "out" / "report.json").exists()  # no half report
    monkeypatch.setattr(pipeline, "after_stage", lambda name: None)
    assert cli(*args).exit_code in (0, 1)
    cache = _report(tmp_path / "out")["run"]["cache"]
    assert cache == {"lineage": "hit", "reference": "hit", "static": "hit", "signature": "hit", "canary": "miss"}
    # A re-run for another format recomputes nothing (and loads no model).
    assert cli(*args, "--format", "md").exit_code in (0, 1)
    assert set(_report(tmp_path / "out")["run"]["cache"].values()) == {"hit"}
