"""ModularRecipe: the training settings a family's modular models were tuned with.

Each family's model class holds its recipe (``ModularT5ForConditionalGeneration.recipe``), measured
on that family's dev words (docs/g2p.md); ``hf-modular compress`` takes its defaults from it and the
G2P examples train with it, so a tuned value lives in one place. Families nobody has tuned get the
family-neutral recipe, which is also what BART measured best.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

# Specialised steps per phase step when a plan is specialised: the measured G2P T5 run (600 per
# 1,470; a 4+4 warm-started from the phase came within 1.0 PER of its SFT student in 600 steps).
SPECIALISED_SHARE = 600 / 1470


@dataclass(frozen=True)
class ModularRecipe:
    """``CompressionTrainingArguments`` values for one modular phase, plus the sizes whose plans get
    layers of their own (``specialise``), trained for ``specialised_share`` x the phase's steps after it."""

    learning_rate: float = 1e-3
    plan_sampling: str = "granularities"
    module_lr_scales: Mapping[int, float] = field(default_factory=lambda: MappingProxyType({}))
    teacher_context_weight: float = 0.0
    teacher_context_row_stride: int = 1
    specialise: tuple[str, ...] = ()
    specialised_share: float = SPECIALISED_SHARE

    def specialised_steps(self, phase_steps: int) -> int:
        """The steps after a phase of ``phase_steps`` that train the specialised plans (0 without any)."""
        return max(1, round(phase_steps * self.specialised_share)) if self.specialise else 0

    def for_module_sizes(self, sizes: set[int]) -> ModularRecipe:
        """This recipe for a model whose modules have ``sizes``: rates for absent sizes dropped (a
        4-layer teacher has no 3- or 6-layer modules)."""
        kept = {size: scale for size, scale in self.module_lr_scales.items() if size in sizes}
        return replace(self, module_lr_scales=MappingProxyType(kept))

    def training_arguments(self, phase_steps: int) -> dict[str, Any]:
        """Keyword arguments for ``CompressionTrainingArguments``: ``max_steps`` counts the phase and
        the specialised steps."""
        tail = self.specialised_steps(phase_steps)
        return {
            "learning_rate": self.learning_rate,
            "plan_sampling": self.plan_sampling,
            "module_lr_scales": dict(self.module_lr_scales) or None,
            "teacher_context_weight": self.teacher_context_weight,
            "teacher_context_row_stride": self.teacher_context_row_stride,
            "max_steps": phase_steps + tail,
            "specialised_steps": tail,
        }

    def describe(self) -> str:
        """One line naming what the recipe sets beyond the family-neutral one."""
        parts = [f"{self.plan_sampling} plans at lr {self.learning_rate:g}"]
        if self.teacher_context_weight:
            rows = self.teacher_context_row_stride
            share = "every row" if rows == 1 else f"1 row in {rows}"
            parts.append(f"teacher-context weight {self.teacher_context_weight:g} on {share}")
        if self.module_lr_scales:
            parts.append("module lr scales " + ",".join(f"{k}:{v:g}" for k, v in sorted(self.module_lr_scales.items())))
        if self.specialise:
            parts.append(f"{', '.join(self.specialise)} specialised after the phase")
        return "; ".join(parts)


__all__ = ["SPECIALISED_SHARE", "ModularRecipe"]
