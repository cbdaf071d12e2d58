"""Model cards (README.md with Hub metadata) for the checkpoints hf_modular writes.

Two kinds: the card of a whole artifact (every assembly it offers, how to load each size, and
the measured quality/speed table and plot when an evaluation is known) and the card of one
exported assembly (a stock checkpoint). Metadata goes through ``huggingface_hub.ModelCardData``
so it is the YAML the Hub validates.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult, ModelCardData

from ...markdown import markdown_table
from .assembly import format_ratio
from .report import CompressionReport

if TYPE_CHECKING:
    from .assembly_table import AssemblyTable

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
PLOT_NAME = "assemblies.png"


def hub_id(name_or_path: str | None) -> str | None:
    """``name_or_path`` if it reads as a Hub repo id (``org/name`` or ``name``), not a local path."""
    if not name_or_path or Path(name_or_path).exists() or name_or_path.startswith((".", "/", "~")):
        return None
    parts = name_or_path.split("/")
    return name_or_path if len(parts) <= 2 and all(parts) else None


def teacher_license(teacher: str | None) -> str | None:
    """The license in the teacher's model card (a local folder's README.md, or the Hub's card), if any."""
    if not teacher:
        return None
    from huggingface_hub import ModelCard

    try:
        card = ModelCard.load(Path(teacher) / CARD_NAME) if Path(teacher).is_dir() else ModelCard.load(teacher)
    except Exception as error:
        logger.debug("no license found for %s: %s", teacher, error)
        return None
    return getattr(card.data, "license", None)


def eval_results(
    table: AssemblyTable | None, datasets: list[str] | None, ratio: str | None = None
) -> list[EvalResult] | None:
    """model-index entries: each measured metric of each assembly (only ``ratio``'s, when given)."""
    if table is None:
        return None
    dataset = (datasets or ["custom"])[0]
    results = [
        EvalResult(
            task_type="text2text-generation",
            dataset_type=dataset,
            dataset_name=dataset,
            metric_type=metric.lower(),
            metric_value=round(value, 4),
            metric_name=f"{metric} ({row.ratio} assembly)" if ratio is None else metric,
        )
        for row in table.rows
        if ratio is None or row.ratio == ratio
        for metric, value in sorted(row.metrics.items())
    ]
    return results or None


def card_metadata(
    config: Any,
    family: str,
    extra_tags: list[str],
    *,
    model_name: str,
    datasets: list[str] | None = None,
    results: list[EvalResult] | None = None,
    task: str | None = None,
) -> str:
    """The card's YAML front matter, in the Hub's conventions (``huggingface_hub.ModelCardData``).

    ``base_model`` is the teacher when it is a Hub id and ``license`` the teacher's. transformers 5
    has no seq2seq pipeline (``text2text-generation`` was removed), so no ``pipeline_tag`` is set
    unless ``task`` names the Hub task (``translation``, ``summarization``, ``text2text-generation``).
    """
    teacher = getattr(config, "teacher_name_or_path", None)
    data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag=task,
        base_model=hub_id(teacher),
        license=teacher_license(teacher),
        datasets=datasets or None,
        eval_results=results,
        tags=["hf_modular", "modular-transformers", family, *extra_tags],
    )
    return f"---\n{data.to_yaml()}\n---"


def write_assembled_card(
    path: Path,
    report: CompressionReport,
    config: Any,
    family: str,
    repo_id: str | None = None,
    *,
    name: str | None = None,
    revision: str | None = None,
    table: AssemblyTable | None = None,
    datasets: list[str] | None = None,
    task: str | None = None,
) -> Path:
    """README.md for an exported assembled model: plan, ratios and how to load it.

    ``name`` is what the load line names when there is no ``repo_id`` (the final folder, not a
    staging folder the card happens to be written in); ``revision`` the Hub branch it lives on.
    """
    teacher = getattr(config, "teacher_name_or_path", None) or "a teacher"
    ratio = format_ratio(report.layer_ratio)
    source = repo_id or name or path.name
    load_args = f'"{source}"' + (f', revision="{revision}"' if revision and revision != "main" else "")
    spec = getattr(config, "assemble", None)
    metadata = card_metadata(
        config,
        family,
        ["compressed", f"compression-{ratio}"],
        model_name=f"{Path(source).name}",
        datasets=datasets,
        results=eval_results(table, datasets, spec if isinstance(spec, str) else None),
        task=task,
    )
    text = f"""{metadata}

# {ratio} modular assembly of {teacher}

This is a stock `{family}` checkpoint: an assembly of Modular Transformers modules chosen at
load time from one trained artifact, exported so that any tool loads it without hf_modular.

{report.to_markdown()}
Plan (JSON, teacher layer indices; `[s, e]` is the module that replaces layers s..e-1):
`{report.plan.to_json()}`

```python
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained({load_args})
```
"""
    card = path / CARD_NAME
    card.write_text(text, encoding="utf-8")
    return card


def write_artifact_card(
    path: Path,
    model: Any,
    repo_id: str | None = None,
    table: AssemblyTable | None = None,
    branches: dict[str, str] | None = None,
    *,
    datasets: list[str] | None = None,
    task: str | None = None,
) -> Path:
    """README.md for a whole modular artifact: one row per assembly and the line that loads it.

    ``table`` (from ``evaluate_assemblies``) adds the measured quality and speed; a plot named
    ``assemblies.png`` next to the card is shown. ``branches`` maps ratios to the Hub branches
    that hold their stock exports.
    """
    family = model.adapter.family
    name = repo_id or path.name
    teacher = getattr(model.config, "teacher_name_or_path", None) or "a teacher"
    ratios = [format_ratio(r) for r in model.reachable_ratios()]
    rows = []
    for spec in ratios:
        choice = model.choose_plan(spec)
        plan = choice.plan
        load = f'`from_pretrained("{name}", assemble="{spec}")`'
        if branches and spec in branches:
            load += f' or, without hf_modular, `from_pretrained("{name}", revision="{branches[spec]}")`'
        rows.append(
            [spec, plan.encoder.num_steps, plan.decoder.num_steps, f"`{plan.describe()}`", choice.strategy, load]
        )
    header = ["ratio", "encoder layers", "decoder layers", "plan", "chosen by", "load"]
    sizes = markdown_table(header, rows, align="rrrlll")
    measured = ""
    if table is not None:
        measured = f"## Measured quality and speed\n\n{table.to_markdown()}\n"
        if (path / PLOT_NAME).exists():
            measured += f"![quality vs speedup]({PLOT_NAME})\n"
    metadata = card_metadata(
        model.config,
        family,
        ["compressed"],
        model_name=Path(name).name,
        datasets=datasets,
        results=eval_results(table, datasets),
        task=task,
    )
    text = f"""{metadata}

# Modular Transformers artifact of {teacher}

One trained artifact, every size: its modules replace runs of 2 or more consecutive teacher
layers, and `from_pretrained(..., assemble=...)` builds the size you ask for at load time
(only that size's layers are created) and returns it as a stock `{family}` model. Ratios count
transformer-layer parameters; plans are written `L2` for teacher layer 2 and `M0:3` for the module
over layers 0-2 (half-open). "measured" means the best plan measured on held-out data among those
at least that small.

```python
import hf_modular  # registers the modular model types with the Auto classes
from transformers import AutoModelForSeq2SeqLM

model = AutoModelForSeq2SeqLM.from_pretrained("{name}", assemble="{ratios[len(ratios) // 2]}")
```

## Assemblies

{sizes}

{measured}"""
    card = path / CARD_NAME
    card.write_text(text, encoding="utf-8")
    return card
