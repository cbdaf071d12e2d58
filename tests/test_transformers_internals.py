"""One test per transformers / peft internal that hf_modular relies on, named after it.

When a new release changes one of them, the test named after it fails first, with a message that
says which assumption broke and which part of hf_modular depends on it; the behaviour tests that
would fail later (assembly equivalence, early exit, checkpoints) only show the symptom.
docs/architecture.md ("Transformers internals we rely on") lists each internal with its test.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from conftest import modular_model, sample_inputs, tiny_teacher
from torch import nn
from transformers import DynamicCache, EncoderDecoderCache, Seq2SeqTrainer, Trainer

from hf_modular.arch import adapter_for
from hf_modular.methods.cost_eff.exits import decoder_cache
from hf_modular.plan import STACKS


class _RecordingLayers(nn.ModuleList):
    """A layer list that counts how the stack reaches its layers."""

    def __init__(self, layers: nn.ModuleList):
        super().__init__(layers)
        self.iterations = 0
        self.indexed = 0

    def __iter__(self):
        self.iterations += 1
        return super().__iter__()

    def __getitem__(self, index):
        self.indexed += 1
        return super().__getitem__(index)


@torch.no_grad()
def test_stacks_run_their_layers_by_iterating_the_layer_list(family):
    model = tiny_teacher(family, encoder_layers=2, decoder_layers=3)
    adapter = adapter_for(model)
    lists = {}
    for name in STACKS:
        stack = adapter.stack(model, name)
        lists[name] = _RecordingLayers(getattr(stack, adapter.layers_attr))
        setattr(stack, adapter.layers_attr, lists[name])
    model(**sample_inputs(family))
    for name, layers in lists.items():
        assert layers.iterations == 1 and layers.indexed == 0, (
            f"the {family} {name} stack reached its layer list `{adapter.layers_attr}` by "
            f"{layers.iterations} iteration(s) and {layers.indexed} index look-up(s) in one forward: hf_modular's "
            f"PlannedLayers (assembly) and ExitLayers (COST-EFF early exit) assume exactly one in-order iteration"
        )


def test_decoder_layers_are_called_with_the_encoder_decoder_cache(family):
    """COST-EFF's skip path finds the cache among a layer call's arguments (by type, since 5.24
    renamed the keyword past_key_values -> cache)."""
    model = tiny_teacher(family, encoder_layers=2, decoder_layers=2)
    adapter = adapter_for(model)
    decoder = adapter.stack(model, "decoder")
    seen: list[bool] = []

    def record(module, args, kwargs):
        seen.append(decoder_cache(args, kwargs) is not None)

    layers = getattr(decoder, adapter.layers_attr)
    handles = [layer.register_forward_pre_hook(record, with_kwargs=True) for layer in layers]
    try:
        inputs = sample_inputs(family)
        model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], max_new_tokens=3)
    finally:
        for handle in handles:
            handle.remove()
    assert seen and all(seen), (
        f"{family} decoder layers were called without an EncoderDecoderCache among their arguments during a "
        f"cached generate(): COST-EFF early exit (methods/cost_eff/exits.py, decoder_cache) can no longer fill "
        f"skipped layers' cache, so it would silently never skip"
    )


@torch.no_grad()
def test_layer_outputs_start_with_the_hidden_state(family):
    """Early-exit wrappers take a layer's hidden state from its output and hand the rest on."""
    model = tiny_teacher(family, encoder_layers=1, decoder_layers=1)
    adapter = adapter_for(model)
    captured = []
    layer = getattr(adapter.stack(model, "decoder"), adapter.layers_attr)[0]
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        model(**sample_inputs(family))
    finally:
        handle.remove()
    (output,) = captured
    hidden = output[0] if isinstance(output, tuple) else output
    expected = "a tuple (hidden, self-attention bias, cross-attention bias)" if family == "t5" else "a tensor"
    assert isinstance(hidden, torch.Tensor) and hidden.shape[-1] == model.config.d_model, (
        f"a {family} decoder layer returned {type(output).__name__}; hf_modular's ExitLayers expects {expected}"
    )
    if family == "t5":
        assert isinstance(output, tuple) and len(output) == 3, (
            "T5Block no longer returns (hidden, position_bias, encoder_decoder_position_bias): the stack hands the "
            "first layer's position bias on, and skipped early-exit layers must return the same tuple"
        )


