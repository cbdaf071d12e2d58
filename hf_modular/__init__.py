"""hf_modular: compress T5 and BART models for Hugging Face Transformers.

Importing this package registers the modular model types (and those of the other methods) with
the Auto classes, so ``AutoModelForSeq2SeqLM.from_pretrained(path, assemble="3x")`` works on a
modular artifact. Everything else loads on first use (``hf_modular.lazy_exports``).
"""

from .lazy_exports import lazy_exports
from .registration import register_auto_classes
from .version import __version__

_EXPORTS = {
    "STRATEGIES": ".assembly",
    "PlanSpace": ".assembly",
    "Calibration": ".calibration",
    "PlanScores": ".calibration",
    "calibrate_assembly": ".calibration",
    "measure_plans": ".calibration",
    "AssemblyError": ".errors",
    "CheckpointError": ".errors",
    "ConfigError": ".errors",
    "DataError": ".errors",
    "HfModularError": ".errors",
    "AssemblyResult": ".assembly_table",
    "AssemblyTable": ".assembly_table",
    "evaluate_assemblies": ".evaluation",
    "measure_model": ".evaluation",
    "ModularBartConfig": ".models.modular_bart",
    "ModularBartForConditionalGeneration": ".models.modular_bart",
    "ModularMarianConfig": ".models.modular_marian",
    "ModularMarianMTModel": ".models.modular_marian",
    "ModularMT5Config": ".models.modular_mt5",
    "ModularMT5ForConditionalGeneration": ".models.modular_mt5",
    "ModularT5Config": ".models.modular_t5",
    "ModularT5ForConditionalGeneration": ".models.modular_t5",
    "Plan": ".plan",
    "StackPlan": ".plan",
    "register_integrations": ".registration",
    "CompressionReport": ".report",
    "speculative_pair": ".speculative",
    "CompressionTrainer": ".training",
    "CompressionTrainingArguments": ".training",
    "SafeCheckpointing": ".training",
    "TimeBudget": ".training",
    "methods": ".methods",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", "register_auto_classes", *sorted(_EXPORTS)]

register_auto_classes()
