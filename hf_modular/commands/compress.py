"""``hf-modular compress``: teacher + text pairs -> one trained modular artifact (all sizes).

Every input is checked before training starts: the teacher and its tokenizer, the data (no
empty, null or non-text cells), the options, and the output paths (never the teacher's folder
or the data). A rerun of the same command resumes from the last complete checkpoint; a rerun
with other data, seed or options is refused unless ``--overwrite`` starts the run over, because
resuming would silently train the old run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from ..methods.modular.recipe import ModularRecipe
from ..plan import STACKS
from .common import (
    console,
    existing_path,
    fail,
    load_tokenizer,
    model_source,
    output_folder,
    split_list,
    with_clear_errors,
)
from .text_data import load_pairs, seq2seq_collator, tokenize_pairs

RUN_FILE = "hf_modular_run.json"  # in the checkpoint folder: what the run was started with
TRAINING_FILE = "hf_modular_training.json"  # in the artifact: what the training actually ran


@with_clear_errors
def compress(
    teacher: Annotated[str, typer.Argument(help="stock T5/BART folder or Hub id (with its tokenizer)")],
    train: Annotated[Path, typer.Option(help="training pairs: .jsonl/.json/.csv/.parquet")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the trained artifact")],
    eval_data: Annotated[
        Path | None,
        typer.Option(
            "--eval",
            help="held-out pairs: evaluated during and after training; every plan's quality is measured on "
            "them and stored in the artifact, so assemble='Nx' serves the best measured plan",
        ),
    ] = None,
    tokenizer_path: Annotated[
        str | None, typer.Option("--tokenizer", help="tokenizer folder or Hub id (default: the teacher's)")
    ] = None,
    source: Annotated[str, typer.Option(help="input text column")] = "source",
    target: Annotated[str, typer.Option(help="output text column")] = "target",
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps of the one training phase")] = 1000,
    max_time: Annotated[
        str | None,
        typer.Option(help="stop cleanly after this long (e.g. '45m', '2h', '900s') and still write the artifact"),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    gradient_accumulation_steps: Annotated[int, typer.Option(min=1)] = 1,
    learning_rate: Annotated[float | None, typer.Option(min=0.0, help="default: the family recipe's (1e-3)")] = None,
    warmup_steps: Annotated[int | None, typer.Option(min=0, help="default: 10% of --steps, at most 100")] = None,
    max_length: Annotated[int, typer.Option(min=1, help="truncate texts to this many tokens")] = 128,
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
    bf16: Annotated[bool, typer.Option(help="bfloat16 mixed precision (weights stay float32)")] = False,
    report_to: Annotated[str, typer.Option(help="'none', or e.g. 'tensorboard', 'wandb' (comma-separated)")] = "none",
    checkpoints: Annotated[Path | None, typer.Option(help="checkpoint folder (default: <output>-checkpoints)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    overwrite: Annotated[bool, typer.Option(help="discard the checkpoints of an earlier, different run")] = False,
) -> None:
    """Train every module in ONE phase (module replacing + distillation) and save the artifact.

    Options left out take the teacher family's tuned recipe (T5: teacher context, per-size rates, a
    specialised 1.5x). Rerunning the same command resumes from the last complete checkpoint.
    """
    import torch
    from transformers import AutoConfig

    from ..registry import get_method
    from ..training import CompressionTrainer, CompressionTrainingArguments, TimeBudget, last_complete_checkpoint

    # ---- everything is validated before any work starts
    model_source(teacher, "teacher")
    budget = _seconds(max_time) if max_time else None
    run_dir = checkpoints or output.with_name(output.name + "-checkpoints")
    inputs = {"the teacher": teacher, "the training data": train, "the eval data": eval_data}
    for path, what in ((output, "--output"), (run_dir, "--checkpoints")):
        output_folder(path, what, inputs)
    pairs = load_pairs(existing_path(train, "training file"), source, target)
    held_out = load_pairs(existing_path(eval_data, "eval file"), source, target) if eval_data else None
    model_type = AutoConfig.from_pretrained(teacher).model_type
    modular = get_method("modular")
    if model_type not in modular.models:
        raise fail(f"teacher {teacher!r} is a {model_type!r} model; hf_modular compresses {sorted(modular.models)}")
    tokenizer = load_tokenizer(tokenizer_path or teacher)
    if tokenizer is None:
        where = f"--tokenizer {tokenizer_path!r}" if tokenizer_path else f"the teacher folder {teacher!r}"
        raise fail(
            f"no tokenizer in {where}: the artifact must be trained with the teacher's own tokenizer "
            f"(save it next to the teacher, or pass --tokenizer)"
        )
    sizes = [_positive_int(s) for s in split_list(module_sizes)] if module_sizes else None
    scales = _size_map(module_lr_scales, "--module-lr-scales", "MULTIPLIER", "'6:0.5'", float)
    strides = _size_map(plan_row_strides, "--plan-row-strides", "STRIDE", "'2:2'", int)
    model_class = modular.model_class(model_type)
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
        output_dir=str(run_dir),
        max_steps=steps + specialised_steps,
        specialised_steps=specialised_steps,
        specialised_learning_rate=specialised_learning_rate,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        learning_rate=recipe.learning_rate,
        plan_sampling=recipe.plan_sampling,
        granularity_pairing=granularity_pairing,
        single_stack_plans=single_stack_plans,
        random_plans=random_plans,
        teacher_context_weight=recipe.teacher_context_weight,
        teacher_context_row_stride=recipe.teacher_context_row_stride,
        module_lr_scales=dict(recipe.module_lr_scales) or None,
        plan_row_strides=strides,
        warmup_steps=min(100, steps // 10) if warmup_steps is None else warmup_steps,
        lr_scheduler_type="cosine",
        logging_steps=max(1, min(50, steps // 10)),
        save_strategy="steps",
        save_steps=max(1, min(200, steps // 5)),
        save_total_limit=1,
        eval_strategy="steps" if held_out is not None else "no",
        eval_steps=max(1, min(200, steps // 5)),
        bf16=bf16,
        report_to=[] if report_to == "none" else (split_list(report_to) or []),
        seed=seed,
    )
    rows = tokenize_pairs(pairs, tokenizer, source, target, max_length)
    eval_rows = tokenize_pairs(held_out, tokenizer, source, target, max_length) if held_out is not None else None
    identity = _run_identity(teacher, train, eval_data, tokenizer_path, source, target, max_length, sizes, args)
    identity["specialise"] = list(recipe.specialise)
    _check_resumable(run_dir, identity, overwrite)

    # ---- the work
    trainer = CompressionTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        eval_dataset=eval_rows,
        data_collator=seq2seq_collator(tokenizer),
        processing_class=tokenizer,
    )
    if budget is not None:
        trainer.add_callback(TimeBudget(budget))
    tail = f", then {specialised_steps} specialised" if specialised_steps else ""
    console.print(
        f"training on {trainer.accelerator.num_processes} process(es), {steps} phase steps{tail}: {recipe.describe()}"
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_FILE).write_text(json.dumps(identity, indent=1) + "\n", encoding="utf-8")
    last = last_complete_checkpoint(run_dir)
    if last:
        console.print(f"resuming from {last}")
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    if eval_rows is not None:
        scores = trainer.measure_plans(eval_rows, num_batches=max(1, 256 // batch_size))
        console.print(f"measured {len(scores.plans)} plans on {scores.examples} held-out pairs")
    trainer.save_model(str(output))
    ran = trainer.state.global_step
    total = steps + specialised_steps
    record = {"steps_run": ran, "max_steps": total, "stopped_by_max_time": ran < total, "identity": identity}
    (output / TRAINING_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if ran < total:
        console.print(
            f"[yellow]stopped by --max-time after {ran} of {total} steps[/]: the artifact is usable; rerun the "
            f"same command to continue the same schedule"
        )
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


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not (number.isascii() and number.replace(".", "", 1).isdigit()) or float(number) <= 0:
        raise fail(f"--max-time {text!r}: write a positive number of seconds, or e.g. '45m', '2h'")
    return float(number) * units[unit]


def _digest(path: Path | None) -> str | None:
    if path is None:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The Trainer's own settings that decide the trained weights; every field that
# CompressionTrainingArguments adds (plan sampling, loss weights, teacher context, ...) joins the
# identity by itself (``_method_fields``), so a new option cannot be forgotten here.
TRAINER_KEYS = (
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "warmup_steps",
    "bf16",
    "seed",
)


def _method_fields(args) -> list[str]:
    """The fields ``args``' class adds to transformers' Seq2SeqTrainingArguments."""
    from transformers import Seq2SeqTrainingArguments

    inherited = {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)}
    return [f.name for f in dataclasses.fields(args) if f.name not in inherited]


def _run_identity(teacher, train, eval_data, tokenizer_path, source, target, max_length, sizes, args) -> dict:
    """What decides the trained weights: resuming with any of it changed would train the old run.
    Read back through JSON, as the stored one is (``{6: 0.5}`` is ``{"6": 0.5}`` there)."""
    identity = {
        "teacher": teacher,
        "train": _digest(train),
        "eval": _digest(eval_data),
        "tokenizer": tokenizer_path,
        "columns": [source, target],
        "max_length": max_length,
        "module_sizes": sizes,
        **{key: getattr(args, key) for key in (*TRAINER_KEYS, *_method_fields(args))},
    }
    return json.loads(json.dumps(identity))


def _check_resumable(run_dir: Path, identity: dict, overwrite: bool) -> None:
    stored = run_dir / RUN_FILE
    if not run_dir.exists():
        return
    if overwrite:
        shutil.rmtree(run_dir)
        return
    if not stored.is_file():
        if any(run_dir.iterdir()):
            raise fail(
                f"{run_dir} holds files of another run (no {RUN_FILE}); use --overwrite or another --checkpoints"
            )
        return
    before = json.loads(stored.read_text(encoding="utf-8"))
    changed = sorted(k for k in identity if before.get(k) != identity[k])
    if changed:
        details = ", ".join(f"{k}: {before.get(k)!r} -> {identity[k]!r}" for k in changed if k not in ("train", "eval"))
        data = [k for k in changed if k in ("train", "eval")]
        raise fail(
            f"{run_dir} holds checkpoints of a different run (changed: {', '.join(changed)}"
            f"{'; ' + details if details else ''}{'; the ' + ' and '.join(data) + ' data differ' if data else ''}); "
            f"resuming would ignore the change. Use --overwrite to start over, or another --checkpoints folder"
        )


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
