"""Module replacing: the training objective of Modular Transformers (``method="modular"``).

A modular model trains only its modules, on the plans of each step (every granularity, or a
sampled plan, all in one forward call), with its own identity plan as the teacher. Any other
student (the shrink-and-fine-tune baselines) is distilled into ``teacher=`` as by the base.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ...plan import STACKS, Plan
from ...training.arguments import CompressionTrainingArguments
from ...training.objective import Objective
from .modeling import ModularModelMixin
from .plan_sampling import granularity_plans, sample_plan, single_stack_plans

logger = logging.getLogger(__name__)


class ModularObjective(Objective):
    def __init__(self, trainer: Any):
        super().__init__(trainer)
        self.modular = False
        self._sample_counter = (-1, 0)  # (global step, micro-batches seen in it)
        self._last_rate: float | None = None
        self._plans: list[Plan] | None = None  # the micro-batch's plans, drawn once for both passes
        self._late_rate: float | None = None  # the specialised layers' learning rate in this step

    def check(self, model: nn.Module, teacher: nn.Module | None, args: CompressionTrainingArguments) -> None:
        self.modular = isinstance(model, ModularModelMixin)
        if args.plan_sampling == "granularities" and not self.modular:
            raise ConfigError(
                f"plan_sampling='granularities' trains the plans of a modular model; {type(model).__name__} has none"
            )
        if not self.modular:
            super().check(model, teacher, args)
            if args.specialised_steps:
                raise ConfigError(
                    f"specialised_steps={args.specialised_steps} trains a modular model's specialised plans; "
                    f"{type(model).__name__} has none"
                )
        else:
            held = model.specialised_plans
            if args.specialised_steps and not held:
                raise ConfigError(
                    f"specialised_steps={args.specialised_steps}: this model has no specialised plans to train; add "
                    f"them first (from_teacher(..., specialise=['1.5x']) or model.add_specialised_plan('1.5x'))"
                )
            sizes = {size for name in STACKS for size in model.config.stack_module_sizes(name)}
            for setting in ("module_lr_scales", "plan_row_strides"):
                unknown = sorted(set(getattr(args, setting) or ()) - sizes)
                if unknown:
                    raise ConfigError(
                        f"{setting} names module sizes {unknown}; this model's modules have sizes {sorted(sizes)}"
                    )

    def prepare(self, model: nn.Module) -> None:
        if self.modular:
            model.requires_grad_(False)
            trainable = model.module_parameters()
            if not trainable:
                raise ConfigError("this modular model has no modules to train (check config.module_sizes)")
            for parameter in trainable:
                parameter.requires_grad_(True)

    def learning_rate_scales(self, model: nn.Module) -> dict[int, float]:
        """``module_lr_scales`` applied to the pools (each module's parameters by the size of its span),
        and the specialised layers' rate as a multiple of ``learning_rate``."""
        args = self.trainer.args
        if not self.modular:
            return {}
        scales = {
            id(parameter): args.module_lr_scales[end - start]
            for name in STACKS
            for (start, end), module in model.planned_layers(name).pool_modules()
            if end - start in (args.module_lr_scales or {})
            for parameter in module.parameters()
        }
        late = args.specialised_rate / args.learning_rate if args.learning_rate else 1.0
        return scales | {id(parameter): late for parameter in model.specialised_parameters()}

    def tail_steps(self) -> int:
        return self.trainer.args.specialised_steps if self.modular else 0

    def tail_parameters(self, model: nn.Module) -> set[int]:
        return {id(parameter) for parameter in model.specialised_parameters()} if self.modular else set()

    @contextlib.contextmanager
    def teacher_pass(self, student: nn.Module) -> Iterator[dict[str, list[tuple[torch.Tensor, torch.Tensor]]]]:
        """With ``teacher_context_weight``: every module of the step's plans also runs beside the
        teacher's layers during the teacher forward (``TeacherContext``), paired with the teacher's
        hidden state at its span's end. Only modules the step's plans use: DDP expects gradients
        for exactly the parameters its forward reached. A module that starts its stack is left out:
        its input is the embeddings in every plan, so its uniform plan's hidden-state term already is
        this term (running it again would only cost time)."""
        self._plans = self._training_plans(student) if self.modular else None
        args = self.trainer.args
        if not (self.modular and args.teacher_context_weight > 0):
            yield {}
            return
        pairs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        with contextlib.ExitStack() as stack:
            contexts = {}
            for name in STACKS:
                layers = student.planned_layers(name)
                used = {
                    span
                    for plan in self._plans
                    if not plan.specialised
                    for span in plan.stack(name).spans
                    if span[1] - span[0] > 1 and span[0] > 0
                }
                modules = {span: layers.get(span) for span in used}
                contexts[name] = stack.enter_context(layers.teacher_context(modules, args.teacher_context_row_stride))
            yield pairs
            pairs.update({name: context.pairs() for name, context in contexts.items()})

    def forward(
        self, model: nn.Module, inputs: dict[str, Any], flags: dict[str, bool]
    ) -> list[tuple[Plan | None, Any]]:
        if not self.modular:
            return super().forward(model, inputs, flags)
        plans = self._plans or self._training_plans(self.trainer.accelerator.unwrap_model(model))
        self._plans = None
        strides = [self.row_stride(plan) for plan in plans]
        return list(zip(plans, model(**inputs, **flags, plans=plans, row_strides=strides), strict=True))

    def row_stride(self, plan: Plan | None) -> int:
        """``plan_row_strides`` of the plan's smallest module (its deepest, dearest part); 1 without."""
        strides = self.trainer.args.plan_row_strides
        if not (self.modular and strides and plan is not None) or plan.specialised:
            return 1
        sizes = [end - start for name in STACKS for start, end in plan.stack(name).spans if end - start > 1]
        return strides.get(min(sizes), 1) if sizes else 1

    def _training_plans(self, student: ModularModelMixin) -> list[Plan]:
        """The plans this micro-batch trains: one random plan, or every granularity (paired as
        ``granularity_pairing`` says) plus ``single_stack_plans`` one-stack ones and ``random_plans``
        random ones; in the last ``specialised_steps``, the specialised plans alone (copied from the
        shared layers on the first micro-batch of the first of those steps)."""
        args = self.trainer.args
        generator = self._plan_generator()
        step, start = self.trainer.state.global_step, self._phase_steps()
        optimizer = self.trainer.optimizer
        late = [group["lr"] for group in optimizer.param_groups if group.get("specialised")] if optimizer else []
        self._late_rate = max(late) if late else None  # the rate this step runs at, to log with its loss
        if args.specialised_steps and step >= start:
            if step == start and self._sample_counter[1] == 0:
                for plan in student.specialised_plans:
                    student.copy_into_specialised(plan)
            return student.specialised_plans
        if args.plan_sampling == "random":
            return [sample_plan(student.plan_space, self._last_rate, generator)]
        rotation = step if args.granularity_pairing == "rotate" else 0
        plans = granularity_plans(student.plan_space, rotation)
        plans += single_stack_plans(student.plan_space, args.single_stack_plans, step)
        return plans + [sample_plan(student.plan_space, self._last_rate, generator) for _ in range(args.random_plans)]

    def _plan_generator(self) -> torch.Generator:
        """The generator random plans are drawn from, seeded by (seed, step, micro-batch): the same
        on every rank, and the same again after resuming from a checkpoint. Also sets the step's
        replacement rate."""
        state, args = self.trainer.state, self.trainer.args
        step = state.global_step
        micro = self._sample_counter[1] + 1 if self._sample_counter[0] == step else 0
        self._sample_counter = (step, micro)
        progress = step / max(self._phase_steps() - 1, 1)
        self._last_rate = args.schedule.rate(progress)
        return torch.Generator().manual_seed((args.seed * 1_000_003 + step * 1_009 + micro) % 2**63)

    def _phase_steps(self) -> int:
        """The steps before the specialised ones (all of them without)."""
        return self.trainer.state.max_steps - self.trainer.args.specialised_steps

    def before_training(self, model: nn.Module) -> None:
        """Refuse to train a model with specialised plans without ``specialised_steps``: the phase would move
        the shared layers and leave its specialised copies behind. (Evaluating such a model is fine.)"""
        held = model.specialised_plans if self.modular else []
        if held and not self.trainer.args.specialised_steps:
            raise ConfigError(
                f"this model has specialised plans ({'; '.join(p.describe() for p in held)}) and specialised_steps=0 "
                f"would leave them behind the phase: set specialised_steps (e.g. 600)"
            )

    def after_training(self, model: nn.Module) -> None:
        """A run stopped before its specialised steps (``max_time``) leaves their layers as built; copy the
        phase's shared layers into them, so a specialised plan serves at least its shared plan's quality."""
        args, state = self.trainer.args, self.trainer.state
        if self.modular and args.specialised_steps and state.global_step <= self._phase_steps():
            logger.warning(
                "training stopped at step %d, before its %d specialised steps: the specialised plans run copies of "
                "their shared layers until a resumed run trains them",
                state.global_step,
                args.specialised_steps,
            )
            for plan in model.specialised_plans:
                model.copy_into_specialised(plan)

    def log_fields(self) -> dict[str, float]:
        fields = {"replacement_rate": round(self._last_rate, 4)} if self.modular and self._last_rate is not None else {}
        if self._late_rate is not None:  # Trainer logs the first group's rate, which is the phase's
            fields["specialised_learning_rate"] = self._late_rate
        return fields

    def describe(self) -> str:
        args = self.trainer.args
        if not self.modular:
            return super().describe()
        late = f", then {args.specialised_steps} specialised steps" if args.specialised_steps else ""
        return f"module replacing, plan sampling {args.plan_sampling}{late}"
