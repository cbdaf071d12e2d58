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

from hf_modular import CheckpointError, ConfigError, DataError
from hf_modular.methods import offline_ae
from hf_modular.methods.offline_ae.layers import decode_autoencoder, fit_autoencoder
from hf_modular.methods.offline_ae.modeling import MANIFEST_NAME, WEIGHTS_NAME
from hf_modular.methods.offline_ae.whitening import input_grams, member_maps, whitening_factor

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
        teacher,
        ratio=4,
        targets=["encoder.self_attention.q"],
        mode="per_matrix",
        method="svd",
        metric="rows",
        calibration=None,
    )
    group = compressed.groups[0]
    weight = teacher.get_parameter(group.members[0]).detach().double().numpy()
    u, s, vh = np.linalg.svd(weight, full_matrices=False)
    r = group.rank
    assert r == (32 * 32 // 4) // (32 + 32)
    expected = (u[:, :r] * s[:r]) @ vh[:r]
    np.testing.assert_allclose(compressed.model.get_parameter(group.members[0]).detach().numpy(), expected, atol=1e-5)
    assert compressed.report["groups"][0]["shared_numbers"] == r * 32  # the basis; the coefficients are per row


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
    settings = {"ratio": 3, "targets": ["encoder.self_attention.k"], "mode": "per_matrix", "metric": "rows"}
    settings |= {"progress": False, "calibration": None}
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
    assert trained.report["groups"][0]["shared_numbers"] == d * m + m + h * d + h + m * h  # all but the latents


def _head_blocks(family: str, teacher, value: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """A value matrix and the output projection's block of each head (d_model x head size)."""
    output = value.replace(".v.weight", ".o.weight").replace("v_proj.weight", "out_proj.weight")
    v = teacher.get_parameter(value).detach().double().numpy()
    o = teacher.get_parameter(output).detach().double().numpy()
    return v, [o[:, h * 8 : (h + 1) * 8] for h in range(4)]  # tiny teachers: 4 heads of 8


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_output_metric_svd_is_the_truncated_svd_in_what_the_output_projection_sees(family):
    teacher = tiny_teacher(family)
    settings = {"ratio": 4, "targets": ["encoder.self_attention.v"], "mode": "per_matrix", "method": "svd"}
    settings["calibration"] = None  # the output metric alone
    output, rows = (offline_ae.compress(teacher, metric=m, **settings) for m in ("output", "rows"))
    group = output.groups[0]
    v, blocks = _head_blocks(family, teacher, group.members[0])
    assert group.partners[0].block == 8 and group.partners[0].name.endswith(("o.weight", "out_proj.weight"))
    # R_h^T R_h = O_h^T O_h: code R V by truncated SVD, then undo R head by head
    factors = [np.linalg.cholesky(b.T @ b).T for b in blocks]
    seen = np.concatenate([r @ v[h * 8 : (h + 1) * 8] for h, r in enumerate(factors)])
    u, s, vh = np.linalg.svd(seen, full_matrices=False)
    kept = (u[:, : group.rank] * s[: group.rank]) @ vh[: group.rank]
    expected = np.concatenate([np.linalg.solve(r, kept[h * 8 : (h + 1) * 8]) for h, r in enumerate(factors)])
    np.testing.assert_allclose(output.model.get_parameter(group.members[0]).detach().numpy(), expected, atol=1e-4)

    def output_error(compressed) -> float:  # what reaches the attention output, summed over heads
        w = compressed.model.get_parameter(group.members[0]).detach().double().numpy()
        return sum(np.linalg.norm(b @ (v - w)[h * 8 : (h + 1) * 8]) ** 2 for h, b in enumerate(blocks))

    # at the same rank, the rows metric is optimal for the rows, the output metric for the output
    assert rows.groups[0].rank == group.rank
    assert output_error(output) < 0.99 * output_error(rows)
    assert output.report["groups"][0]["relative_error"] > rows.report["groups"][0]["relative_error"]


def _inputs_of(model, parameter: str, batches) -> np.ndarray:
    """Every input row the nn.Linear owning ``parameter`` reads on ``batches`` (a forward hook)."""
    seen = []
    module = model.get_submodule(parameter.rsplit(".", 1)[0])
    hook = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].reshape(-1, args[0].shape[-1])))
    with torch.no_grad():
        for batch in batches:
            model.eval()(**batch)
    hook.remove()
    return torch.cat(seen).double().numpy()


