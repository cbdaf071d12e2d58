"""Evaluating every assembly of one trained artifact: quality, size and decode speed.

The result is a table (one row per ratio) that renders as markdown, JSON and a quality-vs-
speedup plot; the benchmark, the CLI's ``eval`` and model cards all use it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedModel

from .errors import ConfigError
from .methods.modular.assembly import format_ratio
from .methods.modular.assembly_table import AssemblyResult, AssemblyTable
from .methods.modular.modeling import ModularModelMixin

GENERATE_DEFAULT_NEW_TOKENS = 20  # what generate() decodes when nothing sets a length (transformers 5)
MetricFn = Callable[[list[list[int]], list[list[int]]], dict[str, float]]


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode inside the block, the model's own train/eval mode afterwards (it may be the caller's)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate_assemblies(
    model: ModularModelMixin,
    dataset: Dataset | Sequence[dict[str, Any]],
    collate_fn: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    ratios: Sequence[str] | None = None,
    batch_size: int = 32,
    metric_fn: MetricFn | None = None,
    max_new_tokens: int | None = None,
    latency_batch_sizes: Sequence[int] = (1, 32),
    latency_repeats: int = 5,
    progress: bool = True,
) -> AssemblyTable:
    """Evaluate ``model`` at each ratio (default: every reachable one), in memory.

    Per ratio: teacher-forced loss on ``dataset``; if ``metric_fn`` is given, greedy decoding of
    the whole dataset scored by ``metric_fn(predictions, references)`` (token ids, special tokens
    and padding removed); and the median time to greedily decode one batch of each size in
    ``latency_batch_sizes``. Latency is measured last, for every ratio and the teacher ("1x")
    together in interleaved rounds, so a busy spell of the machine hits them all alike.
    ``max_new_tokens``: default from the data (each batch's longest label plus headroom,
    ``decode_length``), so long targets are never cut at a fixed length.
    """
    specs = list(ratios) if ratios is not None else [format_ratio(r) for r in model.reachable_ratios()]
    if "1x" not in specs:
        specs = ["1x", *specs]  # speedups are relative to the teacher measured alongside
    rows: list[AssemblyResult] = []
    iterator = specs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(specs, desc="evaluating assemblies")
    with model.plan_context():  # the caller's plan and train mode come back afterwards
        for spec in iterator:
            model.set_plan(model.resolve_plan(spec))
            report = model.compression_report()
            loss, metrics, _ = measure_model(
                model,
                dataset,
                collate_fn,
                batch_size=batch_size,
                metric_fn=metric_fn,
                max_new_tokens=max_new_tokens,
                latency_batch_sizes=(),
            )
            rows.append(
                AssemblyResult(
                    ratio=spec,
                    plan=report.plan.describe(),
                    layer_ratio=round(report.layer_ratio, 3),
                    params=report.assembled_params,
                    encoder_layers=report.stacks["encoder"].steps,
                    decoder_layers=report.stacks["decoder"].steps,
                    eval_loss=loss,
                    metrics=metrics,
                )
            )

        def assembled(spec: str) -> Callable[[], PreTrainedModel]:
            def prepare() -> PreTrainedModel:
                model.set_plan(model.resolve_plan(spec))
                return model

            return prepare

        batches = timing_batches(dataset, collate_fn, latency_batch_sizes)
        latency = interleaved_decode_latency(
            {spec: assembled(spec) for spec in specs},
            batches,
            max_new_tokens or decode_length(model, list(batches.values())),
            latency_repeats,
        )
        for row in rows:
            row.latency_ms = latency[row.ratio]
    teacher = next(r for r in rows if r.ratio == "1x")
    for row in rows:
        row.speedup = {b: teacher.latency_ms[b] / row.latency_ms[b] for b in row.latency_ms}
    return AssemblyTable(rows)


@torch.no_grad()
def measure_model(
    model: PreTrainedModel,
    dataset: Dataset | Sequence[dict[str, Any]],
    collate_fn: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    *,
    batch_size: int = 32,
    metric_fn: MetricFn | None = None,
    max_new_tokens: int | None = None,
    latency_batch_sizes: Sequence[int] = (1, 32),
    latency_repeats: int = 5,
) -> tuple[float, dict[str, float], dict[int, float]]:
    """(teacher-forced loss, metric_fn on greedy decodes, median decode ms per batch size) of any seq2seq model."""
    with evaluating(model):
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_fn)
        loss, predictions, references = score_loader(model, loader, metric_fn is not None, max_new_tokens)
        batches = timing_batches(dataset, collate_fn, latency_batch_sizes)
        latency = interleaved_decode_latency(
            {"model": lambda: model},
            batches,
            max_new_tokens or decode_length(model, list(batches.values())),
            latency_repeats,
        )["model"]
    return loss, metric_fn(predictions, references) if metric_fn else {}, latency


def score_loader(model: PreTrainedModel, loader: DataLoader, decode: bool, max_new_tokens: int | None):
    """Teacher-forced loss over ``loader`` and, if ``decode``, greedy predictions and references
    (token ids without special tokens or padding; ``max_new_tokens=None``: per batch from its
    labels). Works for any seq2seq model."""
    total, tokens = 0.0, 0
    for batch in loader:
        batch = {k: v.to(model.device) for k, v in batch.items()}
        mask = batch["labels"].ne(-100)
        total += model(**batch).loss.item() * int(mask.sum())
        tokens += int(mask.sum())
    predictions, references = greedy_decodes(model, loader, max_new_tokens) if decode else ([], [])
    return total / max(tokens, 1), predictions, references


def greedy_decodes(
    model: PreTrainedModel,
    loader: Iterable[Mapping[str, torch.Tensor]],
    max_new_tokens: int | None = None,
    on_batch: Callable[[dict[str, torch.Tensor], torch.Tensor], None] | None = None,
    **generate_kwargs: Any,
) -> tuple[list[list[int]], list[list[int]]]:
    """Greedy predictions and references of every batch, as token ids without special tokens or
    padding (what metrics compare): the one decode loop of evaluation and the COST-EFF sweep.
    ``max_new_tokens=None``: per batch from its labels (``decode_length``); ``on_batch(inputs,
    output ids)`` sees each batch's result; ``generate_kwargs`` go to every ``generate`` call."""
    special = special_token_ids(model)
    predictions: list[list[int]] = []
    references: list[list[int]] = []
    for batch in loader:
        inputs = generate_inputs(batch, model.device)
        length = max_new_tokens or decode_length(model, [batch])
        out = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=length, **generate_kwargs)
        if on_batch is not None:
            on_batch(inputs, out)
        predictions += token_lists(out, special)
        references += token_lists(batch["labels"], special)
    return predictions, references


