"""Self-speculative decoding on G2P: the artifact's own small assemblies draft for its teacher.

    python examples/g2p/speculative_benchmark.py [--families t5,bart] [--drafts 6x,3x,2x] [--words 200]

From the modular artifact that benchmark.py --full trained: the teacher (the 1x assembly) decodes
each test word greedily at batch 1, plainly and with each draft assembly through transformers'
assisted generation (``hf_modular.speculative_pair``). Every configuration decodes the same words
in each of --rounds interleaved rounds (median wall time per word), so a busy spell of the machine
slows all alike. Reported per draft: whether every word's tokens equal plain greedy decoding, the
share of drafted tokens the teacher accepted, tokens per teacher forward, and the speedup. Written
as the "speculative" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from benchmark import ROOT, replace_section
from data import spell, split
from run import MODULAR, load_teacher
from teachers import MAX_NEW_TOKENS

import hf_modular


def count_forwards(model) -> tuple[list[int], object]:
    """A call counter on ``model``'s forward (generate calls it once per decoding step)."""
    calls = [0]
    handle = model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls, handle


@torch.no_grad()
def decode(model, inputs: list[dict], assistant=None) -> tuple[float, list[list[int]]]:
    """Wall seconds for greedy-decoding every word at batch 1, and the tokens."""
    kwargs = {"do_sample": False, "max_new_tokens": MAX_NEW_TOKENS}
    if assistant is not None:
        kwargs["assistant_model"] = assistant
    start = time.perf_counter()
    tokens = [model.generate(**item, **kwargs)[0].tolist() for item in inputs]
    return time.perf_counter() - start, tokens


def run_family(family: str, args: argparse.Namespace) -> list[dict]:
    _, tokenizer = load_teacher(family)
    artifact = args.runs / family / "modular" / "artifact"
    if not artifact.exists():
        raise SystemExit(f"no artifact at {artifact}: run examples/g2p/benchmark.py --full first")
    words = [word for word, _ in split()["test"][: args.words]]
    inputs = [dict(tokenizer(spell(word), return_tensors="pt")) for word in words]
    model = MODULAR[family].from_pretrained(artifact, assemble=None).eval()
    pairs = {spec: hf_modular.speculative_pair(model, draft=spec) for spec in args.drafts}
    teacher = pairs[args.drafts[0]][0]
    contenders = {"teacher": (teacher, None), **{spec: (teacher, draft) for spec, (_, draft) in pairs.items()}}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    tokens: dict[str, list[list[int]]] = {}
    counts: dict[str, dict[str, int]] = {}
    for target, draft in contenders.values():  # warm-up, untimed
        decode(target, inputs[:3], draft)
    for round_index in range(args.rounds):
        for name, (target, draft) in contenders.items():
            counters = []
            if round_index == 0:
                counters = [count_forwards(target), *([count_forwards(draft)] if draft is not None else [])]
            seconds, result = decode(target, inputs, draft)
            times[name].append(seconds)
            if round_index == 0:
                tokens[name] = result
                counts[name] = {"target": counters[0][0][0], "draft": counters[1][0][0] if draft is not None else 0}
                for _, handle in counters:
                    handle.remove()
    plain_ms = statistics.median(times["teacher"]) / len(words) * 1000
    generated = sum(len(t) - 1 for t in tokens["teacher"])  # new tokens (the start token excluded)
    rows = [{"draft": "none (plain greedy)", "ms": plain_ms, "speedup": 1.0, "exact": True, "generated": generated}]
    for spec in args.drafts:
        verify = counts[spec]["target"]
        accepted = generated - verify  # each teacher forward adds its accepted drafts plus one token of its own
        rows.append(
            {
                "draft": spec,
                "layers": [len(pairs[spec][1].config.hf_modular["plan"][name]) for name in ("encoder", "decoder")],
                "ms": statistics.median(times[spec]) / len(words) * 1000,
                "speedup": statistics.median(times["teacher"]) / statistics.median(times[spec]),
                "exact": tokens[spec] == tokens["teacher"],
                "acceptance": accepted / max(counts[spec]["draft"], 1),
                "tokens_per_forward": generated / max(verify, 1),
                "drafted_per_forward": counts[spec]["draft"] / max(verify, 1),
            }
        )
    return rows


def render(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    lines = [
        "## Self-speculative decoding",
        "",
        f"Written by `python examples/g2p/speculative_benchmark.py --families {','.join(args.families)} "
        f"--drafts {','.join(args.drafts)} --words {args.words} --rounds {args.rounds}`. The teacher (the artifact's "
        f"1x assembly) greedy-decodes {args.words} test words one at a time, plainly and with each draft assembly of "
        "the same artifact through transformers' assisted generation (`hf_modular.speculative_pair`, default draft "
        f"settings); all configurations timed in {args.rounds} interleaved rounds (median). Acceptance: drafted "
        "tokens the teacher kept; tokens per teacher forward: generated tokens over teacher decoder forwards.",
        "",
    ]
    for family, rows in results.items():
        lines += [
            f"### {family}",
            "",
            "| draft | draft enc+dec layers | ms / word | speedup | tokens equal plain greedy | acceptance "
            "| drafted per teacher forward | tokens per teacher forward |",
            "|---|---:|---:|---:|---|---:|---:|---:|",
        ]
        for row in rows:
            layers = "+".join(map(str, row["layers"])) if "layers" in row else "-"
            extra = (
                f"{row['acceptance']:.0%} | {row['drafted_per_forward']:.2f} | {row['tokens_per_forward']:.2f}"
                if "acceptance" in row
                else "- | - | 1.00"
            )
            exact = "yes" if row["exact"] else "NO"
            lines.append(f"| {row['draft']} | {layers} | {row['ms']:.1f} | {row['speedup']:.2f}x | {exact} | {extra} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="t5,bart")
    parser.add_argument("--drafts", default="6x,3x,2x")
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=Path, default=Path("runs/g2p/bench/full"))
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    args.families, args.drafts = args.families.split(","), args.drafts.split(",")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    results = {family: run_family(family, args) for family in args.families}
    markdown = render(results, args)
    replace_section(args.docs / "benchmarks.md", "speculative", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
