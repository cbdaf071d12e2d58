"""Sampling a training plan: multi-grained module replacing.

At each layer boundary of a stack, with probability ``rate`` one of the modules that start
there is used (uniformly over the granularities available), otherwise the teacher layer.
A training plan always uses at least one module: a draw of teacher layers only would train
nothing (and leave the loss without a gradient), so then one module, drawn uniformly from all
of them, replaces its span.
"""

from __future__ import annotations

import torch

from ..assembly import PlanSpace
from ..plan import STACKS, Plan, StackPlan


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
