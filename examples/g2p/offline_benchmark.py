"""Offline weight compression on the shipped G2P teachers, no fine-tuning: autoencoder vs SVD.

    python examples/g2p/offline_benchmark.py [--families t5,bart] [--ratios 2,4,10] [--eval-words 2000]

Two settings, each coder at the same storage (original numbers of the coded matrices over every
number stored for them: latents and the whole decoder, or the SVD factors):
- the published one: ONE matrix type (keys, values, queries, FFN input) coded across all layers,
  joint (one coder per kind over its layers) and per matrix;
- every attention and FFN matrix at once, of the teacher and of its modular 3x assembly (the
  artifact benchmark.py trained, when --artifact-root or runs/g2p/bench/full/<family> has one).
Each coder minimises the row error (`--metrics rows`, the published coders) or the error its reader
sees (`output`, the library's metric); `+inputs` (`output+inputs`, `rows+inputs`) also weighs each
matrix by its inputs on --calibration-words training words (input whitening, no stored number),
`+random` by its inputs on random token sequences (no data at all; `output+random` is the library's
default). The published setting runs every metric given, the every-matrix setting the first. `--split
dev` scores dev words instead, prints the tables and writes nothing (for tuning; the page shows test
words).
Reports PER/WER on held-out test words, the relative reconstruction error
and the compression wall time, as the "offline" section of docs/benchmarks.md (or --section), with the issue's
targets checked. Every cell is cached in --runs, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from benchmark import FULL_RUNS, ROOT, Cells, full_artifact, measure, replace_section
from data import G2PDataset, collate, split
from run import load_teacher
from torch.utils.data import DataLoader

from hf_modular.methods import offline_ae
from hf_modular.methods.offline_ae.metric import METRICS

CODERS = (("autoencoder", "joint"), ("autoencoder", "per_matrix"), ("svd", "joint"), ("svd", "per_matrix"))
TYPES = {"k": "keys", "v": "values", "q": "queries", "ffn_in": "FFN input"}
TARGET_TYPES, TARGET_RATIOS = ("k", "v"), (4.0, 10.0)  # where the autoencoder must match SVD
WHITENED = "+inputs"  # a metric with this suffix also codes in the error on calibration inputs
RANDOM = "+random"  # ... on random token sequences instead (calibration="random": no data)
# in every cell key: cells of an older coder or error definition are measured again, not rendered.
# v2 (2026-12-06): a whitened joint autoencoder fits each layer in its own inputs' metric; errors pool
# all coded matrices (the report's own), where v1 averaged the groups' errors
CELLS_VERSION = "v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="t5,bart")
    parser.add_argument("--ratios", default="2,4,10")
    parser.add_argument("--eval-words", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1500, help="autoencoder training steps per coder")
    parser.add_argument(
        "--decoder-fraction", type=float, default=None, help="the autoencoder's MLP share (default: the library's)"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/offline"))
    parser.add_argument("--artifact-root", type=Path, default=FULL_RUNS)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--metrics",
        default=",".join(METRICS),
        help=f"what the coders minimise (OfflineAEConfig.metric; of {list(METRICS)}): the published setting runs "
        "every one, the every-matrix setting the first",
    )
    parser.add_argument(
        "--calibration-words", type=int, default=1024, help="training words whose inputs the +inputs metrics weigh"
    )
    parser.add_argument(
        "--types", default=",".join(TYPES), help=f"matrix types of the published setting ({list(TYPES)})"
    )
    parser.add_argument("--split", choices=("test", "dev"), default="test", help="dev: print only, for tuning")
    parser.add_argument(
        "--section",
        default="offline",
        help="the docs/benchmarks.md section this run writes (a run of other metrics keeps the others' rows)",
    )
    parser.add_argument(
        "--cached-only", action="store_true", help="render what is cached; rows not yet measured say so"
    )
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(args.threads, os.cpu_count() or 1)))
    ratios = [float(r) for r in args.ratios.split(",")]
    args.metrics = args.metrics.split(",")
    allowed = [*METRICS, *(m + suffix for m in METRICS for suffix in (WHITENED, RANDOM))]
    if not set(args.metrics) <= set(allowed):
        parser.error(f"--metrics {','.join(args.metrics)!r}: allowed a comma-separated list of {allowed}")
    args.types = args.types.split(",")
    if not set(args.types) <= set(TYPES):
        parser.error(f"--types {','.join(args.types)!r}: allowed a comma-separated list of {list(TYPES)}")
    sections = [header(args)]
    for family in args.families.split(","):
        sections.append(run_family(family, ratios, args))
    if args.split == "test":
        replace_section(ROOT / "docs" / "benchmarks.md", args.section, "\n".join(sections))
    print("\n".join(sections))


def run_family(family: str, ratios: list[float], args: argparse.Namespace) -> str:
    teacher, tokenizer = load_teacher(family)
    words = split()
    test = G2PDataset(words[args.split][: args.eval_words], tokenizer)
    calibration = calibration_batches(words, tokenizer, args.calibration_words)
    cells = Cells(args.runs / family / ("cells.json" if args.split == "test" else f"cells-{args.split}.json"))
    bases = {"teacher": teacher}
    modular = full_artifact(family, args.artifact_root)
    if modular is not None:
        bases["3x assembly"] = modular.assemble("3x").to_stock_model().eval()

    def cell(base_name: str, target: str, ratio: float, method: str, mode: str, metric: str) -> dict:
        settings = {"steps": args.steps} if method == "autoencoder" else {}
        if method == "autoencoder" and args.decoder_fraction is not None:
            settings["decoder_fraction"] = args.decoder_fraction

        def run() -> dict:
            result = offline_ae.compress(
                bases[base_name],
                ratio=ratio,
                targets=target.split(","),
                mode=mode,
                method=method,
                metric=metric.removesuffix(WHITENED).removesuffix(RANDOM),
                calibration=calibration if metric.endswith(WHITENED) else "random" if metric.endswith(RANDOM) else None,
                **settings,
            )
            errors = {name: result.report[name] for name in ("relative_error", "coded_relative_error")}
            return {**_measure(result.model, test), "report": {**_summary(result.report), **errors}}

        key = f"{base_name}/{target}/{method}/{mode}/{ratio:g}/{metric}/{CELLS_VERSION}"
        key += f"/steps{args.steps}" if settings else ""
        if "decoder_fraction" in settings:
            key += f"/df{args.decoder_fraction:g}"
        if metric.endswith(WHITENED):
            key += f"/calibration{args.calibration_words}"
        if args.cached_only and key not in cells.rows:
            return None
        return cells.get(key, run)

    plain = {name: cells.get(f"{name}/none", lambda b=base: _measure(b, test)) for name, base in bases.items()}
    published = [
        (TYPES[t], f"{r:g}x", f"{method} {mode}", metric, cell("teacher", t, r, method, mode, metric))
        for metric in args.metrics
        for t in args.types
        for r in ratios
        for method, mode in CODERS
    ]
    first = args.metrics[0]  # the every-matrix setting is the long one: one metric only (not tuned on dev)
    every = [
        (base, f"{r:g}x", f"{method} {mode}", first, cell(base, "attention,ffn", r, method, mode, first))
        for base in bases
        for r in ratios
        for method, mode in CODERS
        if args.split == "test"
    ]
    return render_family(family, plain, published, every, args)


def _measure(model, test) -> dict:
    row = measure(model, test)
    return {"PER": row["PER"], "WER": row["WER"]}


def calibration_batches(words: dict, tokenizer, count: int) -> list[dict]:
    """The first ``count`` training words as collated batches: what the ``+inputs`` metrics weigh."""
    return list(DataLoader(G2PDataset(words["train"][:count], tokenizer), 256, collate_fn=collate))


def _summary(report: dict) -> dict:
    return {k: report[k] for k in ("ratio", "seconds", "original_numbers", "stored_numbers")}


def header(args: argparse.Namespace) -> str:
    return "\n".join(
        [
            "## Offline weight compression (no fine-tuning)"
            + ("" if args.section == "offline" else f": metrics {', '.join(args.metrics)}"),
            "",
            f"Written by `python examples/g2p/offline_benchmark.py --families {args.families} --ratios "
            f"{args.ratios} --eval-words {args.eval_words} --steps {args.steps} --metrics "
            f"{','.join(args.metrics)} --types {','.join(args.types)} --calibration-words {args.calibration_words}"
            + ("" if args.section == "offline" else f" --section {args.section}")
            + "` "
            "on the shipped teachers. Ratio: original numbers of the coded matrices "
            "over every number stored for them (autoencoder: latents, basis, MLP; SVD: both factors), each coder "
            "at the largest size that fits the budget. Error: relative Frobenius error of all coded matrices "
            "together. Metric: what the coder minimised (`OfflineAEConfig.metric`: `rows` is the published "
            "setting, `output` the library's, by default with `+random`, docs/offline_ae.md); metric error: "
            "the relative error of all coded matrices together, each in that metric on its own inputs (equal to "
            "the error for `rows`). "
            "The every-matrix setting runs in the first metric only "
            f"(`{args.metrics[0]}`); `+inputs`: also weighted by each matrix's inputs on the first "
            f"{args.calibration_words} training words; `+random`: by each matrix's inputs on 1,024 random token "
            'sequences of 10 tokens (`calibration="random"`, no data). '
            f"PER/WER on the first {args.eval_words} {args.split} words. "
            "s: compression wall time (seconds) on this CPU. The autoencoder's settings (decoder_fraction, "
            "learning rate, loss) and the metric were tuned on dev words (docs/offline_ae.md).",
            "",
        ]
    )


def render_family(family: str, plain: dict, published: list, every: list, args: argparse.Namespace) -> str:
    lines = [f"### {family}: one matrix type across all layers (the published setting)", ""]
    lines += [f"Teacher without compression: PER {plain['teacher']['PER']:.2f}, WER {plain['teacher']['WER']:.2f}.", ""]
    lines += _table("type", published)
    lines += ["", f"### {family}: every attention and FFN matrix", ""]
    lines += [
        "Without compression: " + ", ".join(f"{n} PER {r['PER']:.2f}" for n, r in plain.items()) + ".",
        "",
    ]
    if "3x assembly" not in plain:
        lines += [
            "No 3x assembly rows: they need the modular artifact of `benchmark.py --full` "
            f"({args.artifact_root / family}), which this run did not find.",
            "",
        ]
    lines += _table("model", every)
    lines += [
        "",
        f"Targets ({family}, published setting): autoencoder joint vs the better SVD row at the same ratio, in "
        "the same metric; errors in that metric.",
        "",
    ]
    lines += ["| metric | type | ratio | AE PER | best SVD PER | PER met | AE error | best SVD error | error met |"]
    lines += ["|---|---|---:|---:|---:|---|---:|---:|---|"]
    for metric in args.metrics:
        for kind in (t for t in TARGET_TYPES if t in args.types):
            for ratio in TARGET_RATIOS:
                lines.append(_target_row(published, metric, kind, ratio))
    return "\n".join(lines) + "\n"


def _target_row(published: list, metric: str, kind: str, ratio: float) -> str:
    place = f"| {metric} | {TYPES[kind]} | {ratio:g}x |"
    rows = {c: row for name, r, c, m, row in published if (name, r, m) == (TYPES[kind], f"{ratio:g}x", metric)}
    ae, svd = rows.get("autoencoder joint"), [rows.get("svd joint"), rows.get("svd per_matrix")]
    if ae is None or None in svd:
        return f"{place} not measured | | | | | |"
    best_per = min(r["PER"] for r in svd)
    best_error = min(r["report"]["coded_relative_error"] for r in svd)
    error = ae["report"]["coded_relative_error"]
    return (
        f"{place} {ae['PER']:.2f} | {best_per:.2f} | {'met' if ae['PER'] <= best_per else 'MISSED'} | "
        f"{error:.3f} | {best_error:.3f} | {'met' if error < best_error else 'MISSED'} |"
    )


def _table(first: str, rows: list) -> list[str]:
    lines = [
        f"| {first} | target ratio | coder | metric | achieved ratio | error | metric error | PER % | WER % | s |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, ratio, coder, metric, row in rows:
        if row is None:
            lines.append(
                f"| {name} | {ratio} | {coder} | {metric} | not measured (run without --cached-only) | | | | | |"
            )
            continue
        report = row["report"]
        lines.append(
            f"| {name} | {ratio} | {coder} | {metric} | {report['ratio']:.2f}x | {report['relative_error']:.3f} | "
            f"{report['coded_relative_error']:.3f} | "
            f"{row['PER']:.2f} | {row['WER']:.2f} | {report['seconds']:.1f} |"
        )
    return lines


if __name__ == "__main__":
    main()
