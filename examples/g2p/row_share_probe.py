"""How much of each batch a 4+4 (1.5x) stack needs, on DEV words: the probe behind a 1.5x plan in the phase.

    python examples/g2p/row_share_probe.py --family t5 --batches 16,32,64
    python examples/g2p/row_share_probe.py --family t5 --init size-first --steps 300 --batches 32,64

T5's modular 1.5x misses its target because no plan near 1.5x is a stack trained together at that depth
(docs/g2p.md). A module kind that replaces three layers with two would make 4+4 a uniform plan the phase
trains on every step, and ``plan_row_strides`` would let it see only every 2nd or 4th row of a batch to
keep the phase under its cost cap. This probe asks what that costs in quality before any of it is
built: the 1.5x SFT student (alternating teacher layers, the benchmark's losses; the SFT learning rate
5e-4 or the phase's 1e-3) trained for the modular phase's step count with 16, 32 or 64 rows a step,
scored on dev words 0..999 (the words ``recipe_search.py`` scores on), next to what ``benchmark.py
--full`` trained (its SFT student, 2,000 steps of 64 rows, and its modular artifact's served 1.5x and
2x plans) on the same words. ``--init size-first`` (or ``measured``) starts the stack instead from the plan
the artifact gives at --spec, its modules and teacher layers copied out as a stock model: how far a few
hundred steps take a stack warm-started from the phase's own modules (what was then built: specialised
plans, ``specialised_steps``; docs/g2p.md, "A specialised 1.5x"). Test words are never touched.
Runs and rows are cached under --runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark import FULL_RUNS, Cells, assembled, baseline_layers, measure, seed_tag, setup, train, trained_student
from data import G2PDataset, split
from run import MODULAR, load_teacher

from hf_modular.shrink import shrink_model
from hf_modular.training import last_complete_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="t5")
    parser.add_argument("--steps", type=int, default=1470, help="the modular phase's step count")
    parser.add_argument("--batches", default="16,32,64", help="rows a step (the phase's batch is 64)")
    parser.add_argument("--learning-rate", type=float, default=5e-4, help="the SFT students' (the phase: 1e-3)")
    parser.add_argument("--spec", default="1.5x")
    parser.add_argument(
        "--init",
        choices=("teacher", "measured", "size-first"),
        default="teacher",
        help="the stack's start: alternating teacher layers (as the SFT student), or the --spec plan the "
        "benchmark's modular artifact gives with this strategy (its modules copied out as a stock model)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="training seed; also which of `benchmark.py --seeds` runs to start from"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/row_share"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    runs = args.runs / args.family
    cells = Cells(runs / "cells.json")
    teacher, _, train_set = setup(args.family, 1, args.threads)
    _, tokenizer = load_teacher(args.family)
    dev = G2PDataset(split()["dev"][:1000], tokenizer)
    keep, info = baseline_layers(MODULAR[args.family].from_teacher(teacher), args.spec)
    bench, tag = FULL_RUNS / seed_tag(args.family, args.seed), f"-seed{args.seed}" if args.seed else ""
    artifact = bench / "modular" / "artifact"
    print(f"| {args.spec} student | rows a step | steps | lr | train CPU s | dev PER |\n|---|---:|---:|---:|---:|---:|")
    if args.init != "teacher":  # the warm start's plan, and where it begins
        plan = MODULAR[args.family].from_pretrained(artifact).resolve_plan(args.spec, args.init)
        info = {"layers": [plan.encoder.num_steps, plan.decoder.num_steps], "plan": plan.describe()}
        row = cells.get(f"{args.spec}-{args.init}-untrained{tag}", lambda: measure(assembled(artifact, plan), dev))
        print(f"| {info['plan']} | | 0 | | | {row['PER']:.2f} |")
    lr = "" if args.learning_rate == 5e-4 else f"-lr{args.learning_rate:g}"
    lr += "" if args.init == "teacher" else f"-from-{args.init}"
    for rows in (int(b) for b in args.batches.split(",")):
        run_dir = runs / f"{args.spec}-{rows}rows-{args.steps}steps{lr}{tag}"

        def trained(rows: int = rows, run_dir: Path = run_dir) -> dict:
            if args.init == "teacher":
                student = shrink_model(teacher, keep["encoder"], keep["decoder"])
            else:
                student = assembled(artifact, plan)
            recipe = {"per_device_train_batch_size": rows, "learning_rate": args.learning_rate}
            cost = train(student, run_dir, args.steps, train_set, teacher=teacher, seed=args.seed, **recipe)
            return measure(student, dev, **info, **cost)

        row = cells.get(run_dir.name, trained)
        print(
            f"| {info.get('plan', info['layers'])} | {rows} | {args.steps} | {args.learning_rate:g} "
            f"| {row['train_cpu_s']:.0f} | {row['PER']:.2f} |"
        )
    sft = bench / f"sft-{args.spec}"
    if sft.exists():
        row = cells.get(f"benchmark-sft{tag}", lambda: measure(trained_student(sft), dev))
        steps = last_complete_checkpoint(sft).name.rsplit("-", 1)[1]
        print(f"| benchmark SFT student | 64 | {steps} | 5e-4 | | {row['PER']:.2f} |")
    if artifact.exists():
        model = MODULAR[args.family].from_pretrained(artifact)
        for spec in (args.spec, "2x"):
            served = model.resolve_plan(spec)
            row = cells.get(f"benchmark-modular-{spec}{tag}", lambda p=served: measure(assembled(artifact, p), dev))
            print(f"| benchmark modular {spec}: {served.describe()} | | | | | {row['PER']:.2f} |")


if __name__ == "__main__":
    main()
