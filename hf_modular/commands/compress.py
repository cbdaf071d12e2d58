"""``hf-modular compress``: teacher + text pairs -> one trained modular artifact (all sizes).

Options left out take the teacher family's tuned recipe (``ModularRecipe``). The inputs are checked
before training starts, and a rerun resumes or is refused, as in every training command
(``training_run``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ..methods.modular.recipe import ModularRecipe
from ..plan import STACKS
from . import training_run as run
from .common import console, fail, split_list, with_clear_errors


@with_clear_errors
def compress(
    teacher: run.Teacher,
    train: run.Train,
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the trained artifact")],
    eval_data: Annotated[
        Path | None,
        typer.Option(
            "--eval",
            help="held-out pairs: evaluated during and after training; every plan's quality is measured on "
            "them and stored in the artifact, so assemble='Nx' serves the best measured plan",
        ),
    ] = None,
    tokenizer_path: run.TokenizerPath = None,
    source: run.Source = "source",
    target: run.Target = "target",
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps of the one training phase")] = 1000,
    max_time: run.MaxTime = None,
    batch_size: run.BatchSize = 32,
    gradient_accumulation_steps: run.GradientAccumulation = 1,
    learning_rate: Annotated[float | None, typer.Option(min=0.0, help="default: the family recipe's (1e-3)")] = None,
    warmup_steps: run.WarmupSteps = None,
    max_length: run.MaxLength = 128,
    module_sizes: Annotated[str | None, typer.Option(help="e.g. '2,3,6' (default: every divisor of the depth)")] = None,
    plan_sampling: Annotated[
        str | None,
        typer.Option(
            help="'granularities' (every module size on every batch, sharing one teacher forward; every recipe's) "
            "or 'random' (one sampled plan per batch)"
        ),
    ] = None,
    granularity_pairing: Annotated[str, typer.Option(help="'same' or 'rotate' (see docs/training.md)")] = "same",
    single_stack_plans: Annotated[
        int, typer.Option(min=0, help="extra plans per batch compressing one stack, the other kept as the teacher")
    ] = 0,
    random_plans: Annotated[int, typer.Option(min=0, help="extra random mixed plans per batch")] = 0,
    teacher_context_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="weight of the term that trains every module on the teacher's own hidden states, so it also "
            "works next to teacher layers (mixed plans; see docs/training.md); 0 turns it off",
        ),
    ] = None,
    teacher_context_row_stride: Annotated[
        int | None,
        typer.Option(
            min=1, help="run the teacher-context term on every n-th row of a batch, counted n times (1/n of its cost)"
        ),
    ] = None,
    module_lr_scales: Annotated[
        str | None,
        typer.Option(
            help="learning-rate multipliers by module size, e.g. '6:0.5' (size-6 modules at half the rate); "
            "'none' for none"
        ),
    ] = None,
    plan_row_strides: Annotated[
        str | None,
        typer.Option(
            help="row strides by module size, e.g. '2:2': plans whose smallest modules replace 2 layers (the "
            "deepest) train on every 2nd row of a batch, so a step costs less (see docs/training.md)"
        ),
    ] = None,
    specialise: Annotated[
        str | None,
        typer.Option(
            help="sizes whose plan gets layers of its own, e.g. '1.5x' (comma-separated): copied out of the shared "
            "layers after the phase and trained for that plan alone in --specialised-steps more steps; 'none' for none"
        ),
    ] = None,
    specialised_steps: Annotated[
        int | None,
        typer.Option(
            min=0, help="steps after the phase that train the --specialise plans (default: 600 per 1,470 of --steps)"
        ),
    ] = None,
    specialised_learning_rate: Annotated[
        float | None, typer.Option(min=0.0, help="their peak learning rate (default: half of --learning-rate)")
    ] = None,
    bf16: run.Bf16 = False,
    report_to: run.ReportTo = "none",
    checkpoints: run.Checkpoints = None,
    seed: run.Seed = 0,
    overwrite: run.Overwrite = False,
) -> None:
    """Train every module in ONE phase (module replacing + distillation) and save the artifact.

    Options left out take the teacher family's tuned recipe (T5: teacher context, per-size rates, a
    specialised 1.5x). Rerunning the same command resumes from the last complete checkpoint.
    """
    import torch

    from ..registry import get_method
    from ..training import CompressionTrainingArguments

    # ---- everything is checked before any work starts
    inputs = run.check_inputs(
        "modular", teacher, train, output, eval_data, tokenizer_path, source, target, checkpoints, max_time
    )
    sizes = [_positive_int(s) for s in split_list(module_sizes)] if module_sizes else None
    scales = _size_map(module_lr_scales, "--module-lr-scales", "MULTIPLIER", "'6:0.5'", float)
    strides = _size_map(plan_row_strides, "--plan-row-strides", "STRIDE", "'2:2'", int)
    model_class = get_method("modular").model_class(inputs.model_type)
    model = model_class.from_teacher(teacher, module_sizes=sizes, dtype=torch.float32)
    # the family's tuned recipe, fitted to this teacher, with what the command gave in its place
    recipe = model_class.recipe.for_module_sizes({s for n in STACKS for s in model.config.stack_module_sizes(n)})
    given = {
        "learning_rate": learning_rate,
        "plan_sampling": plan_sampling,
        "module_lr_scales": scales,  # {} for 'none'
        "teacher_context_weight": teacher_context_weight,
        "teacher_context_row_stride": teacher_context_row_stride,
    }
    recipe = dataclasses.replace(
        recipe,
        specialise=tuple(_specialise(model, specialise, recipe)),
        **{key: value for key, value in given.items() if value is not None},
    )
    if specialised_steps is None:
        specialised_steps = recipe.specialised_steps(steps)
    if bool(recipe.specialise) != bool(specialised_steps):
        raise fail(
            f"--specialise {','.join(recipe.specialise) or 'none'} with --specialised-steps {specialised_steps}: "
            f"specialised plans need steps after the phase, and those steps need plans"
        )
    args = CompressionTrainingArguments(
        **run.trainer_settings(
            inputs, steps, batch_size, gradient_accumulation_steps, warmup_steps, bf16, report_to, seed
        ),
        max_steps=steps + specialised_steps,
        specialised_steps=specialised_steps,
        specialised_learning_rate=specialised_learning_rate,
        learning_rate=recipe.learning_rate,
        plan_sampling=recipe.plan_sampling,
        granularity_pairing=granularity_pairing,
        single_stack_plans=single_stack_plans,
        random_plans=random_plans,
        teacher_context_weight=recipe.teacher_context_weight,
        teacher_context_row_stride=recipe.teacher_context_row_stride,
        module_lr_scales=dict(recipe.module_lr_scales) or None,
        plan_row_strides=strides,
    )
    rows, eval_rows = run.tokenized(inputs, source, target, max_length)
    identity = run.run_identity(
        teacher, train, eval_data, tokenizer_path, (source, target), max_length, args, module_sizes=sizes
    )
    identity["specialise"] = list(recipe.specialise)
    run.check_resumable(inputs.run_dir, identity, overwrite)

    # ---- the work
    def measure_front(trainer) -> None:
        if eval_rows is not None:
            scores = trainer.measure_plans(eval_rows, num_batches=max(1, 256 // batch_size))
            console.print(f"measured {len(scores.plans)} plans on {scores.examples} held-out pairs")

    tail = f", then {specialised_steps} specialised" if specialised_steps else ""
    announce = f"{steps} phase steps{tail}: {recipe.describe()}"
    run.train_and_save(model, args, inputs, rows, eval_rows, output, identity, announce, after_training=measure_front)
    ratios = ", ".join(f"{r:.3g}x" for r in model.reachable_ratios())
    console.print(f"[green]saved[/] {output}  (assemblies: {ratios})")


def _specialise(model, option: str | None, recipe: ModularRecipe) -> list[str]:
    """The sizes whose plans get layers of their own, added to ``model``: those of ``--specialise`` (a
    size the teacher cannot serve is an error), else the recipe's (skipped, with a note, where it cannot)."""
    from ..errors import AssemblyError

    if option is not None:
        wanted = [] if option.strip().lower() == "none" else split_list(option) or []
        for spec in wanted:
            model.add_specialised_plan(spec)  # its AssemblyError names the size and why: exit 2
        return wanted
    kept = []
    for spec in recipe.specialise:
        try:
            model.add_specialised_plan(spec)
            kept.append(spec)
        except AssemblyError as error:
            console.print(f"[yellow]the recipe specialises {spec}, which this teacher cannot: {error}; skipped[/]")
    return kept


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise fail(f"module size {text!r} is not an integer >= 2 (a module replaces 2 or more layers)")
    return int(text)


def _size_map(text: str | None, option: str, what: str, example: str, cast) -> dict | None:
    """'6:0.5,3:0.8' -> {6: 0.5, 3: 0.8}; 'none' -> {} (the values are checked by CompressionTrainingArguments)."""
    if not text:
        return None
    if text.strip().lower() == "none":
        return {}
    values = {}
    for item in split_list(text) or []:
        size, _, value = item.partition(":")
        try:
            values[_positive_int(size.strip())] = cast(value)
        except ValueError:
            raise fail(f"{option} item {item!r}: expected SIZE:{what}, e.g. {example}") from None
    return values
