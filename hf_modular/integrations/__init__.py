"""Integrations with other tools of the ecosystem (ONNX export, optimum, PEFT, the Hub).

Each submodule imports its tool only when used, so ``import hf_modular`` never needs them. The
model types that keep their stock family's layers (``hf_modular.registry.stock_types``) reuse that
family's settings in each tool.
"""
