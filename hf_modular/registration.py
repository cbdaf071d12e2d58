"""Registering hf_modular's model types with the transformers Auto classes.

Registration happens on ``import hf_modular`` and only under new model types (``modular_t5``,
``pet_bart``, ...): stock ``t5`` / ``bart`` checkpoints keep loading as before, and no checkpoint
ever needs ``trust_remote_code``. The config classes are registered as they are; each model class
is registered as a ``LazyModelClass`` that imports the real one when the Auto class first uses it,
so ``import hf_modular`` never imports the modeling code (docs/architecture.md, "Import time").
"""

from __future__ import annotations

import importlib
from typing import Any

# model type -> (config class, model class), as "module:attribute" (hf_modular's one list of them)
MODEL_TYPES = {
    "modular_t5": (
        "hf_modular.models.modular_t5.configuration_modular_t5:ModularT5Config",
        "hf_modular.models.modular_t5.modeling_modular_t5:ModularT5ForConditionalGeneration",
    ),
    "modular_bart": (
        "hf_modular.models.modular_bart.configuration_modular_bart:ModularBartConfig",
        "hf_modular.models.modular_bart.modeling_modular_bart:ModularBartForConditionalGeneration",
    ),
    "pet_t5": (
        "hf_modular.methods.pet.config:PetT5Config",
        "hf_modular.methods.pet.student:PetT5ForConditionalGeneration",
    ),
    "pet_bart": (
        "hf_modular.methods.pet.config:PetBartConfig",
        "hf_modular.methods.pet.student:PetBartForConditionalGeneration",
    ),
    "cost_eff_t5": (
        "hf_modular.methods.cost_eff.config:CostEffT5Config",
        "hf_modular.methods.cost_eff.model:CostEffT5ForConditionalGeneration",
    ),
    "cost_eff_bart": (
        "hf_modular.methods.cost_eff.config:CostEffBartConfig",
        "hf_modular.methods.cost_eff.model:CostEffBartForConditionalGeneration",
    ),
    "hf_modular_compressed": (
        "hf_modular.methods.offline_ae.config:CompressedWeightsConfig",
        "hf_modular.methods.offline_ae.compressor:CompressedWeightsLoader",
    ),
}


def resolve(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


class LazyModelClass:
    """Stands in the Auto model mapping for a model class until it is used: the Auto classes call
    only ``from_pretrained`` / ``_from_config`` (and read ``config_class`` / ``__name__``)."""

    def __init__(self, config_class: type, reference: str):
        self.config_class, self.reference = config_class, reference
        self.__name__ = reference.rpartition(":")[2]

    def resolved(self) -> type:
        return resolve(self.reference)

    def from_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolved().from_pretrained(*args, **kwargs)

    def _from_config(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolved()._from_config(*args, **kwargs)

    def from_config(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolved()._from_config(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<lazy {self.reference}>"


def register_auto_classes() -> None:
    """Idempotent: importing hf_modular twice (or reloading it) registers nothing twice."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    for model_type, (config_reference, model_reference) in MODEL_TYPES.items():
        config_class = resolve(config_reference)
        AutoConfig.register(model_type, config_class, exist_ok=True)
        AutoModelForSeq2SeqLM.register(config_class, LazyModelClass(config_class, model_reference), exist_ok=True)


def register_integrations() -> None:
    """Make the ecosystem libraries recognise the modular model types (PEFT defaults, optimum tasks).
    Runs when the modular model classes are first imported (their modeling module calls it)."""
    from .integrations.optimum import register_optimum_tasks
    from .integrations.peft import register_peft_target_modules

    register_peft_target_modules()
    register_optimum_tasks()
