"""COST-EFF models: stock T5/BART classes at slenderized widths, with exits after decoder layers.

Without an ``early_exit_threshold`` they are exactly the stock model (the exits add nothing to
the forward pass). ``generate(..., early_exit_threshold=0.9)`` decodes with early exits (see
``exits``); ``last_exit_report`` then says how many layers each token used.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import BartForConditionalGeneration, PreTrainedModel, T5ForConditionalGeneration

from ...arch import ArchAdapter, adapter_for
from ...errors import ConfigError
from ...registry import get_method
from ...serialization import SafeSerializationMixin
from ...validation import is_real
from ..modular.modeling import ModularModelMixin
from .config import (
    CONFIDENCE_MEASURES,
    EXIT_HEADS,
    CostEffBartConfig,
    CostEffConfigMixin,
    CostEffT5Config,
)
from .exits import EarlyExitSession, ExitAffine, ExitLayers


@dataclass(frozen=True)
class ExitReport:
    """Where the tokens of the last early-exit ``generate()`` exited.

    layers_per_token: (rows, generated tokens), decoder layers each token went through (rows are
        beam slots under beam search).
    layers_run: per decoding step, the layers that actually ran in full for the whole batch
        (counted as they run, so a skip that never happened shows up here): compute is only saved
        on layers every sequence of the batch skipped.
    """

    layers_per_token: torch.Tensor
    layers_run: list[int]
    depth: int

    @property
    def mean_layers(self) -> float:
        return float(self.layers_per_token.float().mean())


class CostEffModelMixin(SafeSerializationMixin):
    """Installs the exit-aware layer list and the exit heads on a stock seq2seq model."""

    config: CostEffConfigMixin
    last_exit_report: ExitReport | None = None

    def __init__(self, config: CostEffConfigMixin, *args: Any, **kwargs: Any):
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        decoder = self.adapter.stack(self, "decoder")  # type: ignore[arg-type]
        setattr(decoder, self.adapter.layers_attr, ExitLayers(getattr(decoder, self.adapter.layers_attr)))
        if config.exit_head == "affine" and config.exit_layers:
            self.exit_heads = nn.ModuleDict({str(i): ExitAffine(config.d_model) for i in config.exit_layers[:-1]})
        self.post_init()  # type: ignore[attr-defined]

    @property
    def adapter(self) -> ArchAdapter:
        return self.config.adapter

    def _exit_layers(self) -> ExitLayers:
        return getattr(self.adapter.stack(self, "decoder"), self.adapter.layers_attr)  # type: ignore[arg-type]

    # ----------------------------------------------------------------- exits
    def exit_logits_at(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """The vocabulary logits of the exit after decoder layer ``layer`` (not the last) for ``hidden``."""
        if self.config.exit_head == "affine":
            hidden = self.exit_heads[str(layer)](hidden)
        if self.adapter.final_norm:
            hidden = getattr(self.adapter.stack(self, "decoder"), self.adapter.final_norm)(hidden)  # type: ignore[arg-type]
        return self.adapter.vocab_projection(self, hidden)  # type: ignore[misc]

    def all_exit_logits(self, outputs: Any) -> list[torch.Tensor]:
        """Every exit's logits for a forward run with ``output_hidden_states=True`` (last: the output)."""
        states = outputs.decoder_hidden_states
        if states is None:
            raise ConfigError("all_exit_logits needs the outputs of a forward with output_hidden_states=True")
        # states[0] are the embeddings, states[i + 1] the output of layer i.
        return [self.exit_logits_at(i, states[i + 1]) for i in self.config.exit_layers[:-1]] + [outputs.logits]

    # ----------------------------------------------------------------- decoding
    def generate(
        self,
        *args: Any,
        early_exit_threshold: float | None = None,
        exit_confidence: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Stock ``generate``; with ``early_exit_threshold`` (a confidence in (0, 1]) a token leaves
        at the first exit whose confidence reaches it. None (the default) never exits."""
        if early_exit_threshold is None:
            self.last_exit_report = None
            return super().generate(*args, **kwargs)  # type: ignore[misc]
        threshold = early_exit_threshold
        if not is_real(threshold) or not 0 < threshold <= 1:
            raise ConfigError(f"early_exit_threshold={threshold!r}: give a confidence in (0, 1], or None to never exit")
        if not self.config.exit_layers:
            raise ConfigError("this model has no exits: add them with cost_eff.add_exits(model) and train them")
        measure = exit_confidence or self.config.exit_confidence
        if measure not in CONFIDENCE_MEASURES:
            raise ConfigError(f"exit_confidence={measure!r}: allowed {list(CONFIDENCE_MEASURES)}")
        beams = kwargs.get("num_beams") or self.generation_config.num_beams or 1  # type: ignore[attr-defined]
        if kwargs.get("use_cache") is False and beams > 1:
            raise ConfigError("early exit with beam search needs use_cache=True (uncached beams are not tracked)")
        layers = self._exit_layers()
        session = EarlyExitSession(self, float(threshold), measure)
        layers.session = session
        try:
            output = super().generate(*args, **kwargs)  # type: ignore[misc]
        finally:
            layers.session = None
        self.last_exit_report = ExitReport(session.layers_per_token(), session.computed, session.depth)
        return output


def _exit_aware(forward: Callable[..., Any]) -> Callable[..., Any]:
    """The stock forward, whose newest-token logits are the exit's for tokens that exited. Wrapped
    (not overridden) so its signature stays the stock one, which Trainer reads to keep columns."""

    @functools.wraps(forward)
    def wrapper(self: CostEffModelMixin, *args: Any, **kwargs: Any) -> Any:
        outputs = forward(self, *args, **kwargs)
        session = self._exit_layers().session
        if session is not None:
            outputs.logits = session.finish(outputs.logits)
        return outputs

    return wrapper


class CostEffT5ForConditionalGeneration(CostEffModelMixin, T5ForConditionalGeneration):
    config_class = CostEffT5Config
    forward = _exit_aware(T5ForConditionalGeneration.forward)


class CostEffBartForConditionalGeneration(CostEffModelMixin, BartForConditionalGeneration):
    """BART derives the head size from ``d_model / heads``; after head pruning the config's
    ``attention_head_dim`` keeps the original size and the projections are built to match."""

    config_class = CostEffBartConfig
    forward = _exit_aware(BartForConditionalGeneration.forward)

    def __init__(self, config: CostEffBartConfig, *args: Any, **kwargs: Any):
        head_dim = config.attention_head_dim
        heads = (config.encoder_attention_heads, config.decoder_attention_heads)
        if head_dim is not None:  # BartAttention refuses head counts that do not divide d_model
            config.encoder_attention_heads = config.decoder_attention_heads = 1
        try:
            super().__init__(config, *args, **kwargs)
        finally:
            config.encoder_attention_heads, config.decoder_attention_heads = heads
        if head_dim is not None:
            adapter = config.adapter
            for name, module in self.named_modules():
                if type(module).__name__ == adapter.attention_class_name:
                    stack = "encoder" if ".encoder." in f".{name}." else "decoder"
                    adapter.resize_attention(module, heads[stack == "decoder"], head_dim)
            self.post_init()


def runnable_model(model: PreTrainedModel) -> PreTrainedModel:
    """The model that actually runs: a modular model's active assembly as a stock model, else ``model``."""
    return model.to_stock_model() if isinstance(model, ModularModelMixin) else model


def from_state(model: PreTrainedModel, state: dict[str, torch.Tensor], **fields: Any) -> CostEffModelMixin:
    """A new COST-EFF model with ``model``'s config (``fields`` changed), generation config, dtype and
    device, holding ``state``. Only exit heads may be missing (new) or left over (dropped exits)."""
    adapter = adapter_for(model)
    method = get_method("cost_eff")
    config = method.config_class(adapter.family).from_model_config(model.config, **fields)
    result = method.model_class(adapter.family)(config)
    missing, unexpected = result.load_state_dict(state, strict=False)
    if any(not k.startswith("exit_heads.") for k in [*missing, *unexpected]):
        raise ConfigError(f"{type(model).__name__} does not fit a {type(result).__name__}: {missing} {unexpected}")
    result.generation_config = copy.deepcopy(model.generation_config)
    return result.to(dtype=model.dtype, device=model.device).eval()


def as_cost_eff(model: PreTrainedModel, **fields: Any) -> CostEffModelMixin:
    """``model`` (stock, modular: its active plan, or COST-EFF) as a new COST-EFF model, with ``fields`` set."""
    model = runnable_model(model)
    return from_state(model, model.state_dict(), **fields)


def add_exits(
    model: PreTrainedModel, layers: list[int] | None = None, head: str = "shared", confidence: str = "top_prob"
) -> CostEffModelMixin:
    """A copy of ``model`` (stock, modular: its active assembly, or COST-EFF) with an exit after
    each of ``layers`` (default: every decoder layer). ``head``: ``"shared"`` or ``"affine"``;
    ``confidence``: ``"top_prob"`` or ``"entropy"`` (see ``CostEffConfigMixin``)."""
    if head not in EXIT_HEADS:
        raise ConfigError(f"head={head!r}: allowed {list(EXIT_HEADS)}")
    model = runnable_model(model)
    depth = adapter_for(model).depth(model.config, "decoder")
    if layers is not None and not layers:
        raise ConfigError(f"layers={layers!r}: give at least one decoder layer in 0..{depth - 1}, or None for all")
    exit_layers = list(range(depth)) if layers is None else list(layers)
    return as_cost_eff(model, exit_layers=exit_layers, exit_head=head, exit_confidence=confidence)
