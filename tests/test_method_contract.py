"""What every model class hf_modular saves guarantees, whatever its method (one tester for all, in
the way transformers' ModelTesterMixin runs one set of checks on every model): an Auto round trip
with equal logits, a crash-safe save with its manifest, damaged or pickled weights refused with a
CheckpointError, NaN weights refused, and for every trainable method one CompressionTrainer run
with its registered arguments class that learns and resumes exactly."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM

from hf_modular import CheckpointError, CompressionTrainer
from hf_modular.methods import cost_eff, pet
from hf_modular.registry import get_method, methods, trainable_methods
from tests.conftest import copy_task, modular_model, sample_inputs, tiny_teacher


def _pet(family: str):
    teacher = tiny_teacher(family)
    return pet.build_student(teacher, layers=(2, 2)), teacher


def _cost_eff(family: str):
    teacher = tiny_teacher(family, 2, 3)
    return cost_eff.add_exits(copy.deepcopy(teacher)), teacher


# method -> a small model of it for a family, and the teacher it trains against (None: the
# modular model's own identity plan). offline_ae saves a folder of codes that loads back as the
# stock or modular model, not a model class of its own: tests/test_offline_ae.py covers it.
BUILDERS = {"modular": lambda family: (modular_model(family)[1], None), "pet": _pet, "cost_eff": _cost_eff}
FOLDER_ONLY = {"offline_ae"}


def test_the_tester_covers_every_registered_method():
    assert set(BUILDERS) | FOLDER_ONLY == set(methods())
    assert set(trainable_methods()) <= set(BUILDERS)


@pytest.fixture(params=sorted(BUILDERS))
def saved(request, family, tmp_path):
    model = BUILDERS[request.param](family)[0].eval()
    folder = tmp_path / request.param
    model.save_pretrained(folder)
    return request.param, model, folder


@torch.no_grad()
def test_auto_round_trip_gives_the_same_model(saved, family):
    _, model, folder = saved
    loaded = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    assert type(loaded) is type(model)
    inputs = sample_inputs(family)
    torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def test_the_save_is_staged_and_has_a_manifest(saved):
    _, _, folder = saved
    manifest = json.loads((folder / "hf_modular_manifest.json").read_text())
    assert "model.safetensors" in json.dumps(manifest)
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] in ([], [f".{folder.name}.lock"])


def test_damaged_and_pickled_weights_are_refused(saved):
    _, _, folder = saved
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the manifest's checksum no longer matches
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        AutoModelForSeq2SeqLM.from_pretrained(folder)
    (folder / "hf_modular_manifest.json").unlink()
    weights.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match=r"pickle|safetensors"):
        AutoModelForSeq2SeqLM.from_pretrained(folder)


def test_nan_weights_are_refused(saved):
    _, _, folder = saved
    (folder / "hf_modular_manifest.json").unlink()  # a hand-edited checkpoint: no manifest to match
    tensors = {k: v.clone() for k, v in load_file(str(folder / "model.safetensors")).items()}
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name][0] = float("nan")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        AutoModelForSeq2SeqLM.from_pretrained(folder)
    assert AutoModelForSeq2SeqLM.from_pretrained(folder, allow_non_finite=True) is not None


def test_every_config_ignores_code_keys_warns_on_unknown_ones_and_refuses_bad_sizes(saved, caplog):
    from transformers import AutoConfig

    from hf_modular import ConfigError

    _, model, folder = saved
    path = folder / "config.json"
    values = json.loads(path.read_text())
    values.update(auto_map={"AutoConfig": "evil.Config"}, from_a_newer_version=1)
    path.write_text(json.dumps(values))
    with caplog.at_level("WARNING"):
        config = AutoConfig.from_pretrained(folder)
    assert not hasattr(config, "auto_map") or not config.auto_map
    assert "never runs code" in caplog.text and "from_a_newer_version" in caplog.text
    field = model.config.adapter.size_fields[1]  # d_model
    path.write_text(json.dumps({**values, field: -4}))
    with pytest.raises(ConfigError, match=f"{field}=-4: must be a positive integer"):
        AutoConfig.from_pretrained(folder)


@pytest.mark.parametrize("method", trainable_methods())
def test_training_learns_and_resumes_exactly(method, family, tmp_path):
    """Two steps with the method's registered arguments class change the weights; a perturbed model
    resumed from the step-1 checkpoint ends exactly where the uninterrupted run did (PET crosses
    its phase boundary there)."""

    def run(output, resume=None):
        model, teacher = BUILDERS[method](family)
        if resume is not None:  # only weights really read from the checkpoint can end equal
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.01)
        args = get_method(method).arguments_class()(
            output_dir=str(output),
            max_steps=2,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            save_strategy="steps",
            save_steps=1,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            seed=0,
        )
        before = copy.deepcopy(model.state_dict())
        trainer = CompressionTrainer(
            model=model, teacher=teacher, args=args, method=method, train_dataset=copy_task(family, size=16)
        )
        trainer.train(resume_from_checkpoint=resume)
        return before, model.state_dict()

    before, uninterrupted = run(tmp_path / "a")
    assert any(not torch.equal(value, uninterrupted[name]) for name, value in before.items())
    _, resumed = run(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-1"))
    for name, value in uninterrupted.items():
        assert torch.equal(value, resumed[name]), name
