"""Model cards (README.md with Hub metadata) for the checkpoints hf_modular writes.

Two kinds: the card of a whole artifact (every assembly it offers, how to load each size, and
the measured quality/speed table and plot when an evaluation is known) and the card of one
exported assembly (a stock checkpoint). Metadata goes through ``huggingface_hub.ModelCardData``
so it is the YAML the Hub validates.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelCardData

from .assembly import format_ratio
from .report import CompressionReport

if TYPE_CHECKING:
    from .evaluation import AssemblyTable

CARD_NAME = "README.md"
PLOT_NAME = "assemblies.png"


def hub_id(name_or_path: str | None) -> str | None:
    """``name_or_path`` if it reads as a Hub repo id (``org/name`` or ``name``), not a local path."""
    if not name_or_path or Path(name_or_path).exists() or name_or_path.startswith((".", "/", "~")):
        return None
    parts = name_or_path.split("/")
    return name_or_path if len(parts) <= 2 and all(parts) else None


def card_metadata(config: Any, family: str, extra_tags: list[str]) -> str:
    """The card's YAML front matter: library, pipeline, base model (when a Hub id) and tags."""
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text2text-generation",
        base_model=hub_id(getattr(config, "teacher_name_or_path", None)),
        tags=["hf_modular", "modular-transformers", family, *extra_tags],
    )
    return f"---\n{data.to_yaml()}\n---"


def write_assembled_card(
    path: Path, report: CompressionReport, config: Any, family: str, repo_id: str | None = None
) -> Path:
    """README.md for an exported assembled model: plan, ratios and how to load it."""
    teacher = getattr(config, "teacher_name_or_path", None) or "a teacher"
    ratio = format_ratio(report.layer_ratio)
    text = f"""{card_metadata(config, family, ["compressed", f"compression-{ratio}"])}

# {ratio} modular assembly of {teacher}

This is a stock `{family}` checkpoint: an assembly of Modular Transformers modules chosen at
load time from one trained artifact, exported so that any tool loads it without hf_modular.

{report.to_markdown()}
Plan (JSON, teacher layer indices; `[s, e]` is the module that replaces layers s..e-1):
`{report.plan.to_json()}`

```python
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained("{repo_id or path.name}")
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
    rows = ["| ratio | encoder layers | decoder layers | load |", "|---:|---:|---:|---|"]
    for spec in ratios:
        plan = model.resolve_plan(spec)
        load = f'`from_pretrained("{name}", assemble="{spec}")`'
        if branches and spec in branches:
            load += f' or, without hf_modular, `from_pretrained("{name}", revision="{branches[spec]}")`'
        rows.append(f"| {spec} | {plan.encoder.num_steps} | {plan.decoder.num_steps} | {load} |")
    measured = ""
    if table is not None:
        measured = f"## Measured quality and speed\n\n{table.to_markdown()}\n"
        if (path / PLOT_NAME).exists():
            measured += f"![quality vs speedup]({PLOT_NAME})\n"
    text = f"""{card_metadata(model.config, family, ["compressed"])}

# Modular Transformers artifact of {teacher}

One trained artifact, every size: its modules replace runs of 2 or more consecutive teacher
layers, and `from_pretrained(..., assemble=...)` builds the size you ask for at load time
(only that size's layers are created). Ratios count transformer-layer parameters.

```python
import hf_modular  # registers the modular model types with the Auto classes
from transformers import AutoModelForSeq2SeqLM

model = AutoModelForSeq2SeqLM.from_pretrained("{name}", assemble="{ratios[len(ratios) // 2]}")
```

## Assemblies

{chr(10).join(rows)}

{measured}"""
    card = path / CARD_NAME
    card.write_text(text, encoding="utf-8")
    return card
