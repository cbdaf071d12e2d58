"""PET on the G2P teacher: memory, decode speed and quality, with and without the warm-up task,
next to the modular assemblies of similar size (from benchmark.py's artifact), all measured in one run.
Writes the "pet" section of docs/benchmarks.md.

    python examples/g2p/pet_benchmark.py [--family t5] [--steps 1500] [--eval-words 2000]

The PET student keeps 2+2 physical layers of the 6+6 teacher (alternating), shares the decoder's
query projections and runs each stack twice (effective 4+4), trained with PET's published loss
weights against the teacher for the same step budget as the other students; the ablation skips
the warm-up task (the same steps all go to distillation).
"""

from __future__ import annotations

import argparse
from functools import cache, partial
from pathlib import Path

from benchmark import (
    FULL_RUNS,
    LATENCY_BATCHES,
    ROOT,
    Cells,
    full_artifact,
    measure,
    replace_section,
    setup,
    train,
    trained_student,
    with_latency,
)

from hf_modular.methods import pet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="t5")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--warmup-steps", type=int, default=150, help="warm-up task steps within --steps")
    parser.add_argument("--eval-words", type=int, default=2000)
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/pet"))
    parser.add_argument("--artifact-root", type=Path, default=FULL_RUNS, help="benchmark.py --full's runs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    teacher, test, train_set = setup(args.family, args.eval_words, args.threads)
    cells = Cells(args.runs / args.family / "cells.json")
    rows = {"teacher": cells.get("teacher", lambda: measure(teacher, test))}
    contenders = {"teacher": lambda: teacher}  # row name -> the model to time
    for name, warmup in (("PET, warm-up + KD", args.warmup_steps), ("PET, KD only (ablation)", 0)):
        run_dir = args.runs / args.family / ("warmup" if warmup else "kd-only")

        def run(warmup: int = warmup, run_dir: Path = run_dir) -> dict:
            student = pet.build_student(teacher, layers=(2, 2), share_query=True, reuse_stack=True)
            cost = train(
                student,
                run_dir,
                args.steps,
                train_set,
                teacher=teacher,
                method="pet",
                warmup_task_steps=warmup,
            )
            return {**measure(student, test), **cost}

        rows[name] = cells.get(name, run)
        contenders[name] = cache(partial(trained_student, run_dir))
    modular = full_artifact(args.family, args.artifact_root)
    if modular is not None:  # the modular assemblies of similar size, measured in this run too
        for spec in ("1.5x", "3x"):

            def assembled(spec: str = spec):
                return modular.assemble(spec)

            def scored(spec: str = spec) -> dict:
                return {**measure(assembled(spec), test), "params": modular.compression_report().assembled_params}

            rows[f"modular {spec}"] = cells.get(f"modular {spec}", scored)
            contenders[f"modular {spec}"] = assembled
    rows = with_latency(cells, "latency", rows, contenders, test)
    markdown = render(rows, args)
    replace_section(ROOT / "docs" / "benchmarks.md", "pet", markdown)
    print(markdown)


def render(rows: dict[str, dict], args) -> str:
    teacher = rows["teacher"]
    batch = str(max(LATENCY_BATCHES))
    lines = [
        "## PET (shared parameters, warm-up task, distillation)",
        "",
        f"Written by `python examples/g2p/pet_benchmark.py --family {args.family} --steps {args.steps} "
        f"--warmup-steps {args.warmup_steps} --eval-words {args.eval_words}`. PET students: 2+2 physical layers "
        "of the 6+6 teacher, decoder query shared between self- and cross-attention, each stack run twice "
        f"(effective 4+4); {args.steps} steps of batch 64 against the teacher with PET's loss "
        "(0.9 CE + 0.1 KD at T=10 + 50 hidden MSE). Memory: parameters stored, and their fp32 bytes. Speed: greedy "
        f"decode at batch {batch}. The published anchor (IWSLT'14 EN-DE, a far larger model): -81% memory, "
        "+45% speed, -0.27 BLEU. Modular rows: the sizes `assemble()` serves from the artifact "
        "`benchmark.py --full` trained (its measured front), when that run's folder is there.",
        "",
        f"| model | params | MB (fp32) | memory vs teacher | ms@{batch} | speedup | PER % | WER % | train CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        params = row["params"]
        speed = teacher["latency_ms"][batch] / row["latency_ms"][batch]
        cpu = f"{row['train_cpu_s']:.0f}" if "train_cpu_s" in row else ""
        lines.append(
            f"| {name} | {params:,} | {params * 4 / 1e6:.1f} | {100 * (params / teacher['params'] - 1):+.1f}% | "
            f"{row['latency_ms'][batch]:.0f} | {speed:.2f}x | {row['PER']:.2f} | {row['WER']:.2f} | {cpu} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
