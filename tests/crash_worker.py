"""Subprocess side of test_crash_safety.py.

crash_worker.py save DIR             save versions 1, 2, 3, ... of a model into DIR forever
crash_worker.py train DIR STEPS      train (resuming from DIR's last complete checkpoint) and
                                     write DIR/final.json with a hash of the final weights
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hf_modular import CompressionTrainer, CompressionTrainingArguments
from tests.conftest import copy_task, modular_model


def weights_hash(model) -> str:
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().numpy().tobytes())
    return digest.hexdigest()


def save_forever(folder: Path) -> None:
    _, model = modular_model("t5")
    version = 0
    while True:
        version += 1
        with torch.no_grad():
            for param in model.parameters():
                param.fill_(version)
        model.save_pretrained(folder)
        (folder.parent / "saved_version").write_text(str(version))


def train(folder: Path, steps: int) -> None:
    torch.manual_seed(0)
    _, model = modular_model("t5")
    args = CompressionTrainingArguments(
        output_dir=str(folder),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=2e-3,
        save_strategy="steps",
        save_steps=2,
        save_total_limit=2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=3,
        logging_steps=1,
    )
    trainer = CompressionTrainer(model=model, args=args, train_dataset=copy_task("t5", size=64))
    resume = any(folder.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    report = {"weights": weights_hash(model), "global_step": trainer.state.global_step}
    (folder / "final.json").write_text(json.dumps(report))


if __name__ == "__main__":
    command, target = sys.argv[1], Path(sys.argv[2])
    if command == "save":
        save_forever(target)
    else:
        train(target, int(sys.argv[3]))
