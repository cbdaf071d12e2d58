"""PET's published training settings as CompressionTrainingArguments."""

from __future__ import annotations

from typing import Any

from ...training.arguments import CompressionTrainingArguments

# KD phase: (1 - a) * CE + a * KD_T + b * hidden MSE, published a = 0.1, b = 50, T = 10.
PET_DEFAULTS = {"ce_weight": 0.9, "kd_weight": 0.1, "kd_temperature": 10.0, "hidden_weight": 50.0}


def training_arguments(output_dir: str, warmup_task_steps: int | None = None, **kwargs: Any):
    """CompressionTrainingArguments with PET's loss weights; the warm-up task runs for
    ``warmup_task_steps`` (default: a tenth of ``max_steps``) before distillation."""
    values = {**PET_DEFAULTS, **kwargs}
    if warmup_task_steps is None:
        warmup_task_steps = max(1, values.get("max_steps", 0) // 10) if values.get("max_steps", 0) > 0 else 0
    return CompressionTrainingArguments(output_dir=output_dir, warmup_task_steps=warmup_task_steps, **values)
