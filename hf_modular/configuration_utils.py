"""The config base of every method's config classes: a stock T5/BART config plus declared fields.

transformers 5 configs are dataclasses; ``MethodConfigMixin`` is one too, so its annotated
attributes become declared config fields of each family config (which is what lets
``from_pretrained(path, assemble="3x")`` set them). Stock type checking is not inherited by
new fields, so they are validated here.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from huggingface_hub.errors import StrictDataclassFieldValidationError
from transformers.configuration_utils import PreTrainedConfig

from .arch import ArchAdapter
from .errors import ConfigError
from .plan import STACKS
from .validation import is_int

# Keys a saved T5/BART config carries besides its dataclass fields (derived or bookkeeping values).
KNOWN_EXTRA_KEYS = frozenset(
    {
        "model_type",
        "transformers_version",
        "_name_or_path",
        "name_or_path",  # AutoModel*.from_pretrained passes it to the config
        "architectures",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
        "torch_dtype",
        "dtype",
        "decoder_start_token_id",
        "tie_word_embeddings",
        "scale_decoder_outputs",
        "dense_act_fn",
        "is_gated_act",
    }
)
# Keys that would make transformers import code named by the checkpoint: never honoured.
CODE_KEYS = ("auto_map", "trust_remote_code")
MAX_PARAMETERS = 20_000_000_000  # a config describing more than this is refused before anything is built
MAX_LAYERS = 256

logger = logging.getLogger(__name__)


class DecoderCacheDepthMixin:
    """Reports the decoder's depth to whoever sizes the decoder's KV cache.

    Stock T5 and BART size ``generate()``'s cache from ``num_hidden_layers``, which is the
    *encoder* depth, so a decoder deeper than its encoder runs out of cache slots.
    """

    adapter: ClassVar[ArchAdapter]

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> PreTrainedConfig:
        config = super().get_text_config(decoder=decoder, encoder=encoder)  # type: ignore[misc]
        depth = self.adapter.depth(self, "decoder")  # type: ignore[arg-type]
        if decoder and not encoder and config.num_hidden_layers != depth:
            config = copy.copy(config) if config is self else config
            config.num_hidden_layers = depth
        return config


def deep_decoder_stock_config_class(adapter: ArchAdapter) -> type[PreTrainedConfig]:
    """The stock config class of ``adapter`` with the decoder-depth cache sizing: an assembly whose
    decoder is deeper than its encoder is a stock model of this config (stock T5 in transformers
    5.23-5.24 cannot ``generate()`` such a model: its cache gets the encoder's depth). It saves as
    the stock model type, so plain transformers loads the checkpoint (and then needs the same fix)."""
    return _DEEP_DECODER_CONFIGS.setdefault(
        adapter.family,
        type(
            adapter.stock_config_class.__name__,
            (DecoderCacheDepthMixin, adapter.stock_config_class),
            {"adapter": adapter, "__module__": __name__, "__doc__": deep_decoder_stock_config_class.__doc__},
        ),
    )


_DEEP_DECODER_CONFIGS: dict[str, type[PreTrainedConfig]] = {}
IDENTITY_KEYS = ("model_type", "architectures", "transformers_version", "auto_map")


def architecture_values(config: PreTrainedConfig) -> dict[str, Any]:
    """A config's values without the keys that name its type: the input of another config class."""
    values = config.to_dict()
    for key in IDENTITY_KEYS:
        values.pop(key, None)
    return values


@dataclass(kw_only=True, repr=False)
class MethodConfigMixin(DecoderCacheDepthMixin):
    """The one config base of every method (modular, PET, COST-EFF): a stock config plus declared
    fields. Keys that would run code (``auto_map``, ``trust_remote_code``) are ignored with a
    warning, keys this version does not know are warned about and ignored (forward compatible),
    the architecture sizes are validated (and an impossibly large model refused) before anything
    is built, and a bad value in a checkpoint's dict is a ``ConfigError``. Subclasses validate
    their own fields in ``validate_fields``.

    teacher_name_or_path: where the uncompressed model came from (for model cards).
    """

    teacher_name_or_path: str | None = None

    adapter: ClassVar[ArchAdapter]

    def __post_init__(self, **kwargs: Any) -> None:
        fields = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(k for k in kwargs if k not in fields and k not in KNOWN_EXTRA_KEYS and k not in CODE_KEYS)
        for key in CODE_KEYS:
            if kwargs.pop(key, None):
                logger.warning(
                    "ignoring '%s' in a %s: hf_modular never runs code named by a config", key, self.model_type
                )
        super().__post_init__(**kwargs)  # type: ignore[misc]
        if getattr(self, "auto_map", None):
            logger.warning("ignoring 'auto_map' in a %s: hf_modular never runs code named by a config", self.model_type)
            del self.auto_map  # deleted, not None-d: a saved "auto_map": null breaks AutoConfig
        if unknown:  # from a newer version, most likely: forward compatible, so warn and carry on
            logger.warning("%s: ignoring config keys this version does not use: %s", type(self).__name__, unknown)
        self.validate_sizes()
        self.validate_fields()

    def validate_fields(self) -> None:
        """Refuse bad values of the method's own fields (called on every construction)."""

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """Build from a (checkpoint's) dict: every bad value becomes a ``ConfigError``."""
        try:
            return super().from_dict(config_dict, **kwargs)  # type: ignore[misc]
        except ConfigError:
            raise
        except (StrictDataclassFieldValidationError, TypeError, ValueError, KeyError, AttributeError) as error:
            raise ConfigError(f"invalid {cls.model_type} config: {error}") from error

    def validate_sizes(self) -> None:
        """Refuse sizes that are not positive or that describe an impossibly large model."""
        for field in self.adapter.size_fields:
            value = getattr(self, field)
            if not is_int(value) or value < 1:
                raise ConfigError(f"{field}={value!r}: must be a positive integer")
        for name in STACKS:
            depth = self.adapter.depth(self, name)  # type: ignore[arg-type]
            if depth > MAX_LAYERS:
                raise ConfigError(f"{name} depth {depth} exceeds {MAX_LAYERS} layers")
        estimate = self.adapter.estimate_parameters(self)
        if estimate > MAX_PARAMETERS:
            raise ConfigError(
                f"this config describes about {estimate:.3g} parameters (more than {MAX_PARAMETERS:.0e}); "
                f"refusing to build it"
            )
