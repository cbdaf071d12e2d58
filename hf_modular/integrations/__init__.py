"""Integrations with other tools of the ecosystem (ONNX export, optimum, PEFT, the Hub).

Each submodule imports its tool only when used, so ``import hf_modular`` never needs them.
"""
