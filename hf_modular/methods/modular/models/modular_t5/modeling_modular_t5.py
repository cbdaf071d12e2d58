"""ModularT5ForConditionalGeneration: T5 whose stacks run an assembly plan of teacher layers and modules."""

from __future__ import annotations

from transformers import T5ForConditionalGeneration

from ...modeling import ModularModelMixin, plans_forward
from .configuration_modular_t5 import ModularT5Config


class ModularT5ForConditionalGeneration(ModularModelMixin, T5ForConditionalGeneration):
    """Each stack holds its teacher ``T5Block``s (``encoder.block.i``) and a pool of modules
    (``encoder.block.pool.s_e``, one ``T5Block`` per span). A module starting at layer 0 owns
    a copy of the relative position bias table, as the first block of a T5 stack must."""

    config: ModularT5Config
    config_class = ModularT5Config
    forward = plans_forward(T5ForConditionalGeneration.forward)


__all__ = ["ModularT5ForConditionalGeneration"]
