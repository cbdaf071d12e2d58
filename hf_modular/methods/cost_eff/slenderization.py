"""Width slenderization: prune attention heads and FFN neurons by Taylor importance.

The importance of a structure (a head, a neuron) is |sum over its output weights of grad * w|:
the first-order change of the loss when the structure is removed, which equals the gradient of
the loss with respect to a gate on the structure's output. The loss is exit-aware: the sum over
every decoder exit of 0.1 cross-entropy + 0.9 KD to the uncompressed model's distribution, so
the structures the early exits need are kept too. Each layer keeps its top ``heads`` heads and
top ``ffn`` neurons, and the result is a real smaller model (smaller matrices, not masks).

T5 adds one relative position bias per head, computed by a stack's first layer and added to
the same head in every later layer, so T5 self-attention heads are chosen once per stack (their
scores summed over the stack's layers); BART heads and all FFN neurons are chosen per layer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from ...arch import adapter_for
from ...errors import ConfigError, DataError
from ...losses import cross_entropy_sum, logit_kd_sum
from ...plan import STACKS
from ...validation import is_int
from .arguments import COST_EFF_LOSS
from .modeling import CostEffModelMixin, as_cost_eff, from_state, runnable_model


@dataclass(frozen=True)
class PruneGroup:
    """The heads of one attention, or the neurons of one FFN, in one layer.

    rows: modules whose output units are pruned (q, k, v; FFN in); cols: modules whose input
    units are pruned (attention output; FFN out), which also score the structures; unit: weights
    per structure along the pruned dimension (the head size; 1 for a neuron); head_table: a
    per-head bias table (T5's relative position bias), whose columns are heads.
    """

    stack: str
    layer: int
    kind: str  # "self_attention", "cross_attention" or "ffn"
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    unit: int
    head_table: str | None = None
    tied_kinds: tuple[str, ...] = ()  # kinds chosen once per stack (the adapter's tied_head_attention)

    @property
    def tie(self) -> tuple[str, str, int | None]:
        """Groups with the same tie choose the same structures."""
        return (self.stack, self.kind, None if self.kind in self.tied_kinds else self.layer)


def prunable_groups(model: PreTrainedModel) -> list[PruneGroup]:
    """Every attention and FFN of ``model``'s stacks, found through the family adapter."""
    adapter = adapter_for(model)
    groups = []
    for name in STACKS:
        for index, linears in enumerate(adapter.layer_linears(model, name)):
            roles: dict[str, dict[str, list[str]]] = {}
            for qualified, kind, _ in linears:
                group, role = kind.split(".")
                roles.setdefault(group, {}).setdefault(role, []).append(qualified)
            for group, by_role in roles.items():
                if group == "ffn":
                    groups.append(PruneGroup(name, index, group, tuple(by_role["in"]), tuple(by_role["out"]), 1))
                    continue
                attention = model.get_submodule(by_role["q"][0].rpartition(".")[0])
                table = next((f for f in adapter.start_only_params if hasattr(attention, f)), None)
                groups.append(
                    PruneGroup(
                        name,
                        index,
                        group,
                        (by_role["q"][0], by_role["k"][0], by_role["v"][0]),
                        tuple(by_role["o"]),
                        getattr(attention, adapter.head_dim_attr),
                        f"{by_role['q'][0].rpartition('.')[0]}.{table}" if table else None,
                        adapter.tied_head_attention,
                    )
                )
    return groups


# ----------------------------------------------------------------------------- importance
def _structure_sums(model: nn.Module, group: PruneGroup) -> torch.Tensor:
    """Signed sum of grad * w over each structure's output weights (the gate gradient)."""
    total = None
    for path in group.cols:
        weight = model.get_submodule(path).weight
        if weight.grad is None:
            raise RuntimeError(f"no gradient reached {path}: is it part of the forward pass?")
        product = (weight.grad.float() * weight.detach().float()).view(weight.shape[0], -1, group.unit)
        sums = product.sum(dim=(0, 2))
        total = sums if total is None else total + sums
    return total


def importance_loss(
    model: CostEffModelMixin, batch: dict[str, torch.Tensor], teacher_logits: torch.Tensor
) -> torch.Tensor:
    """Per-token sum over every exit of the published mix, 0.1 CE + 0.9 KD at temperature 1, to the
    teacher (the weights of ``COST_EFF_LOSS``, which training uses too)."""
    outputs = model(**batch, output_hidden_states=True)
    labels = batch["labels"]
    mask = labels.ne(-100)
    loss = sum(
        COST_EFF_LOSS["ce_weight"] * cross_entropy_sum(logits, labels)
        + COST_EFF_LOSS["kd_weight"] * logit_kd_sum(logits, teacher_logits, mask, COST_EFF_LOSS["kd_temperature"])
        for logits in model.all_exit_logits(outputs)
    )
    return loss / mask.sum().clamp(min=1)


def taylor_importance(
    model: CostEffModelMixin, batches: Sequence[dict[str, torch.Tensor]], teacher_logits: Sequence[torch.Tensor]
) -> dict[PruneGroup, torch.Tensor]:
    """|sum of grad * w| per head / neuron, gradients summed over ``batches``; tied groups share scores."""
    model.zero_grad(set_to_none=True)
    for batch, target in zip(batches, teacher_logits, strict=True):
        importance_loss(model, batch, target).backward()
    sums = {group: _structure_sums(model, group) for group in prunable_groups(model)}
    model.zero_grad(set_to_none=True)
    tied: dict[Any, torch.Tensor] = {}
    for group, value in sums.items():
        tied[group.tie] = tied[group.tie] + value if group.tie in tied else value
    return {group: tied[group.tie].abs() for group in sums}


def select(scores: dict[PruneGroup, torch.Tensor], heads: int, ffn: int) -> dict[PruneGroup, torch.Tensor]:
    """The kept structures per group: the top-``heads`` / top-``ffn`` scores, in original order."""
    keep = {}
    for group, score in scores.items():
        count = ffn if group.kind == "ffn" else heads
        keep[group] = torch.topk(score, count, sorted=False).indices.sort().values
    return keep


# ----------------------------------------------------------------------------- pruning
@torch.no_grad()
def prune(model: CostEffModelMixin, keep: dict[PruneGroup, torch.Tensor]) -> CostEffModelMixin:
    """A new model holding only the kept structures (``keep`` from ``select``); ``model`` is untouched."""
    adapter = model.adapter
    counts = {"heads": set(), "ffn": set()}
    state = dict(model.state_dict())
    for group, kept in keep.items():
        counts["ffn" if group.kind == "ffn" else "heads"].add(len(kept))
        units = (kept.unsqueeze(1) * group.unit + torch.arange(group.unit)).flatten()
        for path in group.rows:
            for suffix in ("weight", "bias"):
                if f"{path}.{suffix}" in state:
                    state[f"{path}.{suffix}"] = state[f"{path}.{suffix}"][units].clone()
        for path in group.cols:
            state[f"{path}.weight"] = state[f"{path}.weight"][:, units].clone()
        if group.head_table:
            state[f"{group.head_table}.weight"] = state[f"{group.head_table}.weight"][:, kept].clone()
    if len(counts["heads"]) > 1 or len(counts["ffn"]) > 1:
        raise ConfigError(f"widths must be uniform over layers, got {counts}")
    fields: dict[str, Any] = {}
    if counts["heads"]:
        heads = counts["heads"].pop()
        fields.update(dict.fromkeys(adapter.head_fields, heads))
        if adapter.resize_attention is not None:  # the stock config derives the head size unless told
            fields["attention_head_dim"] = next(g.unit for g in keep if g.kind != "ffn")
    if counts["ffn"]:
        fields.update(dict.fromkeys(adapter.ffn_fields, counts["ffn"].pop()))
    return from_state(model, state, **fields)


def _check_width(name: str, value: int | None, current: list[int]) -> int | None:
    if value is None:
        return None
    if not is_int(value) or not 1 <= value <= min(current):
        raise ConfigError(f"{name}={value!r}: give an integer from 1 to {min(current)} (the model has {current})")
    return value


def slenderize(
    model: PreTrainedModel,
    heads: int | None = None,
    ffn: int | None = None,
    data: Iterable[dict[str, torch.Tensor]] | None = None,
    *,
    teacher: PreTrainedModel | None = None,
    iterations: int = 1,
    distill_steps: int = 0,
    learning_rate: float = 1e-4,
    progress: bool = True,
) -> CostEffModelMixin:
    """A COST-EFF model keeping ``heads`` heads per attention and ``ffn`` neurons per FFN.

    ``model``: a stock T5/BART, a modular model (its active assembly) or a COST-EFF model; it is
    not changed. ``data``: calibration batches (``input_ids``, ``attention_mask``, ``labels``).
    ``teacher``: the KD target (default: ``model`` itself). With ``iterations`` > 1 the widths
    shrink linearly over that many pruning events, each followed by ``distill_steps`` optimizer
    steps of the same exit-aware KD on ``data`` (AdamW at ``learning_rate``).
    """
    batches = list(data) if data is not None else []
    if not batches:
        raise DataError("slenderize needs calibration batches (data=[{'input_ids', 'attention_mask', 'labels'}, ...])")
    if any("labels" not in b or "input_ids" not in b for b in batches):
        raise DataError("every calibration batch needs 'input_ids' and 'labels' (the decoder side of the KD loss)")
    if not is_int(iterations) or iterations < 1:
        raise ConfigError(f"iterations={iterations!r} must be an integer >= 1")
    if not is_int(distill_steps) or distill_steps < 0:
        raise ConfigError(f"distill_steps={distill_steps!r} must be an integer >= 0")
    teacher = (teacher if teacher is not None else model).eval()
    model = runnable_model(model)
    adapter = adapter_for(model)
    heads = _check_width("heads", heads, [int(getattr(model.config, f)) for f in adapter.head_fields])
    ffn = _check_width("ffn", ffn, [int(getattr(model.config, f)) for f in adapter.ffn_fields])
    exits = list(getattr(model.config, "exit_layers", None) or [])
    depth = adapter.depth(model.config, "decoder")
    # Score with an exit after every decoder layer (shared heads, no parameters) unless it has its own.
    work = as_cost_eff(model, exit_layers=exits or list(range(depth)))
    device = work.device
    batches = [{k: v.to(device) for k, v in b.items() if isinstance(v, torch.Tensor)} for b in batches]
    with torch.no_grad():
        targets = [teacher(**b).logits.detach() for b in batches]
    start = {
        "heads": int(getattr(work.config, adapter.head_fields[0])),
        "ffn": int(getattr(work.config, adapter.ffn_fields[0])),
    }
    goal = {"heads": heads if heads is not None else start["heads"], "ffn": ffn if ffn is not None else start["ffn"]}
    for event in tqdm(range(1, iterations + 1), desc="slenderize", disable=not progress or iterations == 1):
        widths = {k: round(start[k] - (start[k] - goal[k]) * event / iterations) for k in start}
        work = prune(work, select(taylor_importance(work, batches, targets), widths["heads"], widths["ffn"]))
        if event < iterations and distill_steps:
            _distill(work, batches, targets, distill_steps, learning_rate, progress)
    if not exits:
        work.config.exit_layers = []  # the scoring exits were shared heads: nothing to remove
    return work.eval()


def _distill(
    model: CostEffModelMixin,
    batches: list[dict[str, torch.Tensor]],
    targets: list[torch.Tensor],
    steps: int,
    learning_rate: float,
    progress: bool,
) -> None:
    """A few optimizer steps of the importance loss between pruning events."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    pairs = itertools.cycle(zip(batches, targets, strict=True))
    for _ in tqdm(range(steps), desc="distil between pruning events", disable=not progress, leave=False):
        batch, target = next(pairs)
        importance_loss(model, batch, target).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
