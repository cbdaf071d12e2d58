"""Turning an ``assemble`` spec into a plan.

A spec is ``None`` (the whole artifact, run as the teacher), ``"Nx"`` (a target compression
ratio, fractional allowed), or an explicit plan ``{"encoder": [...], "decoder": [...]}``.
For ``"Nx"`` a strategy chooses a plan:

- ``measured``: of the plans whose quality was measured on held-out data
  (``hf_modular.methods.modular.calibration.measure_plans``, stored in ``config.plan_scores``), the best one whose
  ratio is at least N (within 5%), taken from the table's served front when it marks one (a
  larger plan is on the front only when it beats every smaller front plan by more than the
  measurement noise). Asking for a larger model never gives a worse measured plan.
- ``size-first``: among the plans within 5% of N, compress both stacks by the same fraction,
  then closest ratio.
- ``speed-first``: among the plans within 5% of N, the shallowest decoder (it runs once per
  generated token), then closest ratio.
- ``calibrated``: the plan stored for that ratio by ``calibrate_assembly`` (lowest teacher-KL
  among the plans within 5% of N).
- ``auto`` (the default): ``measured`` when the artifact holds a measured table, else ``size-first``.

Within a stack, the chosen step count is realised by ``Tilings.most_even``; where the artifact holds
a specialised plan of the chosen step counts (layers of its own, trained for that plan alone),
``size-first`` and ``speed-first`` serve it instead, and ``measured`` weighs it with the others.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import AssemblyError
from ...plan import STACKS, Plan, Span, StackPlan, Tilings, layer_ratio, parse_plan

STRATEGIES = ("auto", "measured", "size-first", "speed-first", "calibrated")
RATIO_TOLERANCE = 0.05
_RATIO = re.compile(r" *([0-9]+(?:\.[0-9]+)?) *[xX] *")  # ASCII digits and spaces only: "６x", "3\u00a0x" are refused


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
class PlanChoice:
    """A resolved spec: the plan, the strategy that chose it, and why (for reports and cards)."""

    plan: Plan
    strategy: str
    reason: str


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

    def __init__(self, stacks: Mapping[str, StackSpace], specialised: Sequence[Plan] = ()):
        self.stacks = dict(stacks)
        self.specialised = {(p.encoder.num_steps, p.decoder.num_steps): p for p in specialised}
        self.tilings = {name: Tilings(space.depth, space.modules) for name, space in self.stacks.items()}
        self._depths = {name: space.depth for name, space in self.stacks.items()}
        self._params = {name: space.layer_params for name, space in self.stacks.items()}
        self._start_params = {name: space.start_params for name, space in self.stacks.items()}

    def specialised_keys(self) -> set[str]:
        return {plan.specialised_key for plan in self.specialised.values()}

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
        strategy: str = "auto",
        calibrated: Mapping[str, object] | None = None,
        scores: Mapping[str, Any] | None = None,
    ) -> Plan:
        """The plan for ``spec``; raises AssemblyError naming the bad value and what is valid."""
        return self.choose(spec, strategy, calibrated, scores).plan

    def choose(
        self,
        spec: object,
        strategy: str = "auto",
        calibrated: Mapping[str, object] | None = None,
        scores: Mapping[str, Any] | None = None,
    ) -> PlanChoice:
        """``resolve``, with the strategy that decided and the reason."""
        strategy = check_strategy(strategy)
        if strategy == "auto":
            strategy = "measured" if scores else "size-first"
        if spec is None:
            return PlanChoice(self.identity(), "none", "assemble=None: the whole artifact, run as the teacher")
        if isinstance(spec, Mapping):
            available = {name: self.stacks[name].modules for name in STACKS}
            plan = parse_plan(spec, self._depths, available)
            if plan.specialised and plan not in self.specialised.values():
                held = "; ".join(p.describe() for p in self.specialised.values()) or "none"
                raise AssemblyError(
                    f"the plan {plan.describe()} asks for specialised layers this artifact does not hold; its "
                    f"specialised plans: {held}"
                )
            return PlanChoice(plan, "explicit", "an explicit plan")
        if not isinstance(spec, str):
            raise AssemblyError(
                f"assemble={spec!r} has type {type(spec).__name__}: use a ratio string like '3x', "
                f"an explicit plan dict, or None"
            )
        ratio = parse_ratio(spec)
        if ratio == 1.0:
            return PlanChoice(self.identity(), "none", "1x: the teacher's layers")
        candidates = self.candidates(ratio)
        if strategy == "measured":
            return self._measured(spec, ratio, scores or {})
        if not candidates:
            raise AssemblyError(
                f"assemble={spec!r} is not reachable with this model's modules (within "
                f"{RATIO_TOLERANCE:.0%}); reachable ratios: {self.describe_reachable()}"
            )
        if strategy == "calibrated":
            return self._calibrated(spec, ratio, calibrated or {})
        steps = min(candidates, key=lambda c: self._preference(c, ratio, strategy))
        rule = "both stacks compressed alike" if strategy == "size-first" else "the shallowest decoder"
        reason = f"{strategy}: of the ratios within 5% of {spec}, {rule}"
        specialised = self.specialised.get((steps["encoder"], steps["decoder"]))
        if specialised is not None:
            return PlanChoice(specialised, strategy, f"{reason}, on the layers specialised for it")
        return PlanChoice(self.realise(steps), strategy, reason)

    def identity(self) -> Plan:
        return Plan(**{name: StackPlan.identity(self._depths[name]) for name in STACKS})

    def _preference(self, steps: Mapping[str, int], ratio: float, strategy: str) -> tuple:
        closeness = round(abs(self.ratio(steps) - ratio), 9)
        kept = {name: steps[name] / self._depths[name] for name in STACKS}
        if strategy == "speed-first":
            return (steps["decoder"], closeness, steps["encoder"])
        return (round(abs(kept["encoder"] - kept["decoder"]), 9), closeness, steps["decoder"])

    def _calibrated(self, spec: str, ratio: float, calibrated: Mapping[str, object]) -> PlanChoice:
        for key, stored in calibrated.items():
            if abs(parse_ratio(key) - ratio) < 1e-9:
                if not isinstance(stored, Mapping):
                    raise AssemblyError(f"calibrated plan for {key!r} is not a plan dict: {stored!r}")
                plan = self.resolve(dict(stored))
                actual = self.plan_ratio(plan)
                if abs(actual / ratio - 1.0) > RATIO_TOLERANCE:
                    raise AssemblyError(
                        f"the calibrated plan stored for {key!r} ({plan.describe()}) has ratio {format_ratio(actual)}, "
                        f"not within {RATIO_TOLERANCE:.0%} of {format_ratio(ratio)}: recalibrate this artifact"
                    )
                return PlanChoice(plan, "calibrated", f"calibrated: the lowest teacher-KL stored for {key}")
        known = ", ".join(sorted(calibrated)) or "none"
        raise AssemblyError(
            f"assemble={spec!r} with strategy 'calibrated' needs a calibrated plan for that ratio "
            f"(this model has: {known}); run hf_modular.calibrate_assembly(...) first, or use "
            f"'size-first' / 'speed-first'"
        )

    def _measured(self, spec: str, ratio: float, scores: Mapping[str, Any]) -> PlanChoice:
        """The best measured plan whose ratio is at least ``ratio`` (within the tolerance); when the
        table marks a served front (``measure_plans``), only front plans are served."""
        if not scores:
            raise AssemblyError(
                f"assemble={spec!r} with strategy 'measured' needs measured plan qualities "
                f"(config.plan_scores); run hf_modular.measure_plans(...) or trainer.measure_plans() first"
            )
        floor = ratio * (1.0 - RATIO_TOLERANCE)
        entries = scores["plans"]
        on_front = [entry for entry in entries if entry.get("front")]
        measured = [(entry["score"], self.resolve(dict(entry["plan"]))) for entry in (on_front or entries)]
        eligible = [(score, -self.plan_ratio(plan), plan) for score, plan in measured if self.plan_ratio(plan) >= floor]
        if not eligible:
            best = max((self.plan_ratio(plan) for _, plan in measured), default=1.0)
            raise AssemblyError(
                f"assemble={spec!r}: no measured plan reaches {format_ratio(ratio)} (within {RATIO_TOLERANCE:.0%}); "
                f"the smallest measured plan is {format_ratio(best)}. Reachable ratios: {self.describe_reachable()}"
            )
        score, _, plan = min(eligible, key=lambda e: (e[0], e[1]))
        metric, examples = scores.get("metric", "score"), scores.get("examples")
        on = f" on {examples} held-out examples" if examples else ""
        rule = f"the best of {len(eligible)} measured plans with ratio >= {format_ratio(floor)}"
        if on_front:
            tolerance = scores.get("tolerance_se", 0)
            rule = (
                f"the front plan with the smallest ratio >= {format_ratio(floor)} (a larger plan joins the front "
                f"only when better by > {tolerance:g} paired standard errors)"
            )
        return PlanChoice(
            plan,
            "measured",
            f"measured: {rule} ({metric} {score:.4g}{on}); ratio {format_ratio(self.plan_ratio(plan))}",
        )
