"""Crash safety: interrupted saves keep the previous checkpoint, resume never picks a partial one,
and a training killed with SIGKILL resumes to the same final weights."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import hf_modular.training.checkpointing as checkpointing
from hf_modular import CheckpointError, CompressionTrainer, ModularT5ForConditionalGeneration
from hf_modular.atomic_save import CHECKPOINT_MANIFEST
from hf_modular.training import last_complete_checkpoint
from tests.conftest import copy_task, modular_model
from tests.test_trainer import training_args

WORKER = Path(__file__).with_name("crash_worker.py")


def test_a_save_that_fails_midway_leaves_the_previous_artifact(tmp_path, monkeypatch):
    import transformers.modeling_utils as modeling_utils

    _, model = modular_model("t5")
    path = tmp_path / "artifact"
    model.save_pretrained(path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 1000)  # a partly written file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(modeling_utils, "safe_save_file", disk_full)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(OSError, match="No space left"):
        model.save_pretrained(path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".artifact.lock", "artifact"]  # no staging folder left
    ModularT5ForConditionalGeneration.from_pretrained(path)


@pytest.mark.slow
def test_sigkill_during_repeated_saves_never_loads_a_mix(tmp_path):
    """Kill a process that overwrites one artifact again and again; what is left either loads as
    exactly one saved version or is refused as damaged, never a silent mix."""
    outcomes = {"intact": 0, "detected": 0}
    rng = random.Random(0)
    path = tmp_path / "artifact"
    for _ in range(6):
        # wait for THIS worker's first save: a marker left by the previous one would let the kill land
        # before the new worker saved anything, and every later round would find the same damage
        (tmp_path / "saved_version").unlink(missing_ok=True)
        process = subprocess.Popen([sys.executable, str(WORKER), "save", str(path)])
        while not (tmp_path / "saved_version").exists():
            assert process.poll() is None, "the worker died before its first save"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        try:
            loaded = ModularT5ForConditionalGeneration.from_pretrained(path)
        except CheckpointError:
            outcomes["detected"] += 1
            continue
        values = {float(p.detach().flatten()[0]) for p in loaded.parameters()}
        assert len(values) == 1, f"a mix of versions loaded: {values}"
        outcomes["intact"] += 1
    assert outcomes["intact"] >= 1, outcomes
    # a killed save leaves its staging folder until the next save of the same target removes it
    assert len(list(tmp_path.glob(".artifact.staging-*"))) <= 1


def test_resume_skips_a_partial_checkpoint(tmp_path):
    _, model = modular_model("t5")
    args = training_args(tmp_path, max_steps=4, save_strategy="steps", save_steps=2, per_device_train_batch_size=4)
    CompressionTrainer(model=model, args=args, train_dataset=copy_task("t5", size=32)).train()
    out = Path(args.output_dir)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    for checkpoint in out.glob("checkpoint-*"):
        assert not [p.name for p in checkpoint.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".pkl")]
        assert (checkpoint / CHECKPOINT_MANIFEST).exists()
    partial = out / "checkpoint-6"
    shutil.copytree(out / "checkpoint-4", partial)
    (partial / CHECKPOINT_MANIFEST).unlink()  # killed before its completion marker
    truncated = out / "checkpoint-8"
    shutil.copytree(out / "checkpoint-4", truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # killed while writing, marker copied from elsewhere
    assert last_complete_checkpoint(out) == out / "checkpoint-4"
    _, again = modular_model("t5")
    trainer = CompressionTrainer(model=again, args=args, train_dataset=copy_task("t5", size=32))
    with pytest.raises(CheckpointError, match=f"no {CHECKPOINT_MANIFEST}"):
        trainer.train(str(partial))


def test_old_checkpoints_are_rotated_only_after_the_new_one_is_complete(tmp_path, monkeypatch):
    _, model = modular_model("t5")
    args = training_args(
        tmp_path, max_steps=4, save_strategy="steps", save_steps=2, save_total_limit=1, per_device_train_batch_size=4
    )
    calls = {"n": 0}
    real = checkpointing.write_manifest

    def crash_on_second(folder, name):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed while finishing checkpoint-4")
        return real(folder, name=name)

    monkeypatch.setattr(checkpointing, "write_manifest", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        CompressionTrainer(model=model, args=args, train_dataset=copy_task("t5", size=32)).train()
    assert last_complete_checkpoint(args.output_dir) == Path(args.output_dir) / "checkpoint-2"


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path):
    steps = 10
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, str(WORKER), "train", str(reference), str(steps)], check=True, capture_output=True)
    expected = json.loads((reference / "final.json").read_text())

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, str(WORKER), "train", str(killed), str(steps)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = killed / f"checkpoint-{random.Random(os.getpid()).choice([2, 4, 6])}" / CHECKPOINT_MANIFEST
    while not target.exists() and process.poll() is None:
        time.sleep(0.01)
    time.sleep(random.Random(1).uniform(0.0, 0.2))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "final.json").exists(), "the run finished before it could be killed"
    subprocess.run([sys.executable, str(WORKER), "train", str(killed), str(steps)], check=True, capture_output=True)
    assert json.loads((killed / "final.json").read_text()) == expected


WRITER = Path(__file__).with_name("concurrent_writer.py")


@pytest.mark.slow
def test_concurrent_writers_leave_exactly_one_writers_model(tmp_path):
    """3 processes save different models into one folder, 20 rounds each, loading after every save:
    every save succeeds and every load (theirs or the final one) is exactly one writer's model."""
    folder, env = tmp_path / "shared", {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WRITER.parents[1])}
    rounds = int(os.environ.get("HF_MODULAR_STRESS_ROUNDS", "20"))
    processes = [
        subprocess.Popen(
            [sys.executable, str(WRITER), str(folder), str(i), str(rounds), str(tmp_path / f"w{i}.json")], env=env
        )
        for i in range(3)
    ]
    assert all(p.wait(timeout=600) == 0 for p in processes)
    reports = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(3)]
    models = {r["mine"] for r in reports}
    assert len(models) == 3
    for report in reports:
        assert not report["errors"], report["errors"][:3]
        assert len(report["seen"]) == rounds and set(report["seen"]) <= models
    final = ModularT5ForConditionalGeneration.from_pretrained(folder)
    assert float(final.state_dict()["shared.weight"][3, 0]) in models
    assert not list(tmp_path.glob(".shared.staging-*"))  # no staging folder left behind


