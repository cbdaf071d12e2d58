"""ModularT5ForConditionalGeneration: T5 whose stacks run an assembly plan of teacher layers and modules."""

from __future__ import annotations

from types import MappingProxyType
from typing import ClassVar

from transformers import T5ForConditionalGeneration

from ...modeling import ModularModelMixin, plans_forward
from ...recipe import ModularRecipe
from .configuration_modular_t5 import ModularT5Config


class ModularT5ForConditionalGeneration(ModularModelMixin, T5ForConditionalGeneration):
    """Each stack holds its teacher ``T5Block``s (``encoder.block.i``) and a pool of modules
    (``encoder.block.pool.s_e``, one ``T5Block`` per span). A module starting at layer 0 owns
    a copy of the relative position bias table, as the first block of a T5 stack must."""

    config: ModularT5Config
    config_class = ModularT5Config
    # Tuned on G2P dev words (docs/g2p.md): modules also learn in the teacher's context (T5's mixed plans
    # were 2 PER behind the uniform ones without it), 3x and 6x modules at 0.7 of the rate, and the
    # 1.5x plan trained on layers of its own after the phase (its mixed plans stay near 2x quality).
    recipe: ClassVar[ModularRecipe] = ModularRecipe(
        module_lr_scales=MappingProxyType({3: 0.7, 6: 0.7}),
        teacher_context_weight=3.0,
        teacher_context_row_stride=4,
        specialise=("1.5x",),
    )
    forward = plans_forward(T5ForConditionalGeneration.forward)


__all__ = ["ModularT5ForConditionalGeneration"]
