"""Offline weight compression of a trained T5/BART (or a modular artifact, or an assembly).

``compress`` codes the targeted weight matrices row by row (autoencoder, or SVD as the baseline),
replaces them in a copy of the model by their reconstruction, and returns a ``CompressedModel``
(``modeling.py``) whose ``save_pretrained`` stores only the codes plus the untouched tensors.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from ...arch import adapter_for
from ...errors import ConfigError
from .config import OfflineAEConfig
from .layers import Group, autoencoder_shape, fit_autoencoder, fit_svd, svd_rank
from .metric import Partner, find_partners
from .modeling import CompressedModel
from .whitening import (
    RANDOM_LENGTH,
    RANDOM_SEQUENCES,
    RANDOM_TOKENS,
    fold_unwhitening,
    input_grams,
    member_maps,
    random_token_batches,
    whiten,
    whitening_factor,
)


# ----------------------------------------------------------------------------- choosing targets
def kind_tags(kind: str) -> set[str]:
    """What a target may name to select ``kind``: its parts, 'attention', and ffn_in / ffn_out."""
    parts = kind.split(".")
    tags = set(parts) | {kind}
    if any(p.endswith("_attention") for p in parts):
        tags.add("attention")
    if "ffn" in parts:
        tags.add(f"ffn_{parts[-1]}")
    return tags


def select_targets(model: nn.Module, targets: tuple[str, ...]) -> dict[str, str]:
    """Parameter name -> kind for every weight matrix the targets select (tied weights once)."""
    adapter = adapter_for(model)
    kinds = {name: adapter.weight_kind(name) for name, _ in model.named_parameters()}
    available = sorted({k for k in kinds.values() if k})
    selected: dict[str, str] = {}
    for target in targets:
        parts = set(target.split("."))
        hits = {name: kind for name, kind in kinds.items() if kind and parts <= kind_tags(kind)}
        if not hits:
            raise ConfigError(f"target {target!r} selects no weight matrix; this model has the kinds {available}")
        selected.update(hits)
    return selected


def _natural_key(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _groups(
    selected: dict[str, str], params: dict[str, torch.Tensor], config: OfflineAEConfig, partners: dict[str, Partner]
) -> list[Group]:
    """The coder groups, those whose members read a coded partner last (its final weights define their metric)."""
    names = sorted(selected, key=_natural_key)
    if config.mode == "joint":
        buckets: dict[str, list[str]] = {}
        for name in names:
            buckets.setdefault(selected[name], []).append(name)
        keyed = list(buckets.items())
    else:
        keyed = [(name, [name]) for name in names]
    keyed.sort(key=lambda item: any(partners.get(m) and partners[m].name in selected for m in item[1]))
    groups = []
    for i, (_, members) in enumerate(keyed):
        shapes = [list(params[m].shape) for m in members]
        if len({s[1] for s in shapes}) != 1:
            raise ConfigError(f"{members} have different row lengths {shapes}: they cannot share one coder")
        groups.append(
            Group(
                id=f"g{i}",
                kind=selected[members[0]],
                coder=config.method,
                members=members,
                shapes=shapes,
                dtypes=[str(params[m].dtype).removeprefix("torch.") for m in members],
                partners=[partners.get(m) for m in members],
            )
        )
    return groups


def _fit(
    group: Group,
    rows: torch.Tensor,
    config: OfflineAEConfig,
    progress: Any,
    blocks: list[tuple[int, torch.Tensor]] | None,
) -> None:
    budget = math.floor(rows.numel() / config.ratio)
    if group.coder == "svd":
        group.rank = svd_rank(rows.shape[0], rows.shape[1], budget)
        group.stored = fit_svd(rows, group.rank)
        return
    group.latent, group.hidden = autoencoder_shape(rows.shape[0], rows.shape[1], budget, config.decoder_fraction)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + int(group.id[1:]))
    group.stored = fit_autoencoder(
        rows,
        group.latent,
        group.hidden,
        config.steps,
        config.learning_rate,
        config.loss,
        generator,
        progress,
        blocks,
    )


def _install(model: nn.Module, group: Group, rebuilt: list[torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, weight in zip(group.members, rebuilt, strict=True):
            params[name].copy_(weight.to(params[name].dtype))


def compress(
    model: PreTrainedModel,
    ratio: float = 4.0,
    targets: str | list[str] | tuple[str, ...] = ("attention", "ffn"),
    mode: str = "joint",
    method: str = "autoencoder",
    calibration: Iterable[Mapping[str, Any]] | str | None = RANDOM_TOKENS,
    **settings: Any,
) -> CompressedModel:
    """Compress ``model``'s targeted weight matrices at ``ratio`` (original / stored numbers).

    ``method="autoencoder"`` (default) or ``"svd"`` (the baseline, at the same storage);
    ``mode="joint"`` (one coder per matrix kind across layers) or ``"per_matrix"``;
    ``metric="output"`` (default: each matrix coded as the matrix reading it sees it) or ``"rows"``.
    ``calibration``: what each matrix's inputs are measured on, so that it is coded in the error its
    output makes on them (input whitening, ``whitening.py``; no extra stored number): ``"random"``
    (default: random token sequences, ``random_token_batches``; needs no data), batches of model inputs
    (e.g. a few collated training batches), or None (code the weights alone). Other settings: see
    ``OfflineAEConfig``.
    ``model`` is not modified; no model training happens.
    """
    if isinstance(calibration, str) and calibration != RANDOM_TOKENS:
        raise ConfigError(f"calibration={calibration!r}: give batches of model inputs, {RANDOM_TOKENS!r} or None")
    if "input_whitening" in settings:
        raise ConfigError("input_whitening follows calibration: pass calibration=batches to weigh matrices by inputs")
    config = OfflineAEConfig(
        ratio=ratio, targets=targets, mode=mode, method=method, input_whitening=calibration is not None, **settings
    )
    started = time.perf_counter()
    work = copy.deepcopy(model).eval()
    selected = select_targets(work, config.targets)
    source = None if calibration is None else "batches"
    if calibration == RANDOM_TOKENS:
        source = f"random tokens ({RANDOM_SEQUENCES} x {RANDOM_LENGTH}, seed {config.seed})"
        calibration = random_token_batches(work, seed=config.seed)
    grams = input_grams(work, selected, calibration) if calibration is not None else {}
    params = {n: p.detach() for n, p in work.named_parameters()}  # each group reads its rows before installing
    partners = find_partners(work, selected) if config.metric == "output" else {}
    groups = _groups(selected, params, config, partners)
    total = config.steps * len(groups) if config.method == "autoencoder" else 0
    quality, squares = [], []
    with tqdm(total=total, desc=f"offline {config.method}", disable=not config.progress or total == 0) as progress:
        for group in groups:  # a coded partner is installed before the groups that read it
            coded = group.coded_rows(params.__getitem__)
            own = factor = blocks = None
            if grams.keys() >= set(group.members):
                own = [whitening_factor([grams[m]]) for m in group.members]
                factor = own[0]
                if len(own) > 1:  # a joint group: one pooled space, each member read in its own inputs' metric
                    factor = whitening_factor([grams[m] for m in group.members])
                    blocks = [(shape[0], m) for shape, m in zip(group.shapes, member_maps(factor, own), strict=True)]
            fitted = coded if factor is None else whiten(coded, factor)
            _fit(group, fitted, config, progress, blocks)
            if factor is not None:
                fold_unwhitening(group.stored, factor)
            original = torch.cat([params[m].float() for m in group.members])
            rebuilt = group.rebuild(params.__getitem__)
            group_quality, group_squares = _quality(group, original, torch.cat(rebuilt), coded, own)
            quality.append(group_quality)
            squares.append(group_squares)
            _install(work, group, rebuilt)
    report = _report(groups, quality, squares, time.perf_counter() - started, config, source)
    return CompressedModel(model=work, config=config, groups=groups, report=report)


def _quality(
    group: Group, rows: torch.Tensor, rebuilt: torch.Tensor, coded: torch.Tensor, own: list[torch.Tensor] | None
) -> tuple[dict[str, Any], dict[str, float]]:
    """Reconstruction of the rows themselves, and in the metric the group was coded in: each member's
    rows as its partner reads them (``coded``), on its own calibration inputs (``own`` factors) when
    whitened. Also the squared errors and norms, from which a report pools its groups into one error."""
    error = group.decode() - coded  # both in the output metric (the whitening is folded out of the codes)
    counts = [shape[0] for shape in group.shapes]
    factors = own or [None] * len(counts)
    seen = [
        (e, c) if f is None else (e.double() @ f, c.double() @ f)
        for e, c, f in zip(error.split(counts), coded.split(counts), factors, strict=True)
    ]
    coded_error_sq = sum(e.pow(2).sum().item() for e, _ in seen)
    coded_norm_sq = sum(c.pow(2).sum().item() for _, c in seen)
    error_sq, norm_sq = (rebuilt - rows).pow(2).sum().item(), rows.pow(2).sum().item()
    quality = {
        "kind": group.kind,
        "members": len(group.members),
        "original_numbers": group.original_numbers,
        "stored_numbers": group.stored_numbers,
        "shared_numbers": group.shared_numbers,
        "ratio": round(group.original_numbers / group.stored_numbers, 4),
        "mean_cosine": round(nn.functional.cosine_similarity(rebuilt, rows, dim=1).mean().item(), 5),
        "relative_error": round(math.sqrt(error_sq / norm_sq), 5),
        "coded_relative_error": round(math.sqrt(coded_error_sq / coded_norm_sq), 5),
        "input_whitened": own is not None,
    }
    return quality, {"error": error_sq, "norm": norm_sq, "coded_error": coded_error_sq, "coded_norm": coded_norm_sq}


def _report(
    groups: list[Group],
    quality: list[dict[str, Any]],
    squares: list[dict[str, float]],
    seconds: float,
    config: OfflineAEConfig,
    calibration: str | None,
):
    """Totals, and the groups' errors pooled: the relative error of all coded matrices together
    (each in its coded metric), which compares coders whatever their grouping. ``calibration``: what
    the input whitening measured (given batches, random tokens), or None."""
    original_numbers = sum(g.original_numbers for g in groups)
    stored_numbers = sum(g.stored_numbers for g in groups)
    total = {key: sum(s[key] for s in squares) for key in ("error", "norm", "coded_error", "coded_norm")}
    return {
        "method": config.method,
        "mode": config.mode,
        "calibration": calibration,
        "requested_ratio": config.ratio,
        "targets": list(config.targets),
        "original_numbers": original_numbers,
        "stored_numbers": stored_numbers,
        "ratio": round(original_numbers / stored_numbers, 4),
        "relative_error": round(math.sqrt(total["error"] / total["norm"]), 5),
        "coded_relative_error": round(math.sqrt(total["coded_error"] / total["coded_norm"]), 5),
        "seconds": round(seconds, 2),
        "groups": quality,
    }
