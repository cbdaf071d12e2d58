"""PET students: sharing semantics against a stock model built directly, storage, save/load, the
cache, the warm-up task and the two training phases."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import copy_task, generate, sample_inputs, tiny_teacher
from transformers import AutoModelForSeq2SeqLM

import hf_modular
from hf_modular import CompressionTrainer, ConfigError
from hf_modular.arch import adapter_for
from hf_modular.methods import pet
from hf_modular.plan import STACKS


def _layers(model, name):
    adapter = adapter_for(model)
    return getattr(adapter.stack(model, name), adapter.layers_attr)


@torch.no_grad()
def stock_equivalent(student, teacher):
    """A stock model at the student's effective depths with every shared weight copied where it is used."""
    adapter = adapter_for(teacher)
    values = student.config.to_dict()
    for key in ("model_type", "architectures", "share_query", "reuse_stack", "teacher_name_or_path"):
        values.pop(key, None)
    stock = adapter.stock_model_class(adapter.stock_config_class(**values)).eval()
    stock.load_state_dict(student.state_dict(), strict=False)  # embeddings, norms, head, physical layers
    for name in STACKS:
        source, target = _layers(student, name), _layers(stock, name)
        physical = len(source) // 2
        for i in range(len(source)):
            first = source[i % physical]
            for path, module in first.named_modules():
                params = dict(module.named_parameters(recurse=False))
                if not params or path not in dict(target[i].named_modules()):
                    continue
                use = path
                if name == "encoder" and i >= physical:  # the second encoder pass swaps query and key
                    use = {adapter.self_query: adapter.self_key, adapter.self_key: adapter.self_query}.get(path, path)
                for key in params:
                    target[i].get_submodule(path).get_parameter(key).copy_(first.get_submodule(use).get_parameter(key))
            if name == "decoder":  # cross-attention reads the self-attention query
                for key in ("weight", "bias"):
                    src = getattr(first.get_submodule(adapter.self_query), key, None)
                    if src is not None:
                        getattr(target[i].get_submodule(adapter.cross_query), key).copy_(src)
    stock.generation_config = student.generation_config
    return stock


def test_the_student_equals_a_stock_model_built_directly(family):
    teacher = tiny_teacher(family)
    student = pet.build_student(teacher, layers=(2, 2))
    for p in student.parameters():  # independent weights everywhere, so a wrong tie cannot pass
        p.data.add_(torch.randn_like(p) * 0.1)
    stock = stock_equivalent(student, teacher)
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(student(**inputs).logits, stock(**inputs).logits)
    assert torch.equal(generate(student, inputs), generate(stock, inputs))


def test_shared_parameters_are_one_tensor_and_stay_so_after_loading(family, tmp_path):
    student = pet.build_student(tiny_teacher(family), layers=(2, 2))
    student.save_pretrained(tmp_path / "pet")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "pet")
    assert type(loaded) is type(student)
    adapter = adapter_for(loaded)
    enc, dec = _layers(loaded, "encoder"), _layers(loaded, "decoder")
    for model_layers in (enc, dec):
        assert len(model_layers) == 4
    q, k = adapter.self_query, adapter.self_key
    assert enc[2].get_submodule(q).weight is enc[0].get_submodule(k).weight  # swapped second pass
    assert enc[3].get_submodule(k).weight is enc[1].get_submodule(q).weight
    for i in range(4):
        assert dec[i].get_submodule(adapter.cross_query).weight is dec[i % 2].get_submodule(q).weight
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, student(**inputs).logits)
    saved = (tmp_path / "pet" / "model.safetensors").stat().st_size
    assert saved < 0.4 * sum(p.numel() * 4 for p in tiny_teacher(family).parameters())


def test_parameter_count_matches_the_formula(family):
    teacher = tiny_teacher(family)
    student = pet.build_student(teacher, layers=(2, 3), share_query=True, reuse_stack=True)
    adapter = adapter_for(teacher)
    physical = adapter.stock_model_class(
        adapter.stock_config_class(
            **{**teacher.config.to_dict(), adapter.depth_fields[0]: 2, adapter.depth_fields[1]: 3}
        )
    )
    cross_q = sum(p.numel() for p in _layers(physical, "decoder")[0].get_submodule(adapter.cross_query).parameters())
    expected = sum(p.numel() for p in physical.parameters()) - 3 * cross_q
    assert sum(p.numel() for p in student.parameters()) == expected
    assert [len(_layers(student, n)) for n in STACKS] == [4, 6]  # effective depth: run twice


def test_cached_generation_equals_uncached(family):
    student = pet.build_student(tiny_teacher(family), layers=(2, 2))
    inputs = sample_inputs(family)
    assert torch.equal(generate(student, inputs), generate(student, inputs, use_cache=False))
    assert torch.equal(generate(student, inputs, num_beams=3), generate(student, inputs, num_beams=3, use_cache=False))


