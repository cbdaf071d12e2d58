"""Parameter accounting of an assembled model against its teacher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...markdown import markdown_table
from ...plan import STACKS, Plan
from .assembly import format_ratio


@dataclass(frozen=True)
class StackCount:
    teacher_layers: int
    steps: int
    teacher_params: int
    assembled_params: int


@dataclass(frozen=True)
class CompressionReport:
    """``layer_ratio``: teacher transformer-layer parameters over the assembled model's.
    ``model_ratio``: the same for whole models (embeddings and LM head counted once in each).
    ``choice``: how the plan was chosen (the strategy and its reason)."""

    plan: Plan
    stacks: dict[str, StackCount]
    shared_params: int
    choice: str = ""

    @property
    def teacher_layer_params(self) -> int:
        return sum(s.teacher_params for s in self.stacks.values())

    @property
    def assembled_layer_params(self) -> int:
        return sum(s.assembled_params for s in self.stacks.values())

    @property
    def teacher_params(self) -> int:
        return self.shared_params + self.teacher_layer_params

    @property
    def assembled_params(self) -> int:
        return self.shared_params + self.assembled_layer_params

    @property
    def layer_ratio(self) -> float:
        return self.teacher_layer_params / self.assembled_layer_params

    @property
    def model_ratio(self) -> float:
        return self.teacher_params / self.assembled_params

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_json(),
            "layer_ratio": round(self.layer_ratio, 4),
            "model_ratio": round(self.model_ratio, 4),
            "teacher_params": self.teacher_params,
            "assembled_params": self.assembled_params,
            "teacher_layer_params": self.teacher_layer_params,
            "assembled_layer_params": self.assembled_layer_params,
            "layers": {name: [c.teacher_layers, c.steps] for name, c in self.stacks.items()},
            "choice": self.choice,
        }

    def to_markdown(self) -> str:
        rows = [
            [f"{name} layers", c.teacher_layers, c.steps, f"{c.teacher_layers / c.steps:.2f}x"]
            for name, c in ((name, self.stacks[name]) for name in STACKS)
        ]
        rows.append(
            [
                "transformer-layer parameters",
                f"{self.teacher_layer_params:,}",
                f"{self.assembled_layer_params:,}",
                format_ratio(self.layer_ratio),
            ]
        )
        rows.append(
            ["all parameters", f"{self.teacher_params:,}", f"{self.assembled_params:,}", format_ratio(self.model_ratio)]
        )
        chosen = f" (chosen by {self.choice})" if self.choice else ""
        table = markdown_table(["", "teacher", "assembled", "ratio"], rows, align="lrrr")
        return table + f"\n\nPlan: `{self.plan.describe()}`{chosen}\n"

    def __str__(self) -> str:
        return self.to_markdown()
