from .....lazy_exports import lazy_exports

_EXPORTS = {
    "ModularT5Config": ".configuration_modular_t5",
    "ModularT5ForConditionalGeneration": ".modeling_modular_t5",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
