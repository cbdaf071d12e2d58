"""``hf-modular pet``: teacher + text pairs -> one PET student (shared parameters, warm-up task, distillation).

The student keeps ``--layers`` physical layers per stack, copied from alternating teacher layers, and
(by default) runs each stack twice and shares the decoder's cross-attention query with its
self-attention (docs/pet.md). The inputs are checked, and a rerun resumes or is refused, exactly as
``compress`` does (``training_run``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import training_run as run
from .common import console, fail, split_list, with_clear_errors


@with_clear_errors
def pet(
    teacher: run.Teacher,
    train: run.Train,
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the trained student")],
    eval_data: Annotated[Path | None, typer.Option("--eval", help="held-out pairs: evaluated during training")] = None,
    tokenizer_path: run.TokenizerPath = None,
    source: run.Source = "source",
    target: run.Target = "target",
    layers: Annotated[str, typer.Option(help="physical layers per stack, 'ENCODER,DECODER'")] = "2,2",
    reuse_stack: Annotated[bool, typer.Option(help="run each stack's physical layers twice")] = True,
    share_query: Annotated[bool, typer.Option(help="cross-attention uses the self-attention query")] = True,
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps, the warm-up task's included")] = 1000,
    warmup_task_steps: Annotated[
        int | None, typer.Option(min=0, help="steps of the warm-up task before distillation (default: 10% of --steps)")
    ] = None,
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
    """Train a PET student (shared parameters + warm-up task + distillation) and save it.

    Rerunning the same command resumes from the last complete checkpoint.
    """
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from ..methods import pet as pet_method

    # ---- everything is checked before any work starts
    inputs = run.check_inputs(
        "pet", teacher, train, output, eval_data, tokenizer_path, source, target, checkpoints, max_time
    )
    physical = _layer_counts(layers)
    if warmup_task_steps is not None and warmup_task_steps >= steps:
        raise fail(
            f"--warmup-task-steps {warmup_task_steps} with --steps {steps} leaves no distillation: the warm-up "
            f"task comes first, within --steps"
        )
    args = pet_method.PetTrainingArguments(
        **run.trainer_settings(
            inputs, steps, batch_size, gradient_accumulation_steps, warmup_steps, bf16, report_to, seed
        ),
        max_steps=steps,
        learning_rate=learning_rate,
        warmup_task_steps=warmup_task_steps,
    )
    rows, eval_rows = run.tokenized(inputs, source, target, max_length)
    identity = run.run_identity(
        teacher,
        train,
        eval_data,
        tokenizer_path,
        (source, target),
        max_length,
        args,
        layers=list(physical),
        reuse_stack=reuse_stack,
        share_query=share_query,
    )
    teacher_model = AutoModelForSeq2SeqLM.from_pretrained(teacher, dtype=torch.float32).eval()
    student = pet_method.build_student(teacher_model, physical, share_query=share_query, reuse_stack=reuse_stack)
    run.check_resumable(inputs.run_dir, identity, overwrite)

    # ---- the work
    runs = "twice" if reuse_stack else "once"
    announce = (
        f"{steps} steps ({args.warmup_task_steps} of the warm-up task): {physical[0]}+{physical[1]} physical "
        f"layers run {runs}, {'shared' if share_query else 'own'} cross-attention query"
    )
    run.train_and_save(student, args, inputs, rows, eval_rows, output, identity, announce, "pet", teacher_model)
    kept = sum(p.numel() for p in student.parameters()) / sum(p.numel() for p in teacher_model.parameters())
    console.print(f"[green]saved[/] {output}  ({kept:.1%} of the teacher's parameters)")


def _layer_counts(text: str) -> tuple[int, int]:
    items = split_list(text) or []
    if len(items) != 2 or not all(item.isdigit() and int(item) >= 1 for item in items):
        raise fail(f"--layers {text!r}: give the physical layers of the encoder and the decoder, e.g. '2,2'")
    return int(items[0]), int(items[1])
