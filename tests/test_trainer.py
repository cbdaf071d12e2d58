"""CompressionTrainer: what training must and must not change, GA invariance, resume, errors."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging

import pytest
import torch
from safetensors import safe_open

from hf_modular import CompressionTrainer, CompressionTrainingArguments, ConfigError, DataError
from hf_modular.plan import STACKS
from tests.conftest import (
    copy_task,
    modular_class,
    modular_model,
    pad_collator,
    ragged_copy_task,
    sample_inputs,
    tiny_teacher,
)


def training_args(tmp_path, **overrides) -> CompressionTrainingArguments:
    values = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 12,
        "per_device_train_batch_size": 8,
        "learning_rate": 2e-3,
        "logging_steps": 4,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 7,
    }
    values.update(overrides)
    return CompressionTrainingArguments(**values)


def teacher_fingerprint(model) -> str:
    """A hash of every parameter that is not a module: teacher layers, embeddings, norms, head."""
    module_ids = {id(p) for p in model.module_parameters()}
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        if id(param) not in module_ids:
            digest.update(name.encode())
            digest.update(param.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def test_training_changes_every_module_and_nothing_else(family, tmp_path):
    _, model = modular_model(family)
    before_teacher = teacher_fingerprint(model)
    before_modules = {n: p.detach().clone() for n, p in model.named_parameters() if ".pool." in n}
    trainer = CompressionTrainer(
        model=model,
        args=training_args(tmp_path, max_steps=20),
        train_dataset=copy_task(family),
    )
    trainer.train()
    assert teacher_fingerprint(model) == before_teacher
    changed = {n: not torch.equal(p, before_modules[n]) for n, p in model.named_parameters() if ".pool." in n}
    assert all(changed.values()), [n for n, c in changed.items() if not c]
    assert model.active_plan.is_identity  # training leaves the model on the plan it started with
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(before_modules)


def test_loss_falls_on_a_learnable_task(family, tmp_path):
    # The teacher is random and frozen, so the learnable task is imitating it: pure distillation.
    _, model = modular_model(family)
    args = training_args(
        tmp_path,
        max_steps=120,
        replacement_schedule="constant",
        replacement_rate=1.0,
        logging_steps=20,
        ce_weight=0.0,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
    )
    trainer = CompressionTrainer(model=model, args=args, train_dataset=copy_task(family))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(h["replacement_rate"] == 1.0 for h in trainer.state.log_history if "loss" in h)


def test_checkpoint_holds_the_teacher_layers_once(family, tmp_path):
    teacher, model = modular_model(family)
    trainer = CompressionTrainer(
        model=model, args=training_args(tmp_path, max_steps=2), train_dataset=copy_task(family)
    )
    trainer.train()
    trainer.save_model(tmp_path / "saved")
    with safe_open(str(tmp_path / "saved" / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    attr = model.adapter.layers_attr
    teacher_layer_keys = {k for k in teacher.state_dict() if f".{attr}." in k}
    saved_layer_keys = {k for k in keys if f".{attr}." in k and ".pool." not in k}
    assert saved_layer_keys == teacher_layer_keys
    assert len(keys) == len(set(keys))


def sgd_args(tmp_path, batch: int, accumulation: int) -> CompressionTrainingArguments:
    return training_args(
        tmp_path,
        max_steps=1,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        optim="sgd",
        learning_rate=1.0,
        max_grad_norm=0.0,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        replacement_schedule="constant",
        replacement_rate=1.0,
        warmup_steps=0,
    )


def test_gradient_accumulation_invariance(family, tmp_path):
    # One module per stack and rate 1: the plan is fixed, so the two runs see the same model.
    # With SGD at lr 1 the weight change IS the gradient.
    results = []
    for batch, accumulation in ((8, 1), (2, 4)):
        model = modular_class(family).from_teacher(tiny_teacher(family), module_sizes=[2])
        model.assemble({"encoder": [[0, 2], [2, 4], [4, 6]], "decoder": [[0, 2], [2, 4], [4, 6]]})
        model.assemble(None)
        before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad or ".pool." in n}
        trainer = CompressionTrainer(
            model=model,
            args=sgd_args(tmp_path / f"{batch}", batch, accumulation),
            train_dataset=ragged_copy_task(family),
            data_collator=pad_collator(family),
        )
        trainer.train()
        results.append({n: before[n] - p.detach() for n, p in model.named_parameters() if n in before})
    full, accumulated = results
    assert any(g.abs().sum() > 0 for g in full.values())
    for name in full:
        torch.testing.assert_close(accumulated[name], full[name], rtol=1e-4, atol=1e-6, msg=name)


def final_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_resume_gives_the_same_final_weights(family, tmp_path, caplog):
    def run(output, resume=None, stop_after=None):
        _, model = modular_model(family)
        args = training_args(output, max_steps=6, save_strategy="steps", save_steps=3, per_device_train_batch_size=4)
        trainer = CompressionTrainer(model=model, args=args, train_dataset=copy_task(family, size=32))
        trainer.train(resume_from_checkpoint=resume)
        return model, trainer

    uninterrupted, reference = run(tmp_path / "a")
    with caplog.at_level(logging.WARNING):
        resumed, trainer = run(tmp_path / "b", resume=str(tmp_path / "a" / "out" / "checkpoint-3"))
    assert "missing keys" not in caplog.text  # tied embeddings / LM head are re-tied, not reported
    for name, value in final_weights(uninterrupted).items():
        assert torch.equal(value, final_weights(resumed)[name]), name
    assert trainer.state.global_step == reference.state.global_step == 6


def test_external_teacher_is_never_saved_or_trained(family, tmp_path):
    teacher = tiny_teacher(family)
    student = tiny_teacher(family, encoder_layers=2, decoder_layers=2, seed=5).train()
    fingerprint = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in teacher.parameters())).hexdigest()
    trainer = CompressionTrainer(
        model=student,
        teacher=teacher,
        args=training_args(tmp_path, max_steps=4),
        train_dataset=copy_task(family),
    )
    assert trainer.teacher.device == next(student.parameters()).device
    trainer.train()
    trainer.save_model(tmp_path / "saved")
    after = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in teacher.parameters())).hexdigest()
    assert after == fingerprint
    with safe_open(str(tmp_path / "saved" / "model.safetensors"), framework="pt") as f:
        assert set(f.keys()) <= set(student.state_dict())
    assert sum(1 for _ in (tmp_path / "saved").glob("*.safetensors")) == 1


def test_attention_distillation_trains(family, tmp_path):
    _, model = modular_model(family)
    args = training_args(tmp_path, max_steps=3, attention_weight=1.0, logging_steps=1)
    trainer = CompressionTrainer(model=model, args=args, train_dataset=copy_task(family))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert all(torch.isfinite(torch.tensor(loss)) for loss in losses)


def test_evaluation_uses_the_active_plan(family, tmp_path):
    _, model = modular_model(family)
    model.assemble("3x")
    trainer = CompressionTrainer(model=model, args=training_args(tmp_path), eval_dataset=copy_task(family, size=8))
    metrics = trainer.evaluate()
    inputs = {
        k: torch.stack([r[k] for r in copy_task(family, size=8)]) for k in ("input_ids", "attention_mask", "labels")
    }
    with torch.no_grad():
        expected = model.eval()(**inputs).loss.item()
    assert metrics["eval_loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replacement_schedule": "cosine"}, "'cosine' is not one of"),
        ({"replacement_rate": 1.5}, "replacement_rate=1.5"),
        ({"replacement_schedule": "constant", "replacement_rate": 0.0}, "never use a module"),
        ({"kd_weight": -1.0}, "kd_weight=-1.0"),
        ({"kd_temperature": 0.0}, "kd_temperature=0.0"),
        ({"ce_weight": 0.0, "kd_weight": 0.0, "hidden_weight": 0.0}, "all loss weights are 0"),
        ({"plan_sampling": "sandwich"}, "plan_sampling='sandwich' is not one of"),
        ({"granularity_pairing": "cross"}, "granularity_pairing='cross' is not one of"),
        ({"plan_sampling": "granularities", "random_plans": -1}, "random_plans=-1 must be an integer"),
        ({"plan_sampling": "granularities", "teacher_context_weight": -1.0}, "teacher_context_weight=-1.0 must be"),
        ({"teacher_context_row_stride": 0}, "teacher_context_row_stride=0 must be an integer >= 1"),
        ({"teacher_context_row_stride": 0.5}, "teacher_context_row_stride=0.5 must be an integer"),
        ({"plan_sampling": "granularities", "random_plans": True}, "random_plans=True must be an integer"),
        ({"plan_sampling": "random", "random_plans": 2}, "adds plans to plan_sampling='granularities'"),
        ({"plan_sampling": "granularities", "single_stack_plans": -2}, "single_stack_plans=-2 must be an integer"),
        ({"plan_sampling": "random", "single_stack_plans": 1}, "single_stack_plans=1 adds plans"),
        ({"module_lr_scales": {1: 0.5}}, r"module_lr_scales=\{1: 0.5\}: entry 1"),
        ({"module_lr_scales": {2: 0.0}}, r"entry 2: 0.0 is not allowed"),
        ({"module_lr_scales": {2: True}}, r"entry 2: True is not allowed"),
        ({"module_lr_scales": [2, 0.5]}, r"module_lr_scales=\[2, 0.5\]: expected a dict"),
        ({"plan_sampling": "granularities", "plan_row_strides": {2: 0}}, r"plan_row_strides=\{2: 0\}: entry 2"),
        ({"plan_sampling": "granularities", "plan_row_strides": {2: 1.5}}, r"entry 2: 1.5 is not allowed"),
        ({"plan_sampling": "granularities", "plan_row_strides": {1: 2}}, r"entry 1: 2 is not allowed"),
        ({"plan_row_strides": {2: 2}}, "thins the rows of the plans of plan_sampling='granularities'"),
    ],
)
def test_bad_training_arguments(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        training_args(tmp_path, **overrides)


def test_student_errors(tmp_path):
    with pytest.raises(ConfigError, match="pass teacher="):
        CompressionTrainer(model=tiny_teacher("t5"), args=training_args(tmp_path))
    with pytest.raises(ConfigError, match="plan_sampling='granularities' trains the plans of a modular model"):
        CompressionTrainer(
            model=tiny_teacher("t5", encoder_layers=2, decoder_layers=2),
            teacher=tiny_teacher("t5"),
            args=training_args(tmp_path, plan_sampling="granularities"),
        )
    big_vocab = tiny_teacher("t5")
    big_vocab.resize_token_embeddings(100)
    with pytest.raises(ConfigError, match="vocabularies differ"):
        CompressionTrainer(model=tiny_teacher("t5"), teacher=big_vocab, args=training_args(tmp_path))


def test_all_ignored_labels_give_a_finite_loss(family, tmp_path):
    _, model = modular_model(family)
    rows = copy_task(family, size=8)
    for row in rows:
        row["labels"] = torch.full_like(row["labels"], -100)
    trainer = CompressionTrainer(model=model, args=training_args(tmp_path, max_steps=1), train_dataset=rows)
    trainer.train()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_plans_are_sampled_per_step_and_cover_the_pool(family):
    from hf_modular.methods.modular.plan_sampling import sample_plan

    _, model = modular_model(family)
    generator = torch.Generator().manual_seed(0)
    used = {name: set() for name in STACKS}
    for _ in range(200):
        plan = sample_plan(model.plan_space, 0.7, generator)
        for name in STACKS:
            used[name] |= {span for span in plan.stack(name).spans if span[1] - span[0] > 1}
    for name in STACKS:
        assert used[name] == set(model.plan_space.stacks[name].modules)
    # a training plan always trains something, even at a (near) zero rate
    for _ in range(50):
        plan = sample_plan(model.plan_space, 0.0, generator)
        assert sum(s[1] - s[0] > 1 for n in STACKS for s in plan.stack(n).spans) == 1


def test_granularity_plans_tile_each_stack_with_one_module_size(family):
    from hf_modular.methods.modular.plan_sampling import granularity_plans

    _, model = modular_model(family)  # 6+6 layers, modules of 2, 3 and 6
    plans = granularity_plans(model.plan_space)
    for plan, size in zip(plans, (2, 3, 6), strict=True):
        for name in STACKS:
            assert plan.stack(name).spans == tuple((i, i + size) for i in range(0, 6, size))
    uneven = modular_class(family).from_teacher(tiny_teacher(family), module_sizes={"encoder": [2, 4], "decoder": [3]})
    spans = [(p.stack("encoder").spans, p.stack("decoder").spans) for p in granularity_plans(uneven.plan_space)]
    assert spans == [
        (((0, 2), (2, 4), (4, 6)), ((0, 3), (3, 6))),
        (((0, 4), (4, 5), (5, 6)), ((0, 3), (3, 6))),  # 4 does not divide 6; the decoder repeats its only size
    ]


def test_granularities_step_is_the_mean_of_each_plan_alone_with_one_teacher_forward(family, tmp_path):
    """With SGD at lr 1 the weight change is the gradient: training every granularity on a batch
    moves each module by its own plan's gradient divided by the number of plans."""

    def one_step(sizes, out, **overrides):
        model = modular_class(family).from_teacher(tiny_teacher(family), module_sizes=sizes)
        before = {n: p.detach().clone() for n, p in model.named_parameters() if ".pool." in n}
        args = sgd_args(out, batch=4, accumulation=2)
        for key, value in overrides.items():
            setattr(args, key, value)
        trainer = CompressionTrainer(
            model=model, args=args, train_dataset=ragged_copy_task(family), data_collator=pad_collator(family)
        )
        calls = []
        forward = trainer.teacher_forward
        trainer.teacher_forward = lambda *a: calls.append(1) or forward(*a)
        trainer.train()
        return {n: before[n] - p.detach() for n, p in model.named_parameters() if n in before}, len(calls)

    together, teacher_forwards = one_step([2, 3, 6], tmp_path / "all", plan_sampling="granularities")
    assert teacher_forwards == 2  # one per micro-batch, shared by the three plans
    for size in (2, 3, 6):
        alone, _ = one_step([size], tmp_path / str(size))  # rate 1, one size: always its uniform plan
        assert alone and all(g.abs().sum() > 0 for g in alone.values())
        for name, gradient in alone.items():
            torch.testing.assert_close(together[name], gradient / 3, rtol=1e-4, atol=1e-7, msg=name)


