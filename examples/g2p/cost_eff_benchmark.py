"""COST-EFF on the G2P teacher: slenderized multi-exit models and the teacher with exits, along
the early-exit threshold sweep, next to the modular assemblies. Writes the "cost_eff" section of
docs/benchmarks.md.

    python examples/g2p/cost_eff_benchmark.py [--family t5] [--steps 1500] [--eval-words 1000]

Each multi-exit model gets an exit after every decoder layer (shared LM head) and one joint
training of --steps steps against the teacher with COST-EFF's loss (every exit: 0.1 CE + 0.9 KD
to the teacher's final distribution, plus hidden-state MSE). Slenderized models are pruned from
the teacher by Taylor importance on 8 calibration batches of training words before that training.
Every row is measured by ``cost_eff.sweep_thresholds`` in this run: PER/WER on test words, decoder
layers and FLOPs per generated phone, and decode time per word at batch 1 and 32 (natural stopping).
Finished rows are cached in --runs and trainings checkpoint, so an interrupted run continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from benchmark import FULL_RUNS, ROOT, Cells, full_artifact, replace_section, setup, train
from data import collate, g2p_metrics
from teachers import MAX_NEW_TOKENS
from transformers import AutoModelForSeq2SeqLM

from hf_modular.methods import cost_eff

THRESHOLDS = (None, 0.99, 0.95, 0.9, 0.8, 0.6)
WIDTHS = {"slim (2 heads, FFN 128)": (2, 128), "slimmer (1 head, FFN 64)": (1, 64)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="t5")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-words", type=int, default=1000)
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/cost_eff"))
    parser.add_argument("--artifact-root", type=Path, default=FULL_RUNS, help="benchmark.py --full's runs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    teacher, test, train_set = setup(args.family, args.eval_words, args.threads)
    calibration = [collate([train_set[i] for i in range(start, start + 64)]) for start in range(0, 512, 64)]
    cells = Cells(args.runs / args.family / "cells.json")
    rows = {"teacher": cells.get("teacher", lambda: sweep(cost_eff.as_cost_eff(teacher), test, (None,)))}
    modular = full_artifact(args.family, args.artifact_root)
    if modular is not None:
        for spec in ("2x", "3x"):

            def assembled(spec: str = spec) -> dict:
                return sweep(cost_eff.as_cost_eff(modular.assemble(spec)), test, (None,))

            rows[f"modular {spec}"] = cells.get(f"modular {spec}", assembled)
    builds = {"teacher + exits": lambda: cost_eff.add_exits(teacher)}
    for name, (heads, ffn) in WIDTHS.items():
        builds[f"{name} + exits"] = lambda heads=heads, ffn=ffn: cost_eff.add_exits(
            cost_eff.slenderize(teacher, heads=heads, ffn=ffn, data=calibration)
        )
    for name, build in builds.items():

        def run(name: str = name, build=build) -> dict:
            run_dir = args.runs / args.family / name.split(" (")[0].replace(" + ", "-").replace(" ", "-")
            final = run_dir / "final"
            if (final / "cost.json").exists():  # trained before: measure again without retraining
                model = AutoModelForSeq2SeqLM.from_pretrained(final).eval()
                cost = json.loads((final / "cost.json").read_text())
            else:
                model = build()
                cost = train(model, run_dir, args.steps, train_set, teacher=teacher, method="cost_eff")
                model.save_pretrained(final)
                (final / "cost.json").write_text(json.dumps(cost))
            return {**sweep(model.eval(), test, THRESHOLDS), **cost}

        rows[name] = cells.get(name, run)
    markdown = render(rows, args)
    replace_section(ROOT / "docs" / "benchmarks.md", "cost_eff", markdown)
    print(markdown)


def sweep(model, test, thresholds) -> dict:
    points = cost_eff.sweep_thresholds(
        model,
        test,
        collate,
        thresholds,
        metric_fn=g2p_metrics,
        batch_size=256,
        max_new_tokens=MAX_NEW_TOKENS,
        latency_batch_sizes=(1, 32),
        latency_examples=64,
    )
    params = sum(p.numel() for p in model.parameters())
    rows = [dataclasses.asdict(p) for p in points]
    for row in rows:  # the same keys fresh or read back from JSON
        row["ms_per_sequence"] = {str(b): ms for b, ms in row["ms_per_sequence"].items()}
    return {"params": params, "points": rows}


def render(rows: dict[str, dict], args) -> str:
    base = rows["teacher"]["points"][0]
    score = 100 - base["metrics"]["PER"]
    lines = [
        "## COST-EFF (slenderized width, multi-exit early-exit decoding)",
        "",
        f"Written by `python examples/g2p/cost_eff_benchmark.py --family {args.family} --steps {args.steps} "
        f"--eval-words {args.eval_words}`. Multi-exit models: an exit after each of the 6 decoder layers (shared "
        f"LM head), {args.steps} steps of batch 64 against the teacher (every exit 0.1 CE + 0.9 KD, hidden MSE). "
        "Slenderized: heads and FFN neurons kept per layer by Taylor importance, depth kept. Threshold: a token "
        "leaves at the first exit whose top probability reaches it (never = full depth). FLOPs: per generated "
        "phone, encoder included, counted from the matrices (`cost_eff.decoding_flops`). Latency: ms per word, "
        "greedy, natural stopping, 64 words. Score = 100 - PER, as a share of the teacher's. The published anchor "
        "(BERT on GLUE): 1/8 of the parameters and 1/19 of the FLOPs at ~96.5% of the teacher's score. Modular "
        "rows: the sizes `assemble()` serves from the artifact `benchmark.py --full` trained (its measured front).",
        "",
        "| model | threshold | params | 1/params | MFLOPs/phone | 1/FLOPs | layers/phone | ms/word @1 | "
        "ms/word @32 | PER % | WER % | score vs teacher |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        for point in row["points"]:
            threshold = "never" if point["threshold"] is None else f"{point['threshold']:g}"
            ms = point["ms_per_sequence"]
            lines.append(
                f"| {name} | {threshold} | {row['params']:,} | {rows['teacher']['params'] / row['params']:.1f}x | "
                f"{point['flops_per_token'] / 1e6:.2f} | {base['flops_per_token'] / point['flops_per_token']:.1f}x | "
                f"{point['mean_layers']:.2f} | {ms['1']:.1f} | {ms['32']:.2f} | {point['metrics']['PER']:.2f} | "
                f"{point['metrics']['WER']:.2f} | {100 * (100 - point['metrics']['PER']) / score:.1f}% |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
