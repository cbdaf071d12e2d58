"""CompressionTrainer: a Seq2SeqTrainer that trains by module replacing and distillation.

For a modular model it trains every module of every granularity in one phase: each step
samples a plan, or runs one plan per granularity (``plan_sampling``); the same model under
the identity plan provides the teacher signal once per batch (no second copy of the teacher in
memory), and only module parameters learn.
A separate ``teacher=`` model serves students that differ from their teacher (PET, COST-EFF,
shrink-and-fine-tune baselines); it is a trainer attribute, so it is never saved or trained.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedModel, Seq2SeqTrainer

from ..arch import adapter_for
from ..batch_rows import every_nth_row
from ..errors import ConfigError, DataError
from ..evaluation import evaluate_assemblies
from ..losses import attention_mse_sum, cross_entropy_sum, hidden_mse_sum, logit_kd_sum
from ..methods.modular.assembly_table import AssemblyTable
from ..methods.modular.calibration import Calibration, PlanScores, calibrate_assembly, measure_plans
from ..methods.modular.modeling import ModularModelMixin
from ..plan import STACKS, Plan
from ..registry import get_method, methods, trainable_methods
from .arguments import CompressionTrainingArguments
from .checkpointing import SafeCheckpointing
from .staged_schedule import staged_lr_scheduler

logger = logging.getLogger(__name__)

_OUTPUT_NAMES = {
    "encoder": ("encoder_hidden_states", "encoder_attentions"),
    "decoder": ("decoder_hidden_states", "decoder_attentions"),
}


class CompressionTrainer(SafeCheckpointing, Seq2SeqTrainer):
    # compute_loss normalises every term over the whole optimizer step itself.
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        args: CompressionTrainingArguments | None = None,
        *,
        teacher: PreTrainedModel | None = None,
        method: str = "modular",
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, CompressionTrainingArguments):
            raise ConfigError(
                f"CompressionTrainer needs CompressionTrainingArguments, got {type(args).__name__}: "
                f"they carry the loss weights and the replacement schedule"
            )
        if model is None:
            raise ConfigError("CompressionTrainer needs a model (a modular model, or a student with teacher=)")
        if method not in trainable_methods():
            raise ConfigError(f"method={method!r}: allowed {trainable_methods()}")
        self.method = method
        _check_arguments_class(args, method)
        self.objective = get_method(method).objective_class()(self)
        self.objective.check(model, teacher, args)
        self.objective.prepare(model)
        half = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad and p.dtype != torch.float32})
        if half:
            raise ConfigError(
                f"the trainable weights are {', '.join(half)}: updating half-precision weights directly diverges "
                f"(a measured fp16 fine-tune went from loss 8 to 125 in 4 steps). Load the model in float32 "
                f"(from_teacher(..., dtype=torch.float32) is the default; from_pretrained(..., dtype=torch.float32)) "
                f"and set bf16=True or fp16=True for mixed precision; the teacher may stay in half precision"
            )
        if args.attention_weight > 0:
            # Attention maps are only returned by the eager implementation.
            for m in (model, teacher):
                if m is not None and m.config._attn_implementation != "eager":
                    logger.info("attention distillation: switching %s to eager attention", type(m).__name__)
                    m.set_attn_implementation("eager")
        for split in ("train_dataset", "eval_dataset"):
            dataset = kwargs.get(split)
            if dataset is not None and hasattr(dataset, "__len__") and len(dataset) == 0:
                raise DataError(f"{split} is empty: give at least one example")
        super().__init__(model=model, args=args, **kwargs)
        if args.fsdp and not self.is_fsdp_enabled:
            # accelerate enables FSDP only for GPU-type distributed setups; elsewhere Trainer would run DDP
            raise ConfigError(
                f"fsdp={args.fsdp!r} was requested, but accelerate did not enable FSDP here (distributed type "
                f"{self.accelerator.distributed_type}; accelerate supports FSDP on GPUs only) and training would "
                f"silently run {'DDP' if args.world_size > 1 else 'one process'} instead: drop fsdp on this machine"
            )
        self.teacher = self._prepare_teacher(teacher)
        logger.info(
            "CompressionTrainer: %d process(es), method %s (%s)",
            self.accelerator.num_processes,
            method,
            self.objective.describe(),
        )
        self._encoder_units: torch.Tensor | None = None

    # ----------------------------------------------------------------- setup
    def _prepare_teacher(self, teacher: PreTrainedModel | None) -> PreTrainedModel | None:
        if teacher is None:
            return None
        student_config = self.model.config
        if teacher.config.vocab_size != student_config.vocab_size:
            raise ConfigError(
                f"teacher and student vocabularies differ ({teacher.config.vocab_size} vs "
                f"{student_config.vocab_size}): logit distillation needs the same vocabulary"
            )
        if self.args.hidden_weight > 0 and teacher.config.d_model != student_config.d_model:
            raise ConfigError(
                f"hidden-state distillation needs equal hidden sizes (teacher d_model {teacher.config.d_model}, "
                f"student {student_config.d_model}); set hidden_weight=0"
            )
        return teacher.requires_grad_(False).eval().to(self.args.device)

    # ----------------------------------------------------------------- the loss
    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Also count the encoder tokens of the whole optimizer step, to normalise encoder terms."""
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        counts = [self._encoder_mask(b).sum() for b in batch_samples if "input_ids" in b]
        self._encoder_units = torch.stack(counts).sum().to(device) if counts else None
        if self._encoder_units is not None and self.args.average_tokens_across_devices:
            self._encoder_units = self.accelerator.gather(self._encoder_units).sum()
        return batch_samples, num_items_in_batch

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        if not model.training:  # evaluation: the active plan's own loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        args: CompressionTrainingArguments = self.args
        phase = self.objective.phase_loss(model, inputs, num_items_in_batch)
        if phase is not None:  # a phase before distillation (PET's warm-up task)
            return phase if return_outputs else phase[0]
        student = self.accelerator.unwrap_model(model)
        self._check_lengths(student, inputs)
        if not inputs["labels"].ne(-100).any():
            logger.warning("a training batch has no labels (all -100); it contributes no loss")
        extra = {"output_hidden_states": args.hidden_weight > 0, "output_attentions": args.attention_weight > 0}
        with torch.no_grad(), self.objective.teacher_pass(student) as context_pairs:
            teacher_out = self.teacher_forward(student, inputs, extra)
        # every plan of the step in ONE forward call: DDP needs one forward per backward
        step = self.objective.forward(model, inputs, self.objective.output_flags(extra))
        losses = [
            self._distillation_loss(student, plan, inputs, outputs, teacher_out, num_items_in_batch)
            for plan, outputs in step
        ]
        outputs = step[-1][1]
        loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
        if context_pairs:  # modules beside the teacher's own layers (teacher_context_weight)
            masks, units = self._stack_normalisers(inputs, num_items_in_batch)
            for name, pairs in context_pairs.items():
                if pairs:
                    # on every n-th row: counted n times (the same expected term, linear in the rows' sums)
                    stride = args.teacher_context_row_stride
                    term = self._hidden_term(pairs, masks[name][::stride], units[name]) * stride
                    loss = loss + args.teacher_context_weight * term
        if args.average_tokens_across_devices and self.accelerator.num_processes > 1:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients over ranks
        return (loss, outputs) if return_outputs else loss

    def _distillation_loss(
        self,
        student: nn.Module,
        plan: Plan | None,
        inputs: dict[str, Any],
        outputs: Any,
        teacher_out: Any,
        num_items_in_batch: torch.Tensor | int | None,
    ) -> torch.Tensor:
        """CE + logit KD (every exit, for COST-EFF) + hidden/attention MSE at aligned boundaries. A plan
        trained on every n-th row (``plan_row_strides``) is compared on those rows of the labels and of
        the teacher's outputs, its sums still divided by the whole micro-batch's positions and counted
        n times (the same expected loss)."""
        args: CompressionTrainingArguments = self.args
        masks, units = self._stack_normalisers(inputs, num_items_in_batch)
        labels, stride = inputs["labels"], self.objective.row_stride(plan)
        if stride > 1:  # the model already ran on these rows (plans_forward); cut what the loss compares
            cut = every_nth_row((labels, masks, teacher_out), stride, labels.shape[0])
            labels, masks, teacher_out = cut
        # COST-EFF: every exit learns the labels and the teacher's final distribution
        exits = self.objective.logits(student, outputs)
        loss = (
            sum(
                args.ce_weight * cross_entropy_sum(logits, labels)
                + args.kd_weight * logit_kd_sum(logits, teacher_out.logits, masks["decoder"], args.kd_temperature)
                for logits in exits
            )
            / units["decoder"]
        )
        for name in STACKS:
            pairs = self._aligned_steps(student, plan, name)
            if args.hidden_weight > 0:
                key = _OUTPUT_NAMES[name][0]
                hidden = [(outputs[key][s], teacher_out[key][t]) for s, t in pairs]
                loss = loss + args.hidden_weight * self._hidden_term(hidden, masks[name], units[name])
            if args.attention_weight > 0:
                attention = [
                    attention_mse_sum(
                        outputs[_OUTPUT_NAMES[name][1]][s - 1], teacher_out[_OUTPUT_NAMES[name][1]][t - 1], masks[name]
                    )
                    for s, t in pairs
                ]
                loss = loss + args.attention_weight * torch.stack(attention).mean() / units[name]
        return loss * stride

    def _stack_normalisers(
        self, inputs: dict[str, Any], num_items_in_batch: torch.Tensor | int | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per stack, the positions a term covers and how many the whole optimizer step has."""
        masks = {"encoder": self._encoder_mask(inputs), "decoder": inputs["labels"].ne(-100)}
        units = {
            "encoder": self.units(self._encoder_units, masks["encoder"]),
            "decoder": self.units(num_items_in_batch, masks["decoder"]),
        }
        return masks, units

    @staticmethod
    def _hidden_term(
        pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], mask: torch.Tensor, units: torch.Tensor
    ) -> torch.Tensor:
        """Hidden-state MSE averaged over the (student, teacher) pairs, normalised per position."""
        return torch.stack([hidden_mse_sum(s, t, mask) for s, t in pairs]).mean() / units

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, with each parameter group split by the objective's learning-rate
        multipliers (``module_lr_scales``, the specialised rate) and by whether it learns in the phase or
        in its last steps (``specialised: True``); the scheduler then scales every group's own rate."""
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        unwrapped = self.accelerator.unwrap_model(self.model if model is None else model)
        scales, tail = self.objective.learning_rate_scales(unwrapped), self.objective.tail_parameters(unwrapped)
        if fresh and (scales or tail):
            groups = []
            for group in optimizer.param_groups:
                by_key: dict[tuple[bool, float], list[nn.Parameter]] = {}
                for parameter in group["params"]:
                    key = (id(parameter) in tail, scales.get(id(parameter), 1.0))
                    by_key.setdefault(key, []).append(parameter)
                groups += [
                    {**group, "params": ps, "lr": group["lr"] * scale, "specialised": late}
                    for (late, scale), ps in sorted(by_key.items())
                ]
            optimizer.param_groups.clear()  # no step has run: nothing in the state refers to a group yet
            for group in groups:
                optimizer.add_param_group(group)
        return optimizer

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """The Trainer's scheduler; with ``specialised_steps``, the phase's groups follow it over the phase
        and the specialised groups over the last steps (``staged_lr_scheduler``)."""
        tail = self.objective.tail_steps()
        if self.lr_scheduler is None and tail:
            optimizer = optimizer if optimizer is not None else self.optimizer
            late = [i for i, group in enumerate(optimizer.param_groups) if group.get("specialised")]
            self.lr_scheduler = staged_lr_scheduler(self.args, optimizer, num_training_steps, tail, late)
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def teacher_forward(self, student: nn.Module, inputs: dict[str, Any], extra: dict[str, bool]):
        if self.teacher is not None:
            return self.teacher(**inputs, **extra)
        # The identity plan of the modular model is the teacher, run without dropout.
        with student.plan_context(student.resolve_plan(None), eval_mode=True):
            return student(**inputs, **extra)

    def _aligned_steps(self, student: nn.Module, plan: Plan | None, name: str) -> list[tuple[int, int]]:
        """(student hidden-state index, teacher hidden-state index) pairs to distil, embeddings excluded.

        A modular student's step k ends at teacher boundary ``plan.boundaries[k]``. Any other
        student is mapped uniformly onto the teacher's depth (student k -> teacher k * Lt / Ls).
        """
        teacher = self.teacher if self.teacher is not None else student
        teacher_depth = adapter_for(teacher).depth(teacher.config, name)
        if plan is not None and plan.stack(name).depth == teacher_depth:
            return list(enumerate(plan.stack(name).boundaries))[1:]
        student_depth = (
            plan.stack(name).num_steps if plan is not None else adapter_for(student).depth(student.config, name)
        )
        return [(k, round(k * teacher_depth / student_depth)) for k in range(1, student_depth + 1)]

    def _check_lengths(self, student: nn.Module, inputs: dict[str, Any]) -> None:
        """BART embeds positions from a table: longer sequences would fail deep inside with an IndexError."""
        limit = adapter_for(student).max_positions(student.config)
        for key in ("input_ids", "labels"):
            if limit is not None and key in inputs and inputs[key].shape[-1] > limit:
                raise DataError(
                    f"a batch has {key} of length {inputs[key].shape[-1]}, more than the model's "
                    f"max_position_embeddings={limit}: truncate the data (e.g. tokenizer(..., truncation=True, "
                    f"max_length={limit}))"
                )

    @staticmethod
    def _encoder_mask(inputs: dict[str, Any]) -> torch.Tensor:
        mask = inputs.get("attention_mask")
        return mask if mask is not None else torch.ones_like(inputs["input_ids"])

    @staticmethod
    def units(window_count: torch.Tensor | int | None, local_mask: torch.Tensor) -> torch.Tensor:
        """How many positions the whole optimizer step normalises over (at least 1)."""
        count = window_count if window_count is not None else local_mask.sum()
        return torch.as_tensor(count, device=local_mask.device).clamp(min=1).float()

    # ----------------------------------------------------------------- after training
    def train(self, *args: Any, **kwargs: Any) -> Any:
        """Stock ``train()`` between the objective's checks and its last word (``Objective.before_training``,
        ``Objective.after_training``)."""
        self.objective.before_training(self.accelerator.unwrap_model(self.model))
        output = super().train(*args, **kwargs)
        self.objective.after_training(self.accelerator.unwrap_model(self.model))
        return output

    def evaluate_assemblies(
        self, eval_dataset: Dataset | None = None, ratios: Sequence[str] | None = None, **kwargs: Any
    ) -> AssemblyTable:
        """Quality, size and decode latency of every assembly (see ``hf_modular.evaluate_assemblies``)."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ConfigError("evaluate_assemblies needs an eval_dataset (here or in the trainer)")
        kwargs.setdefault("batch_size", self.args.per_device_eval_batch_size)
        return evaluate_assemblies(self._modular_model(), dataset, self.data_collator, ratios, **kwargs)

    def calibrate(
        self, ratios: Sequence[str], dataset: Dataset | None = None, num_batches: int = 4, **kwargs: Any
    ) -> list[Calibration]:
        """Choose the best plan per ratio by teacher-KL on a few batches; stored in the model's config."""
        dataset = dataset if dataset is not None else (self.eval_dataset or self.train_dataset)
        loader = DataLoader(dataset, batch_size=self.args.per_device_eval_batch_size, collate_fn=self.data_collator)
        batches = list(itertools.islice(loader, num_batches))
        return calibrate_assembly(self._modular_model(), batches, ratios, **kwargs)

    def measure_plans(self, dataset: Dataset | None = None, num_batches: int = 4, **kwargs: Any) -> PlanScores:
        """Measure every reachable plan on held-out data (default: the eval set) and store the table
        in the model's config, so ``assemble="Nx"`` serves the best measured plan (``measure_plans``)."""
        dataset = dataset if dataset is not None else self.eval_dataset
        if dataset is None:
            raise ConfigError("measure_plans needs held-out data: pass a dataset or give the trainer an eval_dataset")
        loader = DataLoader(dataset, batch_size=self.args.per_device_eval_batch_size, collate_fn=self.data_collator)
        batches = list(itertools.islice(loader, num_batches))
        return measure_plans(self._modular_model(), batches, progress=not self.args.disable_tqdm, **kwargs)

    def _modular_model(self) -> ModularModelMixin:
        model = self.accelerator.unwrap_model(self.model)
        if not isinstance(model, ModularModelMixin):
            raise ConfigError(f"{type(model).__name__} has no assemblies: it is not a modular model")
        return model

    # ----------------------------------------------------------------- logging
    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs:
            logs.update(self.objective.log_fields())
        super().log(logs, *args, **kwargs)


def _check_arguments_class(args: CompressionTrainingArguments, method: str) -> None:
    """``args`` must be the method's registered arguments class (or a subclass): PET's warm-up settings
    mean nothing to another method, and a method with its own defaults needs its own class."""
    expected = get_method(method).arguments_class()
    owners = {m.arguments_class(): m.name for m in methods().values() if m.objective}
    foreign = next((c for c in type(args).__mro__ if c in owners and not issubclass(expected, c)), None)
    if not isinstance(args, expected) or foreign is not None:
        owner = f" (the arguments of method {owners[foreign]!r})" if foreign is not None else ""
        raise ConfigError(
            f"method={method!r} takes {expected.__name__}, got {type(args).__name__}{owner}: "
            f"build the arguments with the method's class"
        )