def test_empty_datasets_are_refused(tmp_path):
    _, model = modular_model("t5")
    with pytest.raises(DataError, match="train_dataset is empty"):
        CompressionTrainer(model=model, args=training_args(tmp_path), train_dataset=[])


def test_bart_inputs_longer_than_its_positions_are_refused(tmp_path):
    _, model = modular_model("bart")  # max_position_embeddings=64
    rows = copy_task("bart", size=8, length=80)
    trainer = CompressionTrainer(model=model, args=training_args(tmp_path, max_steps=1), train_dataset=rows)
    with pytest.raises(DataError, match="length 80, more than the model's max_position_embeddings=64"):
        trainer.train()


def test_predict_with_generate_decodes_with_the_active_plan(family, tmp_path):
    _, model = modular_model(family)
    model.assemble("2x")
    args = training_args(tmp_path, predict_with_generate=True, generation_max_length=7, per_device_eval_batch_size=4)
    rows = copy_task(family, size=8)
    trainer = CompressionTrainer(model=model, args=args, eval_dataset=rows)
    predictions = trainer.predict(rows).predictions
    inputs = {k: torch.stack([r[k] for r in rows]) for k in ("input_ids", "attention_mask")}
    expected = model.eval().generate(**inputs, max_length=7, do_sample=False, num_beams=1)
    assert predictions.shape[0] == 8
    assert predictions[:, : expected.shape[1]].tolist() == expected.tolist()


