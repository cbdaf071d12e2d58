"""Execution plans: which layer runs at each step of the encoder and the decoder.

A stack of ``depth`` teacher layers is tiled by spans ``[start, end)``. A span of length 1 is
the teacher layer ``start``; a longer span is the module trained to replace those layers.
A plan is one tiling per stack. A *specialised* plan runs the same tiling on layers of its own,
copied out of the shared ones and trained for that plan alone (``specialised_steps``). This
module is pure data and arithmetic (no torch), so the parsers and the tiling search can be
tested exhaustively.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from .errors import AssemblyError
from .validation import is_int

STACKS = ("encoder", "decoder")

Span = tuple[int, int]


def span_key(span: Span) -> str:
    """The name a module is stored under in a state dict (``"2_4"`` for span [2, 4))."""
    return f"{span[0]}_{span[1]}"


def default_module_sizes(depth: int) -> tuple[int, ...]:
    """Every divisor of ``depth`` from 2 to ``depth`` (6 -> (2, 3, 6); 12 -> (2, 3, 4, 6, 12))."""
    return tuple(g for g in range(2, depth + 1) if depth % g == 0)


def module_spans(depth: int, sizes: Iterable[int]) -> tuple[Span, ...]:
    """The aligned spans ``[j*g, (j+1)*g)`` of each granularity ``g`` that fit in the stack."""
    return tuple((j * g, (j + 1) * g) for g in sorted(set(sizes)) for j in range(depth // g))


@dataclass(frozen=True)
class StackPlan:
    """A tiling of ``[0, depth)``; ``spans`` are in execution order."""

    depth: int
    spans: tuple[Span, ...]

    @classmethod
    def identity(cls, depth: int) -> StackPlan:
        return cls(depth, tuple((i, i + 1) for i in range(depth)))

    @property
    def num_steps(self) -> int:
        return len(self.spans)

    @property
    def is_identity(self) -> bool:
        return self.num_steps == self.depth

    @property
    def boundaries(self) -> tuple[int, ...]:
        """Teacher-layer indices at which this plan's hidden state is comparable to the teacher's."""
        return (0, *(end for _, end in self.spans))

    def to_json(self) -> list[int | list[int]]:
        """Compact JSON form: an int for a teacher layer, ``[start, end]`` (half-open) for a module."""
        return [s if e - s == 1 else [s, e] for s, e in self.spans]

    def describe(self) -> str:
        """``L2`` for teacher layer 2, ``M0:3`` for the module over layers 0, 1, 2 (half-open, as in
        Python slices and the JSON form ``[0, 3]``)."""
        return " ".join(f"L{s}" if e - s == 1 else f"M{s}:{e}" for s, e in self.spans)


@dataclass(frozen=True)
class Plan:
    """One tiling per stack; ``specialised``: run it on the plan's own layers, not the shared ones."""

    encoder: StackPlan
    decoder: StackPlan
    specialised: bool = False

    def stack(self, name: str) -> StackPlan:
        return getattr(self, name)

    @property
    def is_identity(self) -> bool:
        return self.encoder.is_identity and self.decoder.is_identity and not self.specialised

    @property
    def shared(self) -> Plan:
        """The same tiling on the shared layers."""
        return Plan(self.encoder, self.decoder)

    @property
    def specialised_key(self) -> str:
        """The name a specialised plan's layers are stored under (``"4_4"``: its encoder and decoder
        step counts; an artifact holds at most one specialised plan per pair)."""
        return f"{self.encoder.num_steps}_{self.decoder.num_steps}"

    def to_json(self) -> dict[str, Any]:
        stacks: dict[str, Any] = {name: self.stack(name).to_json() for name in STACKS}
        return {**stacks, "specialised": True} if self.specialised else stacks

    def describe(self) -> str:
        tilings = f"encoder[{self.encoder.describe()}] decoder[{self.decoder.describe()}]"
        return f"specialised {tilings}" if self.specialised else tilings


