"""Pushing modular artifacts and their assemblies to the Hugging Face Hub.

Two things can be pushed: the whole artifact (every module; users pick the size with
``from_pretrained(repo, assemble=...)``) or one assembly exported as a stock checkpoint that
loads without hf_modular. ``push_all_assemblies`` puts the artifact on ``main`` and each ratio on
a branch of its own named after it (``revision="3x"``). Every push writes a model card.

Folders are written deterministically, so pushing an unchanged model uploads nothing: the Hub
client compares file hashes and skips the commit.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import CommitInfo, HfApi

from ..assembly import format_ratio
from ..errors import AssemblyError
from ..model_card import PLOT_NAME, write_artifact_card

if TYPE_CHECKING:
    from ..evaluation import AssemblyTable
    from ..modeling_modular import ModularModelMixin

TABLE_NAME = "hf_modular_assemblies.json"


def write_artifact_folder(
    model: ModularModelMixin,
    folder: str | Path,
    repo_id: str | None = None,
    table: AssemblyTable | None = None,
    tokenizer: Any = None,
    branches: dict[str, str] | None = None,
) -> Path:
    """The whole artifact with its card (and the evaluation table and plot when given)."""
    folder = Path(folder)
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    if table is not None:
        save_table(table, folder)
    write_artifact_card(folder, model, repo_id=repo_id, table=table, branches=branches)
    return folder


def write_assembly_folder(
    model: ModularModelMixin, spec: str, folder: str | Path, repo_id: str | None = None, tokenizer: Any = None
) -> Path:
    """One assembly as a stock checkpoint with its card; the model's own plan is left as it was."""
    folder = Path(folder)
    plan, recorded = model.active_plan, model.config.assemble
    try:
        model.assemble(spec)
        model.export_assembled(folder, repo_id=repo_id)
    finally:
        model.set_plan(plan)
        model.config.assemble = recorded
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def push_to_hub(
    model: ModularModelMixin,
    repo_id: str,
    *,
    assemble: str | None = None,
    revision: str | None = None,
    table: AssemblyTable | None = None,
    tokenizer: Any = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    branches: dict[str, str] | None = None,
) -> CommitInfo:
    """Push the artifact (``assemble=None``) or one assembly as a stock checkpoint.

    Creates the repo (and the ``revision`` branch) when missing. Returns the commit; when
    nothing changed since the last push, no commit is made and the current head is returned.
    """
    if assemble is not None:
        model.resolve_plan(assemble)  # a bad spec fails here, before anything is created
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision not in (None, "main"):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hf_modular_push_") as tmp:
        folder = Path(tmp) / "upload"
        if assemble is None:
            write_artifact_folder(model, folder, repo_id, table, tokenizer, branches)
            what = "modular artifact (all assemblies)"
        else:
            write_assembly_folder(model, assemble, folder, repo_id, tokenizer)
            what = f"{assemble} assembly (stock checkpoint)"
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {what} with hf_modular",
            create_pr=create_pr,
        )


def push_all_assemblies(
    model: ModularModelMixin,
    repo_id: str,
    *,
    ratios: Sequence[str] | None = None,
    table: AssemblyTable | None = None,
    tokenizer: Any = None,
    private: bool | None = None,
    token: str | bool | None = None,
) -> dict[str, CommitInfo]:
    """The artifact on ``main`` and every ratio (default: all reachable ones but 1x) on its own
    branch named after the ratio. Returns the commit per branch."""
    if ratios is None:
        ratios = [format_ratio(r) for r in model.reachable_ratios() if r > 1]
    specs = [format_ratio(model.plan_space.plan_ratio(model.resolve_plan(spec))) for spec in ratios]
    if len(set(specs)) != len(specs):
        raise AssemblyError(f"ratios {list(ratios)} name the same assembly twice (as {specs})")
    branches = dict(zip(specs, specs, strict=True))
    commits = {
        "main": push_to_hub(
            model, repo_id, table=table, tokenizer=tokenizer, private=private, token=token, branches=branches
        )
    }
    for spec in specs:
        commits[spec] = push_to_hub(model, repo_id, assemble=spec, revision=spec, tokenizer=tokenizer, token=token)
    return commits


def save_table(table: AssemblyTable, folder: Path) -> None:
    """The table as JSON and, when it has timings, its plot, where the model card finds them."""
    (folder / TABLE_NAME).write_text(table.to_json() + "\n", encoding="utf-8")
    if any(r.speedup for r in table.rows):
        with contextlib.suppress(ImportError):  # matplotlib is optional: the card just has no plot
            table.plot(folder / PLOT_NAME, metric=next(iter(table.rows[0].metrics), None))
