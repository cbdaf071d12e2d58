"""Turning an ``assemble`` spec into a plan.

A spec is ``None`` (the whole artifact, run as the teacher), ``"Nx"`` (a target compression
ratio, fractional allowed), or an explicit plan ``{"encoder": [...], "decoder": [...]}``.
For ``"Nx"`` a strategy chooses among the plans whose layer ratio is within 5% of N:

- ``size-first``: compress both stacks by the same fraction, then closest ratio.
- ``speed-first``: the shallowest decoder (it runs once per generated token), then closest ratio.
- ``calibrated``: the plan with the lowest teacher-KL on a data sample; this needs data, so the
  choice is made by ``hf_modular.calibration`` and stored in the config under the spec's name.

Within a stack, the chosen step count is realised by ``Tilings.most_even``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import AssemblyError
from .plan import STACKS, Plan, Span, StackPlan, Tilings, layer_ratio, parse_plan

STRATEGIES = ("size-first", "speed-first", "calibrated")
RATIO_TOLERANCE = 0.05
_RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*[xX]\s*")


def parse_ratio(spec: str) -> float:
    """``"3x"`` -> 3.0; raises AssemblyError for anything that is not a finite ratio >= 1."""
    match = _RATIO.fullmatch(spec)
    if match is None:
        raise AssemblyError(
            f"assemble={spec!r} is not a ratio: write a number followed by 'x' (e.g. '2x', '1.5x'), "
            f"or pass an explicit plan {{'encoder': [...], 'decoder': [...]}}"
        )
    ratio = float(match.group(1))
    if not math.isfinite(ratio) or ratio < 1.0:
        raise AssemblyError(f"assemble={spec!r}: the ratio must be at least 1x (1x is the teacher)")
    return ratio


def format_ratio(ratio: float) -> str:
    return f"{ratio:.2f}".rstrip("0").rstrip(".") + "x"


def check_strategy(strategy: object) -> str:
    if strategy not in STRATEGIES:
        raise AssemblyError(f"assemble_strategy={strategy!r} is not one of {list(STRATEGIES)}")
    return strategy  # type: ignore[return-value]


@dataclass(frozen=True)
class StackSpace:
    """What one stack can run: its depth, its module spans, and its parameter counts per layer
    (``start_params``: what only the first layer owns, e.g. T5's position bias table)."""

    depth: int
    modules: tuple[Span, ...]
    layer_params: int
    start_params: int = 0


class PlanSpace:
    """Every plan a model can run, and the ratios they reach."""

    def __init__(self, stacks: Mapping[str, StackSpace]):
        self.stacks = dict(stacks)
        self.tilings = {name: Tilings(space.depth, space.modules) for name, space in self.stacks.items()}
        self._depths = {name: space.depth for name, space in self.stacks.items()}
        self._params = {name: space.layer_params for name, space in self.stacks.items()}
        self._start_params = {name: space.start_params for name, space in self.stacks.items()}

    def ratio(self, steps: Mapping[str, int]) -> float:
        return layer_ratio(steps, self._depths, self._params, self._start_params)

    def plan_ratio(self, plan: Plan) -> float:
        return self.ratio({name: plan.stack(name).num_steps for name in STACKS})

    def step_combinations(self) -> list[dict[str, int]]:
        enc, dec = (self.tilings[name].depths() for name in STACKS)
        return [{"encoder": e, "decoder": d} for e in enc for d in dec]

    def reachable_ratios(self) -> list[float]:
        return sorted({round(self.ratio(c), 2) for c in self.step_combinations()})

    def describe_reachable(self) -> str:
        return ", ".join(format_ratio(r) for r in self.reachable_ratios())

    def candidates(self, ratio: float) -> list[dict[str, int]]:
        """Step counts whose ratio is within the tolerance of ``ratio``."""
        return [c for c in self.step_combinations() if abs(self.ratio(c) / ratio - 1.0) <= RATIO_TOLERANCE]

    def realise(self, steps: Mapping[str, int]) -> Plan:
        return Plan(**{name: self.tilings[name].most_even(steps[name]) for name in STACKS})

    def resolve(
        self,
        spec: object,
        strategy: str = "size-first",
        calibrated: Mapping[str, object] | None = None,
    ) -> Plan:
        """The plan for ``spec``; raises AssemblyError naming the bad value and what is valid."""
        strategy = check_strategy(strategy)
        if spec is None:
            return self.identity()
        if isinstance(spec, Mapping):
            available = {name: self.stacks[name].modules for name in STACKS}
            return parse_plan(spec, self._depths, available)
        if not isinstance(spec, str):
            raise AssemblyError(
                f"assemble={spec!r} has type {type(spec).__name__}: use a ratio string like '3x', "
                f"an explicit plan dict, or None"
            )
        ratio = parse_ratio(spec)
        if ratio == 1.0:
            return self.identity()
        candidates = self.candidates(ratio)
        if not candidates:
            raise AssemblyError(
                f"assemble={spec!r} is not reachable with this model's modules (within "
                f"{RATIO_TOLERANCE:.0%}); reachable ratios: {self.describe_reachable()}"
            )
        if strategy == "calibrated":
            return self._calibrated(spec, ratio, calibrated or {})
        return self.realise(min(candidates, key=lambda c: self._preference(c, ratio, strategy)))

    def identity(self) -> Plan:
        return Plan(**{name: StackPlan.identity(self._depths[name]) for name in STACKS})

    def _preference(self, steps: Mapping[str, int], ratio: float, strategy: str) -> tuple:
        closeness = round(abs(self.ratio(steps) - ratio), 9)
        kept = {name: steps[name] / self._depths[name] for name in STACKS}
        if strategy == "speed-first":
            return (steps["decoder"], closeness, steps["encoder"])
        return (round(abs(kept["encoder"] - kept["decoder"]), 9), closeness, steps["decoder"])

    def _calibrated(self, spec: str, ratio: float, calibrated: Mapping[str, object]) -> Plan:
        for key, stored in calibrated.items():
            if abs(parse_ratio(key) - ratio) < 1e-9:
                if not isinstance(stored, Mapping):
                    raise AssemblyError(f"calibrated plan for {key!r} is not a plan dict: {stored!r}")
                return self.resolve(dict(stored))
        known = ", ".join(sorted(calibrated)) or "none"
        raise AssemblyError(
            f"assemble={spec!r} with strategy 'calibrated' needs a calibrated plan for that ratio "
            f"(this model has: {known}); run hf_modular.calibrate_assembly(...) first, or use "
            f"'size-first' / 'speed-first'"
        )
