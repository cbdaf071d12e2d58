"""``hf-modular assemble``: artifact + ratio -> a stock checkpoint that loads without hf_modular."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import console, fail, load_artifact, load_tokenizer, output_folder, with_clear_errors


@with_clear_errors
def assemble(
    artifact: Annotated[str, typer.Argument(help="modular artifact folder or Hub id")],
    ratio: Annotated[
        str, typer.Argument(help="e.g. '3x', '1.5x', or a plan as JSON: '{\"encoder\": [[0, 3], 3, 4, 5]}'")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the stock checkpoint")],
    strategy: Annotated[
        str | None, typer.Option(help="auto, measured, size-first, speed-first or calibrated (default: auto)")
    ] = None,
) -> None:
    """Build one size from the artifact and export it as a stock T5/BART checkpoint."""
    from ..methods.modular.assembly import check_strategy

    spec: object = ratio
    if ratio.lstrip().startswith("{"):
        try:
            spec = json.loads(ratio)
        except json.JSONDecodeError as error:
            raise fail(f"plan {ratio!r} is not valid JSON: {error.msg} at character {error.pos}") from error
    if strategy is not None:
        check_strategy(strategy)
    output_folder(output, "--output", {"the artifact": artifact})
    model = load_artifact(artifact)
    model.assemble(spec, strategy=strategy)  # a bad spec fails here, before anything is written
    model.export_assembled(output)
    tokenizer = load_tokenizer(artifact)
    if tokenizer is not None:
        tokenizer.save_pretrained(output)
    console.print(model.compression_report().to_markdown(), highlight=False)
    console.print(f"[green]saved[/] {output}")
