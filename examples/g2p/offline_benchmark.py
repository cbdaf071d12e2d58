"""Offline weight compression on the G2P teacher and on its 3x assembly, no fine-tuning.

    python examples/g2p/offline_benchmark.py [--family t5] [--ratios 2,4,10] [--eval-words 1000]

For each storage ratio (original / stored numbers of the attention and FFN matrices): the
autoencoder in joint mode (one coder per matrix kind across layers), the autoencoder per matrix,
and truncated SVD per matrix (the published baseline) at the same storage. Reports PER/WER on
held-out test words, the achieved ratio and the compression wall time, as the "offline" section
of docs/benchmarks.md. The 3x assembly comes from the modular artifact benchmark.py trained.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from benchmark import ROOT, Cells, measure, replace_section
from data import G2PDataset, split
from run import MODULAR, load_teacher

from hf_modular.methods import offline_ae

VARIANTS = (("autoencoder", "joint"), ("autoencoder", "per_matrix"), ("svd", "per_matrix"), ("svd", "joint"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="t5")
    parser.add_argument("--ratios", default="2,4,10")
    parser.add_argument("--eval-words", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1500, help="autoencoder training steps per coder")
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/offline"))
    parser.add_argument(
        "--artifact", type=Path, default=None, help="default: runs/g2p/bench/small/<family>/modular/artifact"
    )
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    teacher, tokenizer = load_teacher(args.family)
    test = G2PDataset(split()["test"][: args.eval_words], tokenizer)
    cells = Cells(args.runs / args.family / "cells.json")
    bases = {"teacher": teacher}
    artifact = args.artifact or Path(f"runs/g2p/bench/small/{args.family}/modular/artifact")
    if artifact.exists():
        bases["3x assembly"] = MODULAR[args.family].from_pretrained(artifact).assemble("3x").to_stock_model().eval()
    rows = []
    for base_name, base in bases.items():
        rows.append((base_name, "none", "-", cells.get(f"{base_name}/none", lambda b=base: _measure(b, test))))
        for ratio in [float(r) for r in args.ratios.split(",")]:
            for method, mode in VARIANTS:

                def run(base=base, ratio=ratio, method=method, mode=mode) -> dict:
                    result = offline_ae.compress(
                        base, ratio=ratio, targets=["attention", "ffn"], mode=mode, method=method, steps=args.steps
                    )
                    return {
                        **_measure(result.model, test),
                        "report": {k: v for k, v in result.report.items() if k != "groups"},
                    }

                key = f"{base_name}/{method}/{mode}/{ratio:g}"
                rows.append((base_name, f"{method} {mode}", f"{ratio:g}x", cells.get(key, run)))
    markdown = render(rows, args)
    replace_section(ROOT / "docs" / "benchmarks.md", "offline", markdown)
    print(markdown)


def _measure(model, test) -> dict:
    row = measure(model, test)
    return {"PER": row["PER"], "WER": row["WER"], "params": row["params"]}


def render(rows, args) -> str:
    lines = [
        "## Offline weight compression (no fine-tuning)",
        "",
        f"Written by `python examples/g2p/offline_benchmark.py --family {args.family} --ratios {args.ratios} "
        f"--eval-words {args.eval_words} --steps {args.steps}`. Targets: every attention (q, k, v, o) and FFN matrix "
        f"of the {args.family} teacher and of its modular 3x assembly. Ratio: original numbers of those matrices over "
        "every number stored for them (latents, decoder weights and biases, norms; SVD factors). Test words: "
        f"{args.eval_words}. Time: compression wall time on this machine's CPU.",
        "",
        "| model | method | target ratio | achieved ratio | PER % | WER % | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for base, method, ratio, row in rows:
        report = row.get("report", {})
        achieved = f"{report['ratio']:.2f}x" if report else "-"
        seconds = f"{report['seconds']:.1f}" if report else "-"
        lines.append(f"| {base} | {method} | {ratio} | {achieved} | {row['PER']:.2f} | {row['WER']:.2f} | {seconds} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
