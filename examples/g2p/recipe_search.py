"""Tune the modular training recipe on DEV words: every candidate at the same CPU budget.

    python examples/g2p/recipe_search.py --family t5 --budget-cpu 1050

Each candidate recipe (RECIPES) trains one modular phase from the shipped teacher for as many
steps as fit the CPU budget (its cost per step is probed first), then:
- measures every reachable plan's teacher-KL on dev words 1000..1255 (``measure_plans``);
- serves every reachable ratio with the ``measured`` strategy and scores each distinct served
  plan's PER on dev words 0..999, next to the size-first plans of 1.5x, 2x, 3x and 6x;
- counts front violations: served sizes whose PER is worse than a smaller served size's by more
  than 0.3 points.
Test words are never touched. Trainings checkpoint and every result is cached under --runs, so
a rerun continues where it stopped. The table is printed (docs/g2p.md keeps the measured one).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from benchmark import Cells, measure, setup, step_cpu, train
from data import G2PDataset, collate, split
from run import MODULAR, load_teacher
from torch.utils.data import DataLoader

from hf_modular import measure_plans
from hf_modular.methods.modular.assembly import format_ratio

# name -> CompressionTrainingArguments overrides (learning rate 1e-3 throughout, docs/g2p.md)
RECIPES = {
    "same": {"plan_sampling": "granularities"},
    "rotate": {"plan_sampling": "granularities", "granularity_pairing": "rotate"},
    "rotate+1": {"plan_sampling": "granularities", "granularity_pairing": "rotate", "random_plans": 1},
    "rotate+1c": {
        "plan_sampling": "granularities",
        "granularity_pairing": "rotate",
        "random_plans": 1,
        "replacement_schedule": "constant",
        "replacement_rate": 0.5,
    },
    "rotate+2c": {
        "plan_sampling": "granularities",
        "granularity_pairing": "rotate",
        "random_plans": 2,
        "replacement_schedule": "constant",
        "replacement_rate": 0.5,
    },
    "same+1c": {
        "plan_sampling": "granularities",
        "random_plans": 1,
        "replacement_schedule": "constant",
        "replacement_rate": 0.5,
    },
    # with the per-size learning rate of the shipped recipe (docs/g2p.md, "Why 6x lagged")
    "same-lr": {"plan_sampling": "granularities", "module_lr_scales": {6: 0.5}},
    "same-lr+1s": {"plan_sampling": "granularities", "module_lr_scales": {6: 0.5}, "single_stack_plans": 1},
    "same-lr3": {"plan_sampling": "granularities", "module_lr_scales": {3: 0.7, 6: 0.5}},
    # modules also trained in the teacher's context (docs/g2p.md, "Modules in the teacher's context")
    "same-lr3+tc3": {
        "plan_sampling": "granularities",
        "module_lr_scales": {3: 0.7, 6: 0.5},
        "teacher_context_weight": 3.0,
    },
    "same-lr3+tc3s4": {  # the same on every 4th row of a batch
        "plan_sampling": "granularities",
        "module_lr_scales": {3: 0.7, 6: 0.5},
        "teacher_context_weight": 3.0,
        "teacher_context_row_stride": 4,
    },
    "same-lr3+tc3s4-6x0.7": {  # the 6x modules at 0.7 of the rate (T5's recipe since 2026-12-06)
        "plan_sampling": "granularities",
        "module_lr_scales": {3: 0.7, 6: 0.7},
        "teacher_context_weight": 3.0,
        "teacher_context_row_stride": 4,
    },
    "same+tc3s4": {"plan_sampling": "granularities", "teacher_context_weight": 3.0, "teacher_context_row_stride": 4},
    # a stronger teacher-context term at the same cost: does it close the mixed plans' (1.5x) gap?
    **{
        f"same-lr3+tc{weight:g}s4-6x0.7": {
            "plan_sampling": "granularities",
            "module_lr_scales": {3: 0.7, 6: 0.7},
            "teacher_context_weight": weight,
            "teacher_context_row_stride": 4,
        }
        for weight in (6.0, 10.0)
    },
    # the deep plans on a share of each batch's rows: cheaper steps, so every module gets more of them
    **{
        f"same-lr3+tc3s4-6x0.7-{name}": {
            "plan_sampling": "granularities",
            "module_lr_scales": {3: 0.7, 6: 0.7},
            "teacher_context_weight": 3.0,
            "teacher_context_row_stride": 4,
            "plan_row_strides": strides,
        }
        for name, strides in (("r2", {2: 2}), ("r2r3", {2: 2, 3: 2}))
    },
}
UNIFORM = ("1.5x", "2x", "3x", "6x")
MIXED = ("1.11x", "1.2x", "1.36x", "1.75x")  # size-first plans with teacher layers next to modules
VIOLATION = 0.3  # PER points


def step_cost(family: str, recipe: dict, train_set, runs: Path) -> float:
    """CPU seconds per step of ``recipe`` on a fresh modular model (``benchmark.step_cpu``)."""
    teacher, _ = load_teacher(family)
    return step_cpu(MODULAR[family].from_teacher(teacher), runs / "probe", train_set, **recipe)


def front(model, dev_measure, dev_score) -> dict:
    """Measure every plan on ``dev_measure``, serve every ratio, score the served plans on ``dev_score``."""
    loader = DataLoader(dev_measure, batch_size=64, collate_fn=collate)
    scores = measure_plans(model, list(loader), metric="teacher_kl")  # what this search was measured with
    served, per = {}, {}
    for ratio in model.reachable_ratios():
        if ratio > 1:
            spec = format_ratio(ratio)
            served[spec] = model.resolve_plan(spec)
    for plan in dict.fromkeys(served.values()):
        model.set_plan(plan)
        per[plan.describe()] = measure(model, dev_score)["PER"]
    uniform = {}
    for spec in UNIFORM + MIXED:
        model.set_plan(model.resolve_plan(spec, "size-first"))
        uniform[spec] = measure(model, dev_score)["PER"]
    rows = [
        {"ratio": spec, "plan": plan.describe(), "served_ratio": round(model.plan_space.plan_ratio(plan), 2)}
        for spec, plan in served.items()
    ]
    for row in rows:
        row["PER"] = per[row["plan"]]
    violations = [
        a["ratio"] for a, b in itertools.combinations(rows, 2) if a["PER"] > b["PER"] + VIOLATION
    ]  # rows are in ascending ratio: a is the larger model
    return {"rows": rows, "uniform": uniform, "violations": sorted(set(violations)), "plans": len(scores.plans)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="t5")
    parser.add_argument("--budget-cpu", type=float, default=1050.0, help="CPU seconds per modular phase")
    parser.add_argument("--steps", type=int, default=None, help="train this many steps instead of the CPU budget")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/recipes"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one trains these models fastest)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (data order, dropout); 0: the cached runs")
    args = parser.parse_args()
    runs = args.runs / args.family
    cells = Cells(runs / "cells.json")
    teacher, _, train_set = setup(args.family, 1, args.threads)
    _, tokenizer = load_teacher(args.family)
    dev = split()["dev"]
    dev_score, dev_measure = G2PDataset(dev[:1000], tokenizer), G2PDataset(dev[1000:1256], tokenizer)
    results = {}
    for name in args.recipes.split(","):
        recipe = {"learning_rate": 1e-3, **RECIPES[name], "seed": args.seed}
        cost = cells.get(f"{name}/step_cpu", lambda r=recipe: {"s": step_cost(args.family, r, train_set, runs)})["s"]
        steps = args.steps or int(args.budget_cpu / cost)
        cell = (name if args.steps is None else f"{name}-{steps}steps") + (f"-seed{args.seed}" if args.seed else "")
        run_dir = runs / cell
        model = MODULAR[args.family].from_teacher(teacher)
        artifact = run_dir / "artifact"
        trained = cells.get(
            f"{cell}/train", lambda m=model, d=run_dir, s=steps, r=recipe: train(m, d, s, train_set, **r)
        )
        if artifact.exists():
            model = MODULAR[args.family].from_pretrained(artifact).eval()
        else:
            model.save_pretrained(artifact)
        results[name] = {**cells.get(f"{cell}/front", lambda m=model: front(m, dev_measure, dev_score)), **trained}
    sizes = UNIFORM + MIXED
    print("| recipe | steps | train CPU s | " + " | ".join(f"{s} size-first" for s in sizes) + " | violations |")
    print("|---|---:|---:|" + "---:|" * (len(sizes) + 1))
    for name, r in results.items():
        uniform = " | ".join(f"{r['uniform'][s]:.2f}" if s in r["uniform"] else "" for s in sizes)
        print(f"| {name} | {r['train_steps']} | {r['train_cpu_s']:.0f} | {uniform} | {len(r['violations'])} |")
    for name, r in results.items():
        print(f"\n{name}: served front (ratio -> plan, PER)")
        for row in r["rows"]:
            print(f"  {row['ratio']:>6} -> {row['served_ratio']:>5}x {row['plan']:<60} {row['PER']:.2f}")


if __name__ == "__main__":
    main()
