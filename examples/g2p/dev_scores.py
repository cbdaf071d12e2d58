"""The benchmark's trained models scored on DEV words: recipe decisions made without test words.

    python examples/g2p/dev_scores.py --family t5 --seeds 0,1,2 --sizes 1.5x,2x

For each training seed of ``benchmark.py --full --seeds N``, the plan its modular artifact serves at
each size (strategy ``auto``: its measured front) and that seed's SFT student of the same size, scored
on dev words 0..999 (the words ``recipe_search.py`` scores on); then per size the mean over seeds of
each side and the gap. Artifacts or students not trained yet are skipped. Rows are cached under
--runs, keyed by the checkpoint step each model was read from.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmark import FULL_RUNS, Cells, assembled, measure, seed_tag, trained_student
from data import G2PDataset, split
from run import MODULAR, load_teacher

from hf_modular.training import last_complete_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="t5")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sizes", default="1.5x,2x,3x,6x")
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/dev_scores"))
    args = parser.parse_args()
    cells = Cells(args.runs / args.family / "cells.json")
    _, tokenizer = load_teacher(args.family)
    dev = G2PDataset(split()["dev"][:1000], tokenizer)
    sizes, per = args.sizes.split(","), {}
    print("| seed | size | served plan | modular dev PER | SFT dev PER | gap |\n|---:|---|---|---:|---:|---:|")
    for seed in (int(s) for s in args.seeds.split(",")):
        bench = FULL_RUNS / seed_tag(args.family, seed)
        artifact, model = bench / "modular" / "artifact", None
        if artifact.exists():
            model = MODULAR[args.family].from_pretrained(artifact)
            step = last_complete_checkpoint(bench / "modular").name
        for spec in sizes:
            row = {}
            if model is not None:
                plan = model.resolve_plan(spec)
                key = f"{seed}/modular/{spec}/{plan.describe()}/{step}"
                row["modular"] = cells.get(key, lambda p=plan, a=artifact: measure(assembled(a, p), dev))["PER"]
                row["plan"] = plan.describe()
            sft = bench / f"sft-{spec}"
            if last_complete_checkpoint(sft) is not None:
                key = f"{seed}/sft/{spec}/{last_complete_checkpoint(sft).name}"
                row["SFT"] = cells.get(key, lambda s=sft: measure(trained_student(s), dev))["PER"]
            per.setdefault(spec, []).append(row)
            gap = f"{row['modular'] - row['SFT']:+.2f}" if {"modular", "SFT"} <= row.keys() else ""
            modular, student = (f"{row[k]:.2f}" if k in row else "" for k in ("modular", "SFT"))
            print(f"| {seed} | {spec} | {row.get('plan', '')} | {modular} | {student} | {gap} |")
    print("\n| size | modular mean | SFT mean | gap of means | seeds |\n|---|---:|---:|---:|---:|")
    for spec, rows in per.items():
        paired = [r for r in rows if {"modular", "SFT"} <= r.keys()]
        if paired:
            means = [statistics.mean(r[k] for r in paired) for k in ("modular", "SFT")]
            print(f"| {spec} | {means[0]:.2f} | {means[1]:.2f} | {means[0] - means[1]:+.2f} | {len(paired)} |")


if __name__ == "__main__":
    main()
