"""PET student configs: a stock T5/BART config plus the sharing rules.

The depth fields (``num_layers`` / ``encoder_layers``...) are the *effective* depths that run;
with ``reuse_stack`` the stack stores half of them and runs its physical layers twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from transformers import BartConfig, PreTrainedConfig, T5Config

from ...arch import BART_ADAPTER, T5_ADAPTER, ArchAdapter
from ...configuration_utils import MethodConfigMixin, architecture_values
from ...errors import ConfigError
from ...plan import STACKS


@dataclass(kw_only=True, repr=False)
class PetConfigMixin(MethodConfigMixin):
    """Declared fields (besides ``teacher_name_or_path``):

    share_query: in each decoder layer, cross-attention uses the self-attention query projection.
    reuse_stack: each stack runs its physical layers twice (effective depth doubled); the
        encoder's second pass swaps the query and key projections.
    """

    share_query: bool = True
    reuse_stack: bool = True

    adapter: ClassVar[ArchAdapter]

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        for name, value in (("share_query", self.share_query), ("reuse_stack", self.reuse_stack)):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}={value!r} must be true or false")
        for name in STACKS:
            depth = self.adapter.depth(self, name)  # type: ignore[arg-type]
            if depth < 1 or (self.reuse_stack and depth % 2):
                raise ConfigError(
                    f"{name} depth {depth}: must be >= 1, and even when reuse_stack=True (it runs its layers twice)"
                )

    def physical_depth(self, name: str) -> int:
        depth = self.adapter.depth(self, name)  # type: ignore[arg-type]
        return depth // 2 if self.reuse_stack else depth

    @classmethod
    def from_teacher_config(cls, teacher_config: PreTrainedConfig, layers: tuple[int, int], **fields: Any) -> Any:
        """The student config: the teacher's architecture with ``layers`` physical layers per stack."""
        values = architecture_values(teacher_config)
        repeat = 2 if fields.get("reuse_stack", True) else 1
        for field, physical in zip(cls.adapter.depth_fields, layers, strict=True):
            values[field] = physical * repeat
        return cls(**values, **fields)


class PetT5Config(PetConfigMixin, T5Config):
    model_type = "pet_t5"
    adapter: ClassVar[ArchAdapter] = T5_ADAPTER


class PetBartConfig(PetConfigMixin, BartConfig):
    model_type = "pet_bart"
    adapter: ClassVar[ArchAdapter] = BART_ADAPTER
