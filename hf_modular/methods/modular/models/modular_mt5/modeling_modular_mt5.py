"""ModularMT5ForConditionalGeneration: mT5 whose stacks run an assembly plan of teacher layers and modules."""

from __future__ import annotations

from transformers import MT5ForConditionalGeneration

from ...modeling import ModularModelMixin, plans_forward
from .configuration_modular_mt5 import ModularMT5Config


class ModularMT5ForConditionalGeneration(ModularModelMixin, MT5ForConditionalGeneration):
    """Each stack holds its teacher ``MT5Block``s (``encoder.block.i``) and a pool of modules
    (``encoder.block.pool.s_e``, one ``MT5Block`` per span), as the T5 family does."""

    config: ModularMT5Config
    config_class = ModularMT5Config
    forward = plans_forward(MT5ForConditionalGeneration.forward)


__all__ = ["ModularMT5ForConditionalGeneration"]
