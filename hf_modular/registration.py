"""Registering hf_modular's model types with the transformers Auto classes.

Registration is set up on ``import hf_modular`` and only under new model types (``modular_t5``,
``pet_bart``, ...): stock ``t5`` / ``bart`` checkpoints keep loading as before, and no checkpoint
ever needs ``trust_remote_code``. It runs when transformers' Auto modules load (at once if they
already have), through wrapt's post-import hooks: any transformers config class imports torch, so
registering eagerly made ``import hf_modular`` cost about 2.5x ``import transformers``. Each model
class is registered as a ``LazyModelClass`` that imports the real one when the Auto class first
uses it (docs/architecture.md, "Import time").
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import wrapt

from .registry import ANY_FAMILY, methods, model_types, resolve


class LazyModelClass:
    """Stands in the Auto model mapping for a model class until it is used: the Auto classes call
    only ``from_pretrained`` / ``_from_config`` (and read ``config_class`` / ``__name__``)."""

    def __init__(self, config_class: type, reference: str):
        self.config_class, self.reference = config_class, reference
        self.__name__ = reference.rpartition(":")[2]

    def resolved(self) -> type:
        return resolve(self.reference)

    def from_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolved().from_pretrained(*args, **kwargs)

    def _from_config(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolved()._from_config(*args, **kwargs)

    def from_config(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolved()._from_config(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<lazy {self.reference}>"


def registration_needs() -> tuple[str, ...]:
    """The transformers modules registration needs complete: the Auto mappings and the stock configs
    the registered config classes subclass (a family is named by its stock ``model_type``, so its
    config module is ``transformers.models.<family>.configuration_<family>``). A transformers
    config's docstring decorator imports the Auto modules while its own module is still running, so
    registration waits until none of these is mid-import. ``hf_modular.arch`` is one of them: it
    imports those configs itself, and the config classes registration imports need it complete
    (``from hf_modular.arch import ...`` as a program's first import ran registration mid-way)."""
    families = sorted({family for method in methods().values() for family in method.models if family != ANY_FAMILY})
    return (
        "transformers.models.auto.configuration_auto",
        "transformers.models.auto.modeling_auto",
        *(f"transformers.models.{family}.configuration_{family}" for family in families),
        "hf_modular.arch",
    )


_state = {"hooked": False, "registered": False}


def mid_import(name: str, finished: ModuleType) -> bool:
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and module is not finished and bool(getattr(spec, "_initializing", False))


def register_when_complete(finished: ModuleType) -> None:
    """Post-import hook of every module in ``registration_needs()``: the last of them to finish
    loading imports what is still missing and registers."""
    needs = registration_needs()
    if _state["registered"] or any(mid_import(name, finished) for name in needs):
        return
    for name in needs:
        importlib.import_module(name)
    if _state["registered"]:  # one of those imports ran this hook to the end already
        return
    from transformers.models.auto.configuration_auto import AutoConfig
    from transformers.models.auto.modeling_auto import AutoModelForSeq2SeqLM

    for model_type, classes in model_types().items():  # every registered method's (hf_modular.registry)
        config_class = resolve(classes.config)
        AutoConfig.register(model_type, config_class, exist_ok=True)
        AutoModelForSeq2SeqLM.register(config_class, LazyModelClass(config_class, classes.model), exist_ok=True)
    _state["registered"] = True


def register_auto_classes() -> None:
    """Registers once transformers' Auto modules are loaded (at once if they are). Idempotent."""
    if not _state["hooked"]:
        _state["hooked"] = True
        for name in registration_needs():
            wrapt.register_post_import_hook(register_when_complete, name)


def register_integrations() -> None:
    """Make the ecosystem libraries recognise the modular model types (PEFT defaults, optimum tasks).
    Runs when the modular model classes are first imported (their modeling module calls it)."""
    from .integrations.optimum import register_optimum_tasks
    from .integrations.peft import register_peft_target_modules

    register_peft_target_modules()
    register_optimum_tasks()
