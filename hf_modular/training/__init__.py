"""Training: the CompressionTrainer, its losses, and the module-replacement schedule."""

from .arguments import CompressionTrainingArguments
from .checkpoint_state import last_complete_checkpoint
from .checkpointing import SafeCheckpointing
from .time_budget import TimeBudget
from .trainer import CompressionTrainer

__all__ = [
    "CompressionTrainer",
    "CompressionTrainingArguments",
    "SafeCheckpointing",
    "TimeBudget",
    "last_complete_checkpoint",
]
