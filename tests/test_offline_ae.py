"""Offline weight compression (autoencoder, SVD baseline): storage accounting, reconstruction,
save/load through the Auto class, composition with modular artifacts, and damaged folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import modular_model, sample_inputs, tiny_teacher
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

from hf_modular import CheckpointError, ConfigError
from hf_modular.methods import offline_ae
from hf_modular.methods.offline_ae.modeling import MANIFEST_NAME, WEIGHTS_NAME

FAST = {"steps": 30, "progress": False}


def _logits(model, inputs):
    with torch.no_grad():
        return model.eval()(**inputs).logits


@pytest.mark.parametrize(("method", "mode"), [("autoencoder", "joint"), ("svd", "joint"), ("svd", "per_matrix")])
def test_save_load_gives_the_in_memory_model_and_counts_every_stored_number(family, method, mode, tmp_path):
    teacher = tiny_teacher(family)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    compressed = offline_ae.compress(teacher, ratio=3, targets=["attention", "ffn"], mode=mode, method=method, **FAST)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())  # the input is untouched

    report = compressed.report
    kinds = {g.kind for g in compressed.groups}
    assert kinds == {k for k in kinds if "attention" in k or "ffn" in k} and len(kinds) == 16
    stored = sum(t.numel() for g in compressed.groups for t in g.stored.values())
    original = sum(teacher.get_parameter(m).numel() for g in compressed.groups for m in g.members)
    assert (report["stored_numbers"], report["original_numbers"]) == (stored, original)
    assert report["ratio"] == pytest.approx(original / stored, abs=1e-4) and report["ratio"] >= 3

    compressed.save_pretrained(tmp_path / "out")
    in_file = load_file(str(tmp_path / "out" / WEIGHTS_NAME))
    assert sum(v.numel() for k, v in in_file.items() if k.startswith("compressed.")) == stored
    assert not any(m in in_file for g in compressed.groups for m in g.members)  # no full matrix is stored

    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out")
    assert type(loaded) is type(teacher)
    inputs = sample_inputs(family)
    assert torch.equal(_logits(loaded, inputs), _logits(compressed.model, inputs))
    for name, param in teacher.named_parameters():  # same shapes and dtypes as the original
        assert loaded.get_parameter(name).shape == param.shape and loaded.get_parameter(name).dtype == param.dtype


def test_svd_matches_numpy_truncated_svd():
    teacher = tiny_teacher("bart")
    compressed = offline_ae.compress(
        teacher, ratio=4, targets=["encoder.self_attention.q"], mode="per_matrix", method="svd"
    )
    group = compressed.groups[0]
    weight = teacher.get_parameter(group.members[0]).detach().double().numpy()
    u, s, vh = np.linalg.svd(weight, full_matrices=False)
    r = group.rank
    assert r == (32 * 32 // 4) // (32 + 32)
    expected = (u[:, :r] * s[:r]) @ vh[:r]
    np.testing.assert_allclose(compressed.model.get_parameter(group.members[0]).detach().numpy(), expected, atol=1e-5)


def test_ratio_one_settings_reproduce_the_weights():
    teacher = tiny_teacher("t5")
    # full rank costs (n + m) * r = 2x the matrix: ratio 0.5 is SVD's lossless setting
    full = offline_ae.compress(teacher, ratio=0.5, targets=["q"], mode="per_matrix", method="svd")
    assert all(g.rank == 32 for g in full.groups)
    for group in full.groups:
        torch.testing.assert_close(full.model.get_parameter(group.members[0]), teacher.get_parameter(group.members[0]))
    # the autoencoder with latents as wide as the rows starts (and stays) lossless
    ae = offline_ae.compress(teacher, ratio=0.4, targets=["encoder.self_attention.q"], decoder_fraction=0.05, **FAST)
    assert ae.groups[0].latent == 32 and ae.report["groups"][0]["relative_error"] < 1e-4


def test_the_autoencoder_starts_as_truncated_svd_and_training_lowers_its_error():
    teacher = tiny_teacher("bart")
    name = "model.encoder.layers.0.self_attn.k_proj.weight"
    settings = {"ratio": 3, "targets": ["encoder.self_attention.k"], "mode": "per_matrix", "progress": False}
    start = offline_ae.compress(teacher, steps=0, **settings)
    group = start.groups[0]
    assert group.members == [name] and group.hidden >= 1
    u, s, vh = np.linalg.svd(teacher.get_parameter(name).detach().double().numpy(), full_matrices=False)
    d = group.latent
    np.testing.assert_allclose(start.model.get_parameter(name).detach().numpy(), (u[:, :d] * s[:d]) @ vh[:d], atol=1e-5)
    trained = offline_ae.compress(teacher, steps=300, **settings)
    before, after = (c.report["groups"][0]["relative_error"] for c in (start, trained))
    assert after < before - 0.01
    # every stored number is counted: latents, the basis with its bias, the MLP
    m = teacher.get_parameter(name).shape[1]
    h = group.hidden
    assert trained.report["groups"][0]["stored_numbers"] == 32 * d + d * m + m + h * d + h + m * h


def test_the_autoencoder_is_deterministic():
    teacher = tiny_teacher("t5")
    one = offline_ae.compress(teacher, ratio=2, targets=["ffn"], **FAST)
    two = offline_ae.compress(teacher, ratio=2, targets=["ffn"], **FAST)
    for a, b in zip(one.groups, two.groups, strict=True):
        assert all(torch.equal(a.stored[k], b.stored[k]) for k in a.stored)
    assert all(0 < g["mean_cosine"] <= 1 and g["relative_error"] < 1 for g in one.report["groups"])


def test_compresses_a_modular_artifact_and_assembles_after_loading(family, tmp_path):
    _, model = modular_model(family)
    compressed = offline_ae.compress(model, ratio=2, targets=["ffn"], method="svd", progress=False)
    members = {m for g in compressed.groups for m in g.members}
    assert any(".pool." in m for m in members)  # modules are compressed along with teacher layers
    compressed.save_pretrained(tmp_path / "out")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out", assemble="3x")
    compressed.model.assemble("3x")
    inputs = sample_inputs(family)
    assert torch.equal(_logits(loaded, inputs), _logits(compressed.model, inputs))


def test_bad_settings_name_the_value():
    teacher = tiny_teacher("t5")
    with pytest.raises(ConfigError, match=r"'banana'.*kinds"):
        offline_ae.compress(teacher, targets=["banana"])
    with pytest.raises(ConfigError, match=r"ratio=0\.1"):
        offline_ae.compress(teacher, ratio=0.1)
    with pytest.raises(ConfigError, match="mode='diagonal'"):
        offline_ae.compress(teacher, mode="diagonal")
    with pytest.raises(ConfigError, match="lower ratio"):
        offline_ae.compress(teacher, ratio=100, targets=["q"], mode="per_matrix", method="svd")
    with pytest.raises(ConfigError, match="lower ratio"):
        offline_ae.compress(teacher, ratio=20, targets=["q"], mode="per_matrix")
    with pytest.raises(ConfigError, match="loss='l1'"):
        offline_ae.compress(teacher, loss="l1")
    with pytest.raises(ConfigError, match="decoder_fraction=1"):
        offline_ae.compress(teacher, decoder_fraction=1)


def test_damaged_folders_are_checkpoint_errors(tmp_path):
    teacher = tiny_teacher("t5")
    compressed = offline_ae.compress(teacher, ratio=2, targets=["q"], method="svd", progress=False)
    compressed.save_pretrained(tmp_path / "out")

    weights = tmp_path / "out" / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out")
    weights.write_bytes(data)

    manifest_path = tmp_path / "out" / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["groups"][0]["tensors"]["basis"] = [3, 3]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="the manifest says"):  # the checksum manifest catches the edit
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out")
    (tmp_path / "out" / "hf_modular_manifest.json").unlink()  # past the checksums, the manifest is validated too
    with pytest.raises(CheckpointError, match="wrong shape"):
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out")


def test_format_one_folders_load_their_svd_codes_and_refuse_their_autoencoder_codes(tmp_path):
    teacher = tiny_teacher("t5")
    inputs = sample_inputs("t5")
    for method in ("svd", "autoencoder"):
        compressed = offline_ae.compress(teacher, ratio=2, targets=["q"], method=method, **FAST)
        folder = compressed.save_pretrained(tmp_path / method)
        manifest_path = folder / MANIFEST_NAME
        manifest = json.loads(manifest_path.read_text())
        manifest["format"] = 1  # as an earlier version wrote it (past the checksums, as a user might)
        manifest_path.write_text(json.dumps(manifest))
        (folder / "hf_modular_manifest.json").unlink()
        if method == "svd":
            loaded = AutoModelForSeq2SeqLM.from_pretrained(folder)
            assert torch.equal(_logits(loaded, inputs), _logits(compressed.model, inputs))
        else:
            with pytest.raises(CheckpointError, match="format 1"):
                AutoModelForSeq2SeqLM.from_pretrained(folder)


def test_an_autoencoder_group_missing_a_decoder_tensor_is_a_checkpoint_error(tmp_path):
    teacher = tiny_teacher("bart")
    folder = offline_ae.compress(teacher, ratio=2, targets=["q"], **FAST).save_pretrained(tmp_path / "out")
    manifest_path = folder / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    del manifest["groups"][0]["tensors"]["hidden.bias"]  # the manifest no longer lists it
    manifest_path.write_text(json.dumps(manifest))
    (folder / "hf_modular_manifest.json").unlink()
    with pytest.raises(CheckpointError, match="does not decode"):
        AutoModelForSeq2SeqLM.from_pretrained(folder)
