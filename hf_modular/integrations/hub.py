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
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import CommitInfo, HfApi

from ..errors import AssemblyError
from ..methods.modular.assembly import format_ratio
from ..methods.modular.model_card import PLOT_NAME, write_artifact_card
from ..safe_loading import TOKENIZER_FILES

if TYPE_CHECKING:
    from transformers import PreTrainedModel as ModularModel  # a modular model (typed loosely: it imports this)

    from ..methods.modular.assembly_table import AssemblyTable

TABLE_NAME = "hf_modular_assemblies.json"
logger = logging.getLogger(__name__)


def find_tokenizer(model: ModularModel) -> Any:
    """The tokenizer saved next to the model (the folder it was loaded from, else its teacher's
    folder), or None: a push without one leaves ``AutoTokenizer.from_pretrained(repo)`` failing."""
    from transformers import AutoTokenizer

    for folder in (model.config.name_or_path, getattr(model.config, "teacher_name_or_path", None)):
        if folder and Path(folder).is_dir() and any((Path(folder) / f).is_file() for f in TOKENIZER_FILES):
            with contextlib.suppress(OSError, ValueError):
                return AutoTokenizer.from_pretrained(folder)
    return None


def write_artifact_folder(
    model: ModularModel,
    folder: str | Path,
    repo_id: str | None = None,
    table: AssemblyTable | None = None,
    tokenizer: Any = None,
    branches: dict[str, str] | None = None,
    datasets: list[str] | None = None,
    task: str | None = None,
) -> Path:
    """The whole artifact with its card (and the evaluation table and plot when given)."""
    folder = Path(folder)
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    if table is not None:
        save_table(table, folder)
    write_artifact_card(folder, model, repo_id=repo_id, table=table, branches=branches, datasets=datasets, task=task)
    return folder


def write_assembly_folder(
    model: ModularModel,
    spec: str,
    folder: str | Path,
    repo_id: str | None = None,
    tokenizer: Any = None,
    revision: str | None = None,
    table: AssemblyTable | None = None,
    datasets: list[str] | None = None,
    task: str | None = None,
) -> Path:
    """One assembly as a stock checkpoint with its card; the model's own plan is left as it was."""
    folder = Path(folder)
    with model.plan_context():
        recorded, choice = model.config.assemble, model.plan_choice
        try:
            model.assemble(spec)
            model.export_assembled(
                folder, repo_id=repo_id, revision=revision, table=table, datasets=datasets, task=task
            )
        finally:
            model.config.assemble, model.plan_choice = recorded, choice
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def push_to_hub(
    model: ModularModel,
    repo_id: str,
    *,
    assemble: str | None = None,
    revision: str | None = None,
    table: AssemblyTable | None = None,
    tokenizer: Any = None,
    datasets: list[str] | None = None,
    task: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    branches: dict[str, str] | None = None,
) -> CommitInfo:
    """Push the artifact (``assemble=None``) or one assembly as a stock checkpoint.

    The tokenizer goes with it: ``tokenizer`` if given, else the one saved next to the model
    (``find_tokenizer``); a push without any logs a warning. The card follows the Hub's metadata
    conventions (base model, license, ``datasets``, a model-index from ``table``, ``task``).
    Creates the repo (and the ``revision`` branch) when missing. Returns the commit; when
    nothing changed since the last push, no commit is made and the current head is returned.
    """
    if assemble is not None:
        model.resolve_plan(assemble)  # a bad spec fails here, before anything is created
    tokenizer = tokenizer if tokenizer is not None else find_tokenizer(model)
    if tokenizer is None:
        logger.warning(
            "pushing %s without a tokenizer: AutoTokenizer.from_pretrained(%r) will fail; pass tokenizer=...",
            repo_id,
            repo_id,
        )
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision not in (None, "main"):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hf_modular_push_") as tmp:
        folder = Path(tmp) / "upload"
        if assemble is None:
            write_artifact_folder(model, folder, repo_id, table, tokenizer, branches, datasets, task)
            what = "modular artifact (all assemblies)"
        else:
            write_assembly_folder(model, assemble, folder, repo_id, tokenizer, revision, table, datasets, task)
            what = f"{assemble} assembly (stock checkpoint)"
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {what} with hf_modular",
            create_pr=create_pr,
        )


def push_all_assemblies(
    model: ModularModel,
    repo_id: str,
    *,
    ratios: Sequence[str] | None = None,
    table: AssemblyTable | None = None,
    tokenizer: Any = None,
    datasets: list[str] | None = None,
    task: str | None = None,
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
    tokenizer = tokenizer if tokenizer is not None else find_tokenizer(model)
    card = {"table": table, "tokenizer": tokenizer, "datasets": datasets, "task": task, "token": token}
    commits = {"main": push_to_hub(model, repo_id, private=private, branches=branches, **card)}
    for spec in specs:
        commits[spec] = push_to_hub(model, repo_id, assemble=spec, revision=spec, **card)
    return commits


def save_table(table: AssemblyTable, folder: Path) -> None:
    """The table as JSON and, when it has timings, its plot, where the model card finds them."""
    (folder / TABLE_NAME).write_text(table.to_json() + "\n", encoding="utf-8")
    if any(r.speedup for r in table.rows):
        with contextlib.suppress(ImportError):  # matplotlib is optional: the card just has no plot
            table.plot(folder / PLOT_NAME, metric=next(iter(table.rows[0].metrics), None))
