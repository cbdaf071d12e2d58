from .....lazy_exports import lazy_exports

_EXPORTS = {
    "ModularBartConfig": ".configuration_modular_bart",
    "ModularBartForConditionalGeneration": ".modeling_modular_bart",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
