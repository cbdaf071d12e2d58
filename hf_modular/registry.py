"""The method registry: each compression method registers itself once, and every integration reads it.

A method (one folder under ``hf_modular/methods``) declares, in its package ``__init__``, its name,
its model types with their config and model classes per stock family, the ``Objective``
``CompressionTrainer(method=...)`` trains it with (if any) and the arguments class that carries its
settings and defaults, and whether its models keep the stock family's module
layout (so PEFT's and optimum's defaults for the family carry over). The Auto-class registration,
the trainer, the CLI and the PEFT / optimum defaults all read this table, so adding a method or a
family touches no hand-kept list (peft registers its tuners the same way).

Classes are named as ``"module:attribute"`` strings and imported on first use: the registry is read
on ``import hf_modular``, which must not import torch (docs/architecture.md, "Import time").
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

ANY_FAMILY = "*"  # a method whose one model type serves every family (offline_ae's compressed weights)


@dataclass(frozen=True)
class ModelClasses:
    """One model type of a method: its ``model_type`` and its classes as ``"module:attribute"``."""

    model_type: str
    config: str
    model: str


@dataclass(frozen=True)
class Method:
    """A registered compression method (see the module docstring)."""

    name: str
    summary: str
    models: Mapping[str, ModelClasses] = field(default_factory=dict)  # stock family (or ANY_FAMILY) -> classes
    objective: str = ""  # "module:Class" of its training Objective: CompressionTrainer(method=name) runs it
    arguments: str = "hf_modular.training.arguments:CompressionTrainingArguments"  # its TrainingArguments class
    stock_layout: bool = False  # its models have the stock family's layers: PEFT/optimum defaults carry over

    def classes(self, family: str) -> ModelClasses:
        entry = self.models.get(family) or self.models.get(ANY_FAMILY)
        if entry is None:
            raise ConfigError(
                f"method {self.name!r} has no model for the {family!r} family; it has {sorted(self.models)}"
            )
        return entry

    def config_class(self, family: str) -> type:
        return resolve(self.classes(family).config)

    def model_class(self, family: str) -> type:
        return resolve(self.classes(family).model)

    def arguments_class(self) -> type:
        return resolve(self.arguments)

    def objective_class(self) -> type:
        if not self.objective:
            raise ConfigError(f"method {self.name!r} has no training objective: CompressionTrainer does not train it")
        return resolve(self.objective)


_METHODS: dict[str, Method] = {}
_discovered = {"done": False}


def register_method(method: Method) -> Method:
    """Add ``method`` (called once, from the method package's ``__init__``). Idempotent for the same spec."""
    known = _METHODS.get(method.name)
    if known is not None and known != method:
        raise ConfigError(f"a different method is already registered as {method.name!r}")
    taken = {m.model_type: other.name for other in _METHODS.values() for m in other.models.values()}
    for entry in method.models.values():
        if taken.get(entry.model_type, method.name) != method.name:
            raise ConfigError(f"model type {entry.model_type!r} already belongs to {taken[entry.model_type]!r}")
    _METHODS[method.name] = method
    return method


def methods() -> Mapping[str, Method]:
    """Every method, by name. The first call imports each package under ``hf_modular.methods`` (cheap:
    they export lazily), which registers it."""
    if not _discovered["done"]:
        from . import methods as package

        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.ispkg:
                importlib.import_module(f"{package.__name__}.{info.name}")
        _discovered["done"] = True
    return dict(_METHODS)


def get_method(name: object) -> Method:
    """The method called ``name``, or a ConfigError naming the registered ones."""
    known = methods()
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"method={name!r}: allowed {sorted(known)}")
    return known[name]


def trainable_methods() -> list[str]:
    """The methods ``CompressionTrainer(method=...)`` accepts."""
    return sorted(name for name, method in methods().items() if method.objective)


def model_types() -> dict[str, ModelClasses]:
    """Every registered model type -> its classes."""
    return {entry.model_type: entry for method in methods().values() for entry in method.models.values()}


def stock_types() -> dict[str, str]:
    """Model types whose models have their stock family's layers -> that family's model type."""
    return {
        entry.model_type: family
        for method in methods().values()
        if method.stock_layout
        for family, entry in method.models.items()
        if family != ANY_FAMILY
    }


def resolve(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)
