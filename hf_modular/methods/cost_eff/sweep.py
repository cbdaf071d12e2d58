"""The speed/quality curve of early exit: decode a data set at several thresholds.

For each threshold: quality (a metric on greedy decodes), decoder layers per generated token,
FLOPs per generated token (counted from the model's own matrices, see ``decoding_flops``) and
decode time per sequence at the given batch sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ...evaluation import MetricFn, greedy_decodes, interleaved_decode_latency
from ...markdown import markdown_table
from ...metrics import sequence_metrics
from .modeling import CostEffModelMixin

DEFAULT_THRESHOLDS = (None, 0.99, 0.95, 0.9, 0.8, 0.6)


@dataclass
class SweepPoint:
    threshold: float | None
    metrics: dict[str, float]
    mean_layers: float  # decoder layers per generated token
    flops_per_token: float  # whole-model FLOPs (encoder included) per generated token
    ms_per_sequence: dict[int, float] = field(default_factory=dict)  # batch size -> decode ms per sequence


def _linear_params(model: nn.Module, stack: str) -> list[dict[str, int]]:
    """Per layer of ``stack``: weight counts by kind (``self_attention.q``, ``ffn.in``...)."""
    per_layer = []
    for linears in model.adapter.layer_linears(model, stack):
        counts: dict[str, int] = {}
        for _, kind, module in linears:
            counts[kind] = counts.get(kind, 0) + module.weight.numel()
        per_layer.append(counts)
    return per_layer


def decoding_flops(model: CostEffModelMixin, source_length: int, layers_used: Sequence[int]) -> float:
    """FLOPs (2 per multiply-add) to encode ``source_length`` tokens and decode ``len(layers_used)``
    tokens, token i going through ``layers_used[i]`` decoder layers.

    Counted: every linear layer, attention scores and weighted sums, the exits evaluated (an LM
    head each) and, for skipped layers, the key/value projections that fill their cache.
    """
    encoder = _linear_params(model, "encoder")
    decoder = _linear_params(model, "decoder")
    d_model, vocab = model.config.d_model, model.config.vocab_size
    s = source_length
    flops = 0.0
    for counts in encoder:
        flops += 2 * sum(counts.values()) * s + 4 * counts["self_attention.q"] // d_model * s * s
    exits = model.config.exit_layers[:-1] if model.config.exit_layers else []
    depth = len(decoder)
    for layer in decoder:  # cross-attention keys and values: once per sequence
        flops += 2 * (layer.get("cross_attention.k", 0) + layer.get("cross_attention.v", 0)) * s
    for position, used in enumerate(layers_used):
        for index, counts in enumerate(decoder):
            if index < used:
                run = sum(v for k, v in counts.items() if k not in ("cross_attention.k", "cross_attention.v"))
                self_inner = counts["self_attention.q"] // d_model
                cross_inner = counts.get("cross_attention.q", 0) // d_model
                flops += 2 * run + 4 * self_inner * (position + 1) + 4 * cross_inner * s
            else:
                flops += 2 * (counts["self_attention.k"] + counts["self_attention.v"])
        heads = sum(1 for e in exits if e < used) + (used == depth)
        flops += 2 * d_model * vocab * heads
    return flops


def _generated_lengths(sequences: torch.Tensor, model: nn.Module) -> list[int]:
    """Tokens generated per row, up to and including the first end-of-sequence token."""
    eos = model.generation_config.eos_token_id
    eos = set(eos) if isinstance(eos, list) else {eos}
    lengths = []
    for row in sequences[:, 1:].tolist():  # drop the decoder start token
        ends = [i for i, t in enumerate(row) if t in eos]
        lengths.append(ends[0] + 1 if ends else len(row))
    return lengths


@dataclass
class _DecodeCost:
    """FLOPs, generated tokens and decoder layers run, summed over the batches of one threshold."""

    model: CostEffModelMixin
    depth: int
    flops: float = 0.0
    tokens: int = 0
    layers: int = 0

    def add(self, inputs: dict[str, torch.Tensor], out: torch.Tensor) -> None:
        """One decoded batch, read from the model's exit report of that batch."""
        report = self.model.last_exit_report
        sources = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).sum(-1).tolist()
        for row, length in enumerate(_generated_lengths(out, self.model)):
            used = report.layers_per_token[row, :length].tolist() if report is not None else [self.depth] * length
            self.flops += decoding_flops(self.model, int(sources[row]), used)
            self.tokens += length
            self.layers += sum(used)


@torch.no_grad()
def sweep_thresholds(
    model: CostEffModelMixin,
    dataset: Sequence[dict[str, Any]],
    collate_fn: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    thresholds: Sequence[float | None] = DEFAULT_THRESHOLDS,
    *,
    metric_fn: MetricFn = sequence_metrics,
    batch_size: int = 32,
    max_new_tokens: int = 32,
    latency_batch_sizes: Sequence[int] = (1,),
    latency_examples: int = 64,
    latency_repeats: int = 3,
    verbose: bool = True,
) -> list[SweepPoint]:
    """Decode ``dataset`` greedily at each threshold (None: never exit) and measure the curve.

    Prints the table as it goes when ``verbose``. Latency: wall time to decode the first
    ``latency_examples`` examples (natural stopping) at each batch size, per sequence; the median
    of ``latency_repeats`` rounds after a warm-up round (``evaluation.interleaved_decode_latency``).
    """
    model.eval()
    depth = model.adapter.depth(model.config, "decoder")
    points = []
    for threshold in thresholds:
        cost = _DecodeCost(model, depth)
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_fn)
        predictions, references = greedy_decodes(
            model, loader, max_new_tokens, on_batch=cost.add, early_exit_threshold=threshold
        )
        tokens = max(cost.tokens, 1)
        point = SweepPoint(threshold, metric_fn(predictions, references), cost.layers / tokens, cost.flops / tokens)
        timing = [dataset[i % len(dataset)] for i in range(latency_examples)]
        batches = {
            size: [collate_fn(timing[i : i + size]) for i in range(0, len(timing), size)]
            for size in latency_batch_sizes
        }
        milliseconds = interleaved_decode_latency(
            {"model": lambda: model},
            batches,
            max_new_tokens,
            latency_repeats,
            fixed_length=False,
            early_exit_threshold=threshold,
        )["model"]
        point.ms_per_sequence = {size: ms / len(timing) for size, ms in milliseconds.items()}
        points.append(point)
        if verbose:
            print(format_sweep([point], header=len(points) == 1), flush=True)
    return points


def format_sweep(points: Sequence[SweepPoint], header: bool = True) -> str:
    """A markdown table of sweep points."""
    metrics = list(points[0].metrics) if points else []
    sizes = sorted({b for p in points for b in p.ms_per_sequence})
    rows = []
    for p in points:
        cells = ["never" if p.threshold is None else f"{p.threshold:g}"]
        cells += [f"{p.metrics[m]:.2f}" for m in metrics]
        cells += [f"{p.mean_layers:.2f}", f"{p.flops_per_token / 1e6:.2f}"]
        cells += [f"{p.ms_per_sequence[b]:.2f}" if b in p.ms_per_sequence else "" for b in sizes]
        rows.append(cells)
    columns = ["threshold", *metrics, "layers/token", "MFLOPs/token", *[f"ms/seq @{b}" for b in sizes]]
    table = markdown_table(columns, rows, align="l" * len(columns))
    return table if header else "\n".join(table.splitlines()[2:])
