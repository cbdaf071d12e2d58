"""The compression methods beside Modular Transformers, one folder each with the same file roles:
``config.py`` (validated settings), ``layers.py`` (the building blocks), ``compressor.py`` (apply
the method to a model, save and load the result).

    from hf_modular.methods import offline_ae
    compressed = offline_ae.compress(model, ratio=4, targets=["attention", "ffn"])
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {"cost_eff": ".cost_eff", "offline_ae": ".offline_ae", "pet": ".pet"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
