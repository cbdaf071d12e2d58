"""Offline weight compression with autoencoders (Banaei et al., 2023), SVD as the baseline.

from hf_modular.methods import offline_ae
compressed = offline_ae.compress(model, ratio=4, targets=["attention", "ffn"], mode="joint")
compressed.save_pretrained("out-ae")
AutoModelForSeq2SeqLM.from_pretrained("out-ae")  # rebuilds each weight once
"""

from ...lazy_exports import lazy_exports

_EXPORTS = {
    "CompressedModel": ".compressor",
    "CompressedWeightsConfig": ".config",
    "CompressedWeightsLoader": ".compressor",
    "OfflineAEConfig": ".config",
    "compress": ".compressor",
    "load_compressed": ".compressor",
    "select_targets": ".compressor",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