@pytest.mark.parametrize("family", ["t5", "bart"])
@pytest.mark.parametrize("metric", ["rows", "output"])
def test_input_whitened_svd_is_the_best_code_for_what_the_calibration_inputs_produce(family, metric):
    """With calibration batches, per-matrix SVD codes W L (L L^T = X^T X + ridge, X the matrix's
    inputs on those batches), i.e. it is the best rank-r code of the matrix's OUTPUTS on them; the
    rows metric case is checked against that solution computed directly, and both metrics against
    uncalibrated SVD at the same rank and stored numbers."""
    teacher = tiny_teacher(family)
    batches = [sample_inputs(family, batch=4, length=9, seed=s) for s in (2, 3)]
    settings = {"ratio": 4, "targets": ["encoder.self_attention.k"], "mode": "per_matrix", "method": "svd"}
    whitened = offline_ae.compress(teacher, metric=metric, calibration=batches, progress=False, **settings)
    plain = offline_ae.compress(teacher, metric=metric, calibration=None, progress=False, **settings)
    group = whitened.groups[0]
    name = group.members[0]
    x = _inputs_of(teacher, name, batches)
    w = teacher.get_parameter(name).detach().double().numpy()
    assert group.rank == plain.groups[0].rank and group.stored_numbers == plain.groups[0].stored_numbers
    assert whitened.report["groups"][0]["input_whitened"] and not plain.report["groups"][0]["input_whitened"]

    def output_error(compressed) -> float:
        return float(np.linalg.norm((w - compressed.model.get_parameter(name).detach().double().numpy()) @ x.T))

    if metric == "rows":
        gram = x.T @ x
        factor = np.linalg.cholesky(gram + 1e-3 * np.trace(gram) / len(gram) * np.eye(len(gram)))
        u, s, vh = np.linalg.svd(w @ factor, full_matrices=False)
        expected = (u[:, : group.rank] * s[: group.rank]) @ vh[: group.rank] @ np.linalg.inv(factor)
        np.testing.assert_allclose(whitened.model.get_parameter(name).detach().numpy(), expected, atol=1e-4)
        assert output_error(whitened) < 0.9 * output_error(plain)
    else:  # keys coded in the queries' metric and the inputs': a smaller error on these inputs too
        assert output_error(whitened) < output_error(plain)


@pytest.mark.parametrize("method", ["svd", "autoencoder"])
def test_a_joint_group_reports_each_layer_in_its_own_inputs_metric_and_all_matrices_pooled(method):
    """A joint group is coded in the pooled inputs' metric (one decoder), but its error is what each
    layer's output makes on that layer's own inputs; the report pools all coded matrices into one
    relative error (the same definition whatever the grouping), checked against the inputs by hand."""
    teacher = tiny_teacher("t5")
    batches = [sample_inputs("t5", batch=4, length=9, seed=s) for s in (2, 3)]
    settings = {"ratio": 4, "targets": ["self_attention.k"], "metric": "rows", "method": method, **FAST}
    compressed = offline_ae.compress(teacher, mode="joint", calibration=batches, **settings)
    assert [len(g.members) for g in compressed.groups] == [6, 6]  # encoder and decoder keys of 6 layers
    error = norm = raw_error = raw_norm = 0.0
    for name in (m for g in compressed.groups for m in g.members):
        x = _inputs_of(teacher, name, batches)
        gram = x.T @ x
        gram += 1e-3 * np.trace(gram) / len(gram) * np.eye(len(gram))
        w = teacher.get_parameter(name).detach().double().numpy()
        e = w - compressed.model.get_parameter(name).detach().double().numpy()
        error, norm = error + np.trace(e @ gram @ e.T), norm + np.trace(w @ gram @ w.T)
        raw_error, raw_norm = raw_error + (e**2).sum(), raw_norm + (w**2).sum()
    report = compressed.report
    np.testing.assert_allclose(report["coded_relative_error"], np.sqrt(error / norm), rtol=1e-4)
    np.testing.assert_allclose(report["relative_error"], np.sqrt(raw_error / raw_norm), rtol=1e-4)
    assert "squared" not in report["groups"][0]  # the report stays the documented one


