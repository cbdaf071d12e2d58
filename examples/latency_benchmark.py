"""Decode latency at the shapes users compress (random weights: latency does not depend on them).

    python examples/latency_benchmark.py [--shapes t5-small,t5-base,flan-t5-base,bart-base] [--repeats 3]

For each shape (the real configurations, built from configs, nothing downloaded), the teacher and,
from one modular artifact of it, every uniform assembly (2x, 3x, 6x) under ``size-first`` and
``speed-first``, the stock model of each assembly's depths built directly, and the assemblies that
keep the encoder and 1/k of the decoder (k = 2, 3, 6). Greedy decodes of exactly 32 and 128 new
tokens at batch 1 and 16, with the dynamic cache and with ``cache_implementation="static"``; every
row of one setting is timed in the same interleaved rounds (median). Writes the "latency" section
of docs/benchmarks.md and docs/latency.png; each setting is cached in --runs.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "g2p"))
from benchmark import Cells, replace_section  # the G2P benchmark's cell cache and page writer
from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

from hf_modular import ModularBartForConditionalGeneration, ModularT5ForConditionalGeneration
from hf_modular.arch import adapter_for
from hf_modular.evaluation import interleaved_decode_latency

ROOT = Path(__file__).resolve().parents[1]


def t5(**fields) -> T5Config:
    """A T5 config with the published checkpoints' vocabulary and special tokens."""
    return T5Config(d_kv=64, vocab_size=32128, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **fields)


SHAPES = {  # the published configurations of each checkpoint (vocabulary included: the LM head is real work)
    "t5-small": lambda: t5(d_model=512, d_ff=2048, num_heads=8, num_layers=6),
    "t5-base": lambda: t5(d_model=768, d_ff=3072, num_heads=12, num_layers=12),
    "flan-t5-base": lambda: t5(
        d_model=768, d_ff=2048, num_heads=12, num_layers=12, feed_forward_proj="gated-gelu", tie_word_embeddings=False
    ),
    "bart-base": lambda: BartConfig(
        d_model=768,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=12,
        decoder_attention_heads=12,
        encoder_ffn_dim=3072,
        decoder_ffn_dim=3072,
        vocab_size=50265,
        max_position_embeddings=1024,
    ),
}
STOCK = {T5Config: T5ForConditionalGeneration, BartConfig: BartForConditionalGeneration}
MODULAR = {T5Config: ModularT5ForConditionalGeneration, BartConfig: ModularBartForConditionalGeneration}
RATIOS = ("2x", "3x", "6x")
SOURCE_TOKENS = 32


