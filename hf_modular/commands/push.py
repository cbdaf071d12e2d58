"""``hf-modular push``: an artifact, one assembly, or every assembly to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, existing_path, fail, load_artifact, load_tokenizer, split_list, with_clear_errors


@with_clear_errors
def push(
    artifact: Annotated[Path, typer.Argument(help="modular artifact folder")],
    repo_id: Annotated[str, typer.Argument(help="Hub repo, e.g. 'me/t5-g2p-modular' (created if missing)")],
    assemble: Annotated[str | None, typer.Option(help="push only this assembly, as a stock checkpoint")] = None,
    all_assemblies: Annotated[
        bool, typer.Option("--all-assemblies", help="artifact on main, each ratio on a branch named after it")
    ] = False,
    ratios: Annotated[str | None, typer.Option(help="with --all-assemblies: which ratios (default: all)")] = None,
    revision: Annotated[str | None, typer.Option(help="branch to push to (created if missing)")] = None,
    private: Annotated[bool, typer.Option(help="create the repo private")] = False,
) -> None:
    """Push with a generated model card; measured results from 'hf-modular eval --save' go in the card."""
    from ..integrations.hub import TABLE_NAME, push_all_assemblies, push_to_hub
    from ..methods.modular.assembly_table import AssemblyTable

    if assemble and all_assemblies:
        raise fail("--assemble and --all-assemblies exclude each other")
    existing_path(artifact, "artifact")
    model = load_artifact(str(artifact))
    tokenizer = load_tokenizer(artifact)
    table_file = artifact / TABLE_NAME
    table = AssemblyTable.from_json(table_file.read_text(encoding="utf-8")) if table_file.is_file() else None
    if all_assemblies:
        commits = push_all_assemblies(
            model, repo_id, ratios=split_list(ratios), table=table, tokenizer=tokenizer, private=private
        )
        for branch, commit in commits.items():
            console.print(f"{branch}: {commit.oid}")
        return
    commit = push_to_hub(
        model, repo_id, assemble=assemble, revision=revision, table=table, tokenizer=tokenizer, private=private
    )
    console.print(f"[green]pushed[/] {repo_id}@{revision or 'main'}: {commit.oid}")