def test_rotated_granularity_plans_pair_every_encoder_size_with_every_decoder_size(family):
    from hf_modular.methods.modular.plan_sampling import granularity_plans

    _, model = modular_model(family)  # 6+6 layers, modules of 2, 3 and 6
    pairs = set()
    for rotation in range(3):
        for plan in granularity_plans(model.plan_space, rotation):
            sizes = {name: {e - s for s, e in plan.stack(name).spans} for name in STACKS}
            assert all(len(v) == 1 for v in sizes.values())  # each stack stays uniform
            pairs.add((sizes["encoder"].pop(), sizes["decoder"].pop()))
    assert pairs == {(e, d) for e in (2, 3, 6) for d in (2, 3, 6)}
    assert granularity_plans(model.plan_space, 3) == granularity_plans(model.plan_space, 0)


def test_single_stack_plans_cycle_over_every_stack_and_size_next_to_teacher_layers(family):
    from hf_modular.methods.modular.plan_sampling import single_stack_plans

    _, model = modular_model(family)  # 6+6 layers, modules of 2, 3 and 6
    seen = [plan for step in range(3) for plan in single_stack_plans(model.plan_space, 2, step)]
    kinds = []
    for plan in seen:
        compressed = [name for name in STACKS if not plan.stack(name).is_identity]
        assert len(compressed) == 1  # the other stack keeps every teacher layer
        spans = plan.stack(compressed[0]).spans
        size = spans[0][1] - spans[0][0]
        assert spans == tuple((i, i + size) for i in range(0, 6, size))
        kinds.append((compressed[0], size))
    assert kinds == [(name, size) for name in STACKS for size in (2, 3, 6)]  # 3 steps of 2 cover all 6
    assert single_stack_plans(model.plan_space, 2, 3) == seen[:2]
    assert len(single_stack_plans(model.plan_space, 9, 0)) == 6  # never the same plan twice in a step


