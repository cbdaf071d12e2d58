"""Offline weight compression with autoencoders (Banaei et al., 2023), SVD as the baseline.

from hf_modular.methods import offline_ae
compressed = offline_ae.compress(model, ratio=4, targets=["attention", "ffn"], mode="joint")
compressed.save_pretrained("out-ae")
AutoModelForSeq2SeqLM.from_pretrained("out-ae")  # rebuilds each weight once
"""

from .compressor import (
    CompressedModel,
    CompressedWeightsConfig,
    CompressedWeightsLoader,
    compress,
    load_compressed,
    select_targets,
)
from .config import OfflineAEConfig

__all__ = [
    "CompressedModel",
    "CompressedWeightsConfig",
    "CompressedWeightsLoader",
    "OfflineAEConfig",
    "compress",
    "load_compressed",
    "select_targets",
]
