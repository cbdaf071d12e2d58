"""Invariants 3 and 4: save -> load round-trips, and assembled loads read only the layers they need."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForSeq2SeqLM, BartConfig, T5Config

import hf_modular
from hf_modular import CheckpointError
from hf_modular.methods.modular.modeling import ModularModelMixin
from tests.conftest import CORE_FAMILIES, generate, modular_class, modular_model, sample_inputs, tiny_teacher


def num_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def checkpoint_keys(path) -> set[str]:
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        return set(f.keys())


@pytest.fixture(params=CORE_FAMILIES)
def family(request) -> str:
    """Every family of the core contract, mT5 included (conftest's fixture covers T5 and BART)."""
    return request.param


@pytest.fixture
def artifact(family, tmp_path):
    _, model = modular_model(family)
    path = tmp_path / "artifact"
    model.save_pretrained(path)
    return model, path


def test_full_artifact_round_trip(family, artifact):
    model, path = artifact
    loaded, info = AutoModelForSeq2SeqLM.from_pretrained(path, output_loading_info=True)
    assert type(loaded) is type(model)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert {**loaded.config.to_dict(), "_name_or_path": ""} == {**model.config.to_dict(), "_name_or_path": ""}
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(**inputs).logits, model(**inputs).logits)


@pytest.mark.parametrize("ratio", ["1x", "1.5x", "2x", "3x", "6x"])
def test_assembled_load_is_the_stock_model_of_the_in_memory_assembly(family, artifact, ratio):
    model, path = artifact
    loaded, info = AutoModelForSeq2SeqLM.from_pretrained(path, assemble=ratio, output_loading_info=True)
    loaded.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    model.assemble(ratio)
    assert type(loaded) is model.adapter.stock_model_class  # a plain transformers model
    provenance = loaded.config.hf_modular
    assert provenance["plan"] == model.active_plan.to_json() and provenance["assemble"] == ratio
    assert provenance["artifact"] == str(path) and loaded.name_or_path == str(path)
    report = model.compression_report()
    assert provenance["layer_ratio"] == round(report.layer_ratio, 4) and provenance["choice"] == report.choice
    stock = model.to_stock_model().eval()  # the old path: a stock copy of the in-memory assembly
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, stock(**inputs).logits)
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)
    assert torch.equal(generate(loaded, inputs), generate(stock, inputs))
    assert torch.equal(generate(loaded, inputs, num_beams=3), generate(stock, inputs, num_beams=3))
    # Only the plan's layers were built and loaded: the parameter count is the assembled model's.
    assert num_params(loaded) == report.assembled_params < num_params(model)
    assert loaded.state_dict().keys() == stock.state_dict().keys()


def test_a_local_revision_names_a_size(family, artifact):
    model, path = artifact
    loaded = AutoModelForSeq2SeqLM.from_pretrained(path, revision="2x")
    assert loaded.config.hf_modular["plan"] == model.resolve_plan("2x").to_json()
    assert isinstance(AutoModelForSeq2SeqLM.from_pretrained(path, revision="main"), ModularModelMixin)


def test_assembled_model_round_trips_without_hf_modular(family, artifact, tmp_path):
    _, path = artifact
    small = AutoModelForSeq2SeqLM.from_pretrained(path, assemble="3x").eval()
    small.save_pretrained(tmp_path / "small")
    inputs = sample_inputs(family)
    payload = json.dumps({k: v.tolist() for k, v in inputs.items()})
    result = subprocess.run(
        [sys.executable, "-c", EXPORT_CHECK, str(tmp_path / "small"), payload],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["type"] == small.__class__.__name__ and not seen["hf_modular_imported"]
    assert seen["tokens"] == generate(small, inputs).tolist()
    assert seen["provenance"] == small.config.hf_modular


def test_in_memory_assembly_is_saved(family, artifact, tmp_path):
    model, _ = artifact
    model.assemble({"encoder": [[0, 3], 3, 4, 5], "decoder": [[0, 2], [2, 4], [4, 6]]})
    model.save_pretrained(tmp_path / "switched")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "switched").eval()
    assert loaded.config.hf_modular["plan"] == model.active_plan.to_json()
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)
    whole = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "switched", assemble=None)
    assert isinstance(whole, ModularModelMixin) and whole.stored_spans() == model.stored_spans()


EXPORT_CHECK = """
import json, sys, torch
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1]).eval()
inputs = json.loads(sys.argv[2])
out = model.generate(input_ids=torch.tensor(inputs["input_ids"]), attention_mask=torch.tensor(inputs["attention_mask"]),
                     do_sample=False, max_new_tokens=6, min_new_tokens=6)
print(json.dumps({"type": type(model).__name__, "model_type": model.config.model_type,
                  "hf_modular_imported": any(m.startswith("hf_modular") for m in sys.modules),
                  "tokens": out.tolist(), "provenance": getattr(model.config, "hf_modular", None)}))
"""