@torch.no_grad()
def test_plans_forward_runs_each_plan_in_one_call(family):
    _, model = modular_model(family)
    inputs = sample_inputs(family)
    model.assemble("2x")
    active = model.active_plan
    plans = [model.resolve_plan(spec) for spec in ("3x", "6x", "1.5x")]
    together = model(**inputs, plans=plans)
    assert model.active_plan == active  # restored
    assert len(together) == len(plans)
    for plan, outputs in zip(plans, together, strict=True):
        model.set_plan(plan)
        torch.testing.assert_close(outputs.logits, model(**inputs).logits, rtol=0, atol=0)
    model.set_plan(active)
    assert not torch.equal(together[0].logits, together[1].logits)


@contextlib.contextmanager
def recorded_plans(model):
    """Yields the list of plans each training forward call of ``model``'s class ran."""
    seen = []
    forward = type(model).forward

    @functools.wraps(forward)  # Trainer keeps the dataset columns the forward signature names
    def recording_forward(self, *args, plans=None, **kwargs):
        if plans is not None and self.training:
            seen.append(list(plans))
        return forward(self, *args, plans=plans, **kwargs)

    type(model).forward = recording_forward
    try:
        yield seen
    finally:
        type(model).forward = forward


def test_multi_plan_recipe_trains_the_rotated_granularities_and_random_mixed_plans(family, tmp_path):
    from hf_modular.methods.modular.plan_sampling import granularity_plans

    _, model = modular_model(family)
    args = training_args(
        tmp_path, max_steps=3, plan_sampling="granularities", granularity_pairing="rotate", random_plans=2
    )
    with recorded_plans(model) as seen:
        CompressionTrainer(model=model, args=args, train_dataset=copy_task(family, size=24)).train()
    assert len(seen) == 3
    for step, plans in enumerate(seen):
        assert len(plans) == 5
        assert plans[:3] == granularity_plans(model.plan_space, step)
    randoms = [plan for plans in seen for plan in plans[3:]]
    assert len(set(randoms)) > 1  # drawn afresh per step
    mixed = [p for p in randoms if any(e - s == 1 for n in STACKS for s, e in p.stack(n).spans)]
    assert mixed, "random plans put modules next to teacher layers"


