"""The ``hf-modular`` entry point: a typer app with one command per module."""

from __future__ import annotations

import typer

from ..version import __version__
from .assemble import assemble
from .compress import compress
from .cost_eff import cost_eff
from .evaluate import evaluate
from .export_onnx import export_onnx
from .offline import offline
from .pet import pet
from .push import push

app = typer.Typer(
    name="hf-modular",
    help="Compress T5/BART with Modular Transformers: train once, assemble any size at load time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("compress")(compress)
app.command("pet")(pet)
app.command("cost-eff")(cost_eff)
app.command("assemble")(assemble)
app.command("eval")(evaluate)
app.command("push")(push)
app.command("export-onnx")(export_onnx)
app.command("offline")(offline)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hf_modular {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    """Compress T5/BART with Modular Transformers: train once, assemble any size at load time."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