@torch.no_grad()
def test_attention_layer_idx_is_the_cache_slot(family):
    """PlannedLayers.run numbers layer_idx in execution order because each attention module
    writes the cache slot ``layer_idx``; two layers on one slot must therefore corrupt the output."""
    model = tiny_teacher(family, encoder_layers=1, decoder_layers=2)
    adapter = adapter_for(model)
    inputs = sample_inputs(family)
    right = model(**inputs, use_cache=True).logits
    second = getattr(adapter.stack(model, "decoder"), adapter.layers_attr)[1]
    for module in second.modules():
        if hasattr(module, "layer_idx"):
            module.layer_idx = 0
    shared = model(**inputs, use_cache=True).logits
    assert (shared - right).abs().max() > 1e-4, (
        f"giving two {family} decoder layers the same layer_idx changed nothing: the KV cache is no longer keyed by "
        f"the attention modules' layer_idx, which PlannedLayers.run (hf_modular/methods/modular/layers.py) renumbers"
    )


def test_dynamic_cache_is_sized_by_get_text_config_decoder(family):
    """generate() pre-sizes its cache from config.get_text_config(decoder=True); the modular,
    PET and COST-EFF configs answer with the decoder depth (DecoderCacheDepthMixin)."""
    _, model = modular_model(family, encoder_layers=2, decoder_layers=4)
    cache = DynamicCache(config=model.config)
    assert len(cache.layers) == 4, (
        f"DynamicCache(config=...) made {len(cache.layers)} layers for a 2+4 modular {family} config: it no longer "
        f"sizes itself from get_text_config(decoder=True), which DecoderCacheDepthMixin "
        f"(hf_modular/configuration_utils.py) overrides"
    )


def test_keys_to_ignore_on_load_unexpected_is_read_per_instance(family, tmp_path):
    """Sparse loading (assemble=...) registers the plan's unused layers as expected-unused keys on
    the instance, so the stock loader reads only what the plan needs and reports nothing."""
    _, model = modular_model(family)
    model.save_pretrained(tmp_path / "artifact")
    _, info = type(model).from_pretrained(tmp_path / "artifact", assemble="3x", output_loading_info=True)
    assert not info["unexpected_keys"], (
        f"loading a 3x assembly reported unexpected keys {sorted(info['unexpected_keys'])[:3]}: transformers no "
        f"longer honours the instance attribute _keys_to_ignore_on_load_unexpected set by ModularModelMixin"
    )
    assert not info["missing_keys"]


# Trainer methods that hf_modular overrides, with the parameters it relies on.
TRAINER_HOOKS = {
    "compute_loss": ("model", "inputs", "return_outputs", "num_items_in_batch"),
    "get_batch_samples": ("epoch_iterator", "num_batches", "device"),
    "_save_checkpoint": ("model", "trial"),
    "_save": ("output_dir", "state_dict"),
    "_save_optimizer_and_scheduler": ("output_dir",),
    "_load_optimizer_and_scheduler": ("checkpoint",),
    "_save_rng_state": ("output_dir",),
    "_load_rng_state": ("checkpoint",),
    "_save_scaler": ("output_dir",),
    "_load_scaler": ("checkpoint",),
    "_get_output_dir": ("trial",),
    "_issue_warnings_after_load": ("load_result",),
}


