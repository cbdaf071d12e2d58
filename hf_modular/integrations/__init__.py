"""Integrations with other tools of the ecosystem (ONNX export, optimum, PEFT, the Hub).

Each submodule imports its tool only when used, so ``import hf_modular`` never needs them.
"""

# Each modular model type is its stock family underneath: integrations reuse the family's settings.
MODULAR_TO_STOCK = {"modular_t5": "t5", "modular_bart": "bart"}
