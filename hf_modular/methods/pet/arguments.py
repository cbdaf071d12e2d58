"""PetTrainingArguments: CompressionTrainingArguments with PET's published loss and its warm-up task."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import ConfigError
from ...training.arguments import CompressionTrainingArguments
from ...validation import is_int


@dataclass(kw_only=True)
class PetTrainingArguments(CompressionTrainingArguments):
    """The distillation phase is ``(1 - a) CE + a KD_T + b hidden MSE`` with the published a = 0.1,
    b = 50, T = 10; before it, ``warmup_task_steps`` optimizer steps of the warm-up task
    (``hf_modular.methods.pet.warmup``). Every default can be overridden."""

    ce_weight: float = field(default=0.9, metadata={"help": "cross-entropy on the labels (PET: 1 - a)"})
    kd_weight: float = field(default=0.1, metadata={"help": "KL to the teacher's logits at kd_temperature (PET: a)"})
    kd_temperature: float = field(default=10.0, metadata={"help": "softmax temperature of the logit KD"})
    hidden_weight: float = field(default=50.0, metadata={"help": "MSE to the teacher's hidden states (PET: b)"})
    warmup_task_steps: int | None = field(
        default=None,
        metadata={"help": "optimizer steps of the warm-up task before distillation (default: a tenth of max_steps)"},
    )
    warmup_correct_threshold: float = field(
        default=0.9, metadata={"help": "warm-up: a correct teacher token is confident above this top probability"}
    )
    warmup_wrong_threshold: float = field(
        default=0.7, metadata={"help": "warm-up: a wrong teacher token is confident above this top probability"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.warmup_task_steps is None:
            self.warmup_task_steps = max(1, self.max_steps // 10) if self.max_steps > 0 else 0
        if not (is_int(self.warmup_task_steps) and self.warmup_task_steps >= 0):
            raise ConfigError(f"warmup_task_steps={self.warmup_task_steps!r} must be an integer >= 0")
        for name in ("warmup_correct_threshold", "warmup_wrong_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ConfigError(f"{name}={value!r} must be a probability in [0, 1]")