def contenders(shape: str) -> tuple[dict, dict]:
    """name -> (callable returning the model, its encoder/decoder depths)."""
    config = SHAPES[shape]()
    torch.manual_seed(0)
    teacher = STOCK[type(config)](config).eval()
    artifact = MODULAR[type(config)].from_teacher(teacher).eval()
    adapter = adapter_for(teacher)

    def depths_of(model_config) -> tuple[int, int]:
        return adapter.depth(model_config, "encoder"), adapter.depth(model_config, "decoder")

    depths = {"teacher": depths_of(config)}
    models = {"teacher": teacher}
    for ratio in RATIOS:
        for strategy in ("size-first", "speed-first"):
            model = artifact.assembled_stock_model(ratio, strategy)
            name = f"{ratio} {strategy}"
            models[name], depths[name] = model, depths_of(model.config)
            stock = f"stock {depths[name][0]}+{depths[name][1]}"
            if stock not in models:
                values = config.to_dict()
                values.update(dict(zip(adapter.depth_fields, depths[name], strict=True)))
                models[stock], depths[stock] = STOCK[type(config)](type(config)(**values)).eval(), depths[name]
    decoder_depth = depths["teacher"][1]
    for k in (2, 3, 6):
        if decoder_depth % k == 0:
            plan = {"decoder": [[i, i + k] for i in range(0, decoder_depth, k)]}  # the encoder: teacher layers
            name = f"decoder 1/{k}"
            models[name] = artifact.assembled_stock_model(plan)
            depths[name] = depths_of(models[name].config)
    return {name: (lambda m=m: m) for name, m in models.items()}, depths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--caches", default="dynamic,static", help="cache implementations to time")
    parser.add_argument("--tokens", default="32,128", help="new tokens per decode")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=Path("runs/latency"))
    parser.add_argument(
        "--section",
        default="latency",
        help="the docs/benchmarks.md section to write: 'latency' (every cached setting, the targets, the close "
        "timing, the profile and the plot), or another name for this run's settings alone (settings added to a "
        "page whose other rows' cache is gone)",
    )
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(args.threads, os.cpu_count() or 1)))
    shapes = args.shapes.split(",")
    caches = args.caches.split(",")
    tokens = [int(t) for t in args.tokens.split(",") if t.isdigit()]
    unknown = [shape for shape in shapes if shape not in SHAPES] + [c for c in caches if c not in ("dynamic", "static")]
    if unknown or args.repeats < 1 or not tokens:
        raise SystemExit(f"unknown --shapes/--caches {unknown}, or --repeats {args.repeats} < 1, or no --tokens")
    cells = Cells(args.runs / "cells.json")
    measured = {}
    for shape in shapes:
        measured.update(measure_shape(shape, cells, args.repeats, caches, tokens))
    if args.section != "latency":
        markdown = "\n".join(
            [
                f"## Decode latency at real model shapes: {args.shapes}, {args.caches} cache",
                "",
                *intro(args),
                *tables(measured),
            ]
        )
        replace_section(ROOT / "docs" / "benchmarks.md", args.section, markdown)
        print(markdown)
        return
    profile = cells.get(f"profile/{PROFILED[0]}", profile_rows)
    twins = cells.get(f"twins/{TWINS[0]}/{TWINS[1]}/{TWINS[2]}/rounds", twin_rows)
    # the page shows every setting measured so far (runs of other shapes or caches included), in shape order
    order = {shape: i for i, shape in enumerate(SHAPES)}
    results = dict(
        sorted(
            ((k, v) for k, v in cells.rows.items() if k.split("/")[0] in SHAPES),
            key=lambda kv: order[kv[0].split("/")[0]],
        )
    )
    markdown = render(results, args, twins) + render_twins(twins) + render_profile(profile)
    replace_section(ROOT / "docs" / "benchmarks.md", "latency", markdown)
    plot(results, ROOT / "docs" / "latency.png")
    print(markdown)


def source_batches(shape: str) -> dict[int, dict[str, torch.Tensor]]:
    """Batch size -> random source tokens (seeded), the same for every row and setting."""
    generator = torch.Generator().manual_seed(0)
    vocab = SHAPES[shape]().vocab_size
    return {
        b: {
            "input_ids": torch.randint(4, vocab, (b, SOURCE_TOKENS), generator=generator),
            "attention_mask": torch.ones(b, SOURCE_TOKENS, dtype=torch.long),
        }
        for b in (1, 16)
    }


def measure_shape(shape: str, cells: Cells, repeats: int, caches: list[str], tokens_list: list[int]) -> dict:
    """Every (cache, tokens) setting of one shape, each timed (or read from the cache) as one cell."""
    built: dict = {}
    batches = source_batches(shape)

    def timed(cache: str, tokens: int) -> dict:
        if not built:  # the models are built once per shape, and only when a setting is not cached
            built["models"], built["depths"] = contenders(shape)
        extra = {"cache_implementation": "static"} if cache == "static" else {}
        latency = interleaved_decode_latency(built["models"], batches, tokens, repeats, **extra)
        return {
            n: {"depths": list(built["depths"][n]), **{str(b): ms for b, ms in r.items()}} for n, r in latency.items()
        }

    return {
        f"{shape}/{cache}/{tokens}": cells.get(f"{shape}/{cache}/{tokens}", lambda c=cache, t=tokens: timed(c, t))
        for cache in caches
        for tokens in tokens_list
    }


TWINS = ("t5-small", 32, 11)  # shape, new tokens, interleaved rounds


