"""hf_modular: compress T5 and BART models for Hugging Face Transformers.

Importing this package registers the modular model types (and those of the other methods) with
the Auto classes, so ``AutoModelForSeq2SeqLM.from_pretrained(path, assemble="3x")`` works on a
modular artifact. Everything else loads on first use (``hf_modular.lazy_exports``).
"""

from .lazy_exports import lazy_exports
from .methods.modular import __all__ as _MODULAR_API  # cheap: that package exports lazily too
from .registration import register_auto_classes
from .version import __version__

_EXPORTS = {
    # the main method's API at the top level: everything hf_modular.methods.modular exports
    **dict.fromkeys(_MODULAR_API, ".methods.modular"),
    "AssemblyError": ".errors",
    "CheckpointError": ".errors",
    "ConfigError": ".errors",
    "DataError": ".errors",
    "HfModularError": ".errors",
    "evaluate_assemblies": ".evaluation",
    "measure_model": ".evaluation",
    "Plan": ".plan",
    "StackPlan": ".plan",
    "register_integrations": ".registration",
    "CompressionTrainer": ".training",
    "CompressionTrainingArguments": ".training",
    "SafeCheckpointing": ".training",
    "TimeBudget": ".training",
    "methods": ".methods",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", "register_auto_classes", *sorted(_EXPORTS)]

register_auto_classes()
