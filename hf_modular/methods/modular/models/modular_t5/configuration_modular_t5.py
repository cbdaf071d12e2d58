"""ModularT5Config: a T5Config plus the module pools and the assembly choice."""

from __future__ import annotations

from typing import ClassVar

from transformers import T5Config

from .....arch import T5_ADAPTER, ArchAdapter
from ...config import ModularConfigMixin


class ModularT5Config(ModularConfigMixin, T5Config):
    """``num_layers`` / ``num_decoder_layers`` are the *teacher's* depths; ``assemble`` picks the
    model that runs (see ``ModularConfigMixin`` for the modular fields)."""

    model_type = "modular_t5"
    adapter: ClassVar[ArchAdapter] = T5_ADAPTER


__all__ = ["ModularT5Config"]
