from .configuration_modular_t5 import ModularT5Config
from .modeling_modular_t5 import ModularT5ForConditionalGeneration

__all__ = ["ModularT5Config", "ModularT5ForConditionalGeneration"]
