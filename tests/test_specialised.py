"""Specialised plans: a plan's own layers, copied out of the shared ones and trained for that plan
alone in the run's last ``specialised_steps``; stored in the artifact and served like any plan."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, TrainerCallback

from hf_modular import AssemblyError, CompressionTrainer, CompressionTrainingArguments, ConfigError, measure_plans
from hf_modular.plan import STACKS
from tests.conftest import (
    copy_task,
    generate,
    modular_class,
    modular_model,
    sample_inputs,
    stock_model_with_plan,
    tiny_teacher,
)

SHARED_1_5X = {"encoder": [0, 1, [2, 4], [4, 6]], "decoder": [0, 1, [2, 4], [4, 6]]}


@torch.no_grad()
def perturb_specialised(model, seed: int = 5) -> None:
    generator = torch.Generator().manual_seed(seed)
    for param in model.specialised_parameters():
        param.add_(torch.randn(param.shape, generator=generator) * 0.5)


def logits(model, plan, inputs):
    with torch.no_grad(), model.plan_context(plan, eval_mode=True):
        return model(**inputs).logits


def test_a_specialised_plan_starts_as_its_shared_plan_then_runs_its_own_layers(family):
    _, model = modular_model(family, specialise=["1.5x"])
    (plan,) = model.specialised_plans
    assert plan.specialised and plan.shared.to_json() == SHARED_1_5X
    assert model.config.specialised_plans == [SHARED_1_5X]
    assert plan.to_json() == {**SHARED_1_5X, "specialised": True}
    inputs = sample_inputs(family)
    shared = logits(model, plan.shared, inputs)
    assert not torch.allclose(logits(model, plan, inputs), shared)  # copied before the pools were perturbed
    model.copy_into_specialised(plan)
    assert torch.equal(logits(model, plan, inputs), shared)  # a copy of the shared layers it runs
    perturb_specialised(model)
    ran = logits(model, plan, inputs)
    assert not torch.allclose(ran, shared)
    assert torch.equal(logits(model, plan.shared, inputs), shared)  # the shared layers are untouched
    model.set_plan(plan)
    assert model.active_plan == plan
    with torch.no_grad():
        assert torch.equal(stock_model_with_plan(model)(**inputs).logits, ran)


def test_assembled_load_reads_only_the_specialised_layers(family, tmp_path):
    _, model = modular_model(family, specialise=["1.5x"])
    perturb_specialised(model)
    model.save_pretrained(tmp_path / "artifact")
    path = tmp_path / "artifact"
    loaded, info = AutoModelForSeq2SeqLM.from_pretrained(path, assemble="1.5x", output_loading_info=True)
    loaded.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert type(loaded) is model.adapter.stock_model_class
    assert loaded.config.hf_modular["plan"] == {**SHARED_1_5X, "specialised": True}
    assert loaded.config.hf_modular["choice"].endswith("on the layers specialised for it")
    (plan,) = model.specialised_plans
    model.set_plan(plan)
    stock = stock_model_with_plan(model)
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, stock(**inputs).logits)
    assert torch.equal(generate(loaded, inputs), generate(stock, inputs))
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in stock.parameters())
    # the same tiling without the flag runs the shared layers
    shared = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "artifact", assemble=SHARED_1_5X).eval()
    model.set_plan(plan.shared)
    with torch.no_grad():
        assert torch.equal(shared(**inputs).logits, stock_model_with_plan(model)(**inputs).logits)
        assert not torch.allclose(shared(**inputs).logits, loaded(**inputs).logits)
    # the whole artifact round-trips with its specialised layers
    whole = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "artifact").eval()
    assert whole.specialised_plans == [plan]
    assert torch.equal(logits(whole, plan, inputs), logits(model, plan, inputs))


def test_strategies_serve_the_specialised_plan_of_their_depths(family):
    _, model = modular_model(family, specialise=["1.5x"])
    (plan,) = model.specialised_plans
    assert model.resolve_plan("1.5x", "size-first") == plan
    assert model.resolve_plan("2x", "size-first") == model.plan_space.realise({"encoder": 3, "decoder": 3})
    assert not model.resolve_plan("1.5x", "speed-first").specialised  # a shallower decoder than 4 layers
    assert model.resolve_plan({**SHARED_1_5X, "specialised": True}) == plan
    assert model.resolve_plan(SHARED_1_5X) == plan.shared
    assert plan in model.covering_plans()  # offline compression's calibration passes reach its layers


def test_measured_plans_include_the_specialised_ones(family):
    _, model = modular_model(family, specialise=["1.5x"])
    perturb_specialised(model, seed=9)
    inputs = sample_inputs(family, batch=4)
    batches = [{**{k: v for k, v in inputs.items() if k != "decoder_input_ids"}, "labels": inputs["decoder_input_ids"]}]
    scores = measure_plans(model, batches, metric="teacher_kl", progress=False)
    (plan,) = model.specialised_plans
    assert scores.plans[0][0] == plan
    stored = [entry for entry in model.config.plan_scores["plans"] if entry["plan"].get("specialised")]
    assert len(stored) == 1 and stored[0]["score"] == pytest.approx(scores.plans[0][1], abs=1e-6)


def test_specialise_takes_one_spec_or_a_list():
    """``specialise="1.5x"`` (or one plan dict) is one plan, not the characters of a string."""
    expected = modular_model("t5", specialise=["1.5x"])[1].specialised_plans
    assert modular_model("t5", specialise="1.5x")[1].specialised_plans == expected
    assert modular_model("t5", specialise=SHARED_1_5X)[1].specialised_plans == expected


def test_specialised_plan_errors(tmp_path):
    _, model = modular_model("t5")
    with pytest.raises(AssemblyError, match="does not hold; its specialised plans: none"):
        model.resolve_plan({**SHARED_1_5X, "specialised": True})
    with pytest.raises(AssemblyError, match="plan key 'specialised' is 'yes'"):
        model.resolve_plan({**SHARED_1_5X, "specialised": "yes"})
    with pytest.raises(AssemblyError, match="cannot specialise '1x': it resolves to the teacher's own layers"):
        model.add_specialised_plan("1x")
    with pytest.raises(AssemblyError, match=r"cannot specialise '9x': .* not reachable .* reachable ratios: 1x, "):
        model.add_specialised_plan("9x")
    model.add_specialised_plan("1.5x")
    for again in (SHARED_1_5X, "1.5x"):  # the ratio now resolves to the specialised plan itself
        with pytest.raises(AssemblyError, match="already holds a specialised plan of 4 encoder and 4 decoder"):
            model.add_specialised_plan(again)
    assert len(model.specialised_plans) == 1  # nothing was added by the refused calls
    config = model.config
    for bad, message in (
        ("1.5x", "expected a list of plan dicts"),
        ([{"encoder": [0, [1, 3]]}], r"config.specialised_plans: .*no module for span \[1, 3\)"),
        ([{"encoder": [0, 1, 2, 3, 4, 5]}], "give the tiling of a compressed plan"),
        ([SHARED_1_5X, {"encoder": [0, 1, [2, 4], 4, 5], "decoder": SHARED_1_5X["decoder"]}], None),
        ([SHARED_1_5X, {"encoder": [[0, 2], 2, 3, [4, 6]], "decoder": SHARED_1_5X["decoder"]}], "same encoder and"),
    ):
        values = {**config.to_dict(), "specialised_plans": bad}
        if message is None:  # 5+4 and 4+4: two plans, both built
            assert len(type(model)(type(config)(**values)).specialised_plans) == 2
            continue
        with pytest.raises(ConfigError, match=message):
            type(model)(type(config)(**values))


def training_args(out, **overrides) -> CompressionTrainingArguments:
    values = {
        "output_dir": str(out),
        "max_steps": 6,
        "per_device_train_batch_size": 4,
        "learning_rate": 2e-3,
        "warmup_steps": 1,
        "lr_scheduler_type": "cosine",
        "plan_sampling": "granularities",
        "logging_steps": 1,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 7,
    }
    return CompressionTrainingArguments(**{**values, **overrides})


def shared_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if ".specialised." not in k}


@pytest.mark.parametrize("sampling", ["granularities", "random"])
def test_specialised_steps_train_only_the_specialised_layers_after_the_phase(family, sampling, tmp_path):
    teacher = tiny_teacher(family)
    model = modular_class(family).from_teacher(teacher, specialise=["1.5x"])
    recipe = {"plan_sampling": sampling, "learning_rate": 2e-3}
    trainer = CompressionTrainer(
        model=model,
        args=training_args(tmp_path / "a", specialised_steps=2, **recipe),
        train_dataset=copy_task(family, size=32),
    )
    phase_only = modular_class(family).from_teacher(teacher)
    reference = CompressionTrainer(
        model=phase_only,
        args=training_args(tmp_path / "b", max_steps=4, **recipe),
        train_dataset=copy_task(family, size=32),
    )
    copies = []
    copy = model.copy_into_specialised
    model.copy_into_specialised = lambda plan: copies.append(shared_weights(model)) or copy(plan)
    trainer.train()
    reference.train()
    # the phase is exactly a run of its own steps: the specialised steps change no shared weight
    after, expected = shared_weights(model), shared_weights(phase_only)
    assert after.keys() == expected.keys()
    assert all(torch.equal(after[k], expected[k]) for k in expected)
    # copied once, at the first specialised step, from the phase's final weights; then trained
    assert len(copies) == 1 and all(torch.equal(copies[0][k], expected[k]) for k in expected)
    (plan,) = model.specialised_plans
    for name in STACKS:
        layers = model.planned_layers(name)
        for layer, span in zip(layers.specialised[plan.specialised_key], plan.stack(name).spans, strict=True):
            assert not torch.equal(next(layer.parameters()), next(layers.get(span).parameters()))
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["learning_rate"] > 0 for h in logs] == [False, True, True, True, False, False]  # warm-up starts at 0
    assert [h["specialised_learning_rate"] > 0 for h in logs] == [False] * 4 + [True] * 2


@pytest.mark.parametrize("resume_at", [4, 5], ids=["at-the-first-specialised-step", "inside"])
def test_resume_inside_the_specialised_steps_gives_the_same_weights(resume_at, tmp_path):
    def run(out, resume=None):
        model = modular_class("t5").from_teacher(tiny_teacher("t5"), specialise=["1.5x"])
        args = training_args(out, specialised_steps=2, save_strategy="steps", save_steps=1, save_total_limit=None)
        trainer = CompressionTrainer(model=model, args=args, train_dataset=copy_task("t5", size=32))
        trainer.train(resume_from_checkpoint=resume)
        return model.state_dict()

    uninterrupted = run(tmp_path / "a")
    resumed = run(tmp_path / "b", resume=str(tmp_path / "a" / f"checkpoint-{resume_at}"))
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)


def test_specialised_training_errors(tmp_path):
    teacher = tiny_teacher("t5")
    rows = copy_task("t5", size=8)
    with pytest.raises(ConfigError, match="this model has no specialised plans to train"):
        CompressionTrainer(
            model=modular_class("t5").from_teacher(teacher),
            args=training_args(tmp_path, specialised_steps=2),
            train_dataset=rows,
        )
    evaluating = CompressionTrainer(  # evaluating a model with specialised plans needs no specialised steps
        model=modular_class("t5").from_teacher(teacher, specialise=["1.5x"]),
        args=training_args(tmp_path),
        train_dataset=rows,
        eval_dataset=rows,
    )
    assert evaluating.evaluate()["eval_loss"] > 0
    with pytest.raises(ConfigError, match="specialised_steps=0 would leave them behind the phase"):
        evaluating.train()
    with pytest.raises(ConfigError, match="are the last steps of max_steps=6"):
        training_args(tmp_path, specialised_steps=6)
    with pytest.raises(ConfigError, match="specialised_learning_rate=0 must be a number > 0"):
        training_args(tmp_path, specialised_steps=2, specialised_learning_rate=0)
    trainer = CompressionTrainer(
        model=modular_class("t5").from_teacher(teacher, specialise=["1.5x"]),
        args=training_args(
            tmp_path, specialised_steps=2, lr_scheduler_type="reduce_lr_on_plateau", eval_strategy="steps", eval_steps=1
        ),
        train_dataset=rows,
        eval_dataset=rows,
    )
    with pytest.raises(ConfigError, match="'reduce_lr_on_plateau' cannot be split"):
        trainer.train()


class StopAfter(TrainerCallback):
    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.steps
        return control


def test_a_run_stopped_before_its_specialised_steps_serves_the_shared_layers(tmp_path):
    model = modular_class("t5").from_teacher(tiny_teacher("t5"), specialise=["1.5x"])
    (plan,) = model.specialised_plans
    trainer = CompressionTrainer(
        model=model, args=training_args(tmp_path, specialised_steps=2), train_dataset=copy_task("t5", size=32)
    )
    trainer.add_callback(StopAfter(3))  # as max_time would: the phase is not finished
    trainer.train()
    assert trainer.state.global_step == 3
    inputs = sample_inputs("t5")
    assert torch.equal(logits(model, plan, inputs), logits(model, plan.shared, inputs))
