"""Does the autoencoder's decoder eat the budget at this width? The published setting, coded at three scopes.

    python examples/g2p/offline_amortisation.py [--family t5] [--types k,v] [--ratios 4,10] [--eval-words 2000]

An autoencoder stores one decoder (linear basis + residual MLP) per coder next to a few latents per
row; SVD stores a rank-r basis and its coefficients. At a fixed ratio the decoder's numbers come out
of the same budget, so what it buys depends on how many rows share it. One matrix type (keys,
values) of the shipped teacher's layers is coded, autoencoder vs SVD at equal stored numbers, with
- one coder per matrix (160 rows share a decoder),
- one coder per kind over the teacher's 6 layers (960 rows: the published joint setting),
- one coder per kind over the WHOLE modular artifact `benchmark.py --full` trained: the teacher's 6
  layers and the artifact's 6 modules of that stack (1,920 rows; every module is coded and counted).
Every row reports the rows per coder, the decoder's share of the stored numbers, the error in the
coded metric and PER on held-out test words of the teacher's layers as coded (the 1x assembly); the
artifact scope adds its 3x assembly. Metrics: the output metric, and the same with input whitening on
--calibration-words training words (for the artifact, its calibration runs every covering plan, so
each module is weighed by the inputs of an assembly that uses it).
Cells are cached in --runs; the table goes to the family's "offline_amortisation_<family>" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
from functools import partial
from pathlib import Path

import torch
from benchmark import FULL_RUNS, ROOT, Cells, measure, replace_section
from data import G2PDataset, split
from offline_benchmark import CELLS_VERSION, TYPES, WHITENED, calibration_batches
from run import MODULAR, load_teacher

from hf_modular.methods import offline_ae

SCOPES = ("per matrix", "teacher joint", "artifact joint")
CODERS = ("autoencoder", "svd")


def code(base, target, ratio, method, mode, metric, calibration, steps, test, assemblies: tuple[str, ...]) -> dict:
    result = offline_ae.compress(
        base,
        ratio=ratio,
        targets=[target],
        mode=mode,
        method=method,
        metric=metric.removesuffix(WHITENED),
        calibration=calibration if metric.endswith(WHITENED) else None,
        progress=False,
        **({"steps": steps} if method == "autoencoder" else {}),
    )
    groups, report = result.groups, result.report
    row = {
        "ratio": report["ratio"],
        "rows_per_coder": sum(s[0] for g in groups for s in g.shapes) // len(groups),
        "decoder_share": sum(g["shared_numbers"] for g in report["groups"]) / report["stored_numbers"],
        "coded_error": report["coded_relative_error"],
        "width": groups[0].latent if method == "autoencoder" else groups[0].rank,
        "hidden": groups[0].hidden,
        "seconds": report["seconds"],
    }
    model = result.model
    for name in assemblies:
        stock = model.assemble(name).to_stock_model().eval() if name != "teacher" else model
        row[f"PER {name}"] = measure(stock, test)["PER"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="t5", choices=("t5", "bart"))
    parser.add_argument("--types", default="k,v", help=f"matrix types ({list(TYPES)})")
    parser.add_argument("--ratios", default="4,10")
    parser.add_argument("--eval-words", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1500, help="autoencoder training steps per coder")
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/offline"))
    parser.add_argument("--artifact-root", type=Path, default=FULL_RUNS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--metrics",
        default=f"output,output{WHITENED}",
        help=f"what the coders minimise: output, and output{WHITENED} (input whitening on --calibration-words)",
    )
    parser.add_argument("--calibration-words", type=int, default=1024, help="training words the +inputs metric weighs")
    args = parser.parse_args()
    types, metrics = args.types.split(","), args.metrics.split(",")
    if not set(types) <= set(TYPES):
        parser.error(f"--types {args.types!r}: allowed a comma-separated list of {list(TYPES)}")
    if not set(metrics) <= {"output", f"output{WHITENED}"}:
        parser.error(f"--metrics {args.metrics!r}: allowed a comma-separated list of output, output{WHITENED}")
    torch.set_num_threads(max(1, min(args.threads, os.cpu_count() or 1)))
    artifact_dir = args.artifact_root / args.family / "modular" / "artifact"
    if not artifact_dir.exists():
        raise SystemExit(f"no modular artifact at {artifact_dir}: run `benchmark.py --full --families {args.family}`")
    teacher, tokenizer = load_teacher(args.family)
    artifact = MODULAR[args.family].from_pretrained(artifact_dir).eval()
    words = split()
    test = G2PDataset(words["test"][: args.eval_words], tokenizer)
    calibration = calibration_batches(words, tokenizer, args.calibration_words)
    cells = Cells(args.runs / args.family / "amortisation.json")
    bases = {
        "per matrix": (teacher, "per_matrix", ("teacher",)),
        "teacher joint": (teacher, "joint", ("teacher",)),
        "artifact joint": (artifact, "joint", ("1x", "3x")),
    }
    plain = cells.get(f"plain/{args.eval_words}", lambda: {"PER 1x": measure(teacher, test)["PER"]})
    plain3 = cells.get(
        f"plain3x/{args.eval_words}",
        lambda: {"PER 3x": measure(MODULAR[args.family].from_pretrained(artifact_dir, assemble="3x"), test)["PER"]},
    )
    rows = []
    for metric, target, ratio, scope, method in itertools.product(
        metrics, types, (float(r) for r in args.ratios.split(",")), SCOPES, CODERS
    ):
        base, mode, assemblies = bases[scope]
        key = f"{target}/{ratio:g}/{scope}/{method}/{args.eval_words}/{CELLS_VERSION}"
        key += f"/steps{args.steps}" if method == "autoencoder" else ""
        key += f"/{metric}/calibration{args.calibration_words}" if metric.endswith(WHITENED) else ""
        compute = partial(code, base, target, ratio, method, mode, metric, calibration, args.steps, test, assemblies)
        rows.append((metric, TYPES[target], ratio, scope, method, cells.get(key, compute)))
    page = render(args, rows, plain["PER 1x"], plain3["PER 3x"])
    replace_section(ROOT / "docs" / "benchmarks.md", f"offline_amortisation_{args.family}", page)
    print(page)


def render(args: argparse.Namespace, rows: list, teacher_per: float, assembly_per: float) -> str:
    lines = [
        f"## Offline compression: where the autoencoder's decoder pays (amortisation, {args.family})",
        "",
        f"Written by `python examples/g2p/offline_amortisation.py --family {args.family} --types {args.types} "
        f"--ratios {args.ratios} --eval-words {args.eval_words} --steps {args.steps} --metrics {args.metrics} "
        f"--calibration-words {args.calibration_words} --threads {args.threads}`: one matrix type of the "
        f"shipped {args.family} teacher coded per matrix, jointly over the teacher's layers, and jointly over the "
        "whole modular artifact (teacher layers and modules; all of them coded and counted), "
        "equal stored numbers; `+inputs`: input whitening on the first training words. Width: the "
        "autoencoder's latents per row (hidden: its MLP units) or SVD's "
        "rank. Decoder share: the stored numbers not tied to a row. PER of the teacher's layers as coded "
        f"(uncoded: {teacher_per:.2f}) and, for the artifact, of its 3x assembly (uncoded: {assembly_per:.2f}), "
        f"on the first {args.eval_words} test words.",
        "",
        "| metric | type | ratio | scope | rows per coder | coder | width | decoder share | metric error | PER 1x | "
        "PER 3x |",
        "|---|---|---:|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for metric, kind, ratio, scope, method, row in rows:
        width = f"{row['width']} (+{row['hidden']})" if method == "autoencoder" else str(row["width"])
        per1 = row.get("PER teacher", row.get("PER 1x"))
        per3 = f"{row['PER 3x']:.2f}" if "PER 3x" in row else ""
        lines.append(
            f"| {metric} | {kind} | {ratio:g}x | {scope} | {row['rows_per_coder']} | {method} | {width} | "
            f"{row['decoder_share']:.0%} | {row['coded_error']:.3f} | {per1:.2f} | {per3} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
