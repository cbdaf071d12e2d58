"""Choosing plans on data: the measured quality front and the calibrated strategy.

Plans with the same ratio can differ a lot in quality (which layers a module replaces
matters), and after one training phase a plan can even be worse than a smaller one. Scoring
needs no labels: the teacher (the identity plan) greedily decodes the sample, and each plan is
scored by KL(teacher || plan) per decoded token on those decoder inputs.

- ``measure_plans`` scores every reachable plan and stores the table in ``config.plan_scores``,
  with the served front: walking from the smallest model up, a larger plan joins the front only
  when it is better than the front's last plan by more than ``tolerance_se`` paired standard
  errors of the difference (from the per-example errors). ``assemble="Nx"`` then serves the
  front plan with the smallest ratio at least N (the ``measured`` strategy, the default when a
  table is present): a larger size is never served a worse plan, and a bigger plan is not
  served for a gain the held-out sample cannot tell from noise.
- ``calibrate_assembly`` stores one winner per requested ratio in ``config.calibrated_plans``
  (the ``calibrated`` strategy).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ...errors import ConfigError, DataError
from ...evaluation import decode_length, generate_inputs, special_token_ids, token_lists
from ...losses import logit_kd_rows
from ...metrics import edit_distance
from ...plan import STACKS, Plan
from ...validation import is_int, is_real
from .assembly import RATIO_TOLERANCE, format_ratio, parse_ratio
from .modeling import ModularModelMixin


@dataclass(frozen=True)
class Calibration:
    ratio: str
    plan: Plan
    kl: float
    candidates: int


@dataclass(frozen=True)
class ExampleErrors:
    """One plan's per-example error (``errors[i]`` over ``weights[i]`` reference tokens); its score
    is ``scale * sum(errors) / sum(weights)``, a ratio estimate whose noise the examples give."""

    errors: tuple[float, ...]
    weights: tuple[float, ...]
    scale: float

    @property
    def score(self) -> float:
        return self.scale * sum(self.errors) / max(sum(self.weights), 1e-12)

    def subset(self, rows: Sequence[int]) -> ExampleErrors:
        return ExampleErrors(tuple(self.errors[i] for i in rows), tuple(self.weights[i] for i in rows), self.scale)

    def difference_se(self, other: ExampleErrors) -> float:
        """Standard error of ``self.score - other.score`` on the same examples (paired, delta method)."""
        total, n = sum(self.weights), len(self.weights)
        if n < 2 or total <= 0:
            return 0.0
        diffs = [a - b for a, b in zip(self.errors, other.errors, strict=True)]
        rate = sum(diffs) / total
        spread = sum((d - rate * w) ** 2 for d, w in zip(diffs, self.weights, strict=True))
        return self.scale * math.sqrt(spread * n / (n - 1)) / total


def served_front(plans: Sequence[tuple[float, ExampleErrors]], tolerance_se: float) -> list[int]:
    """Indexes of the front among ``(ratio, errors)`` plans: from the largest ratio down, a plan joins
    when it beats the last front plan by more than ``tolerance_se`` paired standard errors."""
    order = sorted(range(len(plans)), key=lambda i: (-plans[i][0], plans[i][1].score))
    front: list[int] = []
    for i in order:
        if not front:
            front.append(i)
            continue
        last = plans[front[-1]][1]
        gain = last.score - plans[i][1].score
        if gain > 0 and gain > tolerance_se * plans[i][1].difference_se(last):
            front.append(i)
    return front


@dataclass(frozen=True)
class PlanScores:
    """Measured plans, lower score is better (``metric`` per decoded token on ``examples`` rows);
    ``front`` indexes the served plans, ``per_example`` (not stored) the errors behind each score."""

    metric: str
    examples: int
    plans: list[tuple[Plan, float]]
    front: list[int] = field(default_factory=list)
    tolerance_se: float = 0.0
    per_example: list[ExampleErrors] = field(default_factory=list, repr=False)

    def to_config(self) -> dict[str, Any]:
        """The ``config.plan_scores`` form."""
        front = set(self.front)
        return {
            "metric": self.metric,
            "examples": self.examples,
            "tolerance_se": self.tolerance_se,
            "plans": [
                {"plan": plan.to_json(), "score": round(score, 6), **({"front": True} if i in front else {})}
                for i, (plan, score) in enumerate(self.plans)
            ],
        }


PLAN_METRICS = ("token_error", "teacher_kl")


@torch.no_grad()
def measure_plans(
    model: ModularModelMixin,
    batches: Iterable[dict[str, torch.Tensor]],
    metric: str = "token_error",
    max_plans: int = 1024,
    max_new_tokens: int | None = None,
    tolerance_se: float = 1.0,
    progress: bool = True,
) -> PlanScores:
    """Score every reachable plan on held-out ``batches`` and store the table in the config.

    ``metric``: ``"token_error"`` (default): the token edit rate (%) of each plan's greedy decodes
    against the labels (against the teacher's own greedy decodes where a batch has no labels), which
    is what users see; ``"teacher_kl"``: KL(teacher || plan) per token on the teacher's decodes,
    about 10x cheaper (no decoding per plan) but a looser proxy: on G2P it ranked a 6+3 plan above
    a 3+3 one whose test error was 0.5 points lower. When the model offers more than ``max_plans``
    plans, each size keeps its most even tilings first. Afterwards ``assemble="Nx"`` (strategy
    ``auto`` or ``measured``) serves the front plan with the smallest ratio at least N; the front
    admits a larger plan only when it is better by more than ``tolerance_se`` paired standard
    errors (``0``: any gain; on dev words the G2P benchmark chose 0.5 for T5 and 1.0 for BART, docs/g2p.md).
    """
    if metric not in PLAN_METRICS:
        raise ConfigError(f"metric={metric!r} is not one of {list(PLAN_METRICS)}")
    if not is_real(tolerance_se) or not 0 <= tolerance_se < 1e6:
        raise ConfigError(f"tolerance_se={tolerance_se!r} must be a number >= 0 (standard errors)")
    if not is_int(max_plans) or max_plans < 1:
        raise ConfigError(f"max_plans={max_plans!r} must be a positive integer")
    batches = list(batches)
    if not batches:
        raise DataError("measure_plans needs at least one batch of held-out inputs")
    every = _plans_by_size(model.plan_space, model.plan_space.step_combinations())
    shared = itertools.islice((plan for plan in every if not plan.is_identity), max_plans)
    plans = [*model.specialised_plans, *shared]
    with model.plan_context(model.resolve_plan(None), eval_mode=True):
        length = max_new_tokens or decode_length(model, batches)
        references = [_teacher_reference(model, batch, length) for batch in batches]
        score = _teacher_kl if metric == "teacher_kl" else _token_error
        errors = [score(model, plan, references) for plan in tqdm(plans, disable=not progress, desc="plans")]
    space = model.plan_space
    front = served_front([(space.plan_ratio(p), e) for p, e in zip(plans, errors, strict=True)], tolerance_se)
    examples = sum(int(r["inputs"]["input_ids"].shape[0]) for r in references)
    scored = [(plan, e.score) for plan, e in zip(plans, errors, strict=True)]
    scores = PlanScores(metric, examples, scored, sorted(front), float(tolerance_se), errors)
    model.config.plan_scores = scores.to_config()
    model.plan_choice = model.choose_plan(model.config.assemble)
    return scores


@torch.no_grad()
def calibrate_assembly(
    model: ModularModelMixin,
    batches: Iterable[dict[str, torch.Tensor]],
    ratios: Sequence[str],
    max_candidates: int = 64,
    max_new_tokens: int = 32,
) -> list[Calibration]:
    """Pick, for each ratio, the plan with the lowest teacher-KL on ``batches`` and store it.

    ``batches`` are model inputs (``input_ids``, ``attention_mask``; labels are not needed).
    At most ``max_candidates`` plans per ratio are scored, the most even ones first.
    """
    with model.plan_context(model.resolve_plan(None), eval_mode=True):
        references = [_teacher_reference(model, batch, max_new_tokens) for batch in batches]
        if not references:
            raise DataError("calibrate_assembly needs at least one batch")
        results = []
        for spec in ratios:
            ratio = parse_ratio(spec)
            model.resolve_plan(spec, "size-first")  # raises the clear error for unreachable ratios
            candidates = list(itertools.islice(_candidate_plans(model, ratio), max_candidates))
            scored = [(_teacher_kl(model, plan, references).score, i, plan) for i, plan in enumerate(candidates)]
            kl, _, best = min(scored)
            key = format_ratio(ratio)
            model.config.calibrated_plans = {**(model.config.calibrated_plans or {}), key: best.to_json()}
            results.append(Calibration(key, best, kl, len(candidates)))
        return results


def _candidate_plans(model: ModularModelMixin, ratio: float) -> Iterable[Plan]:
    """The specialised plans within the tolerance of ``ratio``, then the shared ones, most even first."""
    space = model.plan_space
    near = [plan for plan in model.specialised_plans if abs(space.plan_ratio(plan) / ratio - 1) <= RATIO_TOLERANCE]
    shared = _plans_by_size(space, sorted(space.candidates(ratio), key=lambda c: abs(space.ratio(c) - ratio)))
    return itertools.chain(near, shared)


def _plans_by_size(space: Any, combos: list[dict[str, int]]) -> Iterable[Plan]:
    """The plans of each step combination, most even first, taken round-robin over the combinations."""
    per_combo = [
        itertools.product(*(space.tilings[name].enumerate(combo[name]) for name in STACKS)) for combo in combos
    ]
    # Round-robin over step combinations, so a small budget still sees every combination.
    for group in itertools.zip_longest(*per_combo):
        for pair in group:
            if pair is not None:
                yield Plan(*pair)


def _teacher_reference(model: ModularModelMixin, batch: dict[str, Any], max_new_tokens: int) -> dict[str, Any]:
    inputs = generate_inputs(batch, model.device)
    decoded = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
    decoder_input_ids = decoded[:, :-1]
    mask = decoded[:, 1:].ne(model.generation_config.pad_token_id)
    logits = model(**inputs, decoder_input_ids=decoder_input_ids).logits
    special = special_token_ids(model)
    targets = token_lists(batch.get("labels", decoded), special)
    return {
        "inputs": inputs,
        "decoder_input_ids": decoder_input_ids,
        "mask": mask,
        "logits": logits,
        "targets": targets,
        "length": max_new_tokens,
    }


def _token_error(model: ModularModelMixin, plan: Plan, references: list[dict[str, Any]]) -> ExampleErrors:
    """Per example: the token edit distance of the plan's greedy decode to the reference (TokER %)."""
    model.set_plan(plan)
    errors, weights = [], []
    for ref in references:
        decoded = model.generate(**ref["inputs"], do_sample=False, num_beams=1, max_new_tokens=ref["length"])
        for prediction, target in zip(token_lists(decoded, special_token_ids(model)), ref["targets"], strict=True):
            errors.append(float(edit_distance(prediction, target)))
            weights.append(float(len(target)))
    return ExampleErrors(tuple(errors), tuple(weights), 100.0)


def _teacher_kl(model: ModularModelMixin, plan: Plan, references: list[dict[str, Any]]) -> ExampleErrors:
    """Per example: KL(teacher || plan) summed over the teacher's decoded tokens."""
    model.set_plan(plan)
    errors, weights = [], []
    for ref in references:
        logits = model(**ref["inputs"], decoder_input_ids=ref["decoder_input_ids"]).logits
        rows = logit_kd_rows(logits, ref["logits"], ref["mask"], temperature=1.0)
        errors += rows.tolist()
        weights += ref["mask"].sum(dim=1).float().tolist()
    return ExampleErrors(tuple(errors), tuple(weights), 1.0)
