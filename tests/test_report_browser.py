"""The HTML report rendered in a real headless browser (Chromium from the OS packages).

Skipped where no Chromium is installed; CI installs Debian's package when apt-get can.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from distill_audit.report.render import write_run_outputs
from test_report import fake_report
from test_report_plots import _sample_rows

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (apt-get install chromium)")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            f"--user-data-dir={profile}",
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    report = fake_report()
    report["stages"]["signature"]["top_rows_by"] = "shift"
    report["stages"]["signature"]["reference_row_scores"] = {"by": "shift", "scores": [0.0, 0.1, -0.1, 0.05]}
    out = tmp_path_factory.mktemp("browser") / "out"
    return write_run_outputs(report, out, ["json", "html"], _sample_rows())["html"]


def test_page_renders_with_its_plots_and_no_console_errors(page):
    run = _chromium("--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert "<title>distill-audit report: x.jsonl</title>" in dom
    assert "distill-audit scan" in dom and "Highest-scoring rows" in dom
    assert dom.count("<svg") >= 4  # signature and canary forests, per-row scores, canary before/after
    assert "<script" not in dom
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console


def test_screenshot_is_a_drawn_page(page, tmp_path):
    shot = tmp_path / "page.png"
    run = _chromium("--hide-scrollbars", f"--screenshot={shot}", "--window-size=1100,1600", page.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1100, 1600)
    assert len(data) > 20_000  # text, tables and plots; a blank page compresses to a few kB
