"""``hf-modular export-onnx``: one assembly as ONNX encoder + decoder graphs for onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, load_artifact, load_tokenizer, with_clear_errors


@with_clear_errors
def export_onnx(
    artifact: Annotated[str, typer.Argument(help="modular artifact folder or Hub id")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the ONNX files")],
    assemble: Annotated[str, typer.Option(help="which assembly to export, e.g. '3x'")] = "1x",
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default: the exporter's)")] = None,
) -> None:
    """Export one assembly to ONNX (needs the onnx extra of hf_modular)."""
    from ..integrations.onnx import export_onnx as export

    model = load_artifact(artifact, assemble=assemble)
    export(model, output, opset=opset)
    tokenizer = load_tokenizer(artifact)
    if tokenizer is not None:
        tokenizer.save_pretrained(output)
    console.print(f"[green]saved[/] {output}: encoder.onnx + decoder.onnx ({assemble})")
