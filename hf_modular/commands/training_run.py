"""What the CLI's training commands (``compress``, ``pet``) share: their common options, the inputs
checked before any work starts, the Trainer settings, the run identity that refuses to resume a
different run, and the training record written next to the result.

A rerun of the same command resumes from the last complete checkpoint; a rerun with other data, seed or
options is refused unless ``--overwrite`` starts over, because resuming would silently train the old run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import console, existing_path, fail, load_tokenizer, model_source, output_folder, split_list
from .text_data import load_pairs, seq2seq_collator, tokenize_pairs

RUN_FILE = "hf_modular_run.json"  # in the checkpoint folder: what the run was started with
TRAINING_FILE = "hf_modular_training.json"  # in the result: what the training actually ran

# The options every training command takes, declared once.
Teacher = Annotated[str, typer.Argument(help="stock T5/BART folder or Hub id (with its tokenizer)")]
Train = Annotated[Path, typer.Option(help="training pairs: .jsonl/.json/.csv/.parquet")]
TokenizerPath = Annotated[
    str | None, typer.Option("--tokenizer", help="tokenizer folder or Hub id (default: the teacher's)")
]
Source = Annotated[str, typer.Option(help="input text column")]
Target = Annotated[str, typer.Option(help="output text column")]
MaxTime = Annotated[
    str | None,
    typer.Option(help="stop cleanly after this long (e.g. '45m', '2h', '900s') and still write the result"),
]
BatchSize = Annotated[int, typer.Option(min=1)]
GradientAccumulation = Annotated[int, typer.Option(min=1)]
WarmupSteps = Annotated[int | None, typer.Option(min=0, help="default: 10% of --steps, at most 100")]
MaxLength = Annotated[int, typer.Option(min=1, help="truncate texts to this many tokens")]
Bf16 = Annotated[bool, typer.Option(help="bfloat16 mixed precision (weights stay float32)")]
ReportTo = Annotated[str, typer.Option(help="'none', or e.g. 'tensorboard', 'wandb' (comma-separated)")]
Checkpoints = Annotated[Path | None, typer.Option(help="checkpoint folder (default: <output>-checkpoints)")]
Seed = Annotated[int, typer.Option()]
Overwrite = Annotated[bool, typer.Option(help="discard the checkpoints of an earlier, different run")]


@dataclass
class RunInputs:
    """A training command's inputs, checked: the teacher's family, its tokenizer, the text pairs."""

    teacher: str
    model_type: str
    tokenizer: Any
    pairs: Any
    held_out: Any | None
    run_dir: Path
    budget: float | None  # --max-time in seconds


def check_inputs(
    method: str,
    teacher: str,
    train: Path,
    output: Path,
    eval_data: Path | None,
    tokenizer_path: str | None,
    source: str,
    target: str,
    checkpoints: Path | None,
    max_time: str | None,
) -> RunInputs:
    """Everything a training command can check before loading a model: the paths (the output and
    checkpoint folders never are, hold or lie inside an input), the data cells, the teacher's family
    (one ``method`` has models for) and its tokenizer."""
    from transformers import AutoConfig

    from ..registry import get_method

    model_source(teacher, "teacher")
    budget = _seconds(max_time) if max_time else None
    run_dir = checkpoints or output.with_name(output.name + "-checkpoints")
    inputs = {"the teacher": teacher, "the training data": train, "the eval data": eval_data}
    for path, what in ((output, "--output"), (run_dir, "--checkpoints")):
        output_folder(path, what, inputs)
    pairs = load_pairs(existing_path(train, "training file"), source, target)
    held_out = load_pairs(existing_path(eval_data, "eval file"), source, target) if eval_data else None
    model_type = AutoConfig.from_pretrained(teacher).model_type
    families = get_method(method).models
    if model_type not in families:
        raise fail(f"teacher {teacher!r} is a {model_type!r} model; hf_modular's {method} takes {sorted(families)}")
    tokenizer = load_tokenizer(tokenizer_path or teacher)
    if tokenizer is None:
        where = f"--tokenizer {tokenizer_path!r}" if tokenizer_path else f"the teacher folder {teacher!r}"
        raise fail(
            f"no tokenizer in {where}: the model must be trained with the teacher's own tokenizer "
            f"(save it next to the teacher, or pass --tokenizer)"
        )
    return RunInputs(teacher, model_type, tokenizer, pairs, held_out, run_dir, budget)


def trainer_settings(
    inputs: RunInputs,
    steps: int,
    batch_size: int,
    gradient_accumulation_steps: int,
    warmup_steps: int | None,
    bf16: bool,
    report_to: str,
    seed: int,
) -> dict[str, Any]:
    """The training-argument values every command's run shares (``steps``: the run's main phase, which
    sizes warm-up, logging, checkpoints and evaluation)."""
    return {
        "output_dir": str(inputs.run_dir),
        "per_device_train_batch_size": batch_size,
        "per_device_eval_batch_size": batch_size,
        "gradient_accumulation_steps": gradient_accumulation_steps,
        "warmup_steps": min(100, steps // 10) if warmup_steps is None else warmup_steps,
        "lr_scheduler_type": "cosine",
        "logging_steps": max(1, min(50, steps // 10)),
        "save_strategy": "steps",
        "save_steps": max(1, min(200, steps // 5)),
        "save_total_limit": 1,
        "eval_strategy": "steps" if inputs.held_out is not None else "no",
        "eval_steps": max(1, min(200, steps // 5)),
        "bf16": bf16,
        "report_to": [] if report_to == "none" else (split_list(report_to) or []),
        "seed": seed,
    }


def tokenized(inputs: RunInputs, source: str, target: str, max_length: int) -> tuple[Any, Any | None]:
    """The training and held-out rows, tokenised with the teacher's tokenizer."""
    rows = tokenize_pairs(inputs.pairs, inputs.tokenizer, source, target, max_length)
    held = inputs.held_out
    return rows, tokenize_pairs(held, inputs.tokenizer, source, target, max_length) if held is not None else None