def parse_stack_plan(name: str, steps: object, depth: int, available: Sequence[Span]) -> StackPlan:
    """Validate one stack of an explicit plan.

    ``steps`` is a list whose items are an int (teacher layer) or a pair ``[start, end]``.
    Raises AssemblyError naming the bad step and listing what this stack offers.
    """
    offered = ", ".join(f"[{s}, {e}]" for s, e in available if e - s > 1) or "none"
    if not isinstance(steps, (list, tuple)) or not steps:
        raise AssemblyError(
            f"the {name} plan must be a non-empty list of steps (an int for a teacher layer or "
            f"[start, end] for a module), got {steps!r}"
        )
    spans: list[Span] = []
    for step in steps:
        if is_int(step):
            span = (step, step + 1)
        elif isinstance(step, (list, tuple)) and len(step) == 2 and all(is_int(v) for v in step):
            span = (step[0], step[1])
        else:
            raise AssemblyError(
                f"bad {name} plan step {step!r}: a step is an int (teacher layer 0..{depth - 1}) "
                f"or a pair [start, end] of ints"
            )
        if not 0 <= span[0] < span[1] <= depth:
            raise AssemblyError(
                f"{name} plan step {step!r} is out of range: the {name} has {depth} layers "
                f"(teacher layers 0..{depth - 1})"
            )
        if span[1] - span[0] > 1 and span not in available:
            raise AssemblyError(
                f"{name} plan step {step!r}: there is no module for span [{span[0]}, {span[1]}); "
                f"the {name} modules are {offered}"
            )
        spans.append(span)
    position = 0
    for span in spans:
        if span[0] != position:
            kind = "gap" if span[0] > position else "overlap"
            raise AssemblyError(
                f"the {name} plan {list(steps)!r} has a {kind} at layer {min(position, span[0])}: "
                f"steps must tile layers 0..{depth - 1} in order, each exactly once"
            )
        position = span[1]
    if position != depth:
        raise AssemblyError(
            f"the {name} plan {list(steps)!r} stops at layer {position}; it must cover all "
            f"{depth} layers (0..{depth - 1})"
        )
    return StackPlan(depth, tuple(spans))


def parse_plan(spec: Mapping[str, object], depths: Mapping[str, int], available: Mapping[str, Sequence[Span]]) -> Plan:
    """An explicit plan ``{"encoder": [...], "decoder": [...]}`` (a missing stack runs its teacher
    layers), with ``"specialised": true`` for the specialised layers of that tiling."""
    unknown = sorted(str(k) for k in spec if k not in (*STACKS, "specialised"))
    if unknown:
        raise AssemblyError(
            f"unknown plan keys {unknown}: a plan has the keys 'encoder' and 'decoder' (and optionally 'specialised')"
        )
    specialised = spec.get("specialised", False)
    if not isinstance(specialised, bool):
        raise AssemblyError(f"plan key 'specialised' is {specialised!r}: use true or false")
    stacks = {
        name: parse_stack_plan(name, spec[name], depths[name], available[name])
        if name in spec
        else StackPlan.identity(depths[name])
        for name in STACKS
    }
    return Plan(**stacks, specialised=specialised)


