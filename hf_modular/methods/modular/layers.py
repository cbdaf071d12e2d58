"""The layer list of a modular stack: teacher layers and modules, run in the order of a plan.

A ``PlannedLayers`` takes the place of a stack's ``nn.ModuleList`` (``T5Stack.block``,
``BartEncoder.layers``...). The stock stack forward only iterates over its layer list, so by
controlling that iteration we run any plan through transformers' own forward code: masks,
position bias, caching, output capture and gradient checkpointing all stay stock.

Storage: teacher layer ``i`` is the child ``"i"`` (state-dict keys match a stock checkpoint,
``encoder.block.3.*``), the module for span [s, e) is ``pool["s_e"]``, and step k of a
specialised plan is ``specialised["<key>"][k]`` (``Plan.specialised_key``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache

from ...batch_rows import every_nth_row
from ...plan import Span, StackPlan, span_key

POOL = "pool"
SPECIALISED = "specialised"


class PlannedLayers(nn.Module):
    def __init__(
        self,
        teacher_layers: Mapping[int, nn.Module],
        modules: Mapping[Span, nn.Module],
        specialised: Mapping[str, Sequence[nn.Module]] | None = None,
    ):
        super().__init__()
        for index, layer in sorted(teacher_layers.items()):
            self.add_module(str(index), layer)
        self.pool = nn.ModuleDict({span_key(span): module for span, module in sorted(modules.items())})
        self.specialised = nn.ModuleDict({key: nn.ModuleList(layers) for key, layers in (specialised or {}).items()})
        self._order: tuple[nn.Module, ...] = ()
        self.plan: StackPlan | None = None
        self.specialised_key: str | None = None  # the specialised layers the plan runs on, if any
        self._shadow: TeacherContext | None = None

    def get(self, span: Span) -> nn.Module | None:
        """The stored layer for ``span`` (a teacher layer if it has length 1), or None."""
        if span[1] - span[0] == 1:
            return self._modules.get(str(span[0]))
        return self.pool[span_key(span)] if span_key(span) in self.pool else None  # noqa: SIM401 - ModuleDict has no get()

    def stored_spans(self) -> set[Span]:
        """The teacher layers and pool modules held (the shared layers; specialised ones aside)."""
        teacher = {(int(k), int(k) + 1) for k in self._modules if k not in (POOL, SPECIALISED)}
        return teacher | {tuple(map(int, k.split("_"))) for k in self.pool}  # type: ignore[misc]

    def pool_modules(self) -> list[tuple[Span, nn.Module]]:
        """Every module of the pool with the span it replaces."""
        return [(tuple(map(int, key.split("_"))), module) for key, module in self.pool.items()]  # type: ignore[misc]

    def run(self, plan: StackPlan, specialised_key: str | None = None) -> None:
        """Make iteration follow ``plan`` (on the specialised layers stored under ``specialised_key``,
        if given) and give each step its own KV-cache slot."""
        if specialised_key is not None:
            if specialised_key not in self.specialised:
                raise KeyError(f"specialised layers not stored: {specialised_key}")
            self._order = tuple(self.specialised[specialised_key])
        else:
            missing = [span for span in plan.spans if self.get(span) is None]
            if missing:
                raise KeyError(f"layers not stored: {missing}")
            self._order = tuple(self.get(span) for span in plan.spans)  # type: ignore[misc]
        self.plan, self.specialised_key = plan, specialised_key
        # Every attention module reads and writes cache slot `layer_idx`: number them in
        # execution order, or two steps share a slot and the output is silently wrong.
        for position, layer in enumerate(self._order):
            for module in layer.modules():
                if hasattr(module, "layer_idx"):
                    module.layer_idx = position

    @contextlib.contextmanager
    def teacher_context(self, modules: Mapping[Span, nn.Module], row_stride: int = 1) -> Iterator[TeacherContext]:
        """Inside the block, a forward under the identity plan records what each of ``modules`` needs
        to run on the teacher's input to its span (on every ``row_stride``-th row of the batch); the
        yielded ``TeacherContext`` then pairs each module's output with the teacher's output at the
        end of its span (``pairs()``)."""
        self._shadow = TeacherContext(modules, row_stride)
        try:
            yield self._shadow
        finally:
            self._shadow = None

    def __iter__(self) -> Iterator[nn.Module]:
        if self._shadow is None:
            return iter(self._order)
        if self.plan is None or not self.plan.is_identity:
            raise RuntimeError("teacher_context runs modules beside the teacher's layers: set the identity plan")
        return iter(self._shadow.wrap(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, position: int) -> nn.Module:
        return self._order[position]

    def extra_repr(self) -> str:
        return f"plan={self.plan.describe() if self.plan else None}"


class TeacherContext:
    """Modules run beside the teacher's layers on the teacher's own hidden states (module replacing
    in the teacher's context, as BERT-of-Theseus trains its successor modules).

    While the teacher forward runs, each layer's input and stack arguments (masks, T5's position
    bias, the encoder states for cross-attention) are recorded where a module's span starts;
    ``pairs()`` then runs each module on that input, detached and WITH gradient, next to the
    teacher's output at the end of its span. Running the modules after the forward keeps them out of
    the teacher's captured hidden states. A module trained this way fits next to teacher layers,
    which the uniform plans alone never show it.

    ``row_stride`` n > 1 records only rows 0, n, 2n, ... of the batch: every tensor argument whose
    first dimension is the batch's is cut to them (the layers' arguments are batch-first; T5's
    position bias without a padding mask has a first dimension of 1 and is kept whole). The modules'
    cost scales with the rows they run on; a stride (not the first rows) picks the same rows of a
    global batch whether one process or several DDP ranks split it.
    """

    def __init__(self, modules: Mapping[Span, nn.Module], row_stride: int = 1):
        self.modules = dict(sorted(modules.items()))
        self.row_stride = row_stride
        self._inputs: dict[int, tuple[torch.Tensor, tuple[Any, ...], dict[str, Any]]] = {}
        self._teacher: dict[int, torch.Tensor] = {}

    def _cut(self, value: Any, batch: int) -> Any:
        """The recorded rows of a batch-first tensor; any other value as it is."""
        return every_nth_row(value, self.row_stride, batch)

    def wrap(self, layers: tuple[nn.Module, ...]) -> list[Any]:
        starts = {start for start, _ in self.modules}
        return [self._step(i, layer, i in starts) for i, layer in enumerate(layers)]

    def _step(self, index: int, layer: nn.Module, record_input: bool) -> Any:
        def run(hidden: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            batch = hidden.shape[0]
            if record_input:  # without the KV cache: the teacher's own keys would join the module's
                cacheless = {
                    k: None if isinstance(v, Cache) else self._cut(v, batch)
                    for k, v in kwargs.items()
                    if k != "use_cache"
                }
                self._inputs[index] = (
                    hidden.detach()[:: self.row_stride],
                    tuple(self._cut(a, batch) for a in args),
                    cacheless,
                )
            output = layer(hidden, *args, **kwargs)
            self._teacher[index + 1] = _hidden(output).detach()[:: self.row_stride]
            return output

        return run

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(module output, teacher output at the span's end) for every module, the module run now with gradient."""
        pairs = []
        with torch.enable_grad():
            for (start, end), module in self.modules.items():
                hidden, args, kwargs = self._inputs[start]
                pairs.append((_hidden(module(hidden, *args, **kwargs)), self._teacher[end]))
        return pairs


def _hidden(output: Any) -> torch.Tensor:
    """A layer's output hidden states (T5 blocks return a tuple, BART layers the tensor)."""
    return output[0] if isinstance(output, tuple) else output
