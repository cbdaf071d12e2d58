"""Run by test_ddp.py under torchrun: train a modular model on 2 CPU processes (gloo).

Each rank writes the hash of its final weights and its logged losses to OUT/rank{N}.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hf_modular import CompressionTrainer, CompressionTrainingArguments
from tests.conftest import copy_task, modular_model


def main() -> None:
    family, out = sys.argv[1], Path(sys.argv[2])
    _, model = modular_model(family)
    args = CompressionTrainingArguments(
        output_dir=str(out / "run"),
        max_steps=6,
        per_device_train_batch_size=4,
        learning_rate=2e-3,
        logging_steps=2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=11,
        ddp_backend="gloo",
    )
    trainer = CompressionTrainer(model=model, args=args, train_dataset=copy_task(family, size=48))
    trainer.train()
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().numpy().tobytes())
    rank = int(os.environ["RANK"])
    report = {
        "rank": rank,
        "world_size": trainer.accelerator.num_processes,
        "weights": digest.hexdigest(),
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