def test_export_assembled_is_a_stock_checkpoint(family, artifact, tmp_path):
    _, path = artifact
    small = AutoModelForSeq2SeqLM.from_pretrained(path).assemble("2x").eval()
    exported = small.export_assembled(tmp_path / "stock")
    assert sorted(p.name for p in exported.iterdir()) == [
        "README.md",
        "config.json",
        "generation_config.json",
        "hf_modular_manifest.json",  # the crash-safety manifest; stock loaders ignore it
        "model.safetensors",
    ]
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == family and "assemble" not in config and "auto_map" not in config
    card = (exported / "README.md").read_text()
    assert "library_name: transformers" in card and small.active_plan.describe() in card and "2x" in card
    inputs = sample_inputs(family)
    payload = json.dumps({k: v.tolist() for k, v in inputs.items()})
    result = subprocess.run(
        [sys.executable, "-c", EXPORT_CHECK, str(exported), payload], capture_output=True, text=True, check=True
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["model_type"] == family and not seen["hf_modular_imported"]
    assert seen["type"] == small.adapter.stock_model_name  # T5/Bart/MT5ForConditionalGeneration
    assert seen["tokens"] == generate(small, inputs).tolist()


def test_from_teacher_accepts_a_path_and_records_it(family, tmp_path):
    teacher = tiny_teacher(family)
    teacher.save_pretrained(tmp_path / "teacher")
    model = modular_class(family).from_teacher(tmp_path / "teacher")
    assert model.config.teacher_name_or_path == str(tmp_path / "teacher")
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(model.eval()(**inputs).logits, teacher(**inputs).logits)
    # every module starts as a copy of the first teacher layer of its span
    for name in ("encoder", "decoder"):
        layers = model.planned_layers(name)
        for span in model.plan_space.stacks[name].modules:
            source = layers.get((span[0], span[0] + 1)).state_dict()
            assert all(torch.equal(v, source[k]) for k, v in layers.get(span).state_dict().items())


def test_a_stock_checkpoint_is_not_mistaken_for_an_artifact(family, tmp_path):
    tiny_teacher(family).save_pretrained(tmp_path / "teacher")
    with pytest.raises(CheckpointError, match="from_teacher"):
        modular_class(family).from_pretrained(tmp_path / "teacher")


def test_from_teacher_rejects_a_model_of_another_family():
    with pytest.raises(TypeError, match="T5ForConditionalGeneration"):
        hf_modular.ModularT5ForConditionalGeneration.from_teacher(tiny_teacher("bart"))


def test_registration_leaves_stock_types_alone():
    assert AutoConfig.for_model("modular_t5").__class__ is hf_modular.ModularT5Config
    assert AutoConfig.for_model("modular_bart").__class__ is hf_modular.ModularBartConfig
    t5 = AutoModelForSeq2SeqLM.from_config(T5Config(num_layers=1, d_model=8, d_kv=2, d_ff=8, num_heads=2))
    bart = AutoModelForSeq2SeqLM.from_config(
        BartConfig(
            encoder_layers=1,
            decoder_layers=1,
            d_model=8,
            encoder_ffn_dim=8,
            decoder_ffn_dim=8,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
        )
    )
    assert type(t5).__name__ == "T5ForConditionalGeneration"
    assert type(bart).__name__ == "BartForConditionalGeneration"
    hf_modular.register_auto_classes()  # idempotent


def test_an_assembly_with_a_deeper_decoder_generates_with_its_cache(family, artifact):
    """Stock T5 (transformers 5.23-5.24) sizes generate()'s cache by the encoder depth; an assembled
    model with a deeper decoder carries a config that reports the decoder's depth."""
    model, path = artifact
    plan = {"encoder": [[0, 3], [3, 6]], "decoder": [[0, 2], [2, 4], [4, 6]]}
    small = AutoModelForSeq2SeqLM.from_pretrained(path, assemble=plan).eval()
    assert type(small) is model.adapter.stock_model_class and small.config.model_type == family
    assert isinstance(small.config, model.adapter.stock_config_class)
    model.assemble(plan)
    inputs = sample_inputs(family)
    for kwargs in ({}, {"num_beams": 3}):
        cached = small.generate(**{k: inputs[k] for k in ("input_ids", "attention_mask")}, max_new_tokens=5, **kwargs)
        uncached = model.generate(
            **{k: inputs[k] for k in ("input_ids", "attention_mask")}, max_new_tokens=5, use_cache=False, **kwargs
        )
        assert torch.equal(cached, uncached)
