"""``hf-modular cost-eff``: teacher + text pairs -> one COST-EFF model (slenderized width, an exit per
decoder layer, trained jointly against the teacher).

``--heads`` and ``--ffn`` prune every attention and feed-forward layer to that width by Taylor importance
on the first ``--calibration-batches`` batches of the training pairs (docs/cost_eff.md); leaving both out
keeps the teacher's width and only adds the exits. The inputs are checked, and a rerun resumes or is
refused, exactly as ``compress`` does (``training_run``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import training_run as run
from .common import console, fail, split_list, with_clear_errors
from .text_data import seq2seq_collator


@with_clear_errors
def cost_eff(
    teacher: run.Teacher,
    train: run.Train,
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the trained multi-exit model")],
    eval_data: Annotated[Path | None, typer.Option("--eval", help="held-out pairs: evaluated during training")] = None,
    tokenizer_path: run.TokenizerPath = None,
    source: run.Source = "source",
    target: run.Target = "target",
    heads: Annotated[int | None, typer.Option(min=1, help="attention heads kept per layer (default: all)")] = None,
    ffn: Annotated[int | None, typer.Option(min=1, help="feed-forward neurons kept per layer (default: all)")] = None,
    calibration_batches: Annotated[
        int, typer.Option(min=1, help="batches of the training pairs that score the heads and neurons")
    ] = 8,
    iterations: Annotated[int, typer.Option(min=1, help="pruning events the widths shrink over")] = 1,
    distill_steps: Annotated[
        int, typer.Option(min=0, help="distillation steps on the calibration batches between pruning events")
    ] = 0,
    exit_layers: Annotated[
        str | None, typer.Option(help="decoder layers with an exit, e.g. '1,3,5' (default: every layer)")
    ] = None,
    exit_head: Annotated[str, typer.Option(help="'shared' (the LM head) or 'affine' (one more matrix per exit)")] = (
        "shared"
    ),
    confidence: Annotated[str, typer.Option(help="'top_prob' or 'entropy': what an early exit tests")] = "top_prob",
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps of the joint exit training")] = 1000,
    max_time: run.MaxTime = None,
    batch_size: run.BatchSize = 32,
    gradient_accumulation_steps: run.GradientAccumulation = 1,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 5e-4,
    warmup_steps: run.WarmupSteps = None,
    max_length: run.MaxLength = 128,
    bf16: run.Bf16 = False,
    report_to: run.ReportTo = "none",
    checkpoints: run.Checkpoints = None,
    seed: run.Seed = 0,
    overwrite: run.Overwrite = False,
) -> None:
    """Slenderize a T5/BART teacher, add an exit after each decoder layer, train them jointly, and save.

    Rerunning the same command resumes from the last complete checkpoint.
    """
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from ..arch import adapter_for
    from ..methods import cost_eff as cost_eff_method
    from ..methods.cost_eff.config import CONFIDENCE_MEASURES, EXIT_HEADS

    # ---- everything is checked before any work starts
    choices = (("--exit-head", exit_head, EXIT_HEADS), ("--confidence", confidence, CONFIDENCE_MEASURES))
    for option, value, allowed in choices:
        if value not in allowed:
            raise fail(f"{option} {value!r}: allowed {list(allowed)}")
    layers = [_layer(item) for item in split_list(exit_layers) or []] if exit_layers is not None else None
    inputs = run.check_inputs(
        "cost_eff", teacher, train, output, eval_data, tokenizer_path, source, target, checkpoints, max_time
    )
    args = cost_eff_method.CostEffTrainingArguments(
        **run.trainer_settings(
            inputs, steps, batch_size, gradient_accumulation_steps, warmup_steps, bf16, report_to, seed
        ),
        max_steps=steps,
        learning_rate=learning_rate,
    )
    rows, eval_rows = run.tokenized(inputs, source, target, max_length)
    settings = {
        "heads": heads,
        "ffn": ffn,
        "calibration_batches": calibration_batches,
        "iterations": iterations,
        "distill_steps": distill_steps,
        "exit_layers": layers,
        "exit_head": exit_head,
        "confidence": confidence,
    }
    identity = run.run_identity(
        teacher, train, eval_data, tokenizer_path, (source, target), max_length, args, **settings
    )
    run.check_resumable(inputs.run_dir, identity, overwrite)
    teacher_model = AutoModelForSeq2SeqLM.from_pretrained(teacher, dtype=torch.float32).eval()
    depth = adapter_for(teacher_model).depth(teacher_model.config, "decoder")
    if layers is not None and (not layers or max(layers) >= depth):
        raise fail(f"--exit-layers {exit_layers!r}: the teacher's decoder has layers 0..{depth - 1}")

    # ---- the work
    if heads is None and ffn is None:
        slim = teacher_model
    else:
        collate = seq2seq_collator(inputs.tokenizer)
        calibration = [
            collate(rows[start : start + batch_size])
            for start in range(0, min(len(rows), calibration_batches * batch_size), batch_size)
        ]
        slim = cost_eff_method.slenderize(
            teacher_model, heads=heads, ffn=ffn, data=calibration, iterations=iterations, distill_steps=distill_steps
        )
    model = cost_eff_method.add_exits(slim, layers=layers, head=exit_head, confidence=confidence)
    width = f"{heads or 'all'} heads, {ffn or 'all'} FFN neurons per layer"
    announce = f"{steps} steps: {width}, exits after decoder layers {model.config.exit_layers}"
    run.train_and_save(model, args, inputs, rows, eval_rows, output, identity, announce, "cost_eff", teacher_model)
    kept = sum(p.numel() for p in model.parameters()) / sum(p.numel() for p in teacher_model.parameters())
    console.print(
        f"[green]saved[/] {output}  ({kept:.1%} of the teacher's parameters; decode with "
        f"generate(..., early_exit_threshold=0.9) to leave at the first confident exit)"
    )


def _layer(text: str) -> int:
    if not text.isdigit():
        raise fail(f"--exit-layers item {text!r} is not a decoder layer index (0, 1, ...)")
    return int(text)
