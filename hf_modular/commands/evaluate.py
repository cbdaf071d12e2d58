"""``hf-modular eval``: the size/quality/speed table of every assembly of an artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    console,
    existing_path,
    fail,
    load_artifact,
    load_tokenizer,
    print_table,
    split_list,
    with_clear_errors,
)
from .text_data import load_pairs, seq2seq_collator, tokenize_pairs


@with_clear_errors
def evaluate(
    artifact: Annotated[str, typer.Argument(help="modular artifact folder or Hub id")],
    data: Annotated[Path, typer.Option(help="evaluation pairs: .jsonl/.json/.csv/.parquet")],
    source: Annotated[str, typer.Option(help="input text column")] = "source",
    target: Annotated[str, typer.Option(help="output text column")] = "target",
    ratios: Annotated[str | None, typer.Option(help="e.g. '2x,3x' (default: every reachable ratio)")] = None,
    metric: Annotated[
        str,
        typer.Option(
            help="comma-separated: 'tokens' (token/sequence error rates), 'bleu', 'chrf', 'ter' (translation edit "
            "rate), 'rouge' (ROUGE-L); the text metrics need hf_modular[metrics]"
        ),
    ] = "tokens",
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    max_length: Annotated[int, typer.Option(min=1, help="truncate texts to this many tokens")] = 128,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, help="default: from the data (the longest target plus a quarter)")
    ] = None,
    latency_batches: Annotated[str, typer.Option(help="batch sizes to time greedy decoding at; '' for none")] = "1,32",
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the table as JSON here")] = None,
    plot: Annotated[Path | None, typer.Option(help="also plot the first metric vs speedup to this PNG")] = None,
    save: Annotated[bool, typer.Option(help="store the table (and plot) in the artifact folder for 'push'")] = False,
) -> None:
    """Evaluate each assembly: teacher-forced loss, the chosen metrics of greedy decodes,
    parameters, and decode latency and speedup against the teacher."""
    from ..evaluation import evaluate_assemblies
    from ..integrations.hub import save_table
    from ..metrics import check_metrics, text_metrics

    # ---- every argument and output path is checked before the long work
    names = check_metrics(split_list(metric) or [])
    sizes = _batch_sizes(latency_batches)
    for path, what in ((json_out, "--json"), (plot, "--plot")):
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            raise fail(f"{what} {str(path)!r} must be a file path in an existing folder")
    if save:
        existing_path(Path(artifact), "artifact folder (--save needs a local artifact)")
    model = load_artifact(artifact)
    tokenizer = load_tokenizer(artifact)
    rows = tokenize_pairs(
        load_pairs(existing_path(data, "data file"), source, target), tokenizer, source, target, max_length
    )
    specs = split_list(ratios)
    for spec in specs or ():
        model.resolve_plan(spec)  # fail on a bad spec before the long work

    table = evaluate_assemblies(
        model,
        rows,
        seq2seq_collator(tokenizer),
        ratios=specs,
        batch_size=batch_size,
        metric_fn=text_metrics(tokenizer, names),
        max_new_tokens=max_new_tokens,
        latency_batch_sizes=sizes,
    )
    metric_names = list(table.rows[0].metrics)
    header = ["ratio", "enc+dec", "params", "loss", *metric_names]
    header += [f"ms@{b}" for b in sizes] + [f"speedup@{b}" for b in sizes]
    print_table(
        f"{artifact}: {len(rows)} pairs from {data.name}",
        header,
        [
            [
                r.ratio,
                f"{r.encoder_layers}+{r.decoder_layers}",
                f"{r.params:,}",
                f"{r.eval_loss:.3f}",
                *(f"{r.metrics[m]:.2f}" for m in metric_names),
                *(f"{r.latency_ms[b]:.1f}" for b in sizes),
                *(f"{r.speedup[b]:.2f}x" for b in sizes),
            ]
            for r in table.rows
        ],
    )
    if json_out:
        json_out.write_text(table.to_json() + "\n", encoding="utf-8")
    if plot and sizes:
        table.plot(plot, metric=metric_names[0])
    if save:
        folder = Path(artifact)
        save_table(table, folder)
        console.print(f"stored the table in {folder} (used by 'hf-modular push')")


def _batch_sizes(text: str) -> list[int]:
    sizes = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if not (item.isascii() and item.isdigit()) or int(item) < 1:
            raise fail(f"--latency-batches {text!r}: {item!r} is not a positive integer batch size")
        sizes.append(int(item))
    return sizes
