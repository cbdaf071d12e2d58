"""Two CPU processes (gloo) train exactly like one: every rank ends with the same weights, and
the weights and logged losses match a one-process run over the same global batches (so nothing
is scaled by the world size). Launched with torchrun and with accelerate launch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(command: list[str], out: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[1])}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


def _tool(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name) or name


LAUNCHERS = {
    "torchrun": lambda: [_tool("torchrun"), "--standalone", "--nproc_per_node", "2"],
    # --multi_gpu is what makes accelerate start two processes on CPU (--cpu alone starts one)
    "accelerate": lambda: [
        _tool("accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        "0",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize(("launcher", "family"), [("torchrun", "t5"), ("torchrun", "bart"), ("accelerate", "t5")])
def test_two_processes_train_like_one(launcher, family, tmp_path):
    single = _run([sys.executable, str(WORKER), family, str(tmp_path / "one")], tmp_path / "one")
    ranks = _run([*LAUNCHERS[launcher](), str(WORKER), family, str(tmp_path / "two")], tmp_path / "two")
    assert [r["world_size"] for r in ranks] == [2, 2] and single[0]["world_size"] == 1
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["losses"] == pytest.approx(single[0]["losses"], rel=1e-4)
    for two, one in zip(ranks[0]["sample"], single[0]["sample"], strict=True):
        assert two == pytest.approx(one, rel=1e-3, abs=1e-5)