def test_single_stack_plans_join_the_granularities_in_the_step(family, tmp_path):
    from hf_modular.methods.modular.plan_sampling import granularity_plans, single_stack_plans

    _, model = modular_model(family)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if ".pool." in n}
    args = training_args(tmp_path, max_steps=2, plan_sampling="granularities", single_stack_plans=1)
    with recorded_plans(model) as seen:
        CompressionTrainer(model=model, args=args, train_dataset=copy_task(family, size=16)).train()
    assert [plans[:3] for plans in seen] == [granularity_plans(model.plan_space)] * 2
    assert [plans[3:] for plans in seen] == [single_stack_plans(model.plan_space, 1, step) for step in (0, 1)]
    after = dict(model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before)


def test_module_lr_scales_set_each_module_sizes_rate(tmp_path):
    """With {2: 0.25}, the modules replacing 2 layers take steps a quarter the size of the others'
    (Adam's first step moves every parameter with a gradient by about its group's rate)."""
    assert training_args(tmp_path, module_lr_scales={"2": 0.25}).module_lr_scales == {2: 0.25}  # as read from JSON
    _, model = modular_model("t5")
    sizes = {
        id(p): end - start
        for n in STACKS
        for (start, end), m in model.planned_layers(n).pool_modules()
        for p in m.parameters()
    }
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = training_args(
        tmp_path,
        max_steps=1,
        learning_rate=1e-3,
        warmup_steps=0,
        lr_scheduler_type="constant",
        plan_sampling="granularities",
        module_lr_scales={2: 0.25},
        max_grad_norm=0.0,
    )
    trainer = CompressionTrainer(model=model, args=args, train_dataset=copy_task("t5", size=8))
    trainer.train()
    rates = {p["lr"] for p in trainer.optimizer.param_groups}
    assert rates == {1e-3, 2.5e-4}
    largest = {}
    for name, parameter in model.named_parameters():
        if id(parameter) in sizes:
            step = (parameter.detach() - before[name]).abs().max().item()
            largest[sizes[id(parameter)]] = max(largest.get(sizes[id(parameter)], 0.0), step)
    assert largest[2] == pytest.approx(2.5e-4, rel=0.05) and largest[3] == pytest.approx(1e-3, rel=0.05), largest


