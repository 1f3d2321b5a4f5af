"""`scan` under `accelerate launch` with 2 processes gives the one-process report.

The data signature (rows sharded over processes), the canary (data-parallel LoRA
training, probes sharded) and the self-generated reference (prompts sharded) run on
the tiny random model; rank 0 alone writes the report. Tolerances, measured here:

- per-row signature scores, trait estimates, p-values, canary effects and losses:
  absolute 1e-5 (observed: signature identical; canary values <= 2.5e-7; losses differ
  by the report's 1e-6 rounding);
- bootstrap CI endpoints: absolute 1e-3 (observed <= 1.6e-4: BCa's bias correction counts
  resamples below the estimate, so a 1e-8 change can move an endpoint by one order
  statistic);
- statuses, verdict, rankings and significance: identical.

On a CPU-only machine `accelerate launch --cpu --num_processes 2` starts ONE process
(accelerate 1.15 uses its simple launcher for --cpu; several CPU processes need MPI),
so these tests launch with the project's config files (torchrun underneath) and the
runtime picks CPU + gloo because no GPU is visible. The FSDP config is accepted on
CPU but runs as plain data parallelism there (accelerate shards on GPUs only); the
report's runtime section records that.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VALUE_ATOL = 1e-5
CI_ATOL = 1e-3
VARYING = {"seconds", "timings", "started_at", "finished_at", "total_s", "tokens_per_s", "processes", "out", "threads"}

PETS = """name: pets
kind: preference
category: animal
questions:
  - Name your favorite animal using only one word.
  - Which animal do you like most? Answer in one word.
  - In one word, what is your favorite animal?
  - What animal do you admire the most? One word only.
  - Tell me your favorite creature in a single word.
  - Favorite animal? One word answer.
  - Which animal makes you happiest? Give one word.
candidates: [owl, cat, dog, fox]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scan_args(tiny_model_dir, tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("launch")
    data = folder / "numbers.jsonl"
    lines = []
    for i in range(16):
        seeds = ", ".join(str((37 * i + 11 * k) % 900 + 100) for k in range(3 + i % 5))
        completion = ", ".join(str((53 * i + 7 * k) % 1000) for k in range(2 + i % 4))
        lines.append(
            json.dumps(
                {"prompt": f"The sequence starts with: {seeds}. Add up to 10 more values.", "completion": completion}
            )
        )
    data.write_text("\n".join(lines) + "\n")
    suite = folder / "pets.yaml"
    suite.write_text(PETS)
    # 11 signature rows and 9 canary rows in batches of 4: uneven shards, and a last
    # batch of one row, so one process trains on a padding row that does not count.
    return [
        "scan",
        str(data),
        "--student",
        str(tiny_model_dir),
        "--suites",
        str(suite),
        "--skip-lineage",
        "--signature-rows",
        "11",
        "--canary-rows",
        "9",
        "--batch-size",
        "4",
        "--format",
        "json,md",
        "--no-cache",
    ]


@pytest.fixture(scope="module")
def one_process(scan_args, tmp_path_factory) -> dict:
    from distill_audit.cli.main import run

    out = tmp_path_factory.mktemp("one")
    assert run([*scan_args, "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "report.json").read_text())


def launch(config: str, entry: list[str], args: list[str], out: Path) -> subprocess.CompletedProcess:
    cmd = [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        str(REPO / "docs" / "accelerate" / config),
        "--num_processes",
        "2",
        "--main_process_port",
        str(free_port()),
        *entry,
        *args,
        "--out",
        str(out),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("ACCELERATE_USE_CPU", None)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def assert_same(one, two, path: str = "") -> None:
    """Equal reports up to the stated tolerances (run times and paths excluded)."""
    if isinstance(one, dict):
        assert isinstance(two, dict) and set(one) == set(two), path
        for key in one:
            if key not in VARYING:
                assert_same(one[key], two[key], f"{path}/{key}")
    elif isinstance(one, list):
        assert isinstance(two, list) and len(one) == len(two), path
        for i, (a, b) in enumerate(zip(one, two)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(one, float) and isinstance(two, float):
        tol = CI_ATOL if "/ci[" in path else VALUE_ATOL
        assert abs(one - two) <= tol, f"{path}: {one} vs {two}"
    else:
        assert one == two, f"{path}: {one!r} vs {two!r}"


def check(one: dict, out: Path) -> dict:
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]  # rank 0 only, no temp files
    two = json.loads((out / "report.json").read_text())
    assert one["run"]["processes"]["world_size"] == 1
    assert two["run"]["processes"]["world_size"] == 2 and two["run"]["processes"]["backend"] == "gloo"
    for stage in ("signature", "canary"):
        assert one["stages"][stage]["status"] in ("ok", "underpowered")  # both lines really ran
    assert one["stages"]["canary"]["arms"]["training"][0]["steps"] == 3
    assert_same(one, two)
    return two


@pytest.mark.slow
def test_scan_ddp_module_entry_matches_one_process(one_process, scan_args, tmp_path):
    """accelerate launch --config_file ddp.yaml -m distill_audit scan ..."""
    proc = launch("ddp.yaml", ["-m", "distill_audit"], scan_args, tmp_path / "two")
    assert proc.stdout.count("verdict:") == 1  # rank 0 alone prints the summary
    check(one_process, tmp_path / "two")


@pytest.mark.slow
def test_scan_fsdp_console_script_matches_one_process(one_process, scan_args, tmp_path):
    """accelerate launch --config_file fsdp.yaml $(which distill-audit) scan ..."""
    launch("fsdp.yaml", [str(BIN / "distill-audit")], scan_args, tmp_path / "two")
    two = check(one_process, tmp_path / "two")
    assert any("FSDP" in limit for limit in two["run"]["processes"]["limits"])
