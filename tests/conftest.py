"""Tiny T5 and BART teachers built from configs, and helpers shared by the tests."""

from __future__ import annotations

import inspect

import pytest
import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    DynamicCache,
    EncoderDecoderCache,
    MarianConfig,
    MarianMTModel,
    MT5Config,
    MT5ForConditionalGeneration,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.models.t5.modeling_t5 import T5Block

from hf_modular.methods.modular.config import MODULAR_FIELDS
from hf_modular.methods.modular.modeling import ModularModelMixin
from hf_modular.plan import STACKS
from hf_modular.registry import get_method

VOCAB = 64
FAMILIES = ("t5", "bart")  # the families every method supports
# the families of the modular method's core contract (identity, plans, save/load, export): the
# ones above plus those added through one adapter and its family files
CORE_FAMILIES = (*FAMILIES, "mt5", "marian")
T5_LIKE = ("t5", "mt5")  # pad 0, EOS 1
# transformers 5.24 renamed generate()'s past_key_values keyword to cache (the old one warns until 6.0)
CACHE_KWARG = "cache" if "cache" in inspect.signature(T5Block.forward).parameters else "past_key_values"


def tiny_teacher(family: str, encoder_layers: int = 6, decoder_layers: int = 6, seed: int = 0):
    """A randomly initialised stock teacher small enough for many forward passes per test."""
    torch.manual_seed(seed)
    if family in T5_LIKE:
        config = (T5Config if family == "t5" else MT5Config)(
            vocab_size=VOCAB,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_heads=4,
            num_layers=encoder_layers,
            num_decoder_layers=decoder_layers,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
            dropout_rate=0.0,
        )
        return (T5ForConditionalGeneration if family == "t5" else MT5ForConditionalGeneration)(config).eval()
    # BART's layout; Marian is that with sinusoidal positions (pad 1 and EOS 2 for both here)
    layout = dict(
        vocab_size=VOCAB,
        d_model=32,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        max_position_embeddings=64,
        pad_token_id=1,
        eos_token_id=2,
        forced_eos_token_id=None,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    if family == "marian":
        return MarianMTModel(MarianConfig(**layout, decoder_vocab_size=VOCAB, decoder_start_token_id=1)).eval()
    config = BartConfig(**layout, bos_token_id=0, decoder_start_token_id=2)
    return BartForConditionalGeneration(config).eval()


def modular_class(family: str):
    return get_method("modular").model_class(family)


@torch.no_grad()
def perturb_modules(model, seed: int = 1) -> None:
    """Give every module weights of its own, so a plan that ran the wrong layer cannot pass."""
    generator = torch.Generator().manual_seed(seed)
    for name in STACKS:
        for param in model.planned_layers(name).pool.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.5)


def modular_model(family: str, encoder_layers: int = 6, decoder_layers: int = 6, **kwargs):
    teacher = tiny_teacher(family, encoder_layers, decoder_layers)
    model = modular_class(family).from_teacher(teacher, **kwargs).eval()
    perturb_modules(model)
    return teacher, model


def sample_inputs(family: str, batch: int = 3, length: int = 9, seed: int = 2) -> dict[str, torch.Tensor]:
    """A padded batch: the last row is shorter, so attention masks matter."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB, (batch, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    pad = 0 if family in T5_LIKE else 1
    input_ids[-1, -3:] = pad
    attention_mask[-1, -3:] = 0
    decoder_input_ids = torch.randint(3, VOCAB, (batch, 5), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids}


@torch.no_grad()
def stock_model_with_plan(model):
    """A stock T5/BART built directly, its layers copied one by one from the modular model's plan."""
    adapter = model.adapter
    config_values = model.config.to_dict()
    for key in (*MODULAR_FIELDS, "model_type", "architectures"):
        config_values.pop(key, None)
    plan = model.active_plan
    config_values[adapter.depth_fields[0]] = plan.encoder.num_steps
    config_values[adapter.depth_fields[1]] = plan.decoder.num_steps
    stock = adapter.stock_model_class(adapter.stock_config_class(**config_values)).eval()
    for name in STACKS:
        source, target = model.planned_layers(name), getattr(adapter.stack(stock, name), adapter.layers_attr)
        assert len(target) == plan.stack(name).num_steps
        for position, span in enumerate(plan.stack(name).spans):
            layer = source.specialised[plan.specialised_key][position] if plan.specialised else source.get(span)
            target[position].load_state_dict(layer.state_dict())
    shared = {k: v for k, v in model.state_dict().items() if f".{adapter.layers_attr}." not in k}
    result = stock.load_state_dict(shared, strict=False)
    assert not result.unexpected_keys
    assert all(f".{adapter.layers_attr}." in k for k in result.missing_keys)
    stock.generation_config = model.generation_config
    return stock


