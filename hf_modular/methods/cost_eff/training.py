"""COST-EFF's training settings as CompressionTrainingArguments."""

from __future__ import annotations

from typing import Any

from ...training.arguments import CompressionTrainingArguments

# Every exit: 0.1 cross-entropy + 0.9 KD to the teacher's final distribution (the published mix),
# plus hidden-state distillation, uniformly aligned to the teacher's layers.
COST_EFF_DEFAULTS = {"ce_weight": 0.1, "kd_weight": 0.9, "kd_temperature": 1.0, "hidden_weight": 1.0}


def training_arguments(output_dir: str, **kwargs: Any) -> CompressionTrainingArguments:
    """CompressionTrainingArguments with COST-EFF's loss weights (any of them can be overridden)."""
    return CompressionTrainingArguments(output_dir=output_dir, **{**COST_EFF_DEFAULTS, **kwargs})