def twin_rows() -> dict:
    """Each assembly next to the stock model of its depths AND a second stock model of those depths
    (other random weights), timed together in many rounds: the second stock gives the noise floor
    that an assembly's gap to its stock model must be read against. Every round decodes with a
    fresh copy of each model, so that where in memory its weights lie is drawn anew each round
    (timed as one object each, two models of one architecture differed by up to 10% alone)."""
    shape, tokens, repeats = TWINS
    models, depths = contenders(shape)
    config = SHAPES[shape]()
    adapter = adapter_for(models["teacher"]())
    chosen = {n: build() for n, build in models.items() if n != "teacher" and not n.startswith("decoder")}
    torch.manual_seed(1)
    for name in [n for n in chosen if n.startswith("stock")]:
        values = {**config.to_dict(), **dict(zip(adapter.depth_fields, depths[name], strict=True))}
        chosen[f"{name} (second)"] = STOCK[type(config)](type(config)(**values)).eval()
        depths[f"{name} (second)"] = depths[name]
    copies = {name: (lambda m=model: copy.deepcopy(m)) for name, model in chosen.items()}
    rounds = interleaved_decode_latency(copies, source_batches(shape), tokens, repeats, statistic=list)
    return {n: {"depths": list(depths[n]), **{str(b): ms for b, ms in r.items()}} for n, r in rounds.items()}


def twin_gaps(twins: dict) -> tuple[list[float], list[float]]:
    """Each assembly's gaps to its stock model (@1 and @16), and each second stock model's, from the
    fastest round of each (interference only ever adds time)."""
    gaps, floor = [], []
    for name, row in twins.items():
        stock = stock_of(twins, row)
        if row is not stock:
            pairs = [fastest_gap(row, stock, b) for b in ("1", "16")]
            (floor if name.startswith("stock") else gaps).extend(pairs)
    return gaps, floor


def stock_of(rows: dict, row: dict) -> dict | None:
    """The row of the stock model built directly at ``row``'s depths, if that setting has one."""
    return rows.get(f"stock {row['depths'][0]}+{row['depths'][1]}")


def fastest_gap(row: dict, stock: dict, batch: str) -> float:
    return min(row[batch]) / min(stock[batch]) - 1


