"""Quickstart: teacher -> one modular artifact -> assembled models of several sizes -> stock export.

Runs in seconds on a CPU with a small T5 built from a config (no download). Replace the
teacher with any T5/BART checkpoint path or Hub id.

    python examples/quickstart.py --out runs/quickstart
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

import hf_modular


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    parser.add_argument(
        "--teacher", default=None, help="a T5 checkpoint path or Hub id (default: a small T5 from config)"
    )
    args = parser.parse_args()

    torch.manual_seed(0)
    if args.teacher is None:
        config = T5Config(
            vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=6, num_heads=4, decoder_start_token_id=0
        )
        teacher = T5ForConditionalGeneration(config).eval()
    else:
        teacher = args.teacher
    model = hf_modular.ModularT5ForConditionalGeneration.from_teacher(teacher)
    artifact = args.out / "artifact"
    model.save_pretrained(artifact)
    print(f"saved the artifact (teacher layers + module pools) to {artifact}")
    print("reachable ratios:", ", ".join(f"{r:g}x" for r in model.reachable_ratios()))

    inputs = torch.randint(2, 128, (2, 12))
    for ratio in ["1x", "2x", "3x", "6x"]:
        assembled = AutoModelForSeq2SeqLM.from_pretrained(artifact, assemble=ratio).eval()
        tokens = assembled.generate(inputs, max_new_tokens=8, do_sample=False)
        report = assembled.compression_report()
        print(f"\n## {ratio}: {report.plan.describe()}  ->  first output {tokens[0].tolist()}")
        print(report.to_markdown())
        if ratio == "3x":
            exported = assembled.export_assembled(args.out / "stock-3x")
            print(f"exported a stock t5 checkpoint to {exported}")


if __name__ == "__main__":
    main()
