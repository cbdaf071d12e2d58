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


# The module-training recipe, tuned on dev words (docs/g2p.md): a higher learning rate than the
# SFT students' 5e-4, and every batch through every uniform plan (all 2x, all 3x, all 6x modules)
# sharing one teacher forward. A step costs about twice a random-plan step. The one-layer modules
# that stand in for a whole stack (6x) learn at half the rate: on T5 dev words a 1+1 student
# reached PER 22.97 at 5e-4 against 25.11 at 1e-3 (docs/g2p.md, "Why 6x lagged").
# Chosen on each family's dev words (docs/g2p.md): every granularity on every batch at lr 1e-3; T5's
# 3x and 6x modules learn best at 0.7 of that rate, BART's at the full rate. T5's modules also learn
# in the teacher's context (weight 3, on every 4th row of a batch: ~10% dearer per step; its mixed
# plans, 1.5x included, were 2 PER points behind the uniform ones without it); with the steps that
# costs, its 6x modules did better at 0.7 than at the 0.5 they had before.
MODULAR_RECIPES = {
    "t5": {
        "learning_rate": 1e-3,
        "plan_sampling": "granularities",
        "module_lr_scales": {3: 0.7, 6: 0.7},
        "teacher_context_weight": 3.0,
        "teacher_context_row_stride": 4,
    },
    "bart": {"learning_rate": 1e-3, "plan_sampling": "granularities", "module_lr_scales": None},
}
# T5's phase serves its 1.5x at about its 2x quality (its mixed plans learn little over the uniform 3+3),
# so its 1.5x plan gets layers of its own: copied out of the size-first 4+4 plan after the phase and
# trained for that plan alone (``specialised_steps``) for 600 more steps per 1,470 of the phase (on dev
# words a warm-started 4+4 came within 1.0 PER of the SFT student in 600 steps, docs/g2p.md). BART's
# 1.5x is within 1.0 without it.
SPECIALISED = {"t5": (["1.5x"], 600 / 1470), "bart": ([], 0.0)}


def modular_recipe(family: str, phase_steps: int) -> tuple[list[str], int, dict]:
    """The family's specialised plans, the run's steps (the phase's plus the specialised ones) and its
    training-argument overrides."""
    plans, share = SPECIALISED[family]
    tail = max(1, round(phase_steps * share)) if plans else 0
    return plans, phase_steps + tail, {**MODULAR_RECIPES[family], **({"specialised_steps": tail} if tail else {})}


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
