"""Training: the CompressionTrainer, its losses, and the module-replacement schedule."""

from .arguments import CompressionTrainingArguments
from .trainer import CompressionTrainer

__all__ = ["CompressionTrainer", "CompressionTrainingArguments"]
