"""COST-EFF model configs: a stock T5/BART config (at the slenderized widths) plus the exits.

Widths live in the stock fields (``num_heads`` / ``d_ff`` for T5, ``*_attention_heads`` /
``*_ffn_dim`` for BART), uniform over layers. A BART attention keeps its original head size
after pruning heads, which BART's config cannot express (it derives the head size from
``d_model``), so ``attention_head_dim`` records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from transformers import BartConfig, PreTrainedConfig, T5Config

from ...arch import BART_ADAPTER, T5_ADAPTER, ArchAdapter
from ...configuration_utils import MethodConfigMixin, architecture_values
from ...errors import ConfigError
from ...validation import is_int

EXIT_HEADS = ("shared", "affine")
CONFIDENCE_MEASURES = ("top_prob", "entropy")


@dataclass(kw_only=True, repr=False)
class CostEffConfigMixin(MethodConfigMixin):
    """Declared fields (besides ``teacher_name_or_path``):

    exit_layers: decoder layers (0-based) followed by an exit; empty = a slenderized model
        without exits. The last layer is always an exit when there are any: it is the model's output.
    exit_head: ``"shared"`` (each exit is the model's own final norm + LM head; no parameters)
        or ``"affine"`` (a per-exit scale and shift of the state before them, 2 x d_model each).
    exit_confidence: how an exit's confidence is measured at generation time: ``"top_prob"``
        (the top token's probability) or ``"entropy"`` (1 - entropy / log(vocabulary size)).
    attention_head_dim: BART only: the head size, when heads were pruned (None: d_model / heads).
    """

    exit_layers: list[int] | None = None
    exit_head: str = "shared"
    exit_confidence: str = "top_prob"
    attention_head_dim: int | None = None

    adapter: ClassVar[ArchAdapter]

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        depth = self.adapter.depth(self, "decoder")  # type: ignore[arg-type]
        layers = list(self.exit_layers or [])
        if any(not is_int(i) or not 0 <= i < depth for i in layers):
            raise ConfigError(f"exit_layers={layers!r}: give decoder layer indices in 0..{depth - 1}")
        self.exit_layers = sorted({*layers, depth - 1}) if layers else []
        if self.exit_head not in EXIT_HEADS:
            raise ConfigError(f"exit_head={self.exit_head!r}: allowed {list(EXIT_HEADS)}")
        if self.exit_confidence not in CONFIDENCE_MEASURES:
            raise ConfigError(f"exit_confidence={self.exit_confidence!r}: allowed {list(CONFIDENCE_MEASURES)}")
        if self.attention_head_dim is not None and not (
            isinstance(self.attention_head_dim, int) and self.attention_head_dim >= 1
        ):
            raise ConfigError(f"attention_head_dim={self.attention_head_dim!r} must be a positive integer or None")

    @classmethod
    def from_model_config(cls, config: PreTrainedConfig, **fields: Any) -> Any:
        """A COST-EFF config with ``config``'s architecture (stock or COST-EFF) and ``fields`` changed."""
        return cls(**{**architecture_values(config), **fields})


class CostEffT5Config(CostEffConfigMixin, T5Config):
    model_type = "cost_eff_t5"
    adapter: ClassVar[ArchAdapter] = T5_ADAPTER


class CostEffBartConfig(CostEffConfigMixin, BartConfig):
    model_type = "cost_eff_bart"
    adapter: ClassVar[ArchAdapter] = BART_ADAPTER
