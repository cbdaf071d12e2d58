"""The main job: compress a G2P teacher with Modular Transformers and print the table.

    python examples/g2p/run.py                 # T5, about 7 minutes on 2 CPU cores
    python examples/g2p/run.py --family bart --steps 2000 --eval-words 2000

Starts from the teacher shipped in examples/g2p/teachers/<family> (see train_teacher.py),
trains all modules in ONE phase with CompressionTrainer, saves the single artifact, and
evaluates every assembly (PER, WER, size, decode latency) on held-out dev words, next to the
same plans before training. Rerunning resumes from the last checkpoint in --runs.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from data import G2PDataset, collate, g2p_metrics, split
from teachers import FAMILIES, MAX_NEW_TOKENS
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import hf_modular
from hf_modular import CompressionTrainer, CompressionTrainingArguments, evaluate_assemblies
from hf_modular.registry import get_method
from hf_modular.training import last_complete_checkpoint

HERE = Path(__file__).parent
MODULAR = {"t5": hf_modular.ModularT5ForConditionalGeneration, "bart": hf_modular.ModularBartForConditionalGeneration}


def load_teacher(family: str, path: Path | None = None):
    path = path or HERE / "teachers" / family
    if not (path / "model.safetensors").exists():
        raise SystemExit(f"no teacher at {path}: run examples/g2p/train_teacher.py --family {family} first")
    return AutoModelForSeq2SeqLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


def modular_recipe(family: str, phase_steps: int) -> tuple[list[str], int, dict]:
    """The family's tuned recipe (its model class's ``recipe``, chosen on dev words: docs/g2p.md) for a phase
    of ``phase_steps``: the sizes it specialises, the run's steps (the phase's plus the specialised ones)
    and the other training-argument overrides."""
    recipe = MODULAR[family].recipe
    overrides = recipe.training_arguments(phase_steps)
    return list(recipe.specialise), overrides.pop("max_steps"), overrides


def training_arguments(out: Path, steps: int, method: str = "modular", **overrides) -> CompressionTrainingArguments:
    """The G2P runs' settings, as the method's own arguments class (which adds its defaults)."""
    values = {
        "output_dir": str(out),
        "max_steps": steps,
        "per_device_train_batch_size": 64,
        "learning_rate": 5e-4,
        "warmup_steps": min(100, steps // 10),
        "lr_scheduler_type": "cosine",
        "logging_steps": 50,
        "save_strategy": "steps",
        "save_steps": 200,
        "save_total_limit": 1,
        "report_to": [],
        "use_cpu": True,
        "seed": 0,
    }
    values.update(overrides)
    return get_method(method).arguments_class()(**values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=FAMILIES, default="t5")
    parser.add_argument("--steps", type=int, default=600, help="module-training steps (batch 64)")
    parser.add_argument("--eval-words", type=int, default=500, help="dev words to evaluate on")
    parser.add_argument("--ratios", default="1.5x,2x,3x,6x")
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p"))
    parser.add_argument("--teacher", type=Path, default=None, help="default: examples/g2p/teachers/<family>")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    teacher, tokenizer = load_teacher(args.family, args.teacher)
    data = split()
    dev = G2PDataset(data["dev"][: args.eval_words], tokenizer)
    ratios = args.ratios.split(",")
    specialise, steps, recipe = modular_recipe(args.family, args.steps)
    model = MODULAR[args.family].from_teacher(teacher, specialise=specialise)

    def table(title: str):
        result = evaluate_assemblies(
            model,
            dev,
            collate,
            ratios=ratios,
            batch_size=256,
            metric_fn=g2p_metrics,
            max_new_tokens=MAX_NEW_TOKENS,
            latency_batch_sizes=(1, 32),
            latency_repeats=3,
        )
        print(f"\n## {title}\n\n{result.to_markdown()}")
        return result

    before = table(f"{args.family}: modules initialised from the teacher, before training")
    run_dir = args.runs / f"modular-{args.family}"
    trainer = CompressionTrainer(
        model=model,
        args=training_arguments(run_dir, steps, **recipe),
        train_dataset=G2PDataset(data["train"], tokenizer),
        data_collator=collate,
        processing_class=tokenizer,
    )
    last = last_complete_checkpoint(run_dir)
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    artifact = run_dir / "artifact"
    trainer.save_model(artifact)
    extra = f" (+{steps - args.steps} specialised steps)" if steps > args.steps else ""
    after = table(f"{args.family}: after one training phase of {args.steps} steps{extra}")
    summary = {
        r.ratio: {"PER_before": b.metrics["PER"], "PER_after": r.metrics["PER"], "WER_after": r.metrics["WER"]}
        for b, r in zip(before.rows, after.rows, strict=True)
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nartifact: {artifact}  (load any size with AutoModelForSeq2SeqLM.from_pretrained(path, assemble='3x'))")


if __name__ == "__main__":
    main()
