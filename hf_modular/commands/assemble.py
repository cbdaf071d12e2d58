"""``hf-modular assemble``: artifact + ratio -> a stock checkpoint that loads without hf_modular."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, load_artifact, load_tokenizer, with_clear_errors


@with_clear_errors
def assemble(
    artifact: Annotated[str, typer.Argument(help="modular artifact folder or Hub id")],
    ratio: Annotated[str, typer.Argument(help="e.g. '3x', '1.5x' or a plan as JSON")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the stock checkpoint")],
    strategy: Annotated[str | None, typer.Option(help="size-first, speed-first or calibrated")] = None,
) -> None:
    """Build one size from the artifact and export it as a stock T5/BART checkpoint."""
    model = load_artifact(artifact)
    model.assemble(ratio, strategy=strategy)  # a bad spec fails here, before anything is written
    model.export_assembled(output)
    tokenizer = load_tokenizer(artifact)
    if tokenizer is not None:
        tokenizer.save_pretrained(output)
    console.print(model.compression_report().to_markdown(), highlight=False)
    console.print(f"[green]saved[/] {output}")