def generate_inputs(batch: Mapping[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """What ``generate()`` reads from a collated batch (the source ids and their mask), on ``device``."""
    return {k: batch[k].to(device) for k in ("input_ids", "attention_mask") if k in batch}


def decode_length(model: PreTrainedModel, batches: Sequence[Mapping[str, Any]] = ()) -> int:
    """How many new tokens to decode: the longest label in ``batches`` plus a quarter (at least 4)
    of headroom, so a model that runs long is not cut at the reference's length; without labels,
    the model's generation config (``max_new_tokens``, else ``max_length``, else transformers' default)."""
    lengths = [int(b["labels"].ne(-100).sum(-1).max()) for b in batches if "labels" in b and b["labels"].numel()]
    if lengths:
        longest = max(lengths)
        return longest + max(4, longest // 4)
    config = model.generation_config
    return int(config.max_new_tokens or config.max_length or GENERATE_DEFAULT_NEW_TOKENS)


def token_lists(rows: torch.Tensor, special: set[int]) -> list[list[int]]:
    """Each row's token ids without special tokens, padding or the ignored label -100 (what metrics compare)."""
    return [[t for t in row.tolist() if t >= 0 and t not in special] for row in rows]


def special_token_ids(model: PreTrainedModel) -> set[int]:
    config = model.generation_config
    ids = {config.pad_token_id, config.bos_token_id, config.decoder_start_token_id}
    eos = config.eos_token_id
    ids |= set(eos) if isinstance(eos, list) else {eos}
    return {i for i in ids if i is not None}


def timing_batches(
    dataset: Dataset | Sequence[dict[str, Any]],
    collate_fn: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batch_sizes: Sequence[int],
) -> dict[int, dict[str, torch.Tensor]]:
    """One batch per size from the first examples of ``dataset`` (repeated if it is smaller)."""
    rows = [dataset[i % len(dataset)] for i in range(max(batch_sizes, default=0))]
    return {b: collate_fn(rows[:b]) for b in batch_sizes}


@torch.no_grad()
def interleaved_decode_latency(
    contenders: Mapping[str, Callable[[], PreTrainedModel]],
    batches: Mapping[int, dict[str, torch.Tensor] | Sequence[dict[str, torch.Tensor]]],
    max_new_tokens: int,
    repeats: int,
    *,
    fixed_length: bool = True,
    statistic: Callable[[list[float]], float] = statistics.median,
    **generate_kwargs: Any,
) -> dict[str, dict[int, float]]:
    """Milliseconds (the rounds' median) for each contender to greedily decode each entry of ``batches``.

    ``contenders`` maps a name to a callable that returns the model ready to run (it may switch
    a modular model's plan). An entry of ``batches`` is one batch, or a list of batches decoded one
    after another and timed together. ``fixed_length``: every decode runs exactly ``max_new_tokens``
    (the speed of a size, independent of what it predicts); ``False``: each stops at its end token
    (what a user waits for, e.g. an early-exit model at a threshold). Every round times each
    contender once per entry, so slow spells of a shared machine spread over all of them instead of
    falling on whichever ran then. ``statistic`` reduces each contender's per-round times (``min``
    where interference only ever adds time; ``list`` keeps them all). ``generate_kwargs`` go to
    every ``generate`` call (e.g. ``cache_implementation="static"``).
    """
    if batches and repeats < 1:
        raise ConfigError(f"latency_repeats={repeats!r}: time each decode at least once (>= 1)")
    kwargs = {"do_sample": False, "num_beams": 1, "max_new_tokens": max_new_tokens}
    if fixed_length:
        kwargs["min_new_tokens"] = max_new_tokens
    kwargs.update(generate_kwargs)
    times: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batches} for name in contenders}
    for round_index in range(repeats + 1 if batches else 0):  # round 0 warms every contender up and is not counted
        for name, prepare in contenders.items():
            model = prepare()
            with evaluating(model):
                for size, entry in batches.items():
                    group = [entry] if isinstance(entry, Mapping) else list(entry)
                    inputs = [generate_inputs(b, model.device) for b in group]
                    start = time.perf_counter()
                    for batch_inputs in inputs:
                        model.generate(**batch_inputs, **kwargs)
                    if round_index:
                        times[name][size].append((time.perf_counter() - start) * 1000)
    return {name: {b: statistic(t) for b, t in sizes.items()} for name, sizes in times.items()}