def test_the_joint_autoencoder_fits_each_member_in_its_own_metric():
    """Two members whose inputs weigh different columns: reading each block through its own map
    (``member_maps``) in the loss gives a lower error in the members' own metrics than fitting the
    pooled metric alone, from the same start and budget."""
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(64, 16, generator=generator, dtype=torch.float64)
    scales = [torch.linspace(3.0, 0.1, 16), torch.linspace(0.1, 3.0, 16)]  # member 0 reads the first columns
    grams = [torch.diag(s.double() ** 2) for s in scales]
    pooled, own = whitening_factor(grams), [whitening_factor([g]) for g in grams]
    maps = member_maps(pooled, own)
    torch.testing.assert_close(rows[:32] @ pooled @ maps[0], rows[:32] @ own[0])  # the map is the member's metric
    fitted = (rows @ pooled).float()

    def own_error(blocks) -> float:
        stored = fit_autoencoder(fitted, 3, 4, 200, 3e-3, "mse", torch.Generator().manual_seed(1), blocks=blocks)
        error = (decode_autoencoder(stored) - fitted).double()
        return sum((e @ m).pow(2).sum().item() for e, m in zip(error.split(32), maps, strict=True))

    assert own_error([(32, m) for m in maps]) < 0.97 * own_error(None)  # measured 0.92


@pytest.mark.parametrize("method", ["svd", "autoencoder"])
def test_input_whitened_codes_save_and_load_exactly_without_calibration_data(method, tmp_path):
    teacher = tiny_teacher("t5")
    batches = [sample_inputs("t5", batch=4, seed=s) for s in (2, 3)]
    compressed = offline_ae.compress(
        teacher, ratio=3, targets=["attention"], method=method, calibration=batches, **FAST
    )
    compressed.save_pretrained(tmp_path / "c")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "c")
    inputs = sample_inputs("t5", seed=9)
    torch.testing.assert_close(_logits(loaded, inputs), _logits(compressed.model, inputs), rtol=0, atol=1e-6)
    assert not torch.allclose(_logits(compressed.model, inputs), _logits(teacher, inputs), atol=1e-3)  # it is coded
    assert compressed.config.input_whitening and compressed.config.decoder_fraction == 0.2  # the whitened default


def test_random_token_batches_are_well_formed_model_inputs(family):
    teacher = tiny_teacher(family)
    config = teacher.config
    batches = offline_ae.random_token_batches(teacher, sequences=300, length=7, batch_size=128, seed=4)
    assert [b["input_ids"].shape for b in batches] == [(128, 7), (128, 7), (44, 7)]
    inputs = torch.cat([b["input_ids"] for b in batches])
    decoder = torch.cat([b["decoder_input_ids"] for b in batches])
    assert (inputs[:, -1] == config.eos_token_id).all() and (decoder[:, 0] == config.decoder_start_token_id).all()
    body = torch.cat([inputs[:, :-1], decoder[:, 1:]])
    specials = {
        config.pad_token_id,
        config.eos_token_id,
        getattr(config, "bos_token_id", None),
        config.decoder_start_token_id,
    }
    assert body.min() >= 0 and body.max() < config.vocab_size and not set(body.unique().tolist()) & specials
    assert len(body.unique()) == config.vocab_size - len(specials - {None})  # every other id is drawn
    again = offline_ae.random_token_batches(teacher, sequences=300, length=7, batch_size=128, seed=4)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again, strict=True))
    with torch.no_grad():
        assert teacher(**batches[-1]).logits.shape == (44, 7, config.vocab_size)


def test_the_default_calibration_is_whitening_on_random_token_batches(tmp_path):
    """calibration="random" (the default) needs no data: it is exactly
    calibration=random_token_batches(model, seed=seed); calibration=None codes the weights alone."""
    teacher = tiny_teacher("bart")
    settings = {"ratio": 3, "targets": ["k", "v"], **FAST}
    given = offline_ae.compress(
        teacher, calibration=offline_ae.random_token_batches(teacher, seed=1), seed=1, **settings
    )
    compressed = offline_ae.compress(teacher, seed=1, **settings)
    inputs = sample_inputs("bart", seed=5)
    assert torch.equal(_logits(compressed.model, inputs), _logits(given.model, inputs))
    assert compressed.report["calibration"] == "random tokens (1024 x 10, seed 1)"
    assert given.report["calibration"] == "batches" and compressed.config.input_whitening
    unwhitened = offline_ae.compress(teacher, calibration=None, seed=1, **settings)
    assert unwhitened.report["calibration"] is None and unwhitened.config.decoder_fraction == 0.45
    assert not torch.allclose(_logits(unwhitened.model, inputs), _logits(compressed.model, inputs), atol=1e-4)
    compressed.save_pretrained(tmp_path / "c")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "c")
    torch.testing.assert_close(_logits(loaded, inputs), _logits(compressed.model, inputs), rtol=0, atol=1e-6)


