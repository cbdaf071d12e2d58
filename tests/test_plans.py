"""Plan parsing, tiling search and the clear errors for every bad assemble spec."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForSeq2SeqLM

import hf_modular
from hf_modular import AssemblyError, ConfigError
from hf_modular.methods.modular.assembly import parse_ratio
from hf_modular.plan import Tilings, covering_tilings, default_module_sizes, module_spans
from tests.conftest import modular_model

BAD_SPECS = [
    ("0x", "at least 1x"),
    ("-2x", "not a ratio"),
    ("abc", "not a ratio"),
    ("3", "not a ratio"),
    ("", "not a ratio"),
    ("x", "not a ratio"),
    ("nanx", "not a ratio"),
    ("infx", "not a ratio"),
    ("0.5x", "at least 1x"),
    ("99x", "reachable ratios: 1x, "),
    ("5x", "reachable ratios: 1x, "),
    (3, "has type int"),
    (2.5, "has type float"),
    (True, "has type bool"),
    (["3x"], "has type list"),
    ({"encoder": [0, 1, 2, 4, 5], "decoder": [0, 1, 2, 3, 4, 5]}, "gap at layer 3"),
    ({"encoder": [0, 1, [1, 3], 3, 4, 5]}, "no module for span \\[1, 3\\)"),
    ({"encoder": [[0, 2], 1, 2, 3, 4, 5]}, "overlap at layer 1"),
    ({"encoder": [0, 1, 2, 3, 4]}, "stops at layer 5"),
    ({"encoder": [0, 1, 2, 3, 4, 5, 6]}, "out of range"),
    ({"encoder": [-1, 0, 1, 2, 3, 4, 5]}, "out of range"),
    ({"encoder": [True, 1, 2, 3, 4, 5]}, "bad encoder plan step True"),
    ({"encoder": [[0, True], 1, 2, 3, 4, 5]}, "bad encoder plan step"),
    ({"encoder": ["0", 1, 2, 3, 4, 5]}, "bad encoder plan step '0'"),
    ({"encoder": [[0, 2, 4], 4, 5]}, "bad encoder plan step"),
    ({"encoder": []}, "non-empty list"),
    ({"encoder": "0-6"}, "non-empty list"),
    ({"middle": [0]}, "unknown plan keys \\['middle'\\]"),
]


@pytest.fixture(scope="module")
def t5_model():
    return modular_model("t5")[1]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[repr(s) for s, _ in BAD_SPECS])
def test_bad_assemble_specs_raise_clear_errors(t5_model, spec, message):
    before = t5_model.active_plan
    with pytest.raises(AssemblyError, match=message) as error:
        t5_model.assemble(spec)
    assert isinstance(error.value, ValueError)
    assert t5_model.active_plan == before  # nothing changed


def test_bad_spec_through_from_pretrained_names_the_reachable_ratios(tmp_path):
    _, model = modular_model("t5")
    model.save_pretrained(tmp_path)
    with pytest.raises(
        AssemblyError, match=r"'99x' is not reachable.*reachable ratios: 1x, 1\.07x, .*, 2x, .*, 5\.94x$"
    ):
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path, assemble="99x")
    with pytest.raises(AssemblyError, match="not a ratio"):
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path, assemble="abc")


def test_bad_strategy(t5_model):
    with pytest.raises(AssemblyError, match="'fastest' is not one of"):
        t5_model.assemble("2x", strategy="fastest")


def test_calibrated_strategy_needs_a_calibrated_plan(t5_model):
    with pytest.raises(AssemblyError, match="needs a calibrated plan"):
        t5_model.assemble("2x", strategy="calibrated")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"module_sizes": [1]}, "a module replaces 2 to 6 layers"),
        ({"module_sizes": [7]}, "a module replaces 2 to 6 layers"),
        ({"module_sizes": "2"}, "use None, a list of ints"),
        ({"module_sizes": [2.0]}, "not a list of ints"),
        ({"module_sizes": {"middle": [2]}}, "unknown keys \\['middle'\\]"),
        ({"assemble": 3}, "assemble=3"),
        ({"assemble": "3"}, "not a ratio"),
        ({"assemble_strategy": "best"}, "'best' is not one of"),
        ({"calibrated_plans": ["3x"]}, "calibrated_plans="),
    ],
)
def test_config_validation(fields, message):
    with pytest.raises((ConfigError, AssemblyError), match=message):
        hf_modular.ModularT5Config(num_layers=6, **fields)


def test_per_stack_module_sizes():
    config = hf_modular.ModularT5Config(num_layers=6, num_decoder_layers=4, module_sizes={"decoder": [4]})
    assert config.stack_module_sizes("encoder") == (2, 3, 6)
    assert config.stack_module_sizes("decoder") == (4,)


@pytest.mark.parametrize(("text", "ratio"), [("3x", 3.0), ("1.5x", 1.5), (" 2X ", 2.0), ("1x", 1.0)])
def test_parse_ratio(text, ratio):
    assert parse_ratio(text) == ratio


def test_default_module_sizes():
    assert default_module_sizes(6) == (2, 3, 6)
    assert default_module_sizes(12) == (2, 3, 4, 6, 12)
    assert default_module_sizes(1) == ()


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(1, 24), sizes=st.sets(st.integers(2, 24), max_size=5))
def test_every_reachable_depth_has_a_valid_most_even_tiling(depth, sizes):
    sizes = {g for g in sizes if g <= depth}
    spans = module_spans(depth, sizes)
    tilings = Tilings(depth, spans)
    assert tilings.depths()[-1] == depth  # all teacher layers
    for steps in tilings.depths():
        plan = tilings.most_even(steps)
        assert plan.num_steps == steps
        position = 0
        for start, end in plan.spans:
            assert start == position and (end - start == 1 or (start, end) in spans)
            position = end
        assert position == depth


def test_most_even_prefers_even_spans_and_modules_on_top():
    tilings = Tilings(12, module_spans(12, default_module_sizes(12)))
    assert tilings.most_even(4).spans == ((0, 3), (3, 6), (6, 9), (9, 12))
    assert tilings.most_even(3).spans == ((0, 4), (4, 8), (8, 12))
    assert tilings.most_even(10).spans == (*((i, i + 1) for i in range(8)), (8, 10), (10, 12))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 9).flatmap(
        lambda d: st.tuples(
            st.just(d), st.sets(st.tuples(st.integers(0, d - 1), st.integers(1, d)).filter(lambda s: s[0] < s[1]))
        )
    )
)
def test_covering_tilings_run_every_stored_span_a_tiling_can_hold(case):
    """Each tiling uses stored spans only and covers [0, depth); together they use every stored span
    that lies on some tiling (a span no tiling holds, e.g. after a gap, is left out)."""
    depth, stored = case
    tilings = covering_tilings(depth, stored)
    used = set()
    for tiling in tilings:
        assert set(tiling.spans) <= stored and tiling.spans[0][0] == 0 and tiling.spans[-1][1] == depth
        assert all(a[1] == b[0] for a, b in itertools.pairwise(tiling.spans))
        used |= set(tiling.spans)
    on_a_tiling = {
        span for span in stored if _tiles(depth, stored, 0, span[0]) and _tiles(depth, stored, span[1], depth)
    }
    assert used == on_a_tiling
    assert len(tilings) <= len(stored)


def _tiles(depth: int, stored: set, start: int, end: int) -> bool:
    """Whether stored spans tile [start, end) (brute force)."""
    if start == end:
        return True
    return any(_tiles(depth, stored, e, end) for s, e in stored if s == start and e <= end)