def test_module_lr_scales_are_refused_where_they_cannot_apply(tmp_path):
    _, model = modular_model("t5")
    with pytest.raises(ConfigError, match=r"names module sizes \[4\]; this model's modules have sizes \[2, 3, 6\]"):
        CompressionTrainer(model=model, args=training_args(tmp_path, module_lr_scales={4: 0.5}))
    with pytest.raises(ConfigError, match="scales the learning rate of a modular model's modules; T5ForConditional"):
        CompressionTrainer(
            model=tiny_teacher("t5", encoder_layers=2, decoder_layers=2),
            teacher=tiny_teacher("t5"),
            args=training_args(tmp_path, module_lr_scales={2: 0.5}),
        )


def test_plan_row_strides_are_refused_for_sizes_the_model_lacks(tmp_path):
    _, model = modular_model("t5")
    args = training_args(tmp_path, plan_sampling="granularities", plan_row_strides={4: 2})
    with pytest.raises(ConfigError, match=r"plan_row_strides names module sizes \[4\]; this model's modules"):
        CompressionTrainer(model=model, args=args)


def test_plans_forward_runs_a_strided_plan_on_every_nth_row(family):
    _, model = modular_model(family)
    batch = pad_collator(family)(ragged_copy_task(family, size=4))
    plans = [model.resolve_plan(spec) for spec in ("2x", "6x")]
    together = model.eval()(**batch, plans=plans, row_strides=[2, 1])
    model.set_plan(plans[0])
    even = {key: value[::2].contiguous() for key, value in batch.items()}
    torch.testing.assert_close(together[0].logits, model(**even).logits, rtol=0, atol=0)
    assert together[1].logits.shape[0] == 4


