"""A method's part of a CompressionTrainer step.

The trainer keeps what every method shares: the teacher forward, token normalisation over the
whole optimizer step (exact under gradient accumulation and DDP), the loss terms, checkpoint
safety. Each trainable method registers an ``Objective`` (``hf_modular.registry``) that says what
it adds: which models it accepts, which parameters learn, which plans a step runs, which logits
are distilled, and any phase before distillation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..plan import Plan
    from .arguments import CompressionTrainingArguments
    from .trainer import CompressionTrainer


class Objective:
    """Plain distillation of a student into ``teacher=``: the defaults every method starts from."""

    def __init__(self, trainer: CompressionTrainer):
        self.trainer = trainer

    def check(self, model: nn.Module, teacher: nn.Module | None, args: CompressionTrainingArguments) -> None:
        """Refuse a model, teacher or arguments this method cannot train, before any work starts."""
        if teacher is None:
            raise ConfigError(
                f"{type(model).__name__} is not a modular model, so it cannot be its own teacher: pass teacher=..."
            )
        if args.module_lr_scales:
            raise ConfigError(
                f"module_lr_scales={args.module_lr_scales} scales the learning rate of a modular model's modules; "
                f"{type(model).__name__} has none"
            )

    def prepare(self, model: nn.Module) -> None:
        """Choose which parameters learn (default: those the model marks trainable)."""

    def learning_rate_scales(self, model: nn.Module) -> dict[int, float]:
        """``{id(parameter): multiplier of learning_rate}`` for parameters that learn at another rate
        (default: none; every parameter at ``learning_rate``)."""
        return {}

    def tail_steps(self) -> int:
        """How many of the run's last steps train other parameters than the phase (default: none)."""
        return 0

    def tail_parameters(self, model: nn.Module) -> set[int]:
        """``{id(parameter)}`` of the parameters that learn only in those last steps."""
        return set()

    def output_flags(self, flags: dict[str, bool]) -> dict[str, bool]:
        """The student forward's ``output_*`` flags, given those the loss terms need."""
        return flags

    @contextlib.contextmanager
    def teacher_pass(self, student: nn.Module) -> Iterator[dict[str, list[tuple[Tensor, Tensor]]]]:
        """Around the step's teacher forward: yields ``{stack: [(student hidden, teacher hidden), ...]}``,
        filled during the forward, for the ``teacher_context_weight`` term (default: nothing)."""
        yield {}

    def forward(
        self, model: nn.Module, inputs: dict[str, Any], flags: dict[str, bool]
    ) -> list[tuple[Plan | None, Any]]:
        """``(plan, outputs)`` for each plan this micro-batch trains, from ONE forward call (DDP)."""
        return [(None, model(**inputs, **flags))]

    def row_stride(self, plan: Plan | None) -> int:
        """Train ``plan`` on every n-th row of the micro-batch, its loss counted n times (default 1)."""
        return 1

    def logits(self, student: nn.Module, outputs: Any) -> list[Tensor]:
        """The logits that learn the labels and the teacher's distribution."""
        return [outputs.logits]

    def phase_loss(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any
    ) -> tuple[Tensor, Any] | None:
        """``(loss, outputs)`` when this step belongs to a phase before distillation, else None."""
        return None

    def before_training(self, model: nn.Module) -> None:
        """Called when ``train()`` starts, before any step: refuse what cannot be trained (default: nothing)."""

    def after_training(self, model: nn.Module) -> None:
        """Called when ``train()`` returns, also when it stopped early (``max_time``)."""

    def log_fields(self) -> dict[str, float]:
        """Extra values logged with the training loss."""
        return {}

    def describe(self) -> str:
        """What the start-of-training log line says about this objective."""
        return "distillation into teacher="
