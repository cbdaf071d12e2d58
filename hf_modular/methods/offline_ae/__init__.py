"""Offline weight compression with autoencoders (Banaei et al., 2023), SVD as the baseline.

from hf_modular.methods import offline_ae
compressed = offline_ae.compress(model, ratio=4, targets=["attention", "ffn"], mode="joint")
compressed.save_pretrained("out-ae")
AutoModelForSeq2SeqLM.from_pretrained("out-ae")  # rebuilds each weight once
"""

from ...lazy_exports import lazy_exports
from ...registry import ANY_FAMILY, Method, ModelClasses, register_method

_EXPORTS = {
    "CompressedModel": ".modeling",
    "CompressedWeightsConfig": ".config",
    "CompressedWeightsLoader": ".modeling",
    "OfflineAEConfig": ".config",
    "compress": ".compressor",
    "load_compressed": ".modeling",
    "random_token_batches": ".whitening",
    "select_targets": ".compressor",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

METHOD = register_method(
    Method(
        name="offline_ae",
        summary="offline autoencoder weight compression (no fine-tuning), SVD as the baseline",
        models={
            ANY_FAMILY: ModelClasses(
                "hf_modular_compressed",
                "hf_modular.methods.offline_ae.config:CompressedWeightsConfig",
                "hf_modular.methods.offline_ae.modeling:CompressedWeightsLoader",
            )
        },
    )
)
