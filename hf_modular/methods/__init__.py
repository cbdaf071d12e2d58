"""The compression methods, one package each, with the same file roles (``config.py``,
``modeling.py``, ``layers.py``, ``objective.py`` and ``arguments.py`` for the trained ones). Every
package registers its method once in its ``__init__`` (``hf_modular.registry``: name, model classes
per family, trainer objective, arguments class), and the Auto classes, the trainer, the CLI and the
PEFT / optimum defaults read that registry.

    from hf_modular.methods import offline_ae
    compressed = offline_ae.compress(model, ratio=4, targets=["attention", "ffn"])
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {"cost_eff": ".cost_eff", "modular": ".modular", "offline_ae": ".offline_ae", "pet": ".pet"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
