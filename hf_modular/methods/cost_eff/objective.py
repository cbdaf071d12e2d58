"""COST-EFF's training objective (``method="cost_eff"``): every exit learns the labels and the
teacher's final distribution."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ...errors import ConfigError
from ...training.arguments import CompressionTrainingArguments
from ...training.objective import Objective
from .modeling import CostEffModelMixin


class CostEffObjective(Objective):
    def check(self, model: nn.Module, teacher: nn.Module | None, args: CompressionTrainingArguments) -> None:
        if not isinstance(model, CostEffModelMixin) or not model.config.exit_layers or teacher is None:
            raise ConfigError(
                "method='cost_eff' trains a model with exits (cost_eff.add_exits(...)) against teacher=..."
            )
        super().check(model, teacher, args)

    def output_flags(self, flags: dict[str, bool]) -> dict[str, bool]:
        return {**flags, "output_hidden_states": True}  # its exits read the decoder's intermediate states

    def logits(self, student: nn.Module, outputs: Any) -> list[Tensor]:
        return student.all_exit_logits(outputs)

    def describe(self) -> str:
        return f"COST-EFF: {len(self.trainer.model.config.exit_layers)} exits distilled"
