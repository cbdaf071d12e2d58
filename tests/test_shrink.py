"""shrink_model: the shrink-and-fine-tune / layer-dropping student."""

from __future__ import annotations

import pytest
import torch

from hf_modular import ConfigError
from hf_modular.arch import adapter_for
from hf_modular.plan import STACKS
from hf_modular.shrink import alternating_layers, shrink_model
from tests.conftest import sample_inputs, tiny_teacher


def built_directly(teacher, adapter, keep):
    """A stock model with the kept layers copied module by module (the reference)."""
    values = teacher.config.to_dict()
    for field, name in zip(adapter.depth_fields, STACKS, strict=True):
        values[field] = len(keep[name])
    stock = type(teacher)(type(teacher.config)(**values)).eval()
    shared = {k: v for k, v in teacher.state_dict().items() if f".{adapter.layers_attr}." not in k}
    stock.load_state_dict(shared, strict=False)
    for name in STACKS:
        source = getattr(adapter.stack(teacher, name), adapter.layers_attr)
        target = getattr(adapter.stack(stock, name), adapter.layers_attr)
        for position, index in enumerate(keep[name]):
            state = dict(source[index].state_dict())
            if position == 0:  # T5: the first layer owns the position bias table
                state.update({k: v for k, v in source[0].state_dict().items() if "relative_attention_bias" in k})
            target[position].load_state_dict(state)
    return stock


@pytest.mark.parametrize("keep", [{"encoder": [0, 2, 5], "decoder": [0, 5]}, {"encoder": [1, 3], "decoder": [4]}])
def test_shrink_equals_a_stock_model_built_directly(family, keep):
    teacher = tiny_teacher(family)
    student = shrink_model(teacher, keep["encoder"], keep["decoder"]).eval()
    reference = built_directly(teacher, adapter_for(teacher), keep)
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(student(**inputs).logits, reference(**inputs).logits)
    assert type(student) is type(teacher)


def test_alternating_layers():
    assert alternating_layers(12, 6) == [0, 2, 4, 7, 9, 11]  # DistilBART 12-6
    assert alternating_layers(6, 3) == [0, 2, 5]
    assert alternating_layers(6, 1) == [0]
    with pytest.raises(ConfigError, match="cannot keep 7 of 6"):
        alternating_layers(6, 7)


@pytest.mark.parametrize("bad", [[], [6], [-1], [True], ["0"]])
def test_shrink_rejects_bad_layer_lists(bad):
    with pytest.raises(ConfigError, match="encoder layers"):
        shrink_model(tiny_teacher("t5"), bad, [0])
