"""Registering the modular model types with the transformers Auto classes.

Registration happens on ``import hf_modular`` and only under the new model types
(``modular_t5``, ``modular_bart``): stock ``t5`` / ``bart`` checkpoints keep loading as before,
and no checkpoint ever needs ``trust_remote_code``.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForSeq2SeqLM

from .integrations.optimum import register_optimum_tasks
from .integrations.peft import register_peft_target_modules
from .models.modular_bart import ModularBartConfig, ModularBartForConditionalGeneration
from .models.modular_t5 import ModularT5Config, ModularT5ForConditionalGeneration

MODULAR_MODELS = (
    (ModularT5Config, ModularT5ForConditionalGeneration),
    (ModularBartConfig, ModularBartForConditionalGeneration),
)


def register_auto_classes() -> None:
    """Idempotent: importing hf_modular twice (or reloading it) registers nothing twice."""
    from .methods.cost_eff import (
        CostEffBartConfig,
        CostEffBartForConditionalGeneration,
        CostEffT5Config,
        CostEffT5ForConditionalGeneration,
    )
    from .methods.offline_ae import CompressedWeightsConfig, CompressedWeightsLoader
    from .methods.pet import PetBartConfig, PetBartForConditionalGeneration, PetT5Config, PetT5ForConditionalGeneration

    method_models = (
        (CompressedWeightsConfig, CompressedWeightsLoader),
        (PetT5Config, PetT5ForConditionalGeneration),
        (PetBartConfig, PetBartForConditionalGeneration),
        (CostEffT5Config, CostEffT5ForConditionalGeneration),
        (CostEffBartConfig, CostEffBartForConditionalGeneration),
    )
    for config_class, model_class in (*MODULAR_MODELS, *method_models):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModelForSeq2SeqLM.register(config_class, model_class, exist_ok=True)


def register_integrations() -> None:
    """Make the ecosystem libraries recognise the modular model types (PEFT defaults, optimum tasks)."""
    register_peft_target_modules()
    register_optimum_tasks()
