"""ModularMT5Config: an MT5Config plus the module pools and the assembly choice."""

from __future__ import annotations

from typing import ClassVar

from transformers import MT5Config

from .....arch import MT5_ADAPTER, ArchAdapter
from ...config import ModularConfigMixin


class ModularMT5Config(ModularConfigMixin, MT5Config):
    """``num_layers`` / ``num_decoder_layers`` are the *teacher's* depths; ``assemble`` picks the
    model that runs (see ``ModularConfigMixin`` for the modular fields)."""

    model_type = "modular_mt5"
    adapter: ClassVar[ArchAdapter] = MT5_ADAPTER


__all__ = ["ModularMT5Config"]
