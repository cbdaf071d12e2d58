"""The adversarial cases of issue 17 that are not about concurrent saves or the CLI (those live in
test_crash_safety.py and test_cli.py): each was accepted silently or raised a raw traceback before."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM

from hf_modular import AssemblyError, CheckpointError, ConfigError, DataError, ModularT5Config
from hf_modular.atomic_save import MANIFEST
from tests.conftest import modular_class, modular_model, sample_inputs, tiny_teacher


@pytest.fixture
def artifact(family, tmp_path):
    _, model = modular_model(family, 2, 2)
    model.save_pretrained(tmp_path / "artifact")
    return model, tmp_path / "artifact"


def rewrite(path, change, manifest: bool = False) -> None:
    """Edit model.safetensors (or config.json) and drop the manifest, as a hand edit would."""
    tensors = load_file(str(path / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    if not manifest:
        (path / MANIFEST).unlink()


# ---------------------------------------------------------------------------------------- 3: outputs
def test_export_into_the_artifact_it_came_from_is_refused(artifact):
    model, path = artifact
    loaded = modular_class(model.adapter.family).from_pretrained(path).assemble("2x")
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(CheckpointError, match="refusing to write"):
        loaded.export_assembled(path)
    with pytest.raises(CheckpointError, match="refusing to write"):
        loaded.export_assembled(path / "inside")
    assert sorted(p.name for p in path.iterdir()) == before


# ---------------------------------------------------------------------------------------- 8: specs
@pytest.mark.parametrize("spec", ["６x", "٣x", "3\u00a0x", "3x\u2003"])
def test_ratio_specs_take_ascii_digits_and_spaces_only(spec):
    _, model = modular_model("t5", 2, 2)
    with pytest.raises(AssemblyError, match="is not a ratio"):
        model.assemble(spec)


def test_an_invalid_strategy_is_refused_where_it_is_set(tmp_path):
    _, model = modular_model("t5", 2, 2)
    with pytest.raises(AssemblyError, match="assemble_strategy=''"):
        model.assemble("2x", strategy="")
    assert model.config.assemble_strategy == "auto"
    model.config.assemble_strategy = "fastest"  # set by hand: refused before anything is written
    with pytest.raises(AssemblyError, match="'fastest'"):
        model.save_pretrained(tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_a_calibrated_plan_must_match_its_ratio():
    _, model = modular_model("t5")
    model.config.calibrated_plans = {"3x": {"encoder": [[0, 6]], "decoder": [[0, 6]]}}  # a 6x plan
    with pytest.raises(AssemblyError, match=r"has ratio 5\.9"):
        model.resolve_plan("3x", "calibrated")


# ---------------------------------------------------------------------------------------- 9: loading
def test_a_config_with_fewer_layers_than_the_weights_is_refused(family, artifact):
    model, path = artifact
    config = json.loads((path / "config.json").read_text())
    field = model.adapter.depth_fields[0]
    config[field] = 1
    (path / "config.json").write_text(json.dumps(config))
    (path / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="describes 1 encoder and 2 decoder layers, but the weights hold more"):
        AutoModelForSeq2SeqLM.from_pretrained(path)


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.float64, torch.float16])
def test_tensors_of_another_dtype_are_refused(family, artifact, dtype):
    _, path = artifact
    name = "shared.weight" if family == "t5" else "model.shared.weight"
    rewrite(path, lambda t: t.update({name: t[name].to(dtype)}))
    with pytest.raises(CheckpointError, match="would be cast silently"):
        AutoModelForSeq2SeqLM.from_pretrained(path)


def test_non_finite_weights_are_refused_unless_allowed(artifact):
    _, path = artifact
    rewrite(path, lambda t: next(v for k, v in sorted(t.items()) if v.dim() == 2).__setitem__((0, 0), float("nan")))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        AutoModelForSeq2SeqLM.from_pretrained(path)
    assert AutoModelForSeq2SeqLM.from_pretrained(path, allow_non_finite=True) is not None


# ---------------------------------------------------------------------------------------- 10: size guard
def test_the_size_guard_counts_the_real_architecture_before_allocating():
    # the old estimate ignored heads x d_kv (4e5 here); as built this is 3.9e10 parameters
    with pytest.raises(ConfigError, match=r"about 3\.87e\+10 parameters"):
        ModularT5Config(vocab_size=64, d_model=32, d_kv=8192, num_heads=1024, d_ff=64, num_layers=12)


@pytest.mark.parametrize(
    "values",
    [
        {"num_layers": 2, "num_decoder_layers": 3},
        {"num_layers": 1, "d_kv": 20, "num_heads": 3, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
        {"num_layers": 2, "relative_attention_num_buckets": 7},
    ],
)
def test_the_parameter_count_equals_the_built_t5(values):
    from transformers import T5Config, T5ForConditionalGeneration

    from hf_modular.arch import T5_ADAPTER

    config = T5Config(**{"vocab_size": 64, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_heads": 4, **values})
    with torch.device("meta"):
        built = sum(p.numel() for p in T5ForConditionalGeneration(config).parameters())
    assert T5_ADAPTER.estimate_parameters(config) == built


def test_the_parameter_count_equals_the_built_bart():
    from transformers import BartConfig, BartForConditionalGeneration

    from hf_modular.arch import BART_ADAPTER

    config = BartConfig(
        vocab_size=64,
        d_model=32,
        encoder_layers=2,
        decoder_layers=3,
        encoder_attention_heads=4,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=40,
        max_position_embeddings=50,
    )
    with torch.device("meta"):
        built = sum(p.numel() for p in BartForConditionalGeneration(config).parameters())
    assert BART_ADAPTER.estimate_parameters(config) == built


# ---------------------------------------------------------------------------------------- 11: links
@pytest.mark.parametrize("name", ["model.safetensors", "generation_config.json", "config.json"])
def test_a_link_to_a_file_outside_the_folder_is_refused(artifact, tmp_path, name):
    _, path = artifact
    outside = tmp_path / f"outside-{name}"
    (path / name).rename(outside)
    os.symlink(outside, path / name)
    with pytest.raises(CheckpointError, match="link that leads outside"):
        type(artifact[0]).from_pretrained(path)


# ---------------------------------------------------------------------------------------- 12: no unpickling
def test_a_teacher_with_only_pickled_weights_is_refused_without_unpickling(family, tmp_path, monkeypatch):
    teacher = tiny_teacher(family, 2, 2)
    teacher.save_pretrained(tmp_path / "teacher")
    state = load_file(str(tmp_path / "teacher" / "model.safetensors"))
    torch.save(state, tmp_path / "teacher" / "pytorch_model.bin")
    (tmp_path / "teacher" / "model.safetensors").unlink()
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called: a pickle was read"))
    with pytest.raises(CheckpointError, match="re-save them with safetensors"):
        modular_class(family).from_teacher(tmp_path / "teacher")


# ---------------------------------------------------------------------------------------- raw tracebacks
def test_deeply_nested_index_or_manifest_json_is_a_checkpoint_error(artifact):
    model, path = artifact
    (path / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match=r"nested too deeply|unreadable manifest"):
        type(model).from_pretrained(path)


def test_generate_refuses_inputs_it_cannot_encode(family):
    _, model = modular_model(family, 2, 2)
    inputs = sample_inputs(family)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    cases = [
        ({"input_ids": ids[:, :0]}, "shape"),
        ({"input_ids": ids.clone().fill_(10_000), "attention_mask": mask}, "token id 10000, outside the vocabulary"),
        ({"input_ids": ids, "attention_mask": torch.zeros_like(mask)}, "all zero"),
    ]
    if family == "bart":  # learned positions: 64 of them in the tiny BART
        cases.append(({"input_ids": ids[:, :1].repeat(1, 80)}, "more than max_position_embeddings=64"))
    for kwargs, message in cases:
        with pytest.raises(DataError, match=message):
            model.generate(**kwargs, max_new_tokens=2)