def test_warmup_labels_on_a_hand_built_teacher():
    probs = torch.tensor(
        [
            [0.95, 0.03, 0.02],  # gold 0, top 0 at 0.95: correct & confident
            [0.80, 0.15, 0.05],  # gold 0, top 0 at 0.80: correct & unsure
            [0.10, 0.75, 0.15],  # gold 0, top 1 at 0.75: wrong & confident (> 0.7)
            [0.30, 0.50, 0.20],  # gold 0, top 1 at 0.50: wrong & unsure
            [0.90, 0.05, 0.05],  # padding
        ]
    ).log()[None]
    labels = torch.tensor([[0, 0, 0, 0, -100]])
    assert pet.warmup_labels(probs, labels).tolist() == [[0, 1, 2, 3, -100]]
    assert pet.warmup_labels(probs, labels, correct_threshold=0.7).tolist() == [[0, 0, 2, 3, -100]]

    distribution = pet.student_distribution(probs, labels)
    torch.testing.assert_close(distribution.sum(-1), torch.ones(1, 5))
    p, m = 0.8, 0.8  # row 1: gold prob and top prob
    torch.testing.assert_close(distribution[0, 1], torch.tensor([m * p, (1 - m) * p, m * (1 - p), (1 - m) * (1 - p)]))


def test_warmup_then_distillation_in_one_call(family, tmp_path):
    teacher = tiny_teacher(family)
    student = pet.build_student(teacher, layers=(2, 2))
    before = copy.deepcopy(student.state_dict())
    args = pet.PetTrainingArguments(
        output_dir=str(tmp_path / "run"),
        warmup_task_steps=3,
        max_steps=6,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    assert (args.ce_weight, args.kd_weight, args.kd_temperature, args.hidden_weight) == (0.9, 0.1, 10.0, 50.0)
    trainer = CompressionTrainer(
        model=student, teacher=teacher, args=args, method="pet", train_dataset=copy_task(family)
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["phase"] for h in logged] == [0, 0, 0, 1, 1, 1]
    after = student.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())


def test_the_warmup_loss_reaches_the_student(family):
    teacher = tiny_teacher(family)
    student = pet.build_student(teacher, layers=(2, 2)).train()
    batch = {k: v[:4] for k, v in sample_inputs(family, batch=4).items()}
    batch["labels"] = batch.pop("decoder_input_ids")
    with torch.no_grad():
        classes = pet.warmup_labels(teacher(**batch).logits, batch["labels"])
    pet.warmup_nll_sum(student(**batch).logits, batch["labels"], classes).backward()
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum().item() for g in grads) > 0


def test_bad_input_is_refused_with_the_value():
    teacher = tiny_teacher("t5")
    with pytest.raises(ConfigError, match=r"\(9, 2\)"):
        pet.build_student(teacher, layers=(9, 2))
    with pytest.raises(ConfigError, match="even"):
        pet.PetT5Config(num_layers=3, num_decoder_layers=2, reuse_stack=True)
    _, modular = teacher, hf_modular.ModularT5ForConditionalGeneration.from_teacher(teacher)
    args = pet.PetTrainingArguments(output_dir="unused", max_steps=1, report_to=[], use_cpu=True)
    with pytest.raises(ConfigError, match="PET student"):
        CompressionTrainer(model=modular, teacher=teacher, args=args, method="pet")
    with pytest.raises(ConfigError, match="method='distil'"):
        CompressionTrainer(model=modular, args=args, method="distil")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"warmup_task_steps": -1}, "warmup_task_steps=-1 must be an integer >= 0"),
        ({"warmup_task_steps": 1.5}, "warmup_task_steps=1.5 must be an integer >= 0"),
        ({"warmup_correct_threshold": 1.2}, r"warmup_correct_threshold=1.2 must be a probability in \[0, 1\]"),
        ({"warmup_wrong_threshold": "high"}, "warmup_wrong_threshold='high' must be a probability"),
        ({"kd_temperature": 0.0}, "kd_temperature=0.0"),  # the shared checks still run
    ],
)
def test_bad_pet_arguments_are_refused_with_the_value(overrides, message):
    with pytest.raises(ConfigError, match=message):
        pet.PetTrainingArguments(output_dir="unused", max_steps=10, report_to=[], **overrides)


def test_the_warmup_defaults_to_a_tenth_of_the_steps():
    assert pet.PetTrainingArguments(output_dir="unused", max_steps=50, report_to=[]).warmup_task_steps == 5
    assert pet.PetTrainingArguments(output_dir="unused", max_steps=5, report_to=[]).warmup_task_steps == 1
    assert pet.PetTrainingArguments(output_dir="unused", num_train_epochs=1, report_to=[]).warmup_task_steps == 0


def test_resuming_across_the_phase_boundary_gives_the_same_weights(tmp_path):
    """Interrupt after the warm-up task and resume: the run ends exactly like an uninterrupted one
    (the phase is read from the restored step, the shared weights from one tensor each)."""

    def run(output, resume=None):
        teacher = tiny_teacher("t5")
        student = pet.build_student(teacher, layers=(2, 2))
        args = pet.PetTrainingArguments(
            output_dir=str(output),
            warmup_task_steps=3,
            max_steps=6,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            save_strategy="steps",
            save_steps=3,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            seed=0,
        )
        trainer = CompressionTrainer(
            model=student, teacher=teacher, args=args, method="pet", train_dataset=copy_task("t5", size=32)
        )
        trainer.train(resume_from_checkpoint=resume)
        return student

    uninterrupted = run(tmp_path / "a")
    resumed = run(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-3"))
    for name, value in uninterrupted.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
