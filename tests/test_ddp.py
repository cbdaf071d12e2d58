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
import torch

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


# Every option of the multi-plan step at once: every granularity with rotating pairings plus random
# mixed plans, all in one forward call per micro-batch (several forwards per backward would
# mis-synchronise DDP's gradients), and the teacher-context term, whose module runs come from the
# teacher forward outside DDP's forward (correct because they use only modules that forward reached),
# on every 2nd row (each rank's 4 rows hold rows 0 and 2 of its share: the global batch's even rows),
# and the plans with 2-layer modules on those rows too (plan_row_strides).
MULTI_PLAN = {
    "plan_sampling": "granularities",
    "granularity_pairing": "rotate",
    "random_plans": 2,
    "teacher_context_weight": 1.0,
    "teacher_context_row_stride": 2,
    "learning_rate": 0.02,
    "module_lr_scales": {"2": 0.5},  # per-size optimizer groups (JSON keys, as the worker reads them)
    "plan_row_strides": {"2": 2},  # plans with 2-layer modules on the even rows, as the term above
}

# The same, then the 1.5x plan's own layers in the last 2 of the 6 steps: copied on every rank at
# the first of them, the phase's groups at rate 0 and the specialised groups on their own schedule.
SPECIALISED = {**MULTI_PLAN, "specialise": ["1.5x"], "specialised_steps": 2}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("launcher", "family", "recipe"),
    [
        ("torchrun", "t5", {}),
        ("torchrun", "bart", {}),
        ("accelerate", "t5", {}),
        ("torchrun", "t5", MULTI_PLAN),
        ("torchrun", "bart", MULTI_PLAN),
        ("torchrun", "t5", SPECIALISED),
    ],
    ids=[
        "torchrun-t5-random",
        "torchrun-bart-random",
        "accelerate-t5-random",
        "torchrun-t5-multi",
        "torchrun-bart-multi",
        "torchrun-t5-specialised",
    ],
)
def test_two_processes_train_like_one(launcher, family, recipe, tmp_path):
    extra = [json.dumps(recipe)] if recipe else []
    single = _run([sys.executable, str(WORKER), family, str(tmp_path / "one"), *extra], tmp_path / "one")
    ranks = _run([*LAUNCHERS[launcher](), str(WORKER), family, str(tmp_path / "two"), *extra], tmp_path / "two")
    assert [r["world_size"] for r in ranks] == [2, 2] and single[0]["world_size"] == 1
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["losses"] == pytest.approx(single[0]["losses"], rel=1e-4)
    # float noise only: a gradient left out of DDP's all-reduce splits the ranks' hashes above, and a
    # wrong average moves weights by about an SGD step (lr 0.02-0.1 x gradient), orders above 5e-5; the
    # summation order (gloo's all-reduce vs one process) moved one weight of the multi-plan recipe,
    # whose step sums more terms, by 1.02e-5 in CI
    for two, one in zip(ranks[0]["sample"], single[0]["sample"], strict=True):
        assert two == pytest.approx(one, rel=1e-3, abs=5e-5)


FSDP = {
    "fsdp": "full_shard auto_wrap",
    "fsdp_config": {"transformer_layer_cls_to_wrap": ["T5Block"], "use_orig_params": True},
}


@pytest.mark.slow
def test_fsdp_on_cpu_is_refused_not_silently_replaced_by_ddp(tmp_path):
    """accelerate 1.15 turns FSDP on only for GPU distributed types; on CPU Trainer would run DDP."""
    command = [*LAUNCHERS["torchrun"](), str(WORKER), "t5", str(tmp_path / "two"), json.dumps(FSDP)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[1])}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode != 0 and "accelerate did not enable FSDP here" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDP through accelerate needs GPUs")
@pytest.mark.parametrize("recipe", [{}, MULTI_PLAN], ids=["random", "multi"])
def test_fsdp_on_gpus_trains_like_one_process(recipe, tmp_path):
    processes = str(min(2, torch.cuda.device_count()))
    extra = json.dumps({**FSDP, **recipe, "use_cpu": False})
    single = _run([sys.executable, str(WORKER), "t5", str(tmp_path / "one"), json.dumps(recipe)], tmp_path / "one")
    launcher = [_tool("torchrun"), "--standalone", "--nproc_per_node", processes]
    ranks = _run([*launcher, str(WORKER), "t5", str(tmp_path / "two"), extra], tmp_path / "two")
    assert all(r["fsdp"] and r["wrapper"] == "FullyShardedDataParallel" for r in ranks)
    assert ranks[0]["losses"] == pytest.approx(single[0]["losses"], rel=1e-3)
