"""ModularBartForConditionalGeneration: BART whose stacks run an assembly plan of teacher layers and modules."""

from __future__ import annotations

from transformers import BartForConditionalGeneration

from ...modeling import ModularModelMixin, plans_forward
from .configuration_modular_bart import ModularBartConfig


class ModularBartForConditionalGeneration(ModularModelMixin, BartForConditionalGeneration):
    """Each stack holds its teacher layers (``model.encoder.layers.i``) and a pool of modules
    (``model.encoder.layers.pool.s_e``, one BART layer per span)."""

    config: ModularBartConfig
    config_class = ModularBartConfig
    forward = plans_forward(BartForConditionalGeneration.forward)


__all__ = ["ModularBartForConditionalGeneration"]
