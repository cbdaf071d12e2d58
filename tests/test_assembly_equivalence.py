"""Invariants 1 and 2: the identity plan is the teacher; every plan is the stock model with its layers."""

from __future__ import annotations

import pytest
import torch

from hf_modular import STRATEGIES, measure_plans
from hf_modular.methods.modular.assembly import format_ratio
from tests.conftest import CORE_FAMILIES, generate, modular_model, sample_inputs, stock_model_with_plan

SHAPES = [(6, 6), (2, 4)]  # (encoder, decoder) depths; (2, 4) has a decoder deeper than its encoder


@pytest.fixture(params=CORE_FAMILIES)
def family(request) -> str:
    """Every family of the core contract, mT5 included (conftest's fixture covers T5 and BART)."""
    return request.param


@pytest.mark.parametrize(("encoder_layers", "decoder_layers"), SHAPES)
def test_identity_plan_is_the_teacher(family, encoder_layers, decoder_layers):
    teacher, model = modular_model(family, encoder_layers, decoder_layers)
    inputs = sample_inputs(family)
    assert model.active_plan.is_identity
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, teacher(**inputs).logits)
    assert torch.equal(generate(model, inputs), generate(teacher, inputs))
    assert torch.equal(generate(model, inputs, num_beams=3), generate(teacher, inputs, num_beams=3))


def assert_same_as_stock(model, family):
    stock = stock_model_with_plan(model)
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, stock(**inputs).logits), model.active_plan.describe()
    greedy = generate(model, inputs)
    assert torch.equal(greedy, generate(stock, inputs))
    assert torch.equal(greedy, generate(model, inputs, use_cache=False))
    beam = generate(model, inputs, num_beams=3)
    assert torch.equal(beam, generate(stock, inputs, num_beams=3))
    assert torch.equal(beam, generate(model, inputs, num_beams=3, use_cache=False))


@pytest.mark.parametrize(("encoder_layers", "decoder_layers"), SHAPES)
@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "calibrated"])
def test_every_reachable_ratio_equals_a_stock_model(family, encoder_layers, decoder_layers, strategy):
    _, model = modular_model(family, encoder_layers, decoder_layers)
    if strategy == "measured":  # needs the measured table; it may answer with a smaller plan
        measure_plans(model, [{k: v for k, v in sample_inputs(family).items() if k != "decoder_input_ids"}])
    ratios = model.reachable_ratios()
    assert len(ratios) > 3
    for ratio in ratios:
        model.assemble(format_ratio(ratio), strategy=strategy)
        report = model.compression_report()
        if strategy == "measured":
            assert report.layer_ratio >= ratio * 0.95
        else:
            assert report.layer_ratio == pytest.approx(ratio, rel=0.05)
        assert_same_as_stock(model, family)


@pytest.mark.parametrize(
    "plan",
    [
        {"encoder": [[0, 2], [2, 4], 4, 5], "decoder": [0, 1, [2, 4], [4, 6]]},  # module at position 0 (T5 bias)
        {"encoder": [[0, 6]], "decoder": [[0, 3], [3, 6]]},
        {"encoder": [0, 1, 2, 3, 4, 5], "decoder": [[0, 6]]},
        {"decoder": [[0, 2], 2, 3, 4, 5]},  # a missing stack runs its teacher layers
    ],
)
def test_explicit_plans_equal_a_stock_model(family, plan):
    _, model = modular_model(family)
    model.assemble(plan)
    assert model.active_plan.to_json() == {
        "encoder": plan.get("encoder", [0, 1, 2, 3, 4, 5]),
        "decoder": plan["decoder"],
    }
    assert_same_as_stock(model, family)


def test_deeper_decoder_keeps_all_its_cache_slots(family):
    # Stock T5 sizes generate()'s cache from the encoder depth; 2 encoder + 4 decoder layers
    # would fail with IndexError without the config's get_text_config override.
    _, model = modular_model(family, 2, 4)
    model.assemble({"encoder": [[0, 2]], "decoder": [0, 1, 2, 3]})
    assert model.config.get_text_config(decoder=True).num_hidden_layers == 4
    assert_same_as_stock(model, family)


def test_strategies_differ_where_they_should(family):
    _, model = modular_model(family)
    # 2x on 6+6: size-first halves both stacks; speed-first keeps the encoder whole and runs
    # the decoder as one module (decoder layers are larger, so that is still 2x in parameters).
    size_first = model.resolve_plan("2x", "size-first")
    speed_first = model.resolve_plan("2x", "speed-first")
    assert (size_first.encoder.num_steps, size_first.decoder.num_steps) == (3, 3)
    assert (speed_first.encoder.num_steps, speed_first.decoder.num_steps) == (6, 1)
    assert model.plan_space.plan_ratio(speed_first) == pytest.approx(2.0, rel=0.05)
    # 3x: only the balanced plan is within 5% of 3x, so both strategies agree on it.
    assert model.resolve_plan("3x", "speed-first") == model.resolve_plan("3x", "size-first")


def test_hidden_states_follow_the_plan(family):
    _, model = modular_model(family)
    model.assemble("2x")
    inputs = sample_inputs(family)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    assert len(out.encoder_hidden_states) == model.active_plan.encoder.num_steps + 1
    assert len(out.decoder_hidden_states) == model.active_plan.decoder.num_steps + 1
