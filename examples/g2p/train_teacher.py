"""Train a G2P teacher from scratch (resumable), then ship it as fp16 safetensors.

    python examples/g2p/train_teacher.py --family t5 --steps 9000
    python examples/g2p/train_teacher.py --family t5 --steps 4000 --lr 1e-4 \
        --init-from runs/g2p/teacher-t5/checkpoint-8000

Checkpoints go to runs/g2p/teacher-<family>/ (--init-from: teacher-<family>-continued/) every
500 steps; rerunning resumes from the last complete one. --init-from starts a second stage
from a saved model's weights (safetensors only) with a fresh optimizer and schedule. The
finished teacher (weights in fp16, under 10 MB), its tokenizer and its test-set metrics are
written to examples/g2p/teachers/<family>/, which the main job uses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from data import G2PDataset, build_tokenizer, collate, g2p_metrics, split
from teachers import FAMILIES, MAX_NEW_TOKENS, new_teacher
from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainer, Seq2SeqTrainingArguments

from hf_modular.evaluation import score_loader  # one decoding/metric loop for teachers and assemblies
from hf_modular.training import SafeCheckpointing, last_complete_checkpoint


class TeacherTrainer(SafeCheckpointing, Seq2SeqTrainer):
    """A stock Seq2SeqTrainer whose checkpoints are pickle-free and crash-safe."""


HERE = Path(__file__).parent


def evaluate(model, entries, tokenizer, batch_size: int = 256) -> dict[str, float]:
    loader = torch.utils.data.DataLoader(G2PDataset(entries, tokenizer), batch_size=batch_size, collate_fn=collate)
    loss, predictions, references = score_loader(model.eval(), loader, True, MAX_NEW_TOKENS)
    return {"loss": round(loss, 4), **{k: round(v, 2) for k, v in g2p_metrics(predictions, references).items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=FAMILIES, required=True)
    parser.add_argument("--steps", type=int, default=9000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p"))
    parser.add_argument("--out", type=Path, default=None, help="default: examples/g2p/teachers/<family>")
    parser.add_argument("--init-from", type=Path, default=None, help="a model folder to continue training from")
    args = parser.parse_args()
    out = args.out or HERE / "teachers" / args.family

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    data = split()
    model = new_teacher(args.family, len(tokenizer))
    run_dir = args.runs / f"teacher-{args.family}"
    if args.init_from:
        weights = AutoModelForSeq2SeqLM.from_pretrained(args.init_from, use_safetensors=True, dtype=torch.float32)
        model.load_state_dict(weights.state_dict())
        run_dir = run_dir.with_name(run_dir.name + "-continued")
    training_args = Seq2SeqTrainingArguments(
        output_dir=str(run_dir),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=200,
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        logging_steps=100,
        save_strategy="steps",
        save_steps=500,
        save_total_limit=2,
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = TeacherTrainer(
        model=model,
        args=training_args,
        train_dataset=G2PDataset(data["train"], tokenizer),
        data_collator=collate,
    )
    last = last_complete_checkpoint(run_dir)
    trainer.train(resume_from_checkpoint=str(last) if last else None)

    metrics = {"dev": evaluate(model, data["dev"], tokenizer), "test": evaluate(model, data["test"], tokenizer)}
    metrics["steps"] = trainer.state.global_step
    if args.init_from:
        metrics["continued_from"] = str(args.init_from)
    metrics["train_seconds"] = round(sum(h.get("train_runtime", 0) for h in trainer.state.log_history), 1)
    print(json.dumps(metrics, indent=2))
    model.half().save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"saved the {args.family} teacher to {out}")


if __name__ == "__main__":
    main()
