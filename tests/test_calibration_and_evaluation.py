"""The calibrated strategy and the evaluation of every assembly."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from hf_modular import (
    AssemblyError,
    AssemblyTable,
    CompressionTrainer,
    ConfigError,
    DataError,
    calibrate_assembly,
    evaluate_assemblies,
)
from hf_modular.evaluation import interleaved_decode_latency, timing_batches
from hf_modular.methods.modular.calibration import (
    ExampleErrors,
    PlanScores,
    _teacher_kl,
    _teacher_reference,
    served_front,
)
from tests.conftest import copy_task, modular_model, pad_collator, sample_inputs
from tests.test_trainer import training_args


def batches(family, n=2):
    rows = copy_task(family, size=8 * n)
    collate = pad_collator(family)
    return [collate(rows[i : i + 8]) for i in range(0, len(rows), 8)]


def test_calibration_picks_the_lowest_kl_plan_and_is_reproducible(family, tmp_path):
    _, model = modular_model(family)
    results = calibrate_assembly(model, batches(family), ["2x", "3x"], max_candidates=50)
    assert [r.ratio for r in results] == ["2x", "3x"]
    assert set(model.config.calibrated_plans) == {"2x", "3x"}
    model.eval()
    references = [_teacher_reference(model, b, 32) for b in batches(family)]
    assert results[0].candidates > 1  # 2x: several tilings of 3+3 (and other step counts) compete
    assert results[1].candidates == 1  # 3x on 6+6: only M0:3 M3:6 in each stack
    for result in results:
        # no worse than the deterministic strategies' plans (which are among the candidates)
        for strategy in ("size-first", "speed-first"):
            other = model.resolve_plan(result.ratio, strategy)
            assert result.kl <= _teacher_kl(model, other, references).score + 1e-6
        assert model.resolve_plan(result.ratio, "calibrated") == result.plan
    model.set_plan(model.resolve_plan(None))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, assemble="3x", assemble_strategy="calibrated")
    assert loaded.config.hf_modular["plan"] == results[1].plan.to_json()
    model.assemble("3x", strategy="calibrated")
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(**inputs).logits, model(**inputs).logits)


def test_calibration_rejects_unreachable_ratios(family):
    _, model = modular_model(family)
    with pytest.raises(AssemblyError, match="not reachable"):
        calibrate_assembly(model, batches(family), ["99x"])


def test_evaluate_assemblies_table_and_plot(family, tmp_path):
    _, model = modular_model(family)

    def exact_match(predictions, references):
        return {"exact": sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)}

    table = evaluate_assemblies(
        model,
        copy_task(family, size=8),
        pad_collator(family),
        ratios=["2x", "3x"],
        batch_size=4,
        metric_fn=exact_match,
        max_new_tokens=4,
        latency_batch_sizes=(1, 4),
        latency_repeats=2,
        progress=False,
    )
    assert [r.ratio for r in table.rows] == ["1x", "2x", "3x"]
    assert model.active_plan.is_identity  # the plan it was given back
    teacher, half, third = table.rows
    assert teacher.speedup == {1: 1.0, 4: 1.0}
    assert teacher.params > half.params > third.params
    assert (half.encoder_layers, half.decoder_layers) == (3, 3)
    assert all(0.0 <= r.metrics["exact"] <= 1.0 and r.eval_loss > 0 for r in table.rows)
    # the loss of each row is the teacher-forced loss of that plan
    model.assemble("3x")
    collated = pad_collator(family)(copy_task(family, size=8))
    with torch.no_grad():
        assert third.eval_loss == pytest.approx(model.eval()(**collated).loss.item(), rel=1e-5)
    markdown = table.to_markdown()
    assert "| 3x | 2 | 2 |" in markdown and "speedup@4" in markdown
    png = table.plot(tmp_path / "plot.png", metric="exact")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert AssemblyTable.from_json(table.to_json()) == table


def test_latency_is_timed_in_interleaved_rounds_of_full_length_decodes(family):
    """Every round times each contender once per batch size (round 0 is the uncounted warm-up),
    and every timed decode generates exactly max_new_tokens tokens."""
    _, model = modular_model(family)
    calls, lengths = [], []
    generate = model.generate

    def recorded_generate(**kwargs):
        out = generate(**kwargs)
        lengths.append(out.shape[1])
        return out

    model.generate = recorded_generate

    def contender(spec):
        def prepare():
            calls.append(spec)
            model.assemble(spec)
            return model

        return prepare

    collate = pad_collator(family)
    batches = timing_batches(copy_task(family, size=4), collate, (1, 3))
    assert [b["input_ids"].shape[0] for b in batches.values()] == [1, 3]
    latency = interleaved_decode_latency({s: contender(s) for s in ("1x", "3x")}, batches, 5, repeats=2)
    assert calls == ["1x", "3x"] * 3
    assert len(lengths) == 2 * 2 * 3 and set(lengths) == {5 + 1}  # the start token, then exactly 5 new ones
    assert set(latency) == {"1x", "3x"} and all(set(r) == {1, 3} for r in latency.values())
    assert all(ms > 0 for r in latency.values() for ms in r.values())
    rounds = interleaved_decode_latency({"1x": contender("1x")}, batches, 5, repeats=3, statistic=len)
    assert rounds == {"1x": {1: 3, 3: 3}}  # the statistic sees one time per counted round
    with pytest.raises(ConfigError, match="latency_repeats=0"):
        interleaved_decode_latency({"1x": contender("1x")}, batches, 5, repeats=0)


def test_latency_of_a_batch_list_with_natural_stopping(family):
    """A list entry is decoded batch after batch and timed as one; without fixed_length no
    min_new_tokens is forced (what an early-exit sweep times), and extra kwargs reach generate."""
    _, model = modular_model(family)
    seen = []
    generate = model.generate

    def recorded_generate(**kwargs):
        seen.append((kwargs["input_ids"].shape[0], "min_new_tokens" in kwargs, kwargs.get("use_cache")))
        return generate(**kwargs)

    model.generate = recorded_generate
    rows = copy_task(family, size=5)
    collate = pad_collator(family)
    entry = [collate([rows[i] for i in range(j, min(j + 2, 5))]) for j in range(0, 5, 2)]
    latency = interleaved_decode_latency(
        {"1x": lambda: model}, {2: entry}, 4, repeats=2, fixed_length=False, use_cache=False
    )
    assert seen == [(2, False, False), (2, False, False), (1, False, False)] * 3  # warm-up + 2 timed rounds
    assert set(latency) == {"1x"} and set(latency["1x"]) == {2} and latency["1x"][2] > 0


def test_evaluate_assemblies_without_timing(family):
    _, model = modular_model(family)
    table = evaluate_assemblies(
        model, copy_task(family, size=4), pad_collator(family), ratios=["2x"], latency_batch_sizes=(), progress=False
    )
    assert [r.ratio for r in table.rows] == ["1x", "2x"]
    assert all(r.latency_ms == {} and r.speedup == {} for r in table.rows)
    assert "ms/batch" not in table.to_markdown()


def test_a_damaged_assembly_table_is_a_data_error():
    with pytest.raises(DataError, match="not an assembly table"):
        AssemblyTable.from_json('[{"ratio": "2x"}]')


def test_trainer_evaluate_assemblies_and_calibrate(family, tmp_path):
    _, model = modular_model(family)
    trainer = CompressionTrainer(
        model=model,
        args=training_args(tmp_path, max_steps=2, per_device_eval_batch_size=4),
        train_dataset=copy_task(family),
        eval_dataset=copy_task(family, size=8),
        data_collator=pad_collator(family),
    )
    trainer.train()
    table = trainer.evaluate_assemblies(ratios=["2x"], latency_batch_sizes=(2,), latency_repeats=1, progress=False)
    assert [r.ratio for r in table.rows] == ["1x", "2x"]
    assert trainer.calibrate(["2x"], num_batches=1)[0].ratio == "2x"
    assert model.active_plan.is_identity


# ----------------------------------------------------------------------------- the measured front
@pytest.mark.parametrize("metric", ["token_error", "teacher_kl"])
def test_measure_plans_scores_every_reachable_plan_and_serves_the_front(family, metric, tmp_path):
    from hf_modular import measure_plans
    from hf_modular.evaluation import decode_length, special_token_ids, token_lists
    from hf_modular.methods.modular.assembly import RATIO_TOLERANCE
    from hf_modular.metrics import sequence_metrics

    _, model = modular_model(family)  # 6+6 layers, modules of 2, 3 and 6: 14 tilings per stack
    size_first = {spec: model.resolve_plan(spec) for spec in ("1.5x", "2x", "3x")}
    data = batches(family)
    scores = measure_plans(model, data, metric=metric, progress=False)
    assert len(scores.plans) == 14 * 14 - 1  # every plan but the teacher's
    assert len({plan for plan, _ in scores.plans}) == len(scores.plans)
    assert model.config.plan_scores == scores.to_config() and scores.metric == metric
    model.eval()
    length = decode_length(model, data)
    references = [_teacher_reference(model, b, length) for b in data]
    for plan, score in scores.plans[:: len(scores.plans) // 5]:
        if metric == "teacher_kl":  # the plan's teacher-KL on those batches
            expected = _teacher_kl(model, plan, references).score
        else:  # the token error of the plan's own greedy decodes against the labels, computed here
            model.set_plan(plan)
            special = special_token_ids(model)
            predictions, targets = [], []
            for batch in data:
                out = model.generate(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=length
                )
                predictions += token_lists(out, special)
                targets += token_lists(batch["labels"], special)
            expected = sequence_metrics(predictions, targets)["TokER"]
        assert score == pytest.approx(expected, rel=1e-4, abs=1e-6)

    assert [e.score for e in scores.per_example] == pytest.approx([s for _, s in scores.plans])
    space = model.plan_space
    index = {plan: i for i, (plan, _) in enumerate(scores.plans)}

    def served_for(table: PlanScores) -> list[int]:
        model.config.plan_scores = table.to_config()
        served = []
        for ratio in model.reachable_ratios():
            if ratio > 1.0:
                plan = model.resolve_plan(f"{ratio}x")  # strategy "auto" -> "measured" now that a table exists
                eligible = [i for p, i in index.items() if space.plan_ratio(p) >= ratio * (1 - RATIO_TOLERANCE)]
                served.append((index[plan], eligible))
        return served

    # tolerance 0: the best measured plan at least that small, whatever the noise
    exact = served_front([(space.plan_ratio(p), e) for p, e in zip(index, scores.per_example, strict=True)], 0.0)
    served = served_for(dataclasses.replace(scores, front=exact, tolerance_se=0.0))
    for i, eligible in served:
        assert scores.plans[i][1] == min(scores.plans[j][1] for j in eligible)
    assert [scores.plans[i][1] for i, _ in served] == sorted(scores.plans[i][1] for i, _ in served)
    # the default tolerance (1 paired SE): a front plan, never worse than a smaller served one, and
    # within the noise of the best eligible plan
    served = served_for(scores)
    assert scores.tolerance_se == 1.0
    values = [scores.plans[i][1] for i, _ in served]
    assert values == sorted(values), "asking for a larger model never gives a worse measured plan"
    for i, eligible in served:
        assert i in scores.front
        best = min(eligible, key=lambda j: scores.plans[j][1])
        noise = max(scores.per_example[best].difference_se(scores.per_example[j]) for j in scores.front)
        assert scores.plans[i][1] <= scores.plans[best][1] + noise + 1e-9
    model.config.plan_scores = scores.to_config()
    # the explicit strategies stay available
    assert {spec: model.resolve_plan(spec, "size-first") for spec in size_first} == size_first
    model.assemble("2x")
    report = model.compression_report()
    assert report.choice.startswith("measured: the front plan") and metric in report.choice
    assert "chosen by measured" in report.to_markdown() and report.to_dict()["choice"] == report.choice

    # the table travels with the artifact: a sparse load serves the same plan
    model.assemble(None)
    model.save_pretrained(tmp_path / "artifact")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "artifact", assemble="2x")
    assert loaded.config.hf_modular["plan"] == model.resolve_plan("2x").to_json()
    assert loaded.config.hf_modular["choice"] == model.choose_plan("2x").reason


def test_paired_standard_error_and_the_served_front():
    # two plans on four examples of 10 tokens each: differences 1, 1, 3, 3 edits -> 20% of 40 tokens
    small = ExampleErrors((4.0, 2.0, 6.0, 4.0), (10.0,) * 4, 100.0)
    large = ExampleErrors((3.0, 1.0, 3.0, 1.0), (10.0,) * 4, 100.0)
    assert small.score == pytest.approx(40.0) and large.score == pytest.approx(20.0)
    # residuals of the differences from 2 edits per example: -1, -1, 1, 1 -> sqrt(4 * 4/3) / 40
    assert small.difference_se(large) == pytest.approx(100 * math.sqrt(4 * 4 / 3) / 40)
    assert small.subset([0, 1]).score == pytest.approx(30.0)
    # a larger plan better by 20 points with SE 5.77 joins the front at 1 and 3 SE, not at 4
    plans = [(3.0, small), (2.0, large), (1.5, ExampleErrors((4.0, 2.0, 6.0, 4.0), (10.0,) * 4, 100.0))]
    assert served_front(plans, 0.0) == [0, 1]  # an equal larger plan never joins
    assert served_front(plans, 3.0) == [0, 1]
    assert served_front(plans, 4.0) == [0]


def test_without_a_measured_table_the_strategies_are_unchanged(family):
    _, model = modular_model(family)
    assert model.config.plan_scores is None and model.config.assemble_strategy == "auto"
    for spec in ("1.5x", "2x", "3x", "6x"):
        assert model.resolve_plan(spec) == model.resolve_plan(spec, "size-first")
    with pytest.raises(AssemblyError, match="needs measured plan qualities"):
        model.resolve_plan("2x", "measured")


@pytest.mark.parametrize(
    "scores",
    [
        {"metric": "teacher_kl", "plans": []},
        {"metric": "teacher_kl", "plans": [{"plan": {"encoder": [[0, 2], 2, 3, 4, 5]}, "score": float("nan")}]},
        {"metric": "teacher_kl", "plans": [{"plan": "2x", "score": 0.1}]},
        ["not", "a", "table"],
    ],
)
def test_bad_plan_scores_are_refused(scores):
    from hf_modular import ModularT5Config

    with pytest.raises(ConfigError, match="plan_scores must be"):
        ModularT5Config(num_layers=2, num_decoder_layers=2, plan_scores=scores)


def test_measure_plans_refuses_bad_input(family):
    from hf_modular import measure_plans

    _, model = modular_model(family)
    with pytest.raises(DataError, match="at least one batch"):
        measure_plans(model, [], progress=False)
    with pytest.raises(ConfigError, match="max_plans=0"):
        measure_plans(model, batches(family), max_plans=0, progress=False)


def test_trainer_measure_plans_uses_the_eval_set(tmp_path):
    _, model = modular_model("t5")
    trainer = CompressionTrainer(
        model=model, args=training_args(tmp_path, max_steps=1), train_dataset=copy_task("t5", size=8)
    )
    with pytest.raises(ConfigError, match="measure_plans needs held-out data"):
        trainer.measure_plans()
    scores = trainer.measure_plans(copy_task("t5", size=8), max_plans=10)
    assert len(scores.plans) == 10 and model.config.plan_scores["plans"][0]["plan"] == scores.plans[0][0].to_json()
