"""``hf-modular compress``: teacher + text pairs -> one trained modular artifact (all sizes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, existing_path, fail, load_tokenizer, split_list, with_clear_errors
from .text_data import load_pairs, seq2seq_collator, tokenize_pairs


@with_clear_errors
def compress(
    teacher: Annotated[str, typer.Argument(help="stock T5/BART folder or Hub id (with its tokenizer)")],
    train: Annotated[Path, typer.Option(help="training pairs: .jsonl/.json/.csv/.parquet")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the trained artifact")],
    source: Annotated[str, typer.Option(help="input text column")] = "source",
    target: Annotated[str, typer.Option(help="output text column")] = "target",
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps of the one training phase")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    max_length: Annotated[int, typer.Option(min=1, help="truncate texts to this many tokens")] = 128,
    module_sizes: Annotated[str | None, typer.Option(help="e.g. '2,3,6' (default: every divisor of the depth)")] = None,
    plan_sampling: Annotated[
        str,
        typer.Option(
            help="'random' (one sampled plan per batch) or 'granularities' (every module size on every batch; "
            "about 2x the cost per step, better 2x/3x/6x assemblies per unit of compute)"
        ),
    ] = "random",
    checkpoints: Annotated[Path | None, typer.Option(help="checkpoint folder (default: <output>-checkpoints)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train every module in ONE phase (module replacing + distillation) and save the artifact.

    Rerunning the same command resumes from the last complete checkpoint.
    """
    import torch
    from transformers import AutoConfig

    from ..registration import MODULAR_MODELS
    from ..training import CompressionTrainer, CompressionTrainingArguments, last_complete_checkpoint

    pairs = load_pairs(existing_path(train, "training file"), source, target)
    model_type = AutoConfig.from_pretrained(teacher).model_type
    classes = {cfg.model_type.removeprefix("modular_"): cls for cfg, cls in MODULAR_MODELS}
    if model_type not in classes:
        raise fail(f"teacher {teacher!r} is a {model_type!r} model; hf_modular compresses {sorted(classes)}")
    tokenizer = load_tokenizer(teacher)
    rows = tokenize_pairs(pairs, tokenizer, source, target, max_length)
    sizes = [_positive_int(s) for s in split_list(module_sizes)] if module_sizes else None
    model = classes[model_type].from_teacher(teacher, module_sizes=sizes, dtype=torch.float32)
    run_dir = checkpoints or output.with_name(output.name + "-checkpoints")
    args = CompressionTrainingArguments(
        output_dir=str(run_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        plan_sampling=plan_sampling,
        warmup_steps=min(100, steps // 10),
        lr_scheduler_type="cosine",
        logging_steps=max(1, min(50, steps // 10)),
        save_strategy="steps",
        save_steps=max(1, min(200, steps // 5)),
        save_total_limit=1,
        report_to=[],
        seed=seed,
    )
    trainer = CompressionTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=seq2seq_collator(tokenizer),
        processing_class=tokenizer,
    )
    last = last_complete_checkpoint(run_dir)
    if last:
        console.print(f"resuming from {last}")
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    trainer.save_model(str(output))
    ratios = ", ".join(f"{r:.3g}x" for r in model.reachable_ratios())
    console.print(f"[green]saved[/] {output}  (assemblies: {ratios})")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise fail(f"module size {text!r} is not an integer >= 2 (a module replaces 2 or more layers)")
    return int(text)
