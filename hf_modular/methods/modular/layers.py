"""The layer list of a modular stack: teacher layers and modules, run in the order of a plan.

A ``PlannedLayers`` takes the place of a stack's ``nn.ModuleList`` (``T5Stack.block``,
``BartEncoder.layers``...). The stock stack forward only iterates over its layer list, so by
controlling that iteration we run any plan through transformers' own forward code: masks,
position bias, caching, output capture and gradient checkpointing all stay stock.

Storage: teacher layer ``i`` is the child ``"i"`` (state-dict keys match a stock checkpoint,
``encoder.block.3.*``) and the module for span [s, e) is ``pool["s_e"]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from torch import nn

from ...plan import Span, StackPlan, span_key

POOL = "pool"


class PlannedLayers(nn.Module):
    def __init__(self, teacher_layers: Mapping[int, nn.Module], modules: Mapping[Span, nn.Module]):
        super().__init__()
        for index, layer in sorted(teacher_layers.items()):
            self.add_module(str(index), layer)
        self.pool = nn.ModuleDict({span_key(span): module for span, module in sorted(modules.items())})
        self._order: tuple[nn.Module, ...] = ()
        self.plan: StackPlan | None = None

    def get(self, span: Span) -> nn.Module | None:
        """The stored layer for ``span`` (a teacher layer if it has length 1), or None."""
        if span[1] - span[0] == 1:
            return self._modules.get(str(span[0]))
        return self.pool[span_key(span)] if span_key(span) in self.pool else None  # noqa: SIM401 - ModuleDict has no get()

    def stored_spans(self) -> set[Span]:
        teacher = {(int(k), int(k) + 1) for k in self._modules if k != POOL}
        return teacher | {tuple(map(int, k.split("_"))) for k in self.pool}  # type: ignore[misc]

    def pool_modules(self) -> list[tuple[Span, nn.Module]]:
        """Every module of the pool with the span it replaces."""
        return [(tuple(map(int, key.split("_"))), module) for key, module in self.pool.items()]  # type: ignore[misc]

    def run(self, plan: StackPlan) -> None:
        """Make iteration follow ``plan`` and give each step its own KV-cache slot."""
        missing = [span for span in plan.spans if self.get(span) is None]
        if missing:
            raise KeyError(f"layers not stored: {missing}")
        self._order = tuple(self.get(span) for span in plan.spans)  # type: ignore[misc]
        self.plan = plan
        # Every attention module reads and writes cache slot `layer_idx`: number them in
        # execution order, or two steps share a slot and the output is silently wrong.
        for position, layer in enumerate(self._order):
            for module in layer.modules():
                if hasattr(module, "layer_idx"):
                    module.layer_idx = position

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, position: int) -> nn.Module:
        return self._order[position]

    def extra_repr(self) -> str:
        return f"plan={self.plan.describe() if self.plan else None}"
