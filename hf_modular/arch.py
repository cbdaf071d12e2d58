"""Family adapters: the only place that knows how a T5 or a BART stack holds its layers.

Everything that changes which layers run (assembly, training, export, the other methods) goes
through an adapter, so the rest of the library is family-agnostic. An adapter answers four
questions: where a stack is, what its layer list is called, how to build one more layer of
that stack, and which parameters only the first layer of a stack owns.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import transformers
from torch import Tensor, nn
from transformers import BartConfig, MarianConfig, MT5Config, T5Config
from transformers.configuration_utils import PreTrainedConfig

if TYPE_CHECKING:
    from transformers.modeling_utils import PreTrainedModel


@dataclass(frozen=True)
class ArchAdapter:
    family: str
    stock_config_class: type[PreTrainedConfig]
    stock_model_name: str  # the transformers class, imported when first used (import hf_modular stays light)
    layers_attr: str
    depth_fields: tuple[str, str]  # config fields holding the encoder and decoder depth
    layer_factory: Callable[[PreTrainedConfig, str, bool], nn.Module]  # (stack config, stack name, owns start)
    size_fields: tuple[str, ...]  # integer architecture fields that must be positive
    ffn_fields: tuple[str, str]  # config fields holding the (encoder, decoder) feed-forward widths
    start_only_params: tuple[str, ...] = ()  # parameter-name fragments owned by position 0 only
    # (regex over a parameter name, kind) for the weight matrices methods may compress; the regex's
    # first group is the stack. Kinds: <stack>.<self|cross>_attention.<q|k|v|o>, <stack>.ffn.<in|out>.
    weight_kinds: tuple[tuple[str, str], ...] = ()
    # paths inside a layer: self-attention query, key and value, cross-attention query (PET shares
    # them; COST-EFF's early exit fills skipped layers' self-attention cache through key and value)
    # config -> the stock model's exact parameter count, without building it
    parameter_count: Callable[[PreTrainedConfig], int] = lambda config: 0
    self_query: str = ""
    self_key: str = ""
    self_value: str = ""
    cross_query: str = ""
    self_attention_norm: str = ""  # the norm applied before self-attention (pre-norm T5), "" if none
    head_dim_attr: str = ""  # attribute of an attention module holding its head size
    head_fields: tuple[str, str] = ("", "")  # config fields holding the (encoder, decoder) head counts
    # Attention kinds whose head identity is shared by all layers of a stack: T5's first layer
    # computes a relative position bias per head that every later layer adds to the same head.
    tied_head_attention: tuple[str, ...] = ()
    final_norm: str = ""  # the decoder stack's norm before the LM head, "" if its layers end normed
    # (model, normed decoder state) -> vocabulary logits, exactly as the stock forward computes them
    vocab_projection: Callable[[nn.Module, Tensor], Tensor] | None = None
    position_limit_field: str = ""  # config field bounding the embedded length (BART's learned positions)
    # The stock attention derives its head size as d_model / heads (BART), so a head-pruned model
    # must carry the head size in its config and rebuild its attention projections to match:
    # (attention module, heads, head size) -> None, resizing it in place.
    resize_attention: Callable[[nn.Module, int, int], None] | None = None
    attention_class_name: str = ""  # the stock attention class resize_attention applies to

    @property
    def stock_model_class(self) -> type[PreTrainedModel]:
        return getattr(transformers, self.stock_model_name)

    def stack(self, model: nn.Module, name: str) -> nn.Module:
        return model.get_encoder() if name == "encoder" else model.get_decoder()

    def max_positions(self, config: PreTrainedConfig) -> int | None:
        """The longest sequence the model can embed (BART's learned positions), None if unbounded (T5)."""
        return getattr(config, self.position_limit_field, None) if self.position_limit_field else None

    def layers_prefix(self, model: nn.Module, name: str) -> str:
        """State-dict prefix of a stack's layers in ``model`` (``"model.encoder.layers."`` for BART)."""
        stack = self.stack(model, name)
        qualified = next(n for n, m in model.named_modules() if m is stack)
        return f"{qualified}.{self.layers_attr}."

    def depth(self, config: PreTrainedConfig, name: str) -> int:
        return int(getattr(config, self.depth_fields[0 if name == "encoder" else 1]))

    def new_layer(self, stack: nn.Module, name: str, owns_start: bool) -> nn.Module:
        """One more layer with exactly the architecture of this stack's teacher layers."""
        return self.layer_factory(stack.config, name, owns_start)

    def estimate_parameters(self, config: PreTrainedConfig) -> int:
        """The stock model's parameter count, from the config alone (heads, head size, gated FFNs,
        position tables included), so an absurd config is refused before anything is allocated."""
        return self.parameter_count(config)

    def weight_kind(self, param_name: str) -> str | None:
        """The kind of a weight matrix (``decoder.cross_attention.q``, ``embeddings``...), or None."""
        for pattern, kind in self.weight_kinds:
            match = re.fullmatch(pattern, param_name)
            if match:
                return kind.format(stack=match.group(1)) if match.groups() else kind
        return None

    def layer_linears(self, model: nn.Module, name: str) -> list[list[tuple[str, str, nn.Linear]]]:
        """Per layer of stack ``name``: (qualified module name, kind without the stack, module) of
        each weight matrix ``weight_kinds`` knows (``self_attention.q``, ``ffn.in``...)."""
        prefix = self.layers_prefix(model, name)
        per_layer = []
        for index, layer in enumerate(getattr(self.stack(model, name), self.layers_attr)):
            found = []
            for path, module in layer.named_modules():
                kind = self.weight_kind(f"{prefix}{index}.{path}.weight") if isinstance(module, nn.Linear) else None
                if kind is not None:
                    found.append((f"{prefix}{index}.{path}", kind.split(".", 1)[1], module))
            per_layer.append(found)
        return per_layer

    def per_layer_params(self, layer: nn.Module) -> int:
        """Parameters a layer has at any position (without what only position 0 owns)."""
        return sum(
            p.numel()
            for n, p in layer.named_parameters()
            if not any(fragment in n for fragment in self.start_only_params)
        )


def _t5_layer(config: PreTrainedConfig, name: str, owns_start: bool) -> nn.Module:
    from transformers.models.t5.modeling_t5 import T5Block

    return T5Block(config, has_relative_attention_bias=owns_start, layer_idx=0)


def _mt5_layer(config: PreTrainedConfig, name: str, owns_start: bool) -> nn.Module:
    from transformers.models.mt5.modeling_mt5 import MT5Block

    return MT5Block(config, has_relative_attention_bias=owns_start, layer_idx=0)


def _t5_vocab_projection(model: nn.Module, hidden: Tensor) -> Tensor:
    if getattr(model.config, "scale_decoder_outputs", model.config.tie_word_embeddings):
        hidden = hidden * (model.config.d_model**-0.5)
    return model.lm_head(hidden)


def _t5_parameters(config: PreTrainedConfig) -> int:
    d, inner, ffn = config.d_model, config.num_heads * config.d_kv, config.d_ff
    attention = 4 * d * inner
    feed_forward = (3 if getattr(config, "is_gated_act", False) else 2) * d * ffn
    bias = config.relative_attention_num_buckets * config.num_heads  # in the first layer of each stack
    encoder = config.num_layers * (attention + feed_forward + 2 * d) + bias + d
    decoder = config.num_decoder_layers * (2 * attention + feed_forward + 3 * d) + bias + d
    head = 0 if config.tie_word_embeddings else config.vocab_size * d
    return config.vocab_size * d + encoder + decoder + head


def _bart_parameters(config: PreTrainedConfig) -> int:
    # learned positions with BART's offset of 2 rows, and a layer norm on each stack's embeddings
    return _bart_like_parameters(
        config, 2 * (config.max_position_embeddings + 2) * config.d_model, 2 * 2 * config.d_model
    )


def _marian_parameters(config: PreTrainedConfig) -> int:
    # a sinusoidal table per stack (a parameter that never trains), no embedding layer norms
    return _bart_like_parameters(config, 2 * config.max_position_embeddings * config.d_model, 0)


def _bart_like_parameters(config: PreTrainedConfig, positions: int, embedding_norms: int) -> int:
    d = config.d_model

    def attention(heads: int) -> int:
        inner = heads * (getattr(config, "attention_head_dim", None) or d // max(heads, 1))
        return 3 * (d * inner + inner) + inner * d + d

    def layer(heads: int, ffn: int, attentions: int) -> int:
        return attentions * (attention(heads) + 2 * d) + d * ffn + ffn + ffn * d + d + 2 * d

    encoder = config.encoder_layers * layer(config.encoder_attention_heads, config.encoder_ffn_dim, 1)
    decoder = config.decoder_layers * layer(config.decoder_attention_heads, config.decoder_ffn_dim, 2)
    return config.vocab_size * d + positions + encoder + decoder + embedding_norms


def _bart_vocab_projection(model: nn.Module, hidden: Tensor) -> Tensor:
    return model.lm_head(hidden) + model.final_logits_bias.to(hidden.device)


def _bart_layer(config: PreTrainedConfig, name: str, owns_start: bool) -> nn.Module:
    from transformers.models.bart.modeling_bart import BartDecoderLayer, BartEncoderLayer

    return (BartEncoderLayer if name == "encoder" else BartDecoderLayer)(config, layer_idx=0)


def _marian_layer(config: PreTrainedConfig, name: str, owns_start: bool) -> nn.Module:
    from transformers.models.marian.modeling_marian import MarianDecoderLayer, MarianEncoderLayer

    return (MarianEncoderLayer if name == "encoder" else MarianDecoderLayer)(config, layer_idx=0)


def _resize_bart_attention(attention: nn.Module, heads: int, head_dim: int) -> None:
    inner, bias = heads * head_dim, attention.q_proj.bias is not None
    device, dtype = attention.q_proj.weight.device, attention.q_proj.weight.dtype
    for name in ("q_proj", "k_proj", "v_proj"):
        setattr(attention, name, nn.Linear(attention.embed_dim, inner, bias=bias, device=device, dtype=dtype))
    attention.out_proj = nn.Linear(inner, attention.embed_dim, bias=bias, device=device, dtype=dtype)
    attention.num_heads, attention.head_dim, attention.scaling = heads, head_dim, head_dim**-0.5


_ADAPTERS: dict[str, ArchAdapter] = {}  # family -> adapter, in registration order


def register_adapter(adapter: ArchAdapter) -> ArchAdapter:
    """Add a supported family (called once, where its adapter is defined); ``adapter_for`` tries the
    families in registration order."""
    if adapter.family in _ADAPTERS and _ADAPTERS[adapter.family] != adapter:
        raise ValueError(f"a different adapter is already registered for family {adapter.family!r}")
    _ADAPTERS[adapter.family] = adapter
    return adapter


T5_ADAPTER = register_adapter(
    ArchAdapter(
        family="t5",
        stock_config_class=T5Config,
        stock_model_name="T5ForConditionalGeneration",
        parameter_count=_t5_parameters,
        layers_attr="block",
        depth_fields=("num_layers", "num_decoder_layers"),
        layer_factory=_t5_layer,
        self_query="layer.0.SelfAttention.q",
        self_key="layer.0.SelfAttention.k",
        self_value="layer.0.SelfAttention.v",
        cross_query="layer.1.EncDecAttention.q",
        self_attention_norm="layer.0.layer_norm",
        head_dim_attr="key_value_proj_dim",
        head_fields=("num_heads", "num_heads"),
        tied_head_attention=("self_attention",),
        final_norm="final_layer_norm",
        vocab_projection=_t5_vocab_projection,
        size_fields=("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads"),
        ffn_fields=("d_ff", "d_ff"),
        # T5 computes relative position bias in the first layer of a stack and hands it on.
        start_only_params=("relative_attention_bias",),
        weight_kinds=(
            *(
                (
                    rf"(?:model\.)?(encoder|decoder)\.block\.(?:pool\.)?\w+\.layer\.0\.SelfAttention\.{m}\.weight",
                    f"{{stack}}.self_attention.{m}",
                )
                for m in "qkvo"
            ),
            *(
                (
                    rf"(?:model\.)?(decoder)\.block\.(?:pool\.)?\w+\.layer\.1\.EncDecAttention\.{m}\.weight",
                    f"{{stack}}.cross_attention.{m}",
                )
                for m in "qkvo"
            ),
            (
                r"(?:model\.)?(encoder|decoder)\.block\.(?:pool\.)?\w+\.layer\.\d\.DenseReluDense\.wi(?:_[01])?\.weight",
                "{stack}.ffn.in",
            ),
            (
                r"(?:model\.)?(encoder|decoder)\.block\.(?:pool\.)?\w+\.layer\.\d\.DenseReluDense\.wo\.weight",
                "{stack}.ffn.out",
            ),
            (r"shared\.weight", "embeddings"),
        ),
    )
)

BART_ADAPTER = register_adapter(
    ArchAdapter(
        family="bart",
        stock_config_class=BartConfig,
        stock_model_name="BartForConditionalGeneration",
        parameter_count=_bart_parameters,
        layers_attr="layers",
        depth_fields=("encoder_layers", "decoder_layers"),
        layer_factory=_bart_layer,
        self_query="self_attn.q_proj",
        self_key="self_attn.k_proj",
        self_value="self_attn.v_proj",
        cross_query="encoder_attn.q_proj",
        head_dim_attr="head_dim",
        head_fields=("encoder_attention_heads", "decoder_attention_heads"),
        vocab_projection=_bart_vocab_projection,
        position_limit_field="max_position_embeddings",
        resize_attention=_resize_bart_attention,
        attention_class_name="BartAttention",
        size_fields=(
            "vocab_size",
            "d_model",
            "encoder_layers",
            "decoder_layers",
            "encoder_ffn_dim",
            "decoder_ffn_dim",
            "encoder_attention_heads",
            "decoder_attention_heads",
            "max_position_embeddings",
        ),
        ffn_fields=("encoder_ffn_dim", "decoder_ffn_dim"),
        weight_kinds=(
            *(
                (
                    rf"model\.(encoder|decoder)\.layers\.(?:pool\.)?\w+\.self_attn\.{p}_proj\.weight",
                    f"{{stack}}.self_attention.{m}",
                )
                for p, m in (("q", "q"), ("k", "k"), ("v", "v"), ("out", "o"))
            ),
            *(
                (
                    rf"model\.(decoder)\.layers\.(?:pool\.)?\w+\.encoder_attn\.{p}_proj\.weight",
                    f"{{stack}}.cross_attention.{m}",
                )
                for p, m in (("q", "q"), ("k", "k"), ("v", "v"), ("out", "o"))
            ),
            (r"model\.(encoder|decoder)\.layers\.(?:pool\.)?\w+\.fc1\.weight", "{stack}.ffn.in"),
            (r"model\.(encoder|decoder)\.layers\.(?:pool\.)?\w+\.fc2\.weight", "{stack}.ffn.out"),
            (r"model\.shared\.weight", "embeddings"),
        ),
    )
)


# mT5 is T5 with its own classes (gated-GELU feed-forward and untied embeddings by default, both
# config choices T5 already has): the same stack layout and parameter names, other layer classes.
MT5_ADAPTER = register_adapter(
    dataclasses.replace(
        T5_ADAPTER,
        family="mt5",
        stock_config_class=MT5Config,
        stock_model_name="MT5ForConditionalGeneration",
        layer_factory=_mt5_layer,
    )
)

# Marian (opus-mt translation models) is BART's layout with sinusoidal positions and no embedding
# layer norms: the same stacks, parameter names and LM head (with its final_logits_bias).
MARIAN_ADAPTER = register_adapter(
    dataclasses.replace(
        BART_ADAPTER,
        family="marian",
        stock_config_class=MarianConfig,
        stock_model_name="MarianMTModel",
        layer_factory=_marian_layer,
        parameter_count=_marian_parameters,
        attention_class_name="MarianAttention",
    )
)


def adapter_for(model: nn.Module) -> ArchAdapter:
    """The adapter of a stock model of a supported family (subclasses such as the modular models included)."""
    for adapter in _ADAPTERS.values():
        if isinstance(model, adapter.stock_model_class):
            return adapter
    supported = ", ".join(adapter.stock_model_name for adapter in _ADAPTERS.values())
    raise TypeError(f"hf_modular supports {supported} models, got {type(model).__name__}")
