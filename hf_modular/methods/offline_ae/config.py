"""Settings of offline weight compression, validated when built."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from transformers import PretrainedConfig

from ...errors import ConfigError
from .metric import METRICS

METHODS = ("autoencoder", "svd")
MODES = ("joint", "per_matrix")
LOSSES = ("mse", "published")
DECODER_FRACTION, WHITENED_DECODER_FRACTION = 0.45, 0.2


@dataclass
class OfflineAEConfig:
    """How to compress.

    ``ratio``: original numbers of the targeted matrices over every number stored for them.
    ``targets``: matrix kinds to compress, e.g. ``"attention"``, ``"ffn"``, ``"q"``,
    ``"decoder.cross_attention"``, ``"encoder.ffn.out"``, ``"embeddings"`` (a target selects every
    kind that carries all its dot-separated parts). ``mode``: ``joint`` fits one coder per kind
    over the rows of all layers (one shared decoder), ``per_matrix`` one per matrix.
    ``decoder_fraction``: the autoencoder's share of each budget spent on its residual MLP (the
    rest: latents and the linear basis); by default 0.45, or 0.2 with ``input_whitening`` (set by
    ``compress(..., calibration=...)``), each chosen on G2P dev words. ``loss``: ``mse`` (squared
    error relative to the rows' mean square) or ``published`` (0.9091 mean(1 - cosine) + 0.0909
    RMSE). ``metric``: ``output`` codes values, keys, queries and FFN inputs as the matrix that
    reads them sees them (per head / per unit; nothing extra is stored), ``rows`` codes the raw
    rows. The defaults were tuned on G2P dev words (docs/offline_ae.md).
    """

    ratio: float = 4.0
    targets: Sequence[str] = ("attention", "ffn")
    mode: str = "joint"
    method: str = "autoencoder"
    decoder_fraction: float | None = None
    steps: int = 1500
    learning_rate: float = 3e-3
    loss: str = "mse"
    metric: str = "output"
    seed: int = 0
    input_whitening: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.decoder_fraction is None:
            # whitened rows have a flatter spectrum: the linear code earns more of the budget (docs/offline_ae.md)
            self.decoder_fraction = WHITENED_DECODER_FRACTION if self.input_whitening else DECODER_FRACTION
        if isinstance(self.targets, str):
            self.targets = (self.targets,)
        self.targets = tuple(self.targets)
        if not isinstance(self.ratio, (int, float)) or not 0.25 <= self.ratio <= 1000:
            # below 1 stores more than the original: only useful to check that a coder can be lossless
            raise ConfigError(f"ratio={self.ratio!r} must be a number from 0.25 to 1000 (original / stored numbers)")
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r}: allowed {list(MODES)}")
        if self.method not in METHODS:
            raise ConfigError(f"method={self.method!r}: allowed {list(METHODS)}")
        if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise ConfigError(f"targets={self.targets!r} must name at least one matrix kind")
        if not (isinstance(self.decoder_fraction, (int, float)) and 0.0 < self.decoder_fraction < 1.0):
            raise ConfigError(f"decoder_fraction={self.decoder_fraction!r} must be between 0 and 1 (exclusive)")
        if self.metric not in METRICS:
            raise ConfigError(f"metric={self.metric!r}: allowed {list(METRICS)}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r}: allowed {list(LOSSES)}")
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ConfigError(f"steps={self.steps!r} must be an integer >= 0")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate={self.learning_rate!r} must be > 0")

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["targets"] = list(self.targets)
        values.pop("progress")
        return values


class CompressedWeightsConfig(PretrainedConfig):
    """config.json of a compressed folder: the compressed model's own config (``base_config``)
    and the compression report; its model type routes the Auto classes to the loader below."""

    model_type = "hf_modular_compressed"

    def __init__(self, base_config: dict | None = None, compression: dict | None = None, **kwargs: Any):
        self.base_config = base_config or {}
        self.compression = compression or {}
        super().__init__(**kwargs)
