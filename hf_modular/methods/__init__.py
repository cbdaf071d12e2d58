"""The compression methods beside Modular Transformers, one folder each with the same file roles:
``config.py`` (validated settings), ``layers.py`` (the building blocks), ``compressor.py`` (apply
the method to a model, save and load the result).

    from hf_modular.methods import offline_ae
    compressed = offline_ae.compress(model, ratio=4, targets=["attention", "ffn"])
"""

from . import cost_eff, offline_ae, pet

METHODS = {"offline_ae": offline_ae, "pet": pet, "cost_eff": cost_eff}

__all__ = ["METHODS", "cost_eff", "offline_ae", "pet"]
