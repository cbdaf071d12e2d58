"""CostEffTrainingArguments: CompressionTrainingArguments with COST-EFF's published loss mix."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...training.arguments import CompressionTrainingArguments

# Every exit: 0.1 cross-entropy + 0.9 KD to the teacher's final distribution (the published mix),
# plus hidden-state distillation, uniformly aligned to the teacher's layers. Slenderization's
# importance loss uses the same mix.
COST_EFF_LOSS = {"ce_weight": 0.1, "kd_weight": 0.9, "kd_temperature": 1.0, "hidden_weight": 1.0}


@dataclass(kw_only=True)
class CostEffTrainingArguments(CompressionTrainingArguments):
    """COST-EFF's loss weights as the defaults (every one can be overridden)."""

    ce_weight: float = field(default=COST_EFF_LOSS["ce_weight"], metadata={"help": "cross-entropy, every exit"})
    kd_weight: float = field(default=COST_EFF_LOSS["kd_weight"], metadata={"help": "KD to the teacher, every exit"})
    kd_temperature: float = field(default=COST_EFF_LOSS["kd_temperature"], metadata={"help": "KD temperature"})
    hidden_weight: float = field(default=COST_EFF_LOSS["hidden_weight"], metadata={"help": "hidden-state MSE"})
