"""ModularBartConfig: a BartConfig plus the module pools and the assembly choice."""

from __future__ import annotations

from typing import ClassVar

from transformers import BartConfig

from .....arch import BART_ADAPTER, ArchAdapter
from ...config import ModularConfigMixin


class ModularBartConfig(ModularConfigMixin, BartConfig):
    """``encoder_layers`` / ``decoder_layers`` are the *teacher's* depths; ``assemble`` picks the
    model that runs (see ``ModularConfigMixin`` for the modular fields)."""

    model_type = "modular_bart"
    adapter: ClassVar[ArchAdapter] = BART_ADAPTER


__all__ = ["ModularBartConfig"]
