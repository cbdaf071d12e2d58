"""ModularConfigMixin: the fields and validation every family's modular config shares."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transformers.configuration_utils import PreTrainedConfig

from ...configuration_utils import MethodConfigMixin, architecture_values
from ...errors import ConfigError
from ...plan import STACKS, default_module_sizes
from ...validation import is_int, is_real
from .assembly import check_strategy, parse_ratio

MODULAR_FIELDS = (
    "module_sizes",
    "assemble",
    "assemble_strategy",
    "calibrated_plans",
    "plan_scores",
    "specialised_plans",
    "teacher_name_or_path",
)


@dataclass(kw_only=True, repr=False)
class ModularConfigMixin(MethodConfigMixin):
    """Declared fields:

    module_sizes: granularities of the module pools (each module replaces that many layers).
        ``None``: every divisor of the stack depth from 2 up. A list applies to both stacks; a
        dict ``{"encoder": [...], "decoder": [...]}`` sets them per stack.
    assemble: which model to build: ``None`` (the whole artifact, run as the teacher), a ratio
        such as ``"3x"`` or ``"1.5x"``, or an explicit plan ``{"encoder": [...], "decoder": [...]}``.
        Only the weights the plan needs are built and loaded.
    assemble_strategy: how a ratio becomes a plan: "auto" (the default: "measured" when
        ``plan_scores`` is present, else "size-first"), "measured", "size-first", "speed-first"
        or "calibrated" (see ``hf_modular.methods.modular.assembly``).
    calibrated_plans: ``{"3x": plan, ...}`` chosen on data by ``calibrate_assembly``.
    plan_scores: the measured quality of every plan (``measure_plans``): ``{"metric": ...,
        "examples": n, "tolerance_se": z, "plans": [{"plan": plan dict, "score": lower is better,
        "front": true on the served front}, ...]}``.
    specialised_plans: plans that run on layers of their own (``[{"encoder": [...], "decoder":
        [...]}, ...]``), copied out of the shared layers and trained for that plan alone in the last
        ``specialised_steps`` of the phase; add one with ``add_specialised_plan("1.5x")``.
    teacher_name_or_path: where the teacher came from (for model cards).
    """

    module_sizes: list[int] | dict[str, list[int]] | None = None
    assemble: str | dict[str, Any] | None = None
    assemble_strategy: str = "auto"
    calibrated_plans: dict[str, dict[str, Any]] | None = None
    plan_scores: dict[str, Any] | None = None
    specialised_plans: list[dict[str, Any]] | None = None

    def validate_fields(self) -> None:
        self.validate_modular_fields()

    @classmethod
    def from_teacher_config(cls, teacher_config: PreTrainedConfig, **fields: Any) -> ModularConfigMixin:
        """The modular config of a stock teacher config (same architecture, plus modular fields)."""
        if not isinstance(teacher_config, cls.adapter.stock_config_class) or isinstance(teacher_config, cls):
            raise ConfigError(
                f"{cls.__name__} converts a {cls.adapter.stock_config_class.__name__}, got "
                f"{type(teacher_config).__name__} (model_type {getattr(teacher_config, 'model_type', None)!r})"
            )
        return cls(**architecture_values(teacher_config), **fields)

    def stack_depth(self, name: str) -> int:
        return self.adapter.depth(self, name)  # type: ignore[arg-type]

    def stack_module_sizes(self, name: str) -> tuple[int, ...]:
        sizes = self.module_sizes
        if sizes is None:
            return default_module_sizes(self.stack_depth(name))
        if isinstance(sizes, Mapping):
            return tuple(sorted(set(sizes.get(name, default_module_sizes(self.stack_depth(name))))))
        return tuple(sorted(set(sizes)))

    def validate_modular_fields(self) -> None:
        sizes = self.module_sizes
        if sizes is not None:
            if isinstance(sizes, Mapping):
                unknown = sorted(str(k) for k in sizes if k not in STACKS)
                if unknown:
                    raise ConfigError(f"module_sizes has unknown keys {unknown}; allowed: {list(STACKS)}")
                per_stack = {name: sizes[name] for name in STACKS if name in sizes}
            elif isinstance(sizes, (list, tuple)):
                per_stack = {name: sizes for name in STACKS}
            else:
                raise ConfigError(
                    f"module_sizes={sizes!r}: use None, a list of ints, or a dict "
                    f"{{'encoder': [...], 'decoder': [...]}}"
                )
            for name, values in per_stack.items():
                depth = self.stack_depth(name)
                if not isinstance(values, (list, tuple)) or not all(is_int(v) for v in values):
                    raise ConfigError(f"module_sizes for the {name}: {values!r} is not a list of ints")
                bad = [v for v in values if not 2 <= v <= depth]
                if bad:
                    raise ConfigError(
                        f"module_sizes {bad} for the {name}: a module replaces 2 to {depth} layers "
                        f"(the {name} has {depth}); use a dict to set sizes per stack"
                    )
        check_strategy(self.assemble_strategy)
        if isinstance(self.assemble, str):
            parse_ratio(self.assemble)
        elif self.assemble is not None and not isinstance(self.assemble, Mapping):
            raise ConfigError(
                f"assemble={self.assemble!r}: use None, a ratio such as '3x', or a plan dict "
                f"{{'encoder': [...], 'decoder': [...]}}"
            )
        plans = self.calibrated_plans
        if plans is not None and not (
            isinstance(plans, Mapping) and all(isinstance(k, str) and isinstance(v, Mapping) for k, v in plans.items())
        ):
            raise ConfigError(f"calibrated_plans={plans!r}: expected a dict {{'3x': plan dict, ...}}")
        specialised = self.specialised_plans
        if specialised is not None and not (
            isinstance(specialised, list) and all(isinstance(p, Mapping) for p in specialised)
        ):
            raise ConfigError(
                f"specialised_plans={specialised!r}: expected a list of plan dicts [{{'encoder': [...], "
                f"'decoder': [...]}}, ...]"
            )
        scores = self.plan_scores
        if scores is not None:
            entries = scores.get("plans") if isinstance(scores, Mapping) else None
            if not (
                isinstance(entries, list)
                and entries
                and all(
                    isinstance(e, Mapping)
                    and isinstance(e.get("plan"), Mapping)
                    and is_real(e.get("score"))
                    and math.isfinite(e["score"])
                    and isinstance(e.get("front", False), bool)
                    for e in entries
                )
            ):
                raise ConfigError(
                    "plan_scores must be {'metric': str, 'examples': int, 'plans': [{'plan': plan dict, 'score': "
                    "finite number, 'front': optional bool}, ...]} (written by measure_plans), "
                    f"got {str(scores)[:200]}"
                )