class Tilings:
    """The tilings one stack can run, searched without enumerating them all.

    ``depths()`` lists every reachable step count; ``most_even(n)`` picks the canonical tiling
    with ``n`` steps: the smallest largest module, then the most even spans (least sum of
    squares), then teacher layers at the bottom and modules at the top of the stack.
    """

    def __init__(self, depth: int, available: Sequence[Span]):
        self.depth = depth
        starts: dict[int, list[int]] = {i: [i + 1] for i in range(depth)}
        for s, e in available:
            if e - s > 1:
                starts[s].append(e)
        self._ends = {s: tuple(sorted(ends)) for s, ends in starts.items()}
        # step_counts[p]: how many steps can tile [p, depth); filled from the top down.
        self._step_counts: dict[int, frozenset[int]] = {depth: frozenset({0})}
        for position in range(depth - 1, -1, -1):
            self._step_counts[position] = frozenset(
                n + 1 for end in self._ends[position] for n in self._step_counts[end]
            )
        self._best = cache(self._best_uncached)  # per instance, freed with it

    def depths(self) -> tuple[int, ...]:
        return tuple(sorted(self._step_counts[0]))

    def most_even(self, num_steps: int) -> StackPlan:
        if num_steps not in self._step_counts[0]:
            raise AssemblyError(
                f"no tiling of {self.depth} layers has {num_steps} steps; reachable: {list(self.depths())}"
            )
        for largest in sorted({e - s for s in self._ends for e in self._ends[s]}):
            best = self._best(0, num_steps, largest)
            if best is not None:
                return StackPlan(self.depth, best[1])
        raise AssertionError("unreachable: a reachable step count always has a tiling")

    def enumerate(self, num_steps: int) -> Iterator[StackPlan]:
        """Every tiling with ``num_steps`` steps, most-even first, then in depth-first order."""
        first = self.most_even(num_steps)
        yield first
        stack: list[tuple[int, tuple[Span, ...]]] = [(0, ())]
        while stack:
            position, spans = stack.pop()
            if position == self.depth:
                if len(spans) == num_steps and spans != first.spans:
                    yield StackPlan(self.depth, spans)
                continue
            remaining = num_steps - len(spans)
            for end in reversed(self._ends[position]):
                if remaining - 1 in self._step_counts[end]:
                    stack.append((end, (*spans, (position, end))))

    def _best_uncached(
        self, position: int, steps: int, largest: int
    ) -> tuple[tuple[int, tuple[int, ...]], tuple[Span, ...]] | None:
        """((sum of squares, span lengths), spans) of the best tiling of [position, depth)."""
        if position == self.depth:
            return ((0, ()), ()) if steps == 0 else None
        if steps == 0:
            return None
        best = None
        for end in self._ends[position]:
            length = end - position
            rest = self._best(end, steps - 1, largest) if length <= largest else None
            if rest is None:
                continue
            (squares, lengths), spans = rest
            candidate = ((squares + length * length, (length, *lengths)), ((position, end), *spans))
            if best is None or candidate[0] < best[0]:
                best = candidate
        return best


def covering_tilings(depth: int, stored: Iterable[Span]) -> list[StackPlan]:
    """Tilings of one stack from ``stored`` spans only that together use every stored span a tiling
    can hold: one pass over data under each runs every layer a model stores (teacher layers and
    modules alike; a model loaded with one assembly may hold no teacher layer)."""
    ends: dict[int, list[int]] = {}
    for start, end in set(stored):
        ends.setdefault(start, []).append(end)

    def reaching(goal: int) -> set[int]:
        """Positions from which [position, goal) can be tiled."""
        positions = {goal}
        for position in range(goal - 1, -1, -1):
            if any(e in positions for e in ends.get(position, ())):
                positions.add(position)
        return positions

    def walk(position: int, goal: int, todo: set[Span]) -> list[Span]:
        """A tiling of [position, goal), taking a span still to do wherever one fits."""
        allowed, spans = reaching(goal), []
        while position < goal:
            options = sorted((position, e) for e in ends.get(position, ()) if e in allowed)
            span = next((o for o in options if o in todo), options[0])
            spans.append(span)
            position = span[1]
        return spans

    from_start, to_end = {0}, reaching(depth)
    for position in range(depth):
        if position in from_start:
            from_start.update(ends.get(position, ()))
    todo = {(s, e) for s, e_list in ends.items() for e in e_list if s in from_start and e in to_end}
    tilings = []
    while todo:
        start, end = min(todo)
        spans = [*walk(0, start, todo), (start, end), *walk(end, depth, todo)]
        tilings.append(StackPlan(depth, tuple(spans)))
        todo -= set(spans)
    return tilings


def layer_ratio(
    plan_steps: Mapping[str, int],
    depths: Mapping[str, int],
    layer_params: Mapping[str, int],
    start_params: Mapping[str, int],
) -> float:
    """Teacher transformer-layer parameters over the plan's.

    All layers of a stack have ``layer_params`` parameters, and whichever layer runs first also
    owns ``start_params`` (T5's position bias table), so the ratio follows from step counts.
    """
    teacher = sum(depths[s] * layer_params[s] + start_params[s] for s in STACKS)
    student = sum(plan_steps[s] * layer_params[s] + start_params[s] for s in STACKS)
    return teacher / student if student else math.inf
