"""Property-based tests of the parsers and config validation, and a fuzz harness for the loaders.

Whatever the input, only the library's typed errors (HfModularError, a ValueError) may come out:
never another exception, never a hang, never a crash of the interpreter.
"""

from __future__ import annotations

import itertools
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_modular import AssemblyError, HfModularError, ModularT5Config, ModularT5ForConditionalGeneration
from hf_modular.atomic_save import MANIFEST
from hf_modular.methods.modular.assembly import parse_ratio
from tests.conftest import modular_model

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
steps = st.one_of(
    st.integers(-2, 8),
    st.lists(st.integers(-2, 8), min_size=0, max_size=3),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
plans = st.dictionaries(st.sampled_from(["encoder", "decoder", "middle"]), st.lists(steps, max_size=8), max_size=3)


@pytest.fixture(scope="module")
def model():
    return modular_model("t5")[1]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.one_of(st.text(max_size=12), json_values, plans))
def test_any_spec_gives_a_plan_or_an_assembly_error(model, spec):
    try:
        plan = model.resolve_plan(spec)
    except AssemblyError:
        return
    # a plan that parsed is a valid tiling the model can run
    for name in ("encoder", "decoder"):
        spans = plan.stack(name).spans
        assert spans[0][0] == 0 and spans[-1][1] == 6
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=16))
def test_ratio_parser_accepts_exactly_numbers_with_x(text):
    try:
        ratio = parse_ratio(text)
    except AssemblyError:
        return
    assert ratio >= 1 and text.strip().lower().endswith("x")


FIELDS = ["module_sizes", "assemble", "assemble_strategy", "calibrated_plans", "num_layers", "d_model", "vocab_size"]


@settings(max_examples=300, deadline=None)
@given(values=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3))
def test_config_from_a_checkpoint_raises_only_config_errors(values):
    try:
        ModularT5Config.from_dict({"model_type": "modular_t5", **values})
    except HfModularError:
        return


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("pristine") / "artifact"
    modular_model("t5")[1].save_pretrained(path)
    return path


mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("header"), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("bytes"), st.binary(max_size=64)),
)


def mutate(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    if kind == "truncate":
        return data[: int(len(data) * arg)]
    if kind == "flip":
        data = bytearray(data)
        for where, mask in arg:
            data[min(int(len(data) * where), len(data) - 1)] ^= mask
        return bytes(data)
    if kind == "header":  # overwrite the start: the header length and JSON header
        return arg + data[len(arg) :]
    return arg


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(["model.safetensors", "config.json"]),
    mutation=mutations,
    keep_manifest=st.booleans(),
)
def test_loader_fuzz_only_typed_errors(pristine, tmp_path_factory, target, mutation, keep_manifest):
    def damage(path):
        file = path / target
        file.write_bytes(mutate(file.read_bytes(), mutation))
        if not keep_manifest:
            (path / MANIFEST).unlink()

    load_damaged_copy(pristine, tmp_path_factory, damage)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=json_values)
def test_index_fuzz_only_typed_errors(pristine, tmp_path_factory, index):
    def replace_with_index(path):
        (path / "model.safetensors").unlink()
        (path / "model.safetensors.index.json").write_text(json.dumps(index))

    load_damaged_copy(pristine, tmp_path_factory, replace_with_index)


def load_damaged_copy(pristine, tmp_path_factory, damage) -> None:
    """Copy the pristine artifact, damage the copy, load it: success or an HfModularError only."""
    path = tmp_path_factory.mktemp("fuzz") / "artifact"
    shutil.copytree(pristine, path)
    damage(path)
    try:
        ModularT5ForConditionalGeneration.from_pretrained(path)
    except HfModularError:
        pass
    finally:
        shutil.rmtree(path.parent)
