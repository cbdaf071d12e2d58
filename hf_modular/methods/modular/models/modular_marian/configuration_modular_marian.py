"""ModularMarianConfig: a MarianConfig plus the module pools and the assembly choice."""

from __future__ import annotations

from typing import ClassVar

from transformers import MarianConfig

from .....arch import MARIAN_ADAPTER, ArchAdapter
from ...config import ModularConfigMixin


class ModularMarianConfig(ModularConfigMixin, MarianConfig):
    """``encoder_layers`` / ``decoder_layers`` are the *teacher's* depths; ``assemble`` picks the
    model that runs (see ``ModularConfigMixin`` for the modular fields)."""

    model_type = "modular_marian"
    adapter: ClassVar[ArchAdapter] = MARIAN_ADAPTER


__all__ = ["ModularMarianConfig"]
