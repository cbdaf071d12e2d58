"""Model cards (README.md with Hub metadata) for the checkpoints hf_modular writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .assembly import format_ratio
from .report import CompressionReport


def _hub_id(name_or_path: str | None) -> str | None:
    """``name_or_path`` if it reads as a Hub repo id (``org/name`` or ``name``), not a local path."""
    if not name_or_path or Path(name_or_path).exists() or name_or_path.startswith((".", "/", "~")):
        return None
    parts = name_or_path.split("/")
    return name_or_path if len(parts) <= 2 and all(parts) else None


def _metadata(config: Any, family: str, extra_tags: list[str]) -> str:
    lines = ["---", "library_name: transformers", "tags:", "- hf_modular", f"- {family}"]
    lines += [f"- {tag}" for tag in extra_tags]
    base = _hub_id(getattr(config, "teacher_name_or_path", None))
    if base:
        lines.append(f"base_model: {base}")
    lines.append("---")
    return "\n".join(lines)


def write_assembled_card(path: Path, report: CompressionReport, config: Any, family: str) -> Path:
    """README.md for an exported assembled model: plan, ratios and how to load it."""
    teacher = getattr(config, "teacher_name_or_path", None) or "a teacher"
    ratio = format_ratio(report.layer_ratio)
    text = f"""{_metadata(config, family, ["modular-transformers", "compressed", f"compression-{ratio}"])}

# {ratio} modular assembly of {teacher}

This is a stock `{family}` checkpoint: an assembly of Modular Transformers modules chosen at
load time from one trained artifact, exported so that any tool loads it without hf_modular.

{report.to_markdown()}
Plan (JSON, teacher layer indices; `[s, e]` is the module that replaces layers s..e-1):
`{report.plan.to_json()}`

```python
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained("{path.name}")
```
"""
    card = path / "README.md"
    card.write_text(text, encoding="utf-8")
    return card
