"""The learning-rate schedule of a run whose last ``specialised_steps`` train other parameters.

The phase's parameter groups follow the run's own schedule (``lr_scheduler_type`` and its
warm-up) over the phase's steps, then stop; the specialised groups wait, then follow the same
kind of schedule over the last steps alone, warming up over the same fraction of them. It is one
``LambdaLR`` with a factor per parameter group, so Trainer saves and resumes it like its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainingArguments, get_scheduler

from ..errors import ConfigError


def staged_lr_scheduler(
    args: TrainingArguments,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    tail_steps: int,
    tail_groups: Collection[int],
) -> LambdaLR:
    """A scheduler for ``optimizer`` whose groups ``tail_groups`` (indices) learn only in the last
    ``tail_steps`` of ``total_steps``, and whose other groups learn only before them."""
    phase_steps = total_steps - tail_steps
    warmup = args.get_warmup_steps(phase_steps)
    phase = _factor(args, phase_steps, warmup)
    tail = _factor(args, tail_steps, round(tail_steps * warmup / phase_steps))

    def phase_factor(step: int) -> float:
        return phase(step) if step < phase_steps else 0.0

    def tail_factor(step: int) -> float:
        return tail(step - phase_steps) if step >= phase_steps else 0.0

    factors = [tail_factor if i in tail_groups else phase_factor for i in range(len(optimizer.param_groups))]
    return LambdaLR(optimizer, factors)


def _factor(args: TrainingArguments, steps: int, warmup: int) -> Callable[[int], float]:
    """The multiplier of the run's own schedule type over ``steps`` steps."""
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer=probe,
        num_warmup_steps=warmup,
        num_training_steps=steps,
        scheduler_specific_kwargs=args.lr_scheduler_kwargs,
    )
    if not isinstance(scheduler, LambdaLR):
        kind = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)  # an enum once parsed
        raise ConfigError(
            f"lr_scheduler_type={kind!r} cannot be split into a phase and its specialised steps "
            f"(specialised_steps): use a step-based schedule such as 'cosine', 'linear' or 'constant_with_warmup'"
        )
    return scheduler.lr_lambdas[0]