@pytest.mark.parametrize("hook", sorted(TRAINER_HOOKS))
def test_trainer_hooks_keep_their_signatures(hook):
    method = getattr(Seq2SeqTrainer, hook, None)
    assert method is not None, (
        f"Trainer.{hook} is gone: CompressionTrainer / SafeCheckpointing (hf_modular/training) override it"
    )
    parameters = list(inspect.signature(method).parameters)[1:]
    assert parameters[: len(TRAINER_HOOKS[hook])] == list(TRAINER_HOOKS[hook]), (
        f"Trainer.{hook} now takes {parameters}, hf_modular's override expects {list(TRAINER_HOOKS[hook])}"
    )


def test_trainer_honours_loss_is_scaled_for_ga():
    source = inspect.getsource(Trainer)
    assert "loss_is_scaled_for_ga" in source, (
        "Trainer no longer reads loss_is_scaled_for_ga: CompressionTrainer normalises its loss over the whole "
        "optimizer step and must not be divided by the accumulation steps again"
    )


def test_trainer_checkpoint_names():
    from transformers.trainer import TRAINING_ARGS_NAME
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

    assert TRAINING_ARGS_NAME == "training_args.bin" and PREFIX_CHECKPOINT_DIR == "checkpoint", (
        "Trainer's checkpoint file names changed: SafeCheckpointing replaces training_args.bin and writes its "
        "manifest into checkpoint-<step>"
    )
    assert {"output_dir", "save_total_limit", "best_model_checkpoint", "use_mtime"} <= set(
        inspect.signature(rotate_checkpoints).parameters
    ), "transformers.trainer_utils.rotate_checkpoints changed its keywords (SafeCheckpointing rotates with them)"


def test_peft_target_module_tables_are_shared_with_lora():
    """hf_modular adds its model types to peft's default target-module table in place."""
    from peft.tuners.lora import model as lora_model
    from peft.utils import constants

    table = constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    assert getattr(lora_model, "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING", table) is table, (
        "peft's LoRA tuner no longer reads the shared TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING: "
        "hf_modular/integrations/peft.py registers its model types there"
    )
    assert table.get("modular_t5") == table["t5"] and table.get("modular_bart") == table["bart"]


def test_cached_generate_passes_a_growing_cache_under_the_keyword_our_tests_use():
    """The test helpers hand stock models a cache that grows (stock T5 sizes it by the encoder depth)."""
    from conftest import CACHE_KWARG

    model = tiny_teacher("t5", encoder_layers=2, decoder_layers=4)
    inputs = sample_inputs("t5")
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    model.generate(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], max_new_tokens=3, **{CACHE_KWARG: cache}
    )
    assert cache.get_seq_length() > 0, f"generate() ignored the cache passed as {CACHE_KWARG}="


def test_installed_versions_are_in_the_declared_ranges():
    """The suite certifies the declared ranges: a run on versions outside them proves nothing about them."""
    from importlib.metadata import version

    from conftest import _declared_requirements

    outside = [
        f"{r.name} {version(r.name)} (declared {r.specifier})"
        for r in _declared_requirements()
        if not r.specifier.contains(version(r.name), prereleases=True)
    ]
    assert not outside, f"installed versions outside setup.py's ranges: {outside}"


@pytest.mark.parametrize("tied", [True, False])
@torch.no_grad()
def test_t5_vocab_projection_follows_scale_decoder_outputs(tied):
    """COST-EFF's exits and slenderization compute logits from a decoder state the way the stock
    head does; T5 scales by d_model**-0.5 exactly when config.scale_decoder_outputs (5.x) says so."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_heads=4, num_layers=1, tie_word_embeddings=tied)
    model = T5ForConditionalGeneration(config).eval()
    outputs = model(**sample_inputs("t5"), output_hidden_states=True)
    projected = adapter_for(model).vocab_projection(model, outputs.decoder_hidden_states[-1])
    torch.testing.assert_close(
        projected,
        outputs.logits,
        msg=f"T5 logits (tie_word_embeddings={tied}) no longer follow config.scale_decoder_outputs: "
        f"hf_modular/arch.py _t5_vocab_projection must learn the new rule",
    )
