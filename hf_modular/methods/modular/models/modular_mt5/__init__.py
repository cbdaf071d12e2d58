from .....lazy_exports import lazy_exports

_EXPORTS = {
    "ModularMT5Config": ".configuration_modular_mt5",
    "ModularMT5ForConditionalGeneration": ".modeling_modular_mt5",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