def _plan_gradients(model, trainer, batch) -> dict[int, list[torch.Tensor]]:
    """The loss gradient of each module size's parameters, from one training micro-batch."""
    model.train().zero_grad()
    trainer.compute_loss(model, dict(batch)).backward()
    return {
        end - start: [p.grad.clone() for p in module.parameters()]
        for name in STACKS
        for (start, end), module in model.planned_layers(name).pool_modules()
    }


def test_plan_row_strides_train_the_deep_plan_on_every_nth_row_with_the_same_expected_loss(family, tmp_path):
    """plan_row_strides={2: 2}: the plan of 2-layer modules learns from rows 0 and 2 of the batch only,
    counted twice over the whole batch's positions, so a batch of pairs of equal rows gives exactly
    the unstrided loss; the other plans still learn from every row."""
    _, model = modular_model(family)
    pairs = pad_collator(family)(ragged_copy_task(family, size=2))
    doubled = {key: value.repeat_interleave(2, dim=0) for key, value in pairs.items()}  # rows a, a, b, b

    def trainer(strides):
        args = training_args(tmp_path, plan_sampling="granularities", plan_row_strides=strides)
        return CompressionTrainer(model=model, args=args, train_dataset=copy_task(family, size=8))

    plain, strided = trainer(None), trainer({2: 2})
    model.train()
    with torch.no_grad():
        same = [t.compute_loss(model, dict(doubled)).item() for t in (plain, strided)]
    assert same[1] == pytest.approx(same[0], rel=1e-5)

    batch = pad_collator(family)(ragged_copy_task(family, size=4))
    odd_changed = {key: value.clone() for key, value in batch.items()}
    for row in (1, 3):  # the odd rows' words reversed: other tokens, the same positions and counts
        length = int(batch["attention_mask"][row].sum())
        odd_changed["input_ids"][row, :length] = batch["input_ids"][row, :length].flip(0)
    for run, strides_apply in ((strided, True), (plain, False)):
        before, after = (_plan_gradients(model, run, b) for b in (batch, odd_changed))
        size2 = all(torch.equal(x, y) for x, y in zip(before[2], after[2], strict=True))
        assert size2 == strides_apply  # the 2-layer modules see the even rows only, and only when strided
        assert not all(torch.equal(x, y) for x, y in zip(before[3], after[3], strict=True))


