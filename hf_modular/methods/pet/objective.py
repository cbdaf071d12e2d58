"""PET's training objective (``method="pet"``): the warm-up task, then distillation."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...training.arguments import CompressionTrainingArguments
from ...training.objective import Objective
from .config import PetConfigMixin
from .warmup import warmup_labels, warmup_nll_sum


class PetObjective(Objective):
    def check(self, model: nn.Module, teacher: nn.Module | None, args: CompressionTrainingArguments) -> None:
        if not isinstance(getattr(model, "config", None), PetConfigMixin) or teacher is None:
            raise ConfigError("method='pet' trains a PET student (pet.build_student) against teacher=...")
        super().check(model, teacher, args)

    def phase_loss(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any
    ) -> tuple[Tensor, Any] | None:
        """The warm-up task's loss (see ``hf_modular.methods.pet.warmup``), per label token, during
        the first ``warmup_task_steps`` steps."""
        trainer, args = self.trainer, self.trainer.args
        if trainer.state.global_step >= args.warmup_task_steps:
            return None
        student = trainer.accelerator.unwrap_model(model)
        labels = inputs["labels"]
        with torch.no_grad():
            teacher_logits = trainer.teacher_forward(student, inputs, {}).logits
        outputs = model(**inputs)
        classes = warmup_labels(teacher_logits, labels, args.warmup_correct_threshold, args.warmup_wrong_threshold)
        loss = warmup_nll_sum(outputs.logits, labels, classes) / trainer.units(num_items_in_batch, labels.ne(-100))
        return loss, outputs

    def log_fields(self) -> dict[str, float]:
        """The phase of the step just logged: 0 = warm-up task, 1 = distillation."""
        trainer = self.trainer
        if trainer.args.warmup_task_steps <= 0:
            return {}
        return {"phase": 0 if trainer.state.global_step <= trainer.args.warmup_task_steps else 1}

    def describe(self) -> str:
        return f"PET: warm-up task for {self.trainer.args.warmup_task_steps} steps, then distillation"