def test_random_calibration_needs_the_config_to_name_eos_and_the_decoder_start():
    teacher = tiny_teacher("t5")
    teacher.config.eos_token_id = None
    with pytest.raises(DataError, match=r"calibration='random' needs eos_token_id.*eos=None"):
        offline_ae.compress(teacher, method="svd", calibration="random", progress=False)
    with pytest.raises(ConfigError, match=r"length=1, batch_size=256\): need sequences >= 1, length >= 2"):
        offline_ae.random_token_batches(teacher, length=1)
    with pytest.raises(ConfigError, match=r"calibration='noise': give batches of model inputs, 'random' or None"):
        offline_ae.compress(tiny_teacher("t5"), method="svd", calibration="noise", progress=False)


def test_empty_calibration_is_a_data_error():
    with pytest.raises(DataError, match="calibration holds no batch"):
        offline_ae.compress(tiny_teacher("t5"), method="svd", calibration=[], progress=False)


def test_output_metric_partners_decode_first_and_are_named_in_the_manifest(family, tmp_path):
    teacher = tiny_teacher(family)
    compressed = offline_ae.compress(teacher, ratio=2, targets=["attention", "ffn"], method="svd", progress=False)
    order = [g.kind.rsplit(".", 1)[1] for g in compressed.groups]
    coded = {m for g in compressed.groups for m in g.members}
    for position, group in enumerate(compressed.groups):
        leaf = group.kind.rsplit(".", 1)[1]
        partners = group.partners
        if leaf in ("o", "q", "out"):  # o and the FFN output feed the residual stream; q is read by coded keys
            assert partners == [None] * len(group.members)
            continue
        assert all(p is not None and p.name in coded for p in partners)
        partner_groups = [i for i, g in enumerate(compressed.groups) if set(g.members) & {p.name for p in partners}]
        assert max(partner_groups) < position, order  # the partner's final weights exist before this group
        assert {p.block for p in partners} == ({1} if leaf == "in" else {8})
    folder = compressed.save_pretrained(tmp_path / "out")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["format"] == 3 and manifest["settings"]["metric"] == "output"
    named = {m["name"]: m["partner"] for g in manifest["groups"] for m in g["members"]}
    assert all(named[n] is None or named[n]["name"] in coded for n in named)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs = sample_inputs(family)
    assert torch.equal(_logits(loaded, inputs), _logits(compressed.model, inputs))

    # a partner that is neither stored nor decoded is a clear error, not a silent wrong weight
    for group in manifest["groups"]:
        for member in group["members"]:
            if member["partner"]:
                member["partner"]["name"] = "no.such.weight"
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    (folder / "hf_modular_manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"no\.such\.weight"):
        AutoModelForSeq2SeqLM.from_pretrained(folder)


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


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_calibration_reaches_every_module_of_a_modular_artifact(family):
    """One forward runs only the active plan's layers; calibration runs each covering plan, so a
    module's inputs are those of an assembly that uses it and every joint group (teacher layers and
    modules together) is whitened. A layer run by several covering plans gets their mean."""
    # 5 layers, 2-layer modules: teacher layer 4 also ends the 2x plan
    _, model = modular_model(family, encoder_layers=5, decoder_layers=5, module_sizes=[2])
    batches = [sample_inputs(family, batch=4, seed=s) for s in (2, 3)]
    keys = ("SelfAttention.k.weight", "self_attn.k_proj.weight")
    module = next(n for n, _ in model.named_parameters() if "encoder." in n and ".pool.0_2." in n and n.endswith(keys))
    names = {"module": module, "layer": module.replace(".pool.0_2.", ".4.")}
    grams = input_grams(model, names.values(), batches)
    for span, name in (((0, 2), names["module"]), ((4, 5), names["layer"])):
        runs = [plan for plan in model.covering_plans() if span in plan.stack("encoder").spans]
        expected = 0
        for plan in runs:
            with model.plan_context(plan):
                x = _inputs_of(model, name, batches)
            expected = expected + x.T @ x / len(runs)
        np.testing.assert_allclose(grams[name].numpy(), expected, rtol=1e-10)
    assert len([p for p in model.covering_plans() if (4, 5) in p.stack("encoder").spans]) > 1
    assert model.active_plan.is_identity  # the model runs the plan it ran before
    compressed = offline_ae.compress(model, ratio=3, targets=["k"], method="svd", calibration=batches, progress=False)
    assert all(g["input_whitened"] for g in compressed.report["groups"])
    assert any(".pool." in m for g in compressed.groups for m in g.members)


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
    with pytest.raises(ConfigError, match=r"metric='cosine'.*output.*rows"):
        offline_ae.compress(teacher, metric="cosine")


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