def _module_beside_teacher(model, name: str, span: tuple[int, int], batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The module for ``span`` placed in a mixed plan (teacher layers everywhere else) and run by the
    stock stack forward: its output, and the teacher layer output at the span's end (forward hooks)."""
    from hf_modular.plan import Plan, StackPlan

    layers = model.planned_layers(name)
    depth = model.plan_space.stacks[name].depth
    spans = (*((i, i + 1) for i in range(span[0])), span, *((i, i + 1) for i in range(span[1], depth)))
    identity = model.resolve_plan(None)
    mixed = Plan(**{**{n: identity.stack(n) for n in STACKS}, name: StackPlan(depth, spans)})
    seen = {}
    hooks = [
        layers.get(span).register_forward_hook(lambda m, a, out: seen.__setitem__("module", out)),
        layers.get((span[1] - 1, span[1])).register_forward_hook(lambda m, a, out: seen.__setitem__("teacher", out)),
    ]
    try:
        with torch.no_grad():
            for plan, key in ((mixed, "module"), (identity, "teacher")):
                with model.plan_context(plan, eval_mode=True):
                    model(**batch)
                    seen[key + "_done"] = seen[key]
    finally:
        for hook in hooks:
            hook.remove()
    first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731
    return first(seen["module_done"]), first(seen["teacher_done"])


@pytest.mark.parametrize("stride", [1, 2])
def test_teacher_context_term_trains_each_module_on_the_teachers_own_hidden_states(family, stride, tmp_path):
    """teacher_context_weight=w adds exactly w x (per stack, the mean over the step's modules that do
    not start the stack of the layer-normalised MSE between the module's output on the teacher's
    input to its span and the teacher's output at its end), with each module's output read off a
    mixed plan that puts it there; the teacher's own outputs (the other terms' targets) stay untouched.
    With teacher_context_row_stride=2 the term covers rows 0 and 2 of the (padded, ragged) batch,
    counted twice: every batch-first argument (masks, T5's masked position bias, cross-attention
    states) was cut to the same rows."""
    from hf_modular.losses import hidden_mse_sum

    _, model = modular_model(family)
    batch = pad_collator(family)(ragged_copy_task(family, size=4))
    data = copy_task(family, size=8)
    loss = {}
    for weight in (0.0, 0.5):
        args = training_args(
            tmp_path, plan_sampling="granularities", teacher_context_weight=weight, teacher_context_row_stride=stride
        )
        trainer = CompressionTrainer(model=model, args=args, train_dataset=data, data_collator=pad_collator(family))
        model.train()
        loss[weight] = trainer.compute_loss(model, dict(batch)).item()
    model.eval()
    masks = {"encoder": batch["attention_mask"], "decoder": batch["labels"].ne(-100)}
    expected = 0.0
    for name in STACKS:
        spans = [span for span, _ in model.planned_layers(name).pool_modules() if span[0] > 0]  # not the first
        outputs = [_module_beside_teacher(model, name, span, batch) for span in spans]
        kept = masks[name][::stride]
        terms = [hidden_mse_sum(module[::stride], teacher[::stride], kept) for module, teacher in outputs]
        expected += (stride * torch.stack(terms).mean() / masks[name].sum()).item()
    assert loss[0.5] - loss[0.0] == pytest.approx(0.5 * expected, rel=1e-4)
    assert expected > 0


def test_teacher_context_term_moves_modules_toward_the_teachers_layers(family, tmp_path):
    """Trained on the teacher-context term alone, a module's output beside teacher layers gets closer
    to the teacher's; the teacher's layers and the shared weights do not change."""
    from hf_modular.losses import hidden_mse_sum

    _, model = modular_model(family)
    batch = pad_collator(family)(copy_task(family, size=8))
    span = (2, 4)
    mask = batch["labels"].ne(-100)
    mse = lambda: hidden_mse_sum(*_module_beside_teacher(model, "decoder", span, batch), mask).item()  # noqa: E731
    before_error = mse()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if ".pool." not in n}
    args = training_args(
        tmp_path,
        max_steps=30,
        learning_rate=1e-2,
        plan_sampling="granularities",
        teacher_context_weight=1.0,
        ce_weight=0.0,
        kd_weight=0.0,
        hidden_weight=0.0,
    )
    CompressionTrainer(model=model, args=args, train_dataset=copy_task(family, size=64)).train()
    assert mse() < 0.8 * before_error
    assert all(torch.equal(frozen[n], p) for n, p in model.named_parameters() if n in frozen)
