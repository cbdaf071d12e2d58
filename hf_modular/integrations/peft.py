"""PEFT defaults for the modular model types.

peft picks the layers an adapter wraps from a table keyed by ``config.model_type``; the
modular types are new keys there, so without this ``LoraConfig()`` with no
``target_modules`` fails on them. They get the entries of their stock family (an assembled
model has exactly the stock layer structure).
"""

from __future__ import annotations

import logging

from ..registry import stock_types

logger = logging.getLogger(__name__)


def register_peft_target_modules() -> None:
    """Idempotent; a peft without these tables (or without peft) is left alone."""
    try:
        from peft.utils import constants
    except ImportError:  # pragma: no cover - peft is a dependency, but a broken install must not break import
        logger.debug("peft is not importable: no PEFT defaults registered")
        return
    for name in dir(constants):
        if not (name.startswith("TRANSFORMERS_MODELS_TO_") and name.endswith("_TARGET_MODULES_MAPPING")):
            continue
        mapping = getattr(constants, name)
        for modular, stock in stock_types().items():
            if isinstance(mapping, dict) and stock in mapping:
                mapping.setdefault(modular, mapping[stock])
