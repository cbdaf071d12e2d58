"""Loading: only safetensors and JSON, files confined to the folder, corruption and bad configs detected."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_modular import CheckpointError, ConfigError, ModularT5Config, ModularT5ForConditionalGeneration
from hf_modular.atomic_save import MANIFEST
from tests.conftest import modular_model, sample_inputs

LOAD = ModularT5ForConditionalGeneration.from_pretrained


@pytest.fixture
def artifact(tmp_path):
    _, model = modular_model("t5")
    path = tmp_path / "artifact"
    model.save_pretrained(path)
    return model, path


def rewrite_weights(path, change):
    """Apply ``change`` to the state dict on disk and drop the manifest (as a foreign tool would)."""
    tensors = load_file(str(path / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / MANIFEST).unlink()


def test_only_pickled_weights_are_refused(artifact):
    model, path = artifact
    (path / "model.safetensors").unlink()
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"only safetensors weights are loaded \(found \['pytorch_model.bin'\]"):
        LOAD(path)


def test_use_safetensors_false_is_refused(artifact):
    with pytest.raises(CheckpointError, match="safetensors weights only"):
        LOAD(artifact[1], use_safetensors=False)


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "sub/dir.safetensors", "..", ""])
def test_index_names_outside_the_folder_are_refused(artifact, shard):
    _, path = artifact
    (path / "model.safetensors").rename(path / "model-00001-of-00001.safetensors")
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"shared.weight": shard}}))
    with pytest.raises(CheckpointError, match=r"plain file names|leads outside"):
        LOAD(path)


def test_a_link_leading_outside_is_refused(artifact, tmp_path):
    _, path = artifact
    outside = tmp_path / "elsewhere.safetensors"
    (path / "model.safetensors").rename(outside)
    os.symlink(outside, path / "model.safetensors")
    with pytest.raises(CheckpointError, match="leads outside"):
        LOAD(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"",  # empty
        lambda b: b[:-100] + bytes(x ^ 0xFF for x in b[-100:]),  # bit-flipped tensor data
        lambda b: b[:9] + b"#" + b[10:],  # damaged JSON header (byte 8 opens it)
    ],
    ids=["truncated", "empty", "bit-flipped", "header"],
)
@pytest.mark.parametrize("with_manifest", [True, False])
def test_damaged_weights_raise_checkpoint_error(artifact, damage, with_manifest):
    model, path = artifact
    weights = path / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    if not with_manifest:
        (path / MANIFEST).unlink()
    try:
        loaded = LOAD(path)
    except CheckpointError:
        return
    # Without a manifest a flip inside tensor data parses; it must not go unnoticed with one.
    assert not with_manifest, "the manifest must catch every damaged file"
    inputs = sample_inputs("t5")
    with torch.no_grad():
        assert not torch.equal(loaded.eval()(**inputs).logits, model(**inputs).logits)


def test_wrong_shapes_are_refused(artifact):
    _, path = artifact
    rewrite_weights(path, lambda t: t.update({"shared.weight": torch.zeros(3, 3)}))
    with pytest.raises(CheckpointError):
        LOAD(path)


def test_missing_modules_are_refused(artifact):
    _, path = artifact
    rewrite_weights(path, lambda t: [t.pop(k) for k in list(t) if ".pool.0_2." in k])
    with pytest.raises(CheckpointError, match=r"lacks .* layer weights"):
        LOAD(path)
    six = LOAD(path, assemble="6x")  # does not need them
    assert six.config.hf_modular["plan"] == {"encoder": [[0, 6]], "decoder": [[0, 6]]}


def test_auto_map_and_trust_remote_code_are_never_honoured(artifact, caplog):
    _model, path = artifact
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSeq2SeqLM": "evil_module.EvilModel"}
    config["trust_remote_code"] = True
    (path / "config.json").write_text(json.dumps(config))
    (path / MANIFEST).unlink()
    with caplog.at_level(logging.WARNING):
        loaded = LOAD(path, trust_remote_code=True)
    assert type(loaded) is ModularT5ForConditionalGeneration
    assert not getattr(loaded.config, "auto_map", None)
    assert "never runs code" in caplog.text
    loaded.save_pretrained(path.parent / "resaved")
    assert "auto_map" not in json.loads((path.parent / "resaved" / "config.json").read_text())


def test_unknown_config_keys_warn_and_load(artifact, caplog):
    _, path = artifact
    config = json.loads((path / "config.json").read_text())
    config["exit_threshold_from_the_future"] = 0.5
    (path / "config.json").write_text(json.dumps(config))
    (path / MANIFEST).unlink()
    with caplog.at_level(logging.WARNING):
        LOAD(path)
    assert "exit_threshold_from_the_future" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_layers": 0}, "num_layers=0"),
        ({"num_layers": 100000}, "exceeds 256 layers"),
        ({"d_model": 10**6, "d_ff": 10**6}, "refusing to build"),
        ({"vocab_size": -5}, "vocab_size=-5"),
        ({"module_sizes": [9]}, "a module replaces 2 to 6 layers"),
    ],
)
def test_bad_configs_in_a_checkpoint(artifact, change, message):
    _, path = artifact
    config = json.loads((path / "config.json").read_text())
    config.update(change)
    (path / "config.json").write_text(json.dumps(config))
    (path / MANIFEST).unlink()
    with pytest.raises(ConfigError, match=message):
        LOAD(path)


def test_config_validation_direct():
    with pytest.raises(ConfigError, match="d_kv=0"):
        ModularT5Config(d_kv=0)
