"""The calibrated assembly strategy: choose among same-size plans by teacher-KL on data.

Plans with the same ratio can differ a lot in quality (which layers a module replaces
matters). Scoring needs no labels: the teacher (the identity plan) greedily decodes the
sample, and each candidate is scored by KL(teacher || candidate) on those decoder inputs.
The winner is stored in ``config.calibrated_plans``, so ``assemble="3x"`` with
``assemble_strategy="calibrated"`` is reproducible after save/load.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .assembly import format_ratio, parse_ratio
from .losses import logit_kd_sum
from .modeling_modular import ModularModelMixin
from .plan import STACKS, Plan


@dataclass(frozen=True)
class Calibration:
    ratio: str
    plan: Plan
    kl: float
    candidates: int


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
    original, was_training = model.active_plan, model.training
    model.eval()
    try:
        model.set_plan(model.resolve_plan(None))
        references = [_teacher_reference(model, batch, max_new_tokens) for batch in batches]
        if not references:
            raise ValueError("calibrate_assembly needs at least one batch")
        results = []
        for spec in ratios:
            ratio = parse_ratio(spec)
            model.resolve_plan(spec, "size-first")  # raises the clear error for unreachable ratios
            candidates = list(itertools.islice(_candidate_plans(model, ratio), max_candidates))
            scored = [(_teacher_kl(model, plan, references), i, plan) for i, plan in enumerate(candidates)]
            kl, _, best = min(scored)
            key = format_ratio(ratio)
            model.config.calibrated_plans = {**(model.config.calibrated_plans or {}), key: best.to_json()}
            results.append(Calibration(key, best, kl, len(candidates)))
        return results
    finally:
        model.set_plan(original)
        model.train(was_training)


def _candidate_plans(model: ModularModelMixin, ratio: float) -> Iterable[Plan]:
    space = model.plan_space
    combos = sorted(space.candidates(ratio), key=lambda c: abs(space.ratio(c) - ratio))
    per_combo = [
        itertools.product(*(space.tilings[name].enumerate(combo[name]) for name in STACKS)) for combo in combos
    ]
    # Round-robin over step combinations, so a small budget still sees every combination.
    for group in itertools.zip_longest(*per_combo):
        for pair in group:
            if pair is not None:
                yield Plan(*pair)


def _teacher_reference(model: ModularModelMixin, batch: dict[str, Any], max_new_tokens: int) -> dict[str, Any]:
    device = model.device
    inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask") if k in batch}
    decoded = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
    decoder_input_ids = decoded[:, :-1]
    mask = decoded[:, 1:].ne(model.generation_config.pad_token_id)
    logits = model(**inputs, decoder_input_ids=decoder_input_ids).logits
    return {"inputs": inputs, "decoder_input_ids": decoder_input_ids, "mask": mask, "logits": logits}


def _teacher_kl(model: ModularModelMixin, plan: Plan, references: list[dict[str, Any]]) -> float:
    model.set_plan(plan)
    total, count = 0.0, 0
    for ref in references:
        logits = model(**ref["inputs"], decoder_input_ids=ref["decoder_input_ids"]).logits
        total += logit_kd_sum(logits, ref["logits"], ref["mask"], temperature=1.0).item()
        count += int(ref["mask"].sum())
    return total / max(count, 1)
