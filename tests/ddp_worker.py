"""Run by test_ddp.py: train a modular model with a global batch of 8, on 1 process (plain python)
or on 2 CPU processes (torchrun or accelerate launch, gloo). An optional third argument is a JSON
object of CompressionTrainingArguments overrides (the plan-sampling recipe under test), plus
``specialise``: the plans given layers of their own (``from_teacher(..., specialise=...)``).

Each rank writes its final weights (hash and a few values), its world size and its logged losses
to OUT/rank{N}.json. Data order is sequential, so one process and two see the same global batches.
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

GLOBAL_BATCH = 8


def main() -> None:
    family, out = sys.argv[1], Path(sys.argv[2])
    recipe = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    world = int(os.environ.get("WORLD_SIZE", "1"))
    _, model = modular_model(family, specialise=recipe.pop("specialise", ()))  # a model setting, not an argument
    values = {
        "output_dir": str(out / "run"),
        "max_steps": 6,
        "per_device_train_batch_size": GLOBAL_BATCH // world,
        "learning_rate": 0.1,
        "optim": "sgd",  # updates proportional to gradients: float noise stays noise (Adam would amplify it)
        "logging_steps": 1,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 11,
        "train_sampling_strategy": "sequential",
        **({"ddp_backend": "gloo" if recipe.get("use_cpu", True) else "nccl"} if world > 1 else {}),
    }
    args = CompressionTrainingArguments(**{**values, **recipe})
    trainer = CompressionTrainer(model=model, args=args, train_dataset=copy_task(family, size=48))
    trainer.train()
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().numpy().tobytes())
    rank = int(os.environ.get("RANK", "0"))
    report = {
        "rank": rank,
        "world_size": trainer.accelerator.num_processes,
        "wrapper": type(trainer.model_wrapped).__name__,
        "fsdp": bool(trainer.is_fsdp_enabled),
        "weights": digest.hexdigest(),
        "sample": [p.detach().flatten()[:50].tolist() for p in model.module_parameters()],
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
