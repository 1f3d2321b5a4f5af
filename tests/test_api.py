"""The Python API returns what the commands render, for the same input and seed."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from distill_audit.errors import UsageError

TIMING_KEYS = {"seconds", "tokens_per_s", "rows_per_s", "kept_rows_per_s"}
TINY = {
    "suites": str(Path(__file__).parent / "data" / "tiny_suite.yaml"),
    "signature_rows": 12,
    "skip_canary": True,
    "threads": 1,
}


def _stable(x):
    """A document without what varies between identical runs (durations, the run record)."""
    if isinstance(x, dict):
        return {k: _stable(v) for k, v in x.items() if k not in TIMING_KEYS and k != "run"}
    if isinstance(x, list):
        return [_stable(v) for v in x]
    return x


@pytest.fixture(scope="module")
def numbers(tmp_path_factory) -> Path:
    rng = random.Random(1)
    path = tmp_path_factory.mktemp("api") / "nums.jsonl"
    rows = [
        {
            "prompt": f"Continue: {rng.randint(0, 999)}, {rng.randint(0, 999)}.",
            "completion": ", ".join(str(rng.randint(0, 999)) for _ in range(6)),
            "teacher": "tiny-random",
        }
        for _ in range(30)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_is_light():
    code = "import sys, distill_audit; print('torch' in sys.modules, 'typer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_names_are_callable_whatever_was_imported_first():
    import distill_audit
    import distill_audit.lineage.check  # noqa: F401  (the subpackages exist as packages too)
    import distill_audit.scan.pipeline  # noqa: F401
    from distill_audit import inspect, lineage, scan

    assert callable(scan) and callable(lineage) and callable(inspect)
    assert distill_audit.scan.pipeline.ScanOptions is not None  # still the package


def test_inspect_equals_the_cli_json(cli, numbers, tmp_path):
    from distill_audit import inspect
    from distill_audit.report.inspect import inspect_json

    r = cli("inspect", numbers, "--format", "json", "--seed", "3", "--trait-word", "zebra", "--sample", "20")
    assert r.exit_code == 0, r.stderr
    result = inspect(numbers, seed=3, trait_word=["zebra"], sample=20, quiet=True)
    assert _stable(json.loads(inspect_json(result.to_dict()))) == _stable(json.loads(r.stdout))
    other = inspect(numbers, seed=4, sample=20, quiet=True)  # the seed reaches the sample: the test can fail
    assert other.to_dict()["dataset"] != result.to_dict()["dataset"] or other.lengths != result.lengths


def test_lineage_equals_the_cli_json(cli, tiny_model_dir, tiny_model_dir_other):
    from distill_audit import lineage

    r = cli("lineage", tiny_model_dir, tiny_model_dir_other, "--format", "json")
    assert r.exit_code == 0, r.stderr
    result = lineage(tiny_model_dir, tiny_model_dir_other, quiet=True)
    assert _stable(result.to_dict()) == _stable(json.loads(r.stdout))
    assert result.verdict == "different-init"


def test_scan_equals_the_cli_report(cli, numbers, tmp_path):
    from distill_audit import scan

    out = tmp_path / "out"
    flags = ["--suites", TINY["suites"], "--signature-rows", "12", "--skip-canary", "--threads", "1"]
    r = cli("scan", numbers, "--student", "tiny-random", "--out", out, "--seed", "5", "--no-cache", "--quiet", *flags)
    assert r.exit_code in (0, 1), r.stderr
    from_cli = json.loads((out / "report.json").read_text())
    outcome = scan(numbers, "tiny-random", out=str(out), seed=5, no_cache=True, quiet=True, **TINY)
    assert outcome.exit_code == r.exit_code
    assert outcome.written["json"] == out / "report.json"
    from_api = json.loads(json.dumps(outcome.report))
    assert from_api["stages"]["signature"]["status"] != "skipped"  # a stage that draws random numbers ran
    assert _stable(from_api) == _stable(from_cli)
    assert from_api["config"]["device"] == "auto" and from_api["gate"]["fail_on"] == "high"  # the CLI's defaults


def test_options_are_checked_like_flags(numbers):
    from distill_audit import inspect, scan

    with pytest.raises(TypeError, match="probes"):
        scan(numbers, "tiny-random", probes="animals")
    with pytest.raises(UsageError, match="--sample"):
        inspect(numbers, sample=0)
    with pytest.raises(TypeError, match="format"):
        inspect(numbers, format="json")  # printing is the CLI's


def test_the_documented_example_runs(tmp_path, monkeypatch):
    import re

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "docs" / "python-api.md").read_text(encoding="utf-8")
    block = re.findall(r"```python\n(.*?)```", text, flags=re.S)[-1]
    for name in ("examples",):
        (tmp_path / name).symlink_to(repo / name)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/python-api.md", "exec"), {})
    assert (tmp_path / "api-example-report" / "report.json").is_file()
