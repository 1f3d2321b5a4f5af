"""Two processes under `accelerate launch` give the one-process numbers.

On a CPU-only machine `accelerate launch --cpu --num_processes 2` starts ONE process
(accelerate 1.15 uses its simple launcher for --cpu; several CPU processes need MPI),
so these tests launch through the multi-GPU launcher (torchrun) with the project's
config files, and the runtime picks CPU + gloo because no GPU is visible. FSDP is
accepted on CPU but runs as plain data parallelism there (accelerate shards on GPUs
only); the runtime records that in its limits.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "test_distributed_worker.py"
ACCELERATE = Path(sys.executable).parent / "accelerate"

# Per-row scores are computed row by row in fp32: identical across process counts.
SCORE_ATOL = 1e-6
# Training losses: DDP averages gradients in a different summation order (fp32).
LOSS_ATOL = 1e-5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.pop("ACCELERATE_USE_CPU", None)
    return env


def accelerate_launch(config: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [
        str(ACCELERATE), "launch", "--config_file", str(REPO / "docs" / "accelerate" / config),
        "--num_processes", "2", "--main_process_port", str(free_port()), *args,
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=launch_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def one_process(tiny_model_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("one")
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(tiny_model_dir), str(out)], env=launch_env(), capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "result.json").read_text())


def assert_same(one: dict, two: dict) -> None:
    assert len(two["scores"]) == len(one["scores"]) == 11
    np.testing.assert_allclose(two["scores"], one["scores"], rtol=0, atol=SCORE_ATOL)
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=0, atol=LOSS_ATOL)
    np.testing.assert_allclose(two["lora_norm"], one["lora_norm"], rtol=1e-5)
    assert one["losses"][-1] < one["losses"][0]  # it trained at all


@pytest.mark.slow
@pytest.mark.parametrize("config", ["ddp.yaml", "fsdp.yaml"])
def test_two_processes_match_one(config, one_process, tiny_model_dir, tmp_path):
    accelerate_launch(config, str(WORKER), str(tiny_model_dir), str(tmp_path))
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["result.json"]  # rank 0 alone wrote, atomically (no temp left)
    two = json.loads((tmp_path / "result.json").read_text())
    assert one_process["runtime"]["world_size"] == 1
    assert two["runtime"]["world_size"] == 2 and two["runtime"]["backend"] == "gloo"
    if config == "fsdp.yaml":
        assert any("FSDP" in limit for limit in two["runtime"]["limits"])
    assert_same(one_process, two)