def generate(model, inputs: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    """Greedy/beam generation of a fixed length. Stock T5 sizes its default cache from the encoder
    depth and fails when the decoder is deeper, so stock models get a cache that grows."""
    if not isinstance(model, ModularModelMixin) and kwargs.get("use_cache", True):
        kwargs.setdefault(CACHE_KWARG, EncoderDecoderCache(DynamicCache(), DynamicCache()))
    kwargs.setdefault("max_new_tokens", 6)
    kwargs.setdefault("min_new_tokens", kwargs["max_new_tokens"])  # no early EOS: compare every step
    return model.generate(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], do_sample=False, **kwargs
    )


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


def copy_task(family: str, size: int = 64, length: int = 8, seed: int = 3) -> list[dict[str, torch.Tensor]]:
    """A small learnable task: the labels are the input tokens in reverse, then EOS."""
    generator = torch.Generator().manual_seed(seed)
    eos = 1 if family in T5_LIKE else 2
    rows = []
    for _ in range(size):
        tokens = torch.randint(3, VOCAB, (length,), generator=generator)
        rows.append(
            {
                "input_ids": tokens,
                "attention_mask": torch.ones(length, dtype=torch.long),
                "labels": torch.cat([tokens.flip(0), torch.tensor([eos])]),
            }
        )
    return rows


def ragged_copy_task(family: str, size: int = 8, seed: int = 4) -> list[dict[str, torch.Tensor]]:
    """Like copy_task, with lengths 3..9, so micro-batches hold different numbers of tokens."""
    generator = torch.Generator().manual_seed(seed)
    eos = 1 if family in T5_LIKE else 2
    rows = []
    for _ in range(size):
        length = int(torch.randint(3, 10, (), generator=generator))
        tokens = torch.randint(3, VOCAB, (length,), generator=generator)
        rows.append({"input_ids": tokens, "labels": torch.cat([tokens.flip(0), torch.tensor([eos])])})
    return rows


def pad_collator(family: str):
    """Right-pads input_ids (attention_mask 0) and labels (-100)."""
    pad = 0 if family in T5_LIKE else 1

    def collate(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        label_width = max(len(r["labels"]) for r in rows)
        input_ids = torch.full((len(rows), width), pad)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), label_width), -100)
        for i, row in enumerate(rows):
            input_ids[i, : len(row["input_ids"])] = row["input_ids"]
            attention_mask[i, : len(row["input_ids"])] = 1
            labels[i, : len(row["labels"])] = row["labels"]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}

    return collate


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A running in-memory Hub (tests/fake_hub.py) that huggingface_hub and transformers talk to for this test, with a
    dummy token and an empty HF_HOME under tmp_path; everything is undone afterwards."""
    from fake_hub import FakeHub, use_fake_hub

    with FakeHub() as hub:
        use_fake_hub(monkeypatch, hub, tmp_path / "hf_home")
        yield hub


def _declared_requirements():
    """hf_modular's install requirements as installed (setup.py's INSTALL_REQUIRES)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    return [r for r in map(Requirement, requires("hf_modular") or ()) if r.marker is None]


def pytest_terminal_summary(terminalreporter) -> None:
    """Record in every test log (also under -q) which versions of hf_modular's dependencies ran."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for requirement in _declared_requirements():
        try:
            found.append(f"{requirement.name} {version(requirement.name)}")
        except PackageNotFoundError:
            found.append(f"{requirement.name} missing")
    terminalreporter.write_line("hf_modular dependencies: " + ", ".join(found))
