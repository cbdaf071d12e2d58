"""Exits after decoder layers, and early-exit decoding that keeps the KV cache right.

Decoding goes through the stock ``generate()`` and the stock stacks: the decoder's layer list is
an ``ExitLayers`` (a ``ModuleList`` with the same children, so checkpoints keep stock names)
that, while an ``EarlyExitSession`` is active, hands the stack a thin wrapper per layer. After
each layer with an exit the wrapper measures the newest token's confidence; a sequence whose
confidence reaches the threshold exits there: its state is frozen, and every later layer sees
the frozen state as its input, so their key/value projections (and cache entries) come from
the state the token exited with (state propagation, as in CALM). Other sequences in the batch
go on; once every sequence has exited, the remaining layers only compute those key/value
entries. A sequence's tokens therefore never depend on the rest of the batch.

With ``use_cache=False`` every step recomputes all positions; the session remembers where each
earlier token exited and freezes it at the same layer, which is what makes cached and uncached
early-exit decoding give the same tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import EncoderDecoderCache


class ExitAffine(nn.Module):
    """A light per-exit head: a scale and a shift of the state, before the shared norm and LM head."""

    def __init__(self, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden * self.weight + self.bias


def confidence(logits: torch.Tensor, measure: str) -> torch.Tensor:
    """Per row, in [0, 1]: the top probability, or 1 - entropy / log(vocabulary size)."""
    log_probs = logits.float().log_softmax(-1)
    if measure == "top_prob":
        return log_probs.max(-1).values.exp()
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return 1.0 - entropy / math.log(logits.shape[-1])


class ExitLayers(nn.ModuleList):
    """The decoder's layer list; iterating it yields the layers, or early-exit wrappers of them."""

    session: EarlyExitSession | None = None

    def __iter__(self) -> Iterator[nn.Module]:
        layers = super().__iter__()
        if self.session is None:
            return layers
        return iter([_ExitStep(self.session, index, layer) for index, layer in enumerate(layers)])


def decoder_cache(args: tuple, kwargs: dict[str, Any]) -> EncoderDecoderCache | None:
    """The cache a decoder layer was called with, found by type rather than by keyword.

    transformers 5.24 renamed the layers' ``past_key_values`` keyword to ``cache``; looking the
    cache up by name silently stopped every skip (tests/test_transformers_internals.py guards this).
    """
    return next((value for value in (*kwargs.values(), *args) if isinstance(value, EncoderDecoderCache)), None)


class _ExitStep:
    """Runs one decoder layer under a session (not a module: it owns nothing and is never saved)."""

    def __init__(self, session: EarlyExitSession, index: int, layer: nn.Module):
        self.session, self.index, self.layer = session, index, layer

    def __call__(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        session = self.session
        if self.index == 0:
            session.begin(hidden_states)
        elif session.skipping and (cache := decoder_cache(args, kwargs)) is not None:
            session.fill_self_attention_cache(self.layer, hidden_states, cache)
            return (hidden_states, *session.output_tail) if session.output_tail is not None else hidden_states
        output = self.layer(hidden_states, *args, **kwargs)
        session.layers_run += 1
        is_tuple = isinstance(output, tuple)
        hidden = session.after_layer(self.index, output[0] if is_tuple else output)
        session.output_tail = tuple(output[1:]) if is_tuple else None  # T5 hands position biases on
        return (hidden, *output[1:]) if is_tuple else hidden


class EarlyExitSession:
    """The state of one early-exit ``generate()`` call (see the module docstring)."""

    def __init__(self, model: nn.Module, threshold: float, measure: str):
        self.model, self.threshold, self.measure = model, threshold, measure
        self.depth = model.adapter.depth(model.config, "decoder")
        self.exits = set(model.config.exit_layers[:-1])  # the last layer's exit is the model's output
        self.history: torch.Tensor | None = None  # (rows, tokens decided so far): exit layer per token
        self.computed: list[int] = []  # per step, decoder layers run in full for the batch
        self.layers_run = 0  # in the current forward pass, counted as they run (not inferred)
        self.output_tail: tuple | None = None
        self.skipping = False

    # ----------------------------------------------------------------- one forward pass
    def begin(self, hidden: torch.Tensor) -> None:
        rows, length = hidden.shape[:2]
        exit_layer = torch.full((rows, length), self.depth - 1, dtype=torch.long, device=hidden.device)
        known = 0 if self.history is None else self.history.shape[1]
        past = min(length - 1, known)
        if past:  # a recomputation (use_cache=False): earlier tokens exit where they exited before
            exit_layer[:, length - 1 - past : length - 1] = self.history[:, known - past :]
        self.exit_layer = exit_layer
        self.frozen = torch.zeros_like(hidden)
        self.pending = torch.ones(rows, dtype=torch.bool, device=hidden.device)
        self.exit_logits: torch.Tensor | None = None
        self.single_position = length == 1  # only then can later layers be skipped for everyone
        self.skipping = False
        self.layers_run = 0
        self.output_tail = None

    def after_layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        exited = self.exit_layer < index
        if exited.any():
            hidden = torch.where(exited.unsqueeze(-1), self.frozen, hidden)
        here = self.exit_layer == index
        if here.any():
            self.frozen = torch.where(here.unsqueeze(-1), hidden, self.frozen)
        if index in self.exits and self.pending.any():
            newest = hidden[:, -1]
            logits = self.model.exit_logits_at(index, newest)
            leave = self.pending & (confidence(logits, self.measure) >= self.threshold)
            if leave.any():
                if self.exit_logits is None:
                    self.exit_logits = torch.zeros_like(logits)
                self.exit_logits[leave] = logits[leave]
                self.exit_layer[leave, -1] = index
                self.frozen[leave, -1] = newest[leave]
                self.pending &= ~leave
                self.skipping = self.single_position and not self.pending.any()
        return hidden

    def fill_self_attention_cache(self, layer: nn.Module, hidden: torch.Tensor, cache: EncoderDecoderCache) -> None:
        """A skipped layer's self-attention key/value entries, from the frozen state."""
        adapter = self.model.adapter
        normed = layer.get_submodule(adapter.self_attention_norm)(hidden) if adapter.self_attention_norm else hidden
        attention = layer.get_submodule(adapter.self_key.rpartition(".")[0])
        shape = (*hidden.shape[:-1], -1, getattr(attention, adapter.head_dim_attr))
        key = layer.get_submodule(adapter.self_key)(normed).view(shape).transpose(1, 2)
        value = layer.get_submodule(adapter.self_value)(normed).view(shape).transpose(1, 2)
        cache.self_attention_cache.update(key, value, attention.layer_idx)

    def finish(self, logits: torch.Tensor) -> torch.Tensor:
        """The newest token's logits (exited rows: their exit's), and the record of where it exited."""
        if self.exit_logits is not None:
            decided = ~self.pending
            logits = logits.clone()
            logits[decided, -1] = self.exit_logits[decided].to(logits.dtype)
        newest = self.exit_layer[:, -1:]
        self.history = newest if self.history is None else torch.cat([self.history, newest], dim=1)
        self.computed.append(self.layers_run)
        self.skipping = False
        return logits

    def layers_per_token(self) -> torch.Tensor:
        """(rows, generated tokens): how many decoder layers each token went through."""
        return self.history + 1
