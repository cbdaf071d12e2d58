"""hf_modular: compress T5 and BART models for Hugging Face Transformers.

Importing this package registers the modular model types (and those of the other methods) with
the Auto classes, so ``AutoModelForSeq2SeqLM.from_pretrained(path, assemble="3x")`` works on a
modular artifact. Everything else loads on first use (``hf_modular.lazy_exports``).
"""

from .lazy_exports import lazy_exports
from .registration import register_auto_classes
from .version import __version__

_EXPORTS = {
    "STRATEGIES": ".methods.modular.assembly",
    "PlanSpace": ".methods.modular.assembly",
    "Calibration": ".methods.modular.calibration",
    "PlanScores": ".methods.modular.calibration",
    "calibrate_assembly": ".methods.modular.calibration",
    "measure_plans": ".methods.modular.calibration",
    "AssemblyError": ".errors",
    "CheckpointError": ".errors",
    "ConfigError": ".errors",
    "DataError": ".errors",
    "HfModularError": ".errors",
    "AssemblyResult": ".methods.modular.assembly_table",
    "AssemblyTable": ".methods.modular.assembly_table",
    "evaluate_assemblies": ".evaluation",
    "measure_model": ".evaluation",
    "ModularBartConfig": ".methods.modular.models.modular_bart",
    "ModularBartForConditionalGeneration": ".methods.modular.models.modular_bart",
    "ModularMarianConfig": ".methods.modular.models.modular_marian",
    "ModularMarianMTModel": ".methods.modular.models.modular_marian",
    "ModularMT5Config": ".methods.modular.models.modular_mt5",
    "ModularMT5ForConditionalGeneration": ".methods.modular.models.modular_mt5",
    "ModularT5Config": ".methods.modular.models.modular_t5",
    "ModularT5ForConditionalGeneration": ".methods.modular.models.modular_t5",
    "Plan": ".plan",
    "StackPlan": ".plan",
    "register_integrations": ".registration",
    "CompressionReport": ".methods.modular.report",
    "speculative_pair": ".methods.modular.speculative",
    "CompressionTrainer": ".training",
    "CompressionTrainingArguments": ".training",
    "SafeCheckpointing": ".training",
    "TimeBudget": ".training",
    "methods": ".methods",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", "register_auto_classes", *sorted(_EXPORTS)]

register_auto_classes()