def render_twins(twins: dict) -> str:
    shape, tokens, repeats = TWINS
    lines = [
        "",
        f"### Assembled vs stock, timed closely ({shape}, {tokens} new tokens, {repeats} rounds)",
        "",
        "Each assembly (from `assembled_stock_model`) next to the stock model of its depths built directly and a "
        "second stock model of those depths with other random weights, all in the same interleaved rounds, each "
        "round on fresh copies of the models. ms: the fastest round (interference only ever adds time), the "
        "median in brackets. The second stock model's gap is what timing noise alone gives.",
        "",
        "| model | depths | ms @1 | vs stock @1 | ms @16 | vs stock @16 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, row in twins.items():
        stock = stock_of(twins, row)
        cells = []
        for b in ("1", "16"):
            versus = "" if row is stock else f"{fastest_gap(row, stock, b):+.1%}"
            cells += [f"{min(row[b]):.0f} ({statistics.median(row[b]):.0f})", versus]
        lines.append(f"| {name} | {row['depths'][0]}+{row['depths'][1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


PROFILED = ("t5-small", ("teacher", "3x size-first", "6x size-first"), 32)  # shape, rows, new tokens


def profile_split(model, batch: dict, tokens: int) -> dict[str, float]:
    """Milliseconds of one greedy decode spent in the encoder, the decoder stack, the LM head and
    the rest (generate()'s own work: logits processing, stopping, cache bookkeeping), from
    torch.profiler with a labelled range around each part."""
    parts = {"encoder": model.get_encoder(), "decoder": model.get_decoder(), "lm_head": model.get_output_embeddings()}
    handles, ranges = [], {}
    for label, module in parts.items():

        def enter(_module, _args, label=label):
            ranges[label] = torch.profiler.record_function(f"part:{label}")
            ranges[label].__enter__()

        def leave(_module, _args, _output, label=label):
            ranges.pop(label).__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    kwargs = {"do_sample": False, "max_new_tokens": tokens, "min_new_tokens": tokens}
    try:
        with torch.no_grad():
            model.generate(**batch, **kwargs)  # warm-up
            activities = [torch.profiler.ProfilerActivity.CPU]
            with (
                torch.profiler.profile(activities=activities) as profiler,
                torch.profiler.record_function("part:generate"),
            ):
                model.generate(**batch, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    totals = {
        e.key.removeprefix("part:"): e.cpu_time_total / 1000
        for e in profiler.key_averages()
        if e.key.startswith("part:")
    }
    totals["rest"] = totals["generate"] - sum(totals.get(k, 0.0) for k in parts)
    return totals


def profile_rows() -> dict:
    shape, names, tokens = PROFILED
    models, _ = contenders(shape)
    split = {}
    for batch_size, batch in source_batches(shape).items():
        for name in names:
            split[f"{name} @{batch_size}"] = profile_split(models[name](), batch, tokens)
    return split


def render_profile(split: dict) -> str:
    shape, _, tokens = PROFILED
    lines = [
        "",
        f"### Where the time goes ({shape}, {tokens} new tokens, torch.profiler)",
        "",
        "One profiled greedy decode after a warm-up: CPU time inside the encoder (runs once), the decoder stack "
        "(runs once per token), the LM head (once per token) and the rest of `generate()` (logits processing, "
        "stopping criteria, cache bookkeeping, Python).",
        "",
        "| model @batch | generate ms | encoder | decoder | LM head | rest | decoder ms/token |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in split.items():
        share = {k: t.get(k, 0.0) / t["generate"] for k in ("encoder", "decoder", "lm_head", "rest")}
        lines.append(
            f"| {name} | {t['generate']:.0f} | {share['encoder']:.0%} | {share['decoder']:.0%} | "
            f"{share['lm_head']:.0%} | {share['rest']:.0%} | {t.get('decoder', 0.0) / tokens:.2f} |"
        )
    return "\n".join(lines) + "\n"


def render(results: dict, args: argparse.Namespace, twins: dict) -> str:
    lines = ["## Decode latency at real model shapes", "", *intro(args), "![decode speedup](latency.png)", ""]
    lines += tables(results)
    lines += targets(results, twins)
    return "\n".join(lines) + "\n"


def intro(args: argparse.Namespace) -> list[str]:
    command = f"python examples/latency_benchmark.py --repeats {args.repeats} --threads {args.threads}"
    if args.section != "latency":
        command += f" --shapes {args.shapes} --caches {args.caches} --tokens {args.tokens} --section {args.section}"
    return [
        f"Written by `{command}` "
        "(settings cached per shape, cache and token count; runs may add shapes or caches): random weights of "
        "each checkpoint's published configuration, greedy decoding of "
        f"exactly 32 or 128 new tokens from {SOURCE_TOKENS} source tokens, on this machine's CPU ({os.cpu_count()} "
        f"cores, torch on {args.threads} thread(s)). Every row of one setting is timed in the same {args.repeats} "
        "interleaved rounds (median ms per batch); speedup = teacher ms / row ms. `stock e+d`: a stock model of "
        "those depths built directly, the reference an assembly must match. `decoder 1/k`: the teacher's encoder "
        "with 1/k of the decoder's layers.",
        "",
    ]


def tables(results: dict) -> list[str]:
    """One table per setting: every row's median ms and its speedup over the teacher."""
    lines = []
    for key, rows in results.items():
        shape, cache, tokens = key.split("/")
        lines += [f"### {shape}, {cache} cache, {tokens} new tokens", ""]
        lines += ["| model | depths | ms @1 | speedup @1 | ms @16 | speedup @16 | vs stock of same depths @16 |"]
        lines += ["|---|---|---:|---:|---:|---:|---:|"]
        teacher = rows["teacher"]
        for name, row in rows.items():
            stock = stock_of(rows, row)
            versus = f"{row['16'] / stock['16'] - 1:+.1%}" if stock is not None and not name.startswith("stock") else ""
            lines.append(
                f"| {name} | {row['depths'][0]}+{row['depths'][1]} | {row['1']:.0f} | {teacher['1'] / row['1']:.2f}x | "
                f"{row['16']:.0f} | {teacher['16'] / row['16']:.2f}x | {versus} |"
            )
        lines.append("")
    return lines


def token_macs(config, decoder_layers: int) -> int:
    """Multiply-adds per generated token in the decoder's projections and the LM head (attention
    scores and the once-per-sequence encoder left out): what layer dropping can and cannot remove."""
    d = config.d_model
    inner = config.num_heads * config.d_kv if isinstance(config, T5Config) else d
    ffn = config.d_ff if isinstance(config, T5Config) else config.decoder_ffn_dim
    ffn_matrices = 3 if getattr(config, "is_gated_act", False) else 2
    layer = 4 * d * inner + 2 * d * inner + ffn_matrices * d * ffn  # self q,k,v,o; cross q,o; FFN
    return decoder_layers * layer + d * config.vocab_size


def targets(results: dict, close_timing: dict) -> list[str]:
    """Issue targets: t5-base, batch 16, 128 tokens: decoder 1/k >= 0.9 k faster; assembly == stock +-3%."""
    lines = [
        "### Targets",
        "",
        "FLOP bound: the speedup if time followed the per-token multiply-adds of the decoder's projections and "
        "the LM head (`token_macs`); the head is not layer-compressed, so it caps what dropping layers can give.",
        "",
        "| target | measured | FLOP bound | met |",
        "|---|---|---:|---|",
    ]
    rows = results.get("t5-base/dynamic/128")
    if rows:
        config = SHAPES["t5-base"]()
        for k in (2, 3, 6):
            row = rows.get(f"decoder 1/{k}")
            if row:
                speed = rows["teacher"]["16"] / row["16"]
                bound = token_macs(config, config.num_decoder_layers) / token_macs(
                    config, config.num_decoder_layers // k
                )
                goal = f"t5-base @16, 128 tokens: decoder 1/{k} >= {0.9 * k:.1f}x"
                lines.append(f"| {goal} | {speed:.2f}x | {bound:.2f}x | {_met(speed >= 0.9 * k)} |")
    gaps, floor = [], []
    for rows in results.values():
        for name, row in rows.items():
            stock = stock_of(rows, row)
            if stock is not None and not name.startswith("stock"):
                gaps.append(abs(row["16"] / stock["16"] - 1))
        assemblies = [r for n, r in rows.items() if not n.startswith("stock") and n != "teacher"]
        for i, a in enumerate(assemblies):  # two models of the same depths: what the timing noise alone gives
            floor += [abs(a["16"] / b["16"] - 1) for b in assemblies[i + 1 :] if a["depths"] == b["depths"]]
    if gaps:  # informative: 3 rounds per setting are too few to resolve 3%
        goal = "every assembly vs the stock model of its depths, @16, in the settings above (not the target's test)"
        noise = f"; two models of the same depths differ by up to {max(floor):.1%}" if floor else ""
        lines.append(f"| {goal} | worst {max(gaps):.1%}{noise} | | |")
    close, second = twin_gaps(close_timing)
    worst = max(abs(g) for g in close)
    goal = f"assembled vs stock of the same depths, timed closely ({TWINS[0]}, batch 1 and 16): within 3%"
    noise = f"; a second stock model of the same depths: up to {max(abs(g) for g in second):.1%}"
    lines.append(f"| {goal} | worst {worst:.1%}{noise} | | {_met(worst <= 0.03)} |")
    return lines


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in results if k.endswith("/dynamic/128")]
    if not keys:
        return
    figure, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 4), squeeze=False)
    for axis, key in zip(axes[0], keys, strict=True):
        rows = results[key]
        teacher = rows["teacher"]["16"]
        names = [n for n in rows if n != "teacher" and not n.startswith("stock")]
        axis.barh(names, [teacher / rows[n]["16"] for n in names])
        axis.set_title(f"{key.split('/')[0]}: speedup @16, 128 tokens")
        axis.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
