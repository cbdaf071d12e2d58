"""Packages whose public names load on first use (PEP 562), as transformers' own ``_LazyModule``.

``import hf_modular`` has to register the model types with the Auto classes and nothing more:
the trainer, evaluation, the methods and the integrations (PEFT, optimum, datasets, onnx) are
imported when a name from them is first used, so the import costs about what importing a
transformers config costs (docs/architecture.md has the measurement).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each name in ``exports`` comes from the given
    submodule (relative to the package, e.g. ``".training"``) when first looked up."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(exports[name], package)
        value = getattr(module, name) if hasattr(module, name) else module  # a name, or a submodule itself
        globals_of(package)[name] = value  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*globals_of(package), *exports})

    return __getattr__, __dir__


def globals_of(package: str) -> dict[str, Any]:
    import sys

    return vars(sys.modules[package])
