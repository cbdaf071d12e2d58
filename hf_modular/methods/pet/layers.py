"""Parameter sharing for PET students, by aliasing modules.

A shared projection must keep its own cache slot and its own position in the stack (stock
generate() with a cache breaks when one module object sits at two positions), yet store its
weights once. An ``Alias`` is a parameter-free module that runs another module: the layer that
holds it keeps its own index and cache slot, its state dict has no entry for the alias, and the
shared weights are saved and loaded once, under the original's name.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ...plan import STACKS


class Alias(nn.Module):
    """Runs ``target`` (not registered as a submodule, so its parameters stay stored once)."""

    def __init__(self, target: nn.Module):
        super().__init__()
        object.__setattr__(self, "_target", target)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._target(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # ``weight`` and friends read through to the target
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_target"], name)

    def extra_repr(self) -> str:
        return f"-> {type(self._target).__name__}"


def _owns_weights(module: nn.Module) -> bool:
    return isinstance(module, Alias) or any(True for _ in module.parameters(recurse=False))


def share_parameters(model: nn.Module, share_query: bool, reuse_stack: bool) -> None:
    """Apply the PET sharing rules to ``model``'s stacks in place (see ``PetConfigMixin``)."""
    adapter = model.config.adapter
    for name in STACKS:
        layers = getattr(adapter.stack(model, name), adapter.layers_attr)
        physical = len(layers) // 2 if reuse_stack else len(layers)
        if share_query and name == "decoder":
            for layer in list(layers)[:physical]:
                layer.set_submodule(adapter.cross_query, Alias(layer.get_submodule(adapter.self_query)))
        if not reuse_stack:
            continue
        swap = {adapter.self_query: adapter.self_key, adapter.self_key: adapter.self_query} if name == "encoder" else {}
        for first, second in zip(list(layers)[:physical], list(layers)[physical:], strict=True):
            present = dict(second.named_modules())
            for path, module in list(first.named_modules()):
                if path and path in present and _owns_weights(module):
                    second.set_submodule(path, Alias(first.get_submodule(swap.get(path, path))))
