"""Input whitening: code each matrix in the error its OUTPUT makes on real inputs.

A weight ``W`` (out x in) is read as ``y = W x``. On calibration inputs ``X`` (tokens x in) the
output error of a coded ``W'`` is ``||(W - W') X^T||^2 = tr(E C E^T)`` with ``C = X^T X``, so with
``C = L L^T`` (Cholesky, plus a small ridge) fitting ``W L`` in the plain squared error fits the
output error exactly: rank-r SVD of ``W L`` is then the best rank-r code for those inputs
(activation-aware SVD, as in ASVD / SVD-LLM). The decode multiplies back by ``L^-1``, which is folded
into the last linear map of each coder (the SVD basis, the autoencoder's basis, bias and residual
output), so nothing extra is stored and a compressed folder loads without calibration data.
Applied on the input side, it composes with the output metric (``metric.py``), which acts on the
rows: a group fits ``R W L``.

Without data, ``random_token_batches`` stands in: sequences of token ids drawn uniformly from the
model's vocabulary. What the Gram mostly records is the model's own channel structure (every norm's
scales, the directions its layers write), which random tokens excite as well; on G2P dev words it gave
the T5 teacher's keys and values the gains of real calibration words (docs/offline_ae.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError, DataError

RIDGE = 1e-3  # of the Gram's mean diagonal: directions no calibration input reached still cost a little
RANDOM_TOKENS = "random"  # compress(..., calibration=RANDOM_TOKENS): data-free input statistics
RANDOM_SEQUENCES, RANDOM_LENGTH, RANDOM_BATCH = 1024, 10, 256  # chosen on G2P dev words (docs/offline_ae.md)


def random_token_batches(
    model: nn.Module,
    sequences: int = RANDOM_SEQUENCES,
    length: int = RANDOM_LENGTH,
    batch_size: int = RANDOM_BATCH,
    seed: int = 0,
) -> list[dict[str, torch.Tensor]]:
    """Encoder-decoder inputs of uniformly random token ids: ``sequences`` rows of ``length`` tokens
    (the encoder side ends with EOS, the decoder side starts with the decoder start token), every
    token drawn from the vocabulary without the special ids the config names. Needs no data."""
    if not (sequences >= 1 and length >= 2 and batch_size >= 1):
        raise ConfigError(
            f"random_token_batches(sequences={sequences!r}, length={length!r}, batch_size={batch_size!r}): "
            "need sequences >= 1, length >= 2 (EOS or the decoder start plus a token), batch_size >= 1"
        )
    config = model.config
    ids = {key: getattr(config, key, None) for key in ("pad_token_id", "eos_token_id", "bos_token_id")}
    ids = {key: value[0] if isinstance(value, (list, tuple)) else value for key, value in ids.items()}
    eos = ids["eos_token_id"]
    start = getattr(config, "decoder_start_token_id", None)
    start = ids["pad_token_id"] if start is None else start
    if start is None or eos is None:
        raise DataError(
            f"calibration={RANDOM_TOKENS!r} needs eos_token_id and decoder_start_token_id (or pad_token_id) in "
            f"{type(config).__name__}; got eos={eos!r}, start={start!r}: give calibration batches instead"
        )
    specials = {*ids.values(), start}
    allowed = torch.tensor([i for i in range(config.vocab_size) if i not in specials])
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for first in range(0, sequences, batch_size):
        rows = min(batch_size, sequences - first)
        draw = allowed[torch.randint(len(allowed), (rows, 2 * (length - 1)), generator=generator)]
        inputs = torch.cat([draw[:, : length - 1], torch.full((rows, 1), eos)], dim=1)
        decoder = torch.cat([torch.full((rows, 1), start), draw[:, length - 1 :]], dim=1)
        batches.append({"input_ids": inputs, "attention_mask": torch.ones_like(inputs), "decoder_input_ids": decoder})
    return batches


@torch.no_grad()
def input_grams(
    model: nn.Module, names: Iterable[str], batches: Iterable[Mapping[str, Any]]
) -> dict[str, torch.Tensor]:
    """``X^T X`` (float64) of the inputs each named ``nn.Linear`` weight reads, over every position of
    the calibration ``batches`` (model keyword inputs, e.g. a data collator's output). Weights that
    are not an ``nn.Linear``'s (embeddings) get none. A model storing more layers than one forward runs
    (a modular artifact: ``covering_plans()``) is run once per covering plan, so every module gets the
    inputs of an assembly that uses it; a layer run by several of them gets the mean of its passes."""
    batches = list(batches)
    if not batches:
        raise DataError("calibration holds no batch: give at least one batch of model inputs, or calibration=None")
    plans = model.covering_plans() if hasattr(model, "covering_plans") else [None]
    grams: dict[str, torch.Tensor] = {}
    passes: dict[str, set[int]] = {}
    current = [0]  # the pass being recorded
    hooks = []
    for name in names:
        module = model.get_submodule(name.rsplit(".", 1)[0])
        if isinstance(module, nn.Linear) and name.endswith(".weight"):

            def record(_module: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
                x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
                grams[name] = grams.get(name, 0) + x.T @ x
                passes.setdefault(name, set()).add(current[0])

            hooks.append(module.register_forward_pre_hook(record))
    try:
        for index, plan in enumerate(plans):
            current[0] = index
            with model.plan_context(plan, eval_mode=True) if plan is not None else _eval_mode(model):
                for batch in batches:
                    model(**batch)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: gram / len(passes[name]) for name, gram in grams.items()}


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def whitening_factor(grams: list[torch.Tensor]) -> torch.Tensor:
    """Lower-triangular ``L`` with ``L L^T = sum(grams) + ridge`` (float64). Given a joint group's
    members, the pooled factor its rows are coded in (one decoder, one space); ``member_maps`` then
    lets the autoencoder's loss read each member in its own inputs' metric."""
    gram = sum(grams)
    size = gram.shape[0]
    ridge = RIDGE * gram.diagonal().mean().clamp_min(1e-30)
    return torch.linalg.cholesky(gram + ridge * torch.eye(size, dtype=gram.dtype))


def whiten(rows: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``rows L``: the rows in the output-error metric of their inputs."""
    return (rows.double() @ factor).to(rows.dtype)


def member_maps(pooled: torch.Tensor, own: list[torch.Tensor]) -> list[torch.Tensor]:
    """``L_pool^-1 L_m`` per member: rows coded as ``W L_pool`` times this are ``W L_m``, the member's
    output error on its own inputs. Layers' inputs differ (each layer's norm scales its channels), so
    the pooled metric alone misweighs every member (docs/offline_ae.md, measured)."""
    inverse = _inverse(pooled)
    return [inverse @ factor for factor in own]


def _inverse(factor: torch.Tensor) -> torch.Tensor:
    """``L^-1`` of a lower-triangular factor."""
    return torch.linalg.solve_triangular(factor, torch.eye(factor.shape[0], dtype=factor.dtype), upper=False)


def fold_unwhitening(stored: dict[str, torch.Tensor], factor: torch.Tensor) -> None:
    """Make a coder that reproduces ``rows L`` reproduce ``rows``: its last linear map times ``L^-1``
    (in place; the stored shapes do not change)."""
    inverse = _inverse(factor)
    if "basis" in stored:  # SVD: rows = coefficients @ basis
        stored["basis"] = (stored["basis"].double() @ inverse).float()
        return
    # autoencoder: each output is a column vector y = W z + b; y^T L^-1 = (L^-T W) z + L^-T b
    for key in ("basis.weight", "basis.bias", "residual.weight"):
        stored[key] = (inverse.T @ stored[key].double()).float()
