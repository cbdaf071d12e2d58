from .....lazy_exports import lazy_exports

_EXPORTS = {
    "ModularMarianConfig": ".configuration_modular_marian",
    "ModularMarianMTModel": ".modeling_modular_marian",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
