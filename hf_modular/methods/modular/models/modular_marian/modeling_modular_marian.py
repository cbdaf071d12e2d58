"""ModularMarianMTModel: Marian whose stacks run an assembly plan of teacher layers and modules."""

from __future__ import annotations

from transformers import MarianMTModel

from ...modeling import ModularModelMixin, plans_forward
from .configuration_modular_marian import ModularMarianConfig


class ModularMarianMTModel(ModularModelMixin, MarianMTModel):
    """Each stack holds its teacher layers (``model.encoder.layers.i``) and a pool of modules
    (``model.encoder.layers.pool.s_e``, one Marian layer per span), as the BART family does;
    the sinusoidal position tables are shared by every plan."""

    config: ModularMarianConfig
    config_class = ModularMarianConfig
    forward = plans_forward(MarianMTModel.forward)


__all__ = ["ModularMarianMTModel"]
