"""CompressionTrainingArguments: Seq2SeqTrainingArguments plus the distillation settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import Seq2SeqTrainingArguments

from ..errors import ConfigError
from ..validation import is_int, is_real
from .schedules import ReplacementSchedule

PLAN_SAMPLING = ("random", "granularities")
GRANULARITY_PAIRING = ("same", "rotate")
LOSS_WEIGHTS = ("ce_weight", "kd_weight", "hidden_weight", "attention_weight", "teacher_context_weight")


@dataclass(kw_only=True)
class CompressionTrainingArguments(Seq2SeqTrainingArguments):
    """Loss weights, which plans a step trains, and the replacement schedule (docs/training.md);
    a method with settings of its own subclasses it (``PetTrainingArguments``) and registers the subclass.

    The loss is ``ce_weight * CE + kd_weight * KD_T + hidden_weight * MSE_hidden +
    attention_weight * MSE_attention``; every term is normalised over the whole optimizer step.
    """

    dataloader_pin_memory: bool = field(
        default_factory=torch.accelerator.is_available,
        metadata={
            "help": "pin batches for the copy to the accelerator (default: only when there is one; "
            "torch warns on CPU-only runs otherwise)"
        },
    )
    plan_sampling: str = field(
        default="random",
        metadata={
            "help": "'random': one plan per batch by module replacing at the scheduled rate; 'granularities': "
            "every uniform-granularity plan on every batch, sharing one teacher forward"
        },
    )
    granularity_pairing: str = field(
        default="same",
        metadata={
            "help": "with 'granularities': 'same' pairs encoder and decoder modules of the same size; 'rotate' "
            "shifts the decoder's size by one every step, so every encoder/decoder pairing is trained"
        },
    )
    single_stack_plans: int = field(
        default=0,
        metadata={
            "help": "with 'granularities': this many extra plans per batch that tile ONE stack with modules of "
            "one size and keep the other stack's teacher layers, (stack, size) rotating with the step"
        },
    )
    random_plans: int = field(
        default=0,
        metadata={
            "help": "with 'granularities': this many extra plans per batch drawn by module replacing at the "
            "scheduled rate (stacks drawn independently), so modules also learn next to teacher layers"
        },
    )
    teacher_context_weight: float = field(
        default=0.0,
        metadata={
            "help": "weight of the teacher-context term: every module of the step's plans also runs on the "
            "teacher's own input to its span (recorded in the step's teacher forward) and learns the teacher's "
            "output at its end (layer-normalised MSE), so modules also work next to teacher layers (mixed plans)"
        },
    )
    teacher_context_row_stride: int = field(
        default=1,
        metadata={
            "help": "the teacher-context term runs its modules on every n-th row of each micro-batch (rows 0, n, "
            "2n, ...) and counts n times: about 1/n of the term's cost per step for the same expected term (the "
            "same rows under DDP as in one process when each rank's batch is a multiple of n)"
        },
    )
    module_lr_scales: dict[int, float] | None = field(
        default=None,
        metadata={
            "help": "learning-rate multipliers by module size, e.g. {6: 0.5}: modules replacing 6 layers learn at "
            "half of learning_rate (a one-layer stand-in for a whole stack measured better at a lower rate)"
        },
    )
    plan_row_strides: dict[int, int] | None = field(
        default=None,
        metadata={
            "help": "with 'granularities': row strides by module size, e.g. {2: 2}: a plan whose smallest module "
            "replaces 2 layers (the deepest, dearest plan) runs on every 2nd row of each micro-batch and counts "
            "twice, so a step costs less and the shallower plans get more steps for the same CPU"
        },
    )
    specialised_steps: int = field(
        default=0,
        metadata={
            "help": "the run's last N steps train only the model's specialised plans (add_specialised_plan): at "
            "the first of them each is copied from the shared layers it runs, then it learns for that plan alone; "
            "the phase's own schedule ends before them (max_steps counts both)"
        },
    )
    specialised_learning_rate: float | None = field(
        default=None,
        metadata={"help": "peak learning rate of the specialised steps (default: half of learning_rate)"},
    )
    replacement_schedule: str = field(default="linear", metadata={"help": "'linear' or 'constant'"})
    replacement_rate: float = field(default=0.3, metadata={"help": "rate at the first step (or the constant rate)"})
    replacement_rate_end: float = field(default=1.0, metadata={"help": "rate at the last step (linear schedule)"})
    ce_weight: float = field(default=1.0, metadata={"help": "cross-entropy on the labels"})
    kd_weight: float = field(default=1.0, metadata={"help": "KL to the teacher's logits at kd_temperature, times T^2"})
    kd_temperature: float = field(default=2.0, metadata={"help": "softmax temperature of the logit KD"})
    hidden_weight: float = field(default=1.0, metadata={"help": "MSE to the teacher's hidden state at span boundaries"})
    attention_weight: float = field(default=0.0, metadata={"help": "MSE to the teacher's attention maps (eager only)"})
    # Each rank normalises by its own token count; DDP then averages ranks. Averaging tokens
    # across devices instead would make Trainer scale the logged loss by the world size.
    average_tokens_across_devices: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.plan_sampling not in PLAN_SAMPLING:
            raise ConfigError(f"plan_sampling={self.plan_sampling!r} is not one of {list(PLAN_SAMPLING)}")
        if self.granularity_pairing not in GRANULARITY_PAIRING:
            raise ConfigError(
                f"granularity_pairing={self.granularity_pairing!r} is not one of {list(GRANULARITY_PAIRING)}"
            )
        for name in ("single_stack_plans", "random_plans"):
            value = getattr(self, name)
            if not (is_int(value) and value >= 0):
                raise ConfigError(f"{name}={value!r} must be an integer >= 0")
            if value and self.plan_sampling != "granularities":
                raise ConfigError(
                    f"{name}={value} adds plans to plan_sampling='granularities'; with "
                    f"plan_sampling={self.plan_sampling!r} each step already trains one random plan"
                )
        self.module_lr_scales = _size_map(
            "module_lr_scales",
            self.module_lr_scales,
            "a dict {module size >= 2: learning-rate multiplier > 0}, e.g. {6: 0.5}",
            lambda scale: is_real(scale) and 0 < scale < float("inf"),
            float,
        )
        self.plan_row_strides = _size_map(
            "plan_row_strides",
            self.plan_row_strides,
            "a dict {module size >= 2: row stride, an integer >= 1}, e.g. {2: 2}",
            lambda stride: is_int(stride) and stride >= 1,
            int,
        )
        if self.plan_row_strides and self.plan_sampling != "granularities":
            raise ConfigError(
                f"plan_row_strides={self.plan_row_strides} thins the rows of the plans of "
                f"plan_sampling='granularities'; with plan_sampling={self.plan_sampling!r} each step trains one plan"
            )
        if not (is_int(self.specialised_steps) and self.specialised_steps >= 0):
            raise ConfigError(f"specialised_steps={self.specialised_steps!r} must be an integer >= 0")
        if self.specialised_steps and not self.max_steps > self.specialised_steps:
            raise ConfigError(
                f"specialised_steps={self.specialised_steps} are the last steps of max_steps={self.max_steps}: set "
                f"max_steps to the phase's steps plus the specialised ones"
            )
        if self.specialised_learning_rate is not None and not (
            is_real(self.specialised_learning_rate) and 0 < self.specialised_learning_rate < float("inf")
        ):
            raise ConfigError(f"specialised_learning_rate={self.specialised_learning_rate!r} must be a number > 0")
        self.schedule  # validates the schedule fields  # noqa: B018
        for name in LOSS_WEIGHTS:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ConfigError(f"{name}={value!r} must be a number >= 0")
        if not (is_int(self.teacher_context_row_stride) and self.teacher_context_row_stride >= 1):
            raise ConfigError(f"teacher_context_row_stride={self.teacher_context_row_stride!r} must be an integer >= 1")
        if not self.kd_temperature > 0:
            raise ConfigError(f"kd_temperature={self.kd_temperature!r} must be > 0")
        if sum(getattr(self, name) for name in LOSS_WEIGHTS) == 0:
            raise ConfigError("all loss weights are 0: nothing would be trained")
        # Stochastic plans leave some modules unused in a step; DDP must expect that.
        if self.ddp_find_unused_parameters is None:
            self.ddp_find_unused_parameters = True

    @property
    def specialised_rate(self) -> float:
        """The specialised steps' peak learning rate."""
        return self.specialised_learning_rate or self.learning_rate / 2

    @property
    def schedule(self) -> ReplacementSchedule:
        return ReplacementSchedule(self.replacement_schedule, self.replacement_rate, self.replacement_rate_end)


def _size_map(name: str, value: object, allowed: str, valid, cast) -> dict | None:
    """``{module size: setting}`` with int sizes >= 2 and settings that pass ``valid``; string keys
    (the same arguments read back from JSON) become ints."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{name}={value!r}: expected {allowed}")
    checked = {}
    for size, setting in value.items():
        number = int(size) if isinstance(size, str) and size.isdigit() else size
        if not (is_int(number) and number >= 2 and valid(setting)):
            raise ConfigError(f"{name}={value!r}: entry {size!r}: {setting!r} is not allowed; expected {allowed}")
        checked[int(number)] = cast(setting)
    return checked
