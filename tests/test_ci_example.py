"""examples/github-actions.yml: installable, gated by the scan's exit code, publishes on failure.

The workflow cannot run here; these checks read it and run its scan step's shell
script against a stub `distill-audit` that exits with each documented code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "github-actions.yml"
CI_DOC = ROOT / "docs" / "ci.md"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def _steps(workflow: dict) -> list[dict]:
    return workflow["jobs"]["scan"]["steps"]


def _step(workflow: dict, needle: str) -> dict:
    """The one step whose `run` or `uses` contains `needle`."""
    found = [s for s in _steps(workflow) if needle in s.get("run", "") + s.get("uses", "")]
    assert len(found) == 1, f"expected one step with {needle!r}, found {len(found)}"
    return found[0]


def test_installs_cpu_torch_then_distill_audit_not_from_pypi(workflow):
    script = _step(workflow, "pip install").get("run", "")
    assert "--index-url https://download.pytorch.org/whl/cpu" in script
    assert script.index("pip install torch") < script.index('pip install "$DISTILL_AUDIT_SPEC"')
    assert workflow["env"]["DISTILL_AUDIT_SPEC"]
    for text in (EXAMPLE.read_text(encoding="utf-8"), CI_DOC.read_text(encoding="utf-8")):
        assert not re.search(r"pip install distill-audit\b", text), "distill-audit is not on PyPI"


def test_caches_models_and_stages(workflow):
    paths = _step(workflow, "actions/cache@")["with"]["path"]
    assert "~/.cache/distill-audit" in paths and "~/.cache/huggingface" in paths


def test_scan_step_is_the_gate(workflow):
    scan = _step(workflow, "distill-audit scan")
    assert "--fail-on" in scan["run"] and "--format json,md,html,junit" in scan["run"]
    assert "if" not in scan and not scan.get("continue-on-error"), "a failed gate must fail the job"


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4])
def test_scan_step_exits_with_the_scan_exit_code(workflow, tmp_path, code):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    stub = tmp_path / "bin" / "distill-audit"
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\nexit {code}\n")
    stub.chmod(0o755)
    env = {**os.environ, **workflow["env"], "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}"}
    script = _step(workflow, "distill-audit scan")["run"]
    # GitHub runs `run:` scripts with `bash --noprofile --norc -eo pipefail`.
    proc = subprocess.run(
        [bash, "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert ("::error::" in proc.stdout) == (code != 0)


def test_reports_are_published_after_the_scan_even_when_it_fails(workflow):
    steps = _steps(workflow)
    scan_at = steps.index(_step(workflow, "distill-audit scan"))
    for needle in ("GITHUB_STEP_SUMMARY", "sticky-pull-request-comment", "actions/upload-artifact@"):
        step = _step(workflow, needle)
        assert steps.index(step) > scan_at, f"{needle}: must run after the scan"
        assert "always()" in step.get("if", ""), f"{needle}: must run when the gate failed"


def test_ci_doc_names_every_setting_of_the_example(workflow):
    doc = CI_DOC.read_text(encoding="utf-8")
    missing = [name for name in workflow["env"] if f"`{name}`" not in doc]
    assert not missing, f"docs/ci.md does not describe {', '.join(missing)}"
