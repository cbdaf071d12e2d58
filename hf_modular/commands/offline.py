"""``hf-modular offline``: a trained model -> its weight matrices coded offline, no training, no data.

The offline method (docs/offline_ae.md) needs no training pairs: by default each matrix is weighed
by its inputs on random token sequences. So this command takes only the model and the settings, and
writes a folder that ``AutoModelForSeq2SeqLM.from_pretrained`` loads back as the model it compressed
(a stock T5/BART, or a modular artifact that still assembles every size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, fail, load_tokenizer, model_source, output_folder, split_list, with_clear_errors

CALIBRATIONS = ("random", "none")


@with_clear_errors
def offline(
    model: Annotated[str, typer.Argument(help="T5/BART folder or Hub id: a stock model, an assembly or an artifact")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the compressed checkpoint")],
    ratio: Annotated[float, typer.Option(help="original numbers of the coded matrices over the numbers stored")] = 4.0,
    targets: Annotated[
        str, typer.Option(help="comma-separated matrix kinds, e.g. 'attention,ffn', 'k,v', 'decoder.cross_attention'")
    ] = "attention,ffn",
    method: Annotated[str, typer.Option(help="'autoencoder', or 'svd' (the baseline at the same storage)")] = (
        "autoencoder"
    ),
    mode: Annotated[str, typer.Option(help="'joint' (one coder per kind across layers) or 'per_matrix'")] = "joint",
    calibration: Annotated[
        str,
        typer.Option(help="'random': weigh each matrix by its inputs on random token sequences; 'none': weights only"),
    ] = "random",
    steps: Annotated[int, typer.Option(min=0, help="autoencoder fitting steps per coder")] = 1500,
    seed: Annotated[int, typer.Option(help="seeds the random tokens and the autoencoder's fit")] = 0,
) -> None:
    """Compress a trained model's weight matrices without fine-tuning (autoencoder, or SVD)."""
    from transformers import AutoModelForSeq2SeqLM

    from ..methods import offline_ae

    if calibration not in CALIBRATIONS:
        raise fail(f"--calibration {calibration!r}: allowed {list(CALIBRATIONS)}")
    settings = {"ratio": ratio, "targets": tuple(split_list(targets)), "mode": mode, "method": method}
    offline_ae.OfflineAEConfig(**settings, steps=steps, seed=seed)  # a bad setting fails before loading
    model_source(model, "model")
    output_folder(output, "--output", {"the model": model})
    try:
        loaded = AutoModelForSeq2SeqLM.from_pretrained(model).eval()
    except ValueError as error:  # transformers: a folder without a model config, an unknown model type
        raise fail(f"{model} is not a T5/BART checkpoint: {str(error).splitlines()[0]}") from error
    compressed = offline_ae.compress(
        loaded, **settings, calibration=None if calibration == "none" else calibration, steps=steps, seed=seed
    )
    compressed.save_pretrained(output)
    tokenizer = load_tokenizer(model)
    if tokenizer is not None:
        tokenizer.save_pretrained(output)
    report = compressed.report
    console.print(
        f"{report['method']} {report['mode']}: {len(report['groups'])} coder groups, ratio {report['ratio']}x "
        f"({report['original_numbers']:,} -> {report['stored_numbers']:,} numbers), relative error "
        f"{report['relative_error']}, in the coded metric {report['coded_relative_error']}, "
        f"{report['seconds']} s",
        highlight=False,
    )
    console.print(f"[green]saved[/] {output}")