def test_a_sharded_save_over_an_unsharded_one_leaves_no_stale_file(tmp_path):
    _, first = modular_model("t5", 2, 2)
    _, second = modular_model("t5", 2, 2)
    with torch.no_grad():
        second.shared.weight.mul_(2)
    first.save_pretrained(tmp_path / "a")
    second.save_pretrained(tmp_path / "a", max_shard_size="20KB")
    assert not (tmp_path / "a" / "model.safetensors").exists()
    loaded = ModularT5ForConditionalGeneration.from_pretrained(tmp_path / "a")
    assert torch.equal(loaded.shared.weight, second.shared.weight)
    first.save_pretrained(tmp_path / "a")  # and back: the shards and their index go
    assert sorted(p.name for p in (tmp_path / "a").glob("model*")) == ["model.safetensors"]
    assert torch.equal(
        ModularT5ForConditionalGeneration.from_pretrained(tmp_path / "a").shared.weight, first.shared.weight
    )


def test_a_weight_file_the_manifest_does_not_list_is_refused(tmp_path):
    _, model = modular_model("t5", 2, 2)
    model.save_pretrained(tmp_path / "a")
    shutil.copy(tmp_path / "a" / "model.safetensors", tmp_path / "a" / "model-00001-of-00002.safetensors")
    with pytest.raises(CheckpointError, match="not in the manifest"):
        ModularT5ForConditionalGeneration.from_pretrained(tmp_path / "a")


def test_saving_into_a_file_or_a_read_only_folder_is_a_checkpoint_error(tmp_path):
    _, model = modular_model("t5", 2, 2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="it is a file"):
        model.save_pretrained(tmp_path / "file")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: nothing to check then
            pytest.skip("running as root: a read-only folder is writable")
        with pytest.raises(CheckpointError, match="cannot save into"):
            model.save_pretrained(locked / "artifact")
    finally:
        locked.chmod(0o700)
