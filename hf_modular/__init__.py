"""hf_modular: compress T5 and BART models for Hugging Face Transformers.

Importing this package registers ``ModularT5Config`` / ``ModularBartConfig`` with the Auto
classes, so ``AutoModelForSeq2SeqLM.from_pretrained(path, assemble="3x")`` works on a
modular artifact.
"""

from .assembly import STRATEGIES, PlanSpace
from .calibration import Calibration, PlanScores, calibrate_assembly, measure_plans
from .errors import AssemblyError, CheckpointError, ConfigError, DataError, HfModularError
from .evaluation import AssemblyResult, AssemblyTable, evaluate_assemblies, measure_model
from .models.modular_bart import ModularBartConfig, ModularBartForConditionalGeneration
from .models.modular_t5 import ModularT5Config, ModularT5ForConditionalGeneration
from .plan import Plan, StackPlan
from .registration import register_auto_classes, register_integrations
from .report import CompressionReport
from .training import CompressionTrainer, CompressionTrainingArguments, SafeCheckpointing

__version__ = "0.1.0"

register_auto_classes()
register_integrations()

__all__ = [
    "STRATEGIES",
    "AssemblyError",
    "AssemblyResult",
    "AssemblyTable",
    "Calibration",
    "CheckpointError",
    "CompressionReport",
    "CompressionTrainer",
    "CompressionTrainingArguments",
    "ConfigError",
    "DataError",
    "HfModularError",
    "ModularBartConfig",
    "ModularBartForConditionalGeneration",
    "ModularT5Config",
    "ModularT5ForConditionalGeneration",
    "Plan",
    "PlanScores",
    "PlanSpace",
    "SafeCheckpointing",
    "StackPlan",
    "__version__",
    "calibrate_assembly",
    "evaluate_assemblies",
    "measure_model",
    "measure_plans",
    "register_auto_classes",
    "register_integrations",
]
