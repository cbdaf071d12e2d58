"""Which plans a training step runs: multi-grained module replacing, or every granularity.

``sample_plan`` (``plan_sampling="random"``): at each layer boundary of a stack, with
probability ``rate`` one of the modules that start there is used (uniformly over the
granularities available), otherwise the teacher layer. A training plan always uses at least
one module: a draw of teacher layers only would train nothing (and leave the loss without a
gradient), so then one module, drawn uniformly from all of them, replaces its span.

``granularity_plans`` (``plan_sampling="granularities"``): the uniform plans, one per
granularity, each stack tiled with modules of that size. Running all of them on every batch
updates every module at every step, and they share the step's one teacher forward. The trainer
can rotate which encoder size meets which decoder size, and add random plans (``sample_plan``)
that put modules next to teacher layers.

``single_stack_plans``: plans that tile ONE stack with modules of one size and keep the other
stack's teacher layers, rotating over (stack, size) with the step; the plans near 1.5x
(e.g. 6+2) and the decoder-only plans ``speed-first`` serves are of this kind.
"""

from __future__ import annotations

import torch

from ...plan import STACKS, Plan, StackPlan
from .assembly import PlanSpace


def sample_plan(space: PlanSpace, rate: float, generator: torch.Generator) -> Plan:
    plan = _draw(space, rate, generator)
    if not plan.is_identity:
        return plan
    modules = [(name, span) for name in STACKS for span in space.stacks[name].modules]
    name, (start, end) = modules[int(torch.randint(len(modules), (), generator=generator))]
    depth = space.stacks[name].depth
    spans = (*((i, i + 1) for i in range(start)), (start, end), *((i, i + 1) for i in range(end, depth)))
    return Plan(**{**{n: plan.stack(n) for n in STACKS}, name: StackPlan(depth, spans)})


def _draw(space: PlanSpace, rate: float, generator: torch.Generator) -> Plan:
    stacks = {}
    for name in STACKS:
        depth = space.stacks[name].depth
        modules_at: dict[int, list[tuple[int, int]]] = {}
        for span in space.stacks[name].modules:
            modules_at.setdefault(span[0], []).append(span)
        spans, position = [], 0
        while position < depth:
            choices = modules_at.get(position, [])
            if choices and torch.rand((), generator=generator).item() < rate:
                span = choices[int(torch.randint(len(choices), (), generator=generator))]
            else:
                span = (position, position + 1)
            spans.append(span)
            position = span[1]
        stacks[name] = StackPlan(depth, tuple(spans))
    return Plan(**stacks)


def granularity_plans(space: PlanSpace, rotation: int = 0) -> list[Plan]:
    """One plan per granularity: each stack tiled with its modules of that size where they fit,
    teacher layers elsewhere. Stacks with fewer granularities pair their largest with the rest.

    ``rotation`` pairs the encoder's i-th size with the decoder's (i + rotation)-th, cyclically:
    rotating by the step number trains every encoder/decoder size pairing in turn.
    """
    sizes = _module_sizes(space)
    count = max(len(s) for s in sizes.values())

    def size(name: str, i: int) -> int:
        options = sizes[name]
        if name == "decoder":
            i = (i + rotation) % count
        return options[min(i, len(options) - 1)]

    return [Plan(**{name: _uniform_tiling(space, name, size(name, i)) for name in STACKS}) for i in range(count)]


def single_stack_plans(space: PlanSpace, count: int, step: int) -> list[Plan]:
    """``count`` plans, each one stack tiled with one module size and the other stack the teacher's;
    step t takes options t * count ... t * count + count - 1 of the cycle over (stack, size)."""
    sizes = _module_sizes(space)
    options = [(name, size) for name in STACKS for size in sizes[name] if size > 1]
    identity = {name: StackPlan.identity(space.stacks[name].depth) for name in STACKS}
    plans = []
    for i in range(min(count, len(options))):
        name, size = options[(step * count + i) % len(options)]
        plans.append(Plan(**{**identity, name: _uniform_tiling(space, name, size)}))
    return plans


def _module_sizes(space: PlanSpace) -> dict[str, list[int]]:
    return {name: sorted({end - start for start, end in space.stacks[name].modules}) or [1] for name in STACKS}


def _uniform_tiling(space: PlanSpace, name: str, size: int) -> StackPlan:
    """Stack ``name`` tiled from the bottom with its ``size``-layer modules, a teacher layer where none starts."""
    depth, modules = space.stacks[name].depth, set(space.stacks[name].modules)
    spans, position = [], 0
    while position < depth:
        span = (position, position + size)
        spans.append(span if span in modules else (position, position + 1))
        position = spans[-1][1]
    return StackPlan(depth, tuple(spans))