# The Trainer's own settings that decide the trained weights; every field the arguments class adds to
# Seq2SeqTrainingArguments (plan sampling, loss weights, teacher context, PET's warm-up, ...) joins the
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


def run_identity(
    teacher: str,
    train: Path | None,
    eval_data: Path | None,
    tokenizer_path: str | None,
    columns: tuple[str, str],
    max_length: int,
    args: Any,
    **extra: Any,
) -> dict[str, Any]:
    """What decides the trained weights: resuming with any of it changed would train the old run.
    Read back through JSON, as the stored one is (``{6: 0.5}`` is ``{"6": 0.5}`` there)."""
    trained = {key: getattr(args, key) for key in (*TRAINER_KEYS, *_method_fields(args))}
    if extra.keys() & trained.keys():  # a command's own setting must not hide a training argument
        raise ValueError(f"run identity: {sorted(extra.keys() & trained.keys())} are training arguments")
    identity = {
        "teacher": teacher,
        "train": _digest(train),
        "eval": _digest(eval_data),
        "tokenizer": tokenizer_path,
        "columns": list(columns),
        "max_length": max_length,
        **extra,
        **trained,
    }
    return json.loads(json.dumps(identity))


def check_resumable(run_dir: Path, identity: dict, overwrite: bool) -> None:
    """Refuse checkpoints of a different run in ``run_dir`` (or discard them with ``overwrite``)."""
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


def train_and_save(
    model: Any,
    args: Any,
    inputs: RunInputs,
    rows: Any,
    eval_rows: Any | None,
    output: Path,
    identity: dict,
    announce: str,
    method: str = "modular",
    teacher: Any = None,
    after_training: Callable[[Any], None] | None = None,
) -> Any:
    """Train (resuming the last complete checkpoint), save the result with its tokenizer and the
    training record; ``after_training(trainer)`` runs before the save. Returns the trainer."""
    from ..training import CompressionTrainer, TimeBudget, last_complete_checkpoint

    trainer = CompressionTrainer(
        model=model,
        teacher=teacher,
        method=method,
        args=args,
        train_dataset=rows,
        eval_dataset=eval_rows,
        data_collator=seq2seq_collator(inputs.tokenizer),
        processing_class=inputs.tokenizer,
    )
    if inputs.budget is not None:
        trainer.add_callback(TimeBudget(inputs.budget))
    console.print(f"training on {trainer.accelerator.num_processes} process(es), {announce}")
    inputs.run_dir.mkdir(parents=True, exist_ok=True)
    (inputs.run_dir / RUN_FILE).write_text(json.dumps(identity, indent=1) + "\n", encoding="utf-8")
    last = last_complete_checkpoint(inputs.run_dir)
    if last:
        console.print(f"resuming from {last}")
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    if after_training is not None:
        after_training(trainer)
    trainer.save_model(str(output))
    ran, total = trainer.state.global_step, args.max_steps
    record = {"steps_run": ran, "max_steps": total, "stopped_by_max_time": ran < total, "identity": identity}
    (output / TRAINING_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if ran < total:
        console.print(
            f"[yellow]stopped by --max-time after {ran} of {total} steps[/]: the result is usable; rerun the "
            f"same command to continue the same schedule"
        )
    return trainer


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


def _method_fields(args: Any) -> list[str]:
    """The fields ``args``' class adds to transformers' Seq2SeqTrainingArguments."""
    from transformers import Seq2SeqTrainingArguments

    inherited = {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)}
    return [f.name for f in dataclasses.fields(args) if f.name not in inherited]
