from .configuration_modular_bart import ModularBartConfig
from .modeling_modular_bart import ModularBartForConditionalGeneration

__all__ = ["ModularBartConfig", "ModularBartForConditionalGeneration"]
