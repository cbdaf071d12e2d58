"""COST-EFF: slenderization against models built directly, Taylor scores, exits, early-exit
decoding (cached == uncached, batch-independent), save/load, training and the sweep."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import CACHE_KWARG, copy_task, modular_model, pad_collator, sample_inputs, tiny_teacher
from torch import nn
from transformers import AutoModelForSeq2SeqLM, DynamicCache, EncoderDecoderCache

from hf_modular import CompressionTrainer, ConfigError, DataError
from hf_modular.arch import adapter_for
from hf_modular.methods import cost_eff
from hf_modular.methods.cost_eff.exits import EarlyExitSession
from hf_modular.methods.cost_eff.slenderization import PruneGroup, _structure_sums

DEPTH = 4


def teacher_for(family: str):
    """A tiny teacher whose matrices get extra noise: at init BART's exits are all near-uniform
    (so every token exits together), which would leave the early-exit tests little to check."""
    teacher = tiny_teacher(family, encoder_layers=2, decoder_layers=DEPTH)
    generator = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for param in teacher.parameters():
            if param.dim() == 2:
                param.add_(torch.randn(param.shape, generator=generator) * 0.3)
    return teacher


def calibration(family: str, batches: int = 2):
    rows, collate = copy_task(family, size=8 * batches), pad_collator(family)
    return [collate(rows[i : i + 8]) for i in range(0, len(rows), 8)]


def decode(model, inputs, **kwargs):
    if not isinstance(model, cost_eff.CostEffModelMixin) and kwargs.get("use_cache", True):
        # stock T5 sizes its cache by the encoder depth (2 < 4): give it one that grows
        kwargs.setdefault(CACHE_KWARG, EncoderDecoderCache(DynamicCache(), DynamicCache()))
    kwargs.setdefault("max_new_tokens", 8)
    kwargs.setdefault("min_new_tokens", kwargs["max_new_tokens"])
    return model.generate(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], do_sample=False, **kwargs
    )


def decode_logits(model, inputs, **kwargs):
    """(tokens, the logits every step chose from)."""
    out = decode(model, inputs, return_dict_in_generate=True, output_logits=True, **kwargs)
    return out.sequences, torch.stack(out.logits, dim=1)


def mixed_threshold(model, inputs) -> float:
    """A threshold at which tokens exit at different layers, and a layer the whole batch skipped
    at one step runs at a later step (so a cache entry filled for a skipped layer is read)."""
    for threshold in torch.linspace(0.01, 0.99, 99).tolist():
        decode(model, inputs, early_exit_threshold=threshold)
        run = model.last_exit_report.layers_run
        if any(run[s] < max(run[s + 1 :]) for s in range(len(run) - 1)):
            return threshold
    pytest.fail("no threshold mixes early and late exits on this model: the test would prove nothing")


# ----------------------------------------------------------------------------- exits
@pytest.mark.parametrize("head", ["shared", "affine"])
def test_never_exit_is_exactly_the_model(family, head):
    teacher = teacher_for(family)
    multi = cost_eff.add_exits(teacher, head=head)
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(multi(**inputs).logits, teacher(**inputs).logits)
    assert torch.equal(decode(multi, inputs), decode(teacher, inputs))
    assert torch.equal(decode(multi, inputs, num_beams=3), decode(teacher, inputs, num_beams=3))
    assert multi.last_exit_report is None
    assert multi.config.exit_layers == list(range(DEPTH))


def test_the_last_exit_is_the_model_output(family):
    multi = cost_eff.add_exits(teacher_for(family), head="affine")
    with torch.no_grad():
        outputs = multi(**sample_inputs(family), output_hidden_states=True)
        exits = multi.all_exit_logits(outputs)
        from_state = multi.adapter.vocab_projection(
            multi, _final_norm(multi)(outputs.decoder_hidden_states[DEPTH])
        )  # the shared head on the last layer's output
    assert len(exits) == DEPTH and exits[-1] is outputs.logits
    torch.testing.assert_close(from_state, outputs.logits)


def _final_norm(model):
    adapter = model.adapter
    return getattr(adapter.stack(model, "decoder"), adapter.final_norm) if adapter.final_norm else nn.Identity()


@torch.no_grad()
def test_early_exit_cached_equals_uncached(family):
    multi = cost_eff.add_exits(teacher_for(family))
    inputs = sample_inputs(family)
    threshold = mixed_threshold(multi, inputs)
    cached, cached_logits = decode_logits(multi, inputs, early_exit_threshold=threshold)
    cached_report = multi.last_exit_report
    uncached, uncached_logits = decode_logits(multi, inputs, early_exit_threshold=threshold, use_cache=False)
    assert torch.equal(cached, uncached)
    torch.testing.assert_close(cached_logits, uncached_logits, rtol=1e-4, atol=1e-5)
    assert torch.equal(cached_report.layers_per_token, multi.last_exit_report.layers_per_token)
    assert not torch.equal(cached, decode(multi, inputs)), "early exit changed nothing: a vacuous comparison"


@torch.no_grad()
def test_skipped_layers_cache_matters(family, monkeypatch):
    """Filling skipped layers' caches from a wrong state must change the tokens: the test above can fail."""
    multi = cost_eff.add_exits(teacher_for(family))
    inputs = sample_inputs(family)
    threshold = mixed_threshold(multi, inputs)
    _, right = decode_logits(multi, inputs, early_exit_threshold=threshold)
    fill = EarlyExitSession.fill_self_attention_cache

    def fill_from_a_wrong_state(self, layer, hidden, cache):
        fill(self, layer, -hidden, cache)

    monkeypatch.setattr(EarlyExitSession, "fill_self_attention_cache", fill_from_a_wrong_state)
    _, wrong = decode_logits(multi, inputs, early_exit_threshold=threshold)
    assert (wrong - right).abs().max() > 1e-3


@torch.no_grad()
def test_each_sequence_exits_on_its_own(family):
    multi = cost_eff.add_exits(teacher_for(family))
    inputs = {k: v[:2] for k, v in sample_inputs(family).items()}  # two unpadded rows
    threshold = mixed_threshold(multi, inputs)
    together = decode(multi, inputs, early_exit_threshold=threshold)
    layers = multi.last_exit_report.layers_per_token
    for row in range(2):
        alone = decode(multi, {k: v[row : row + 1] for k, v in inputs.items()}, early_exit_threshold=threshold)
        assert torch.equal(alone[0], together[row])
        assert torch.equal(multi.last_exit_report.layers_per_token[0], layers[row])


@torch.no_grad()
def test_beam_search_with_early_exit(family):
    multi = cost_eff.add_exits(teacher_for(family))
    inputs = sample_inputs(family)
    threshold = mixed_threshold(multi, inputs)
    greedy = decode(multi, inputs, early_exit_threshold=threshold)
    assert torch.equal(decode(multi, inputs, early_exit_threshold=threshold, num_beams=1), greedy)
    beams = decode(multi, inputs, early_exit_threshold=threshold, num_beams=3, num_return_sequences=3)
    assert beams.shape[0] == 9
    assert multi.last_exit_report.layers_per_token.shape == (9, 8)
    with pytest.raises(ConfigError, match="use_cache"):
        decode(multi, inputs, early_exit_threshold=threshold, num_beams=3, use_cache=False)


@torch.no_grad()
def test_entropy_confidence():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(cost_eff.confidence(logits, "entropy"), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(cost_eff.confidence(logits, "top_prob"), torch.tensor([0.25, 1.0]))


# ----------------------------------------------------------------------------- slenderize
def test_taylor_sums_by_hand():
    layer = nn.Module()
    layer.o = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.o.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]))
    layer.o.weight.grad = torch.tensor([[0.5, -1.0, 0.0, 1.0], [2.0, 0.0, -1.0, 0.5]])
    heads = PruneGroup("encoder", 0, "self_attention", (), ("o",), unit=2)
    # head 0: 1*.5 + 2*-1 + 5*2 + 6*0 = 8.5; head 1: 3*0 + 4*1 + 7*-1 + 8*.5 = 1
    assert _structure_sums(layer, heads).tolist() == [8.5, 1.0]
    neurons = PruneGroup("encoder", 0, "ffn", (), ("o",), unit=1)
    assert _structure_sums(layer, neurons).tolist() == [10.5, -2.0, -7.0, 8.0]


def test_taylor_scores_are_gate_gradients(family):
    """|d loss / d gate| for a gate on each head's and neuron's output equals the Taylor score."""
    teacher = teacher_for(family)
    work = cost_eff.as_cost_eff(teacher, exit_layers=list(range(DEPTH)))
    batches = calibration(family)
    with torch.no_grad():
        targets = [teacher(**b).logits for b in batches]
    scores = cost_eff.taylor_importance(work, batches, targets)
    gates, handles = {}, []
    for group in scores:
        module = work.get_submodule(group.cols[0])
        gate = torch.ones(module.in_features // group.unit, requires_grad=True)
        gates[group] = gate
        handles.append(
            module.register_forward_pre_hook(
                lambda m, args, gate=gate, unit=group.unit: (args[0] * gate.repeat_interleave(unit),)
            )
        )
    for batch, target in zip(batches, targets, strict=True):
        cost_eff.importance_loss(work, batch, target).backward()
    for handle in handles:
        handle.remove()
    tied = {}
    for group, gate in gates.items():
        tied[group.tie] = tied.get(group.tie, 0) + gate.grad
    for group, score in scores.items():
        torch.testing.assert_close(score, tied[group.tie].abs(), rtol=1e-4, atol=1e-6)
    kinds = {g.tie for g in scores if g.kind == "self_attention"}
    assert len(kinds) == (2 if family == "t5" else 2 + DEPTH)  # T5: one head set per stack


def _zero_pruned(model, slim_keep):
    """The model with every pruned head's and neuron's output weights zeroed (same function as pruning)."""
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for group, kept in slim_keep.items():
            drop = torch.ones(reference.get_submodule(group.cols[0]).in_features // group.unit, dtype=torch.bool)
            drop[kept] = False
            for path in group.cols:
                weight = reference.get_submodule(path).weight
                weight.view(weight.shape[0], -1, group.unit)[:, drop] = 0
    return reference


@pytest.mark.parametrize(("heads", "ffn"), [(2, 24), (3, 64), (4, 10)])
def test_slenderized_equals_the_model_without_the_pruned_structures(family, heads, ffn):
    teacher = teacher_for(family)
    batches = calibration(family)
    slim = cost_eff.slenderize(teacher, heads=heads, ffn=ffn, data=batches, progress=False)
    work = cost_eff.as_cost_eff(teacher, exit_layers=list(range(DEPTH)))
    scores = cost_eff.taylor_importance(work, batches, [teacher(**b).logits for b in batches])
    keep = cost_eff.select(scores, heads, ffn)
    adapter = adapter_for(teacher)
    assert [getattr(slim.config, f) for f in (*adapter.head_fields, *adapter.ffn_fields)] == [heads] * 2 + [ffn] * 2
    inputs = sample_inputs(family)
    with torch.no_grad():
        # a smaller matmul vs zeroed rows: the sums run in another order (1.3e-5 apart on one thread)
        expected = _zero_pruned(teacher, keep)(**inputs).logits
        torch.testing.assert_close(slim(**inputs).logits, expected, atol=1e-4, rtol=1e-4)
    d, buckets, bias = 32, getattr(teacher.config, "relative_attention_num_buckets", 0), int(family == "bart")
    removed = 0  # counted by hand: q/k/v rows + output columns (+ BART biases), FFN rows and columns
    for g in keep:
        if g.kind == "ffn":
            removed += (64 - ffn) * (2 * d + bias)
        else:
            removed += (4 - heads) * (g.unit * (4 * d + 3 * bias) + (buckets if g.head_table else 0))
    assert sum(p.numel() for p in teacher.parameters()) - sum(p.numel() for p in slim.parameters()) == removed
    assert slim.config.exit_layers == []


@torch.no_grad()
def test_slenderized_t5_is_a_stock_t5_of_the_smaller_width():
    """Built directly: a stock T5Config at the new widths, weights sliced here by hand."""
    teacher = teacher_for("t5")
    batches = calibration("t5")
    with torch.enable_grad():
        slim = cost_eff.slenderize(teacher, heads=2, ffn=16, data=batches, progress=False)
        work = cost_eff.as_cost_eff(teacher, exit_layers=list(range(DEPTH)))
        keep = cost_eff.select(cost_eff.taylor_importance(work, batches, [teacher(**b).logits for b in batches]), 2, 16)
    stock_config = type(teacher.config)(**{**teacher.config.to_dict(), "num_heads": 2, "d_ff": 16})
    stock = type(teacher)(stock_config).eval()
    state = teacher.state_dict()
    for group, kept in keep.items():
        units = torch.cat([torch.arange(k * group.unit, (k + 1) * group.unit) for k in kept.tolist()])
        for path in group.rows:
            state[f"{path}.weight"] = state[f"{path}.weight"][units]
        for path in group.cols:
            state[f"{path}.weight"] = state[f"{path}.weight"][:, units]
        if group.head_table:
            state[f"{group.head_table}.weight"] = state[f"{group.head_table}.weight"][:, kept]
    stock.load_state_dict(state)
    inputs = sample_inputs("t5")
    assert torch.equal(slim(**inputs).logits, stock(**inputs).logits)


def test_slenderize_an_assembled_model_and_iteratively(family):
    _, model = modular_model(family, encoder_layers=2, decoder_layers=DEPTH, module_sizes=[2])
    model.assemble("2x")
    slim = cost_eff.slenderize(
        model, heads=2, ffn=16, data=calibration(family), iterations=2, distill_steps=2, progress=False
    )
    assert adapter_for(slim).depth(slim.config, "decoder") == DEPTH // 2
    assert getattr(slim.config, adapter_for(slim).ffn_fields[1]) == 16
    multi = cost_eff.add_exits(slim)
    out = decode(multi, sample_inputs(family), early_exit_threshold=0.5)
    assert out.shape == (3, 9)
    assert model.active_plan.decoder.num_steps == DEPTH // 2  # the modular model is untouched


def test_bad_slenderize_input_is_named(family):
    teacher = teacher_for(family)
    batches = calibration(family)
    for kwargs, match in [
        ({"heads": 0}, "heads=0"),
        ({"heads": 5}, "heads=5"),
        ({"ffn": "8"}, "ffn='8'"),
        ({"heads": 2, "iterations": 0}, "iterations=0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            cost_eff.slenderize(teacher, data=batches, progress=False, **kwargs)
    with pytest.raises(DataError, match="calibration batches"):
        cost_eff.slenderize(teacher, heads=2)
    with pytest.raises(DataError, match="labels"):
        cost_eff.slenderize(teacher, heads=2, data=[{"input_ids": batches[0]["input_ids"]}])


def test_bad_exit_input_is_named(family):
    teacher = teacher_for(family)
    multi = cost_eff.add_exits(teacher)
    inputs = sample_inputs(family)
    for threshold in (0, 1.5, True, "0.9"):
        with pytest.raises(ConfigError, match="early_exit_threshold"):
            decode(multi, inputs, early_exit_threshold=threshold)
    with pytest.raises(ConfigError, match="exit_confidence='margin'"):
        decode(multi, inputs, early_exit_threshold=0.5, exit_confidence="margin")
    with pytest.raises(ConfigError, match="head='mlp'"):
        cost_eff.add_exits(teacher, head="mlp")
    with pytest.raises(ConfigError, match="exit_layers"):
        cost_eff.add_exits(teacher, layers=[0, DEPTH])
    slim = cost_eff.as_cost_eff(teacher)
    with pytest.raises(ConfigError, match="no exits"):
        decode(slim, inputs, early_exit_threshold=0.5)


# ----------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("head", ["shared", "affine"])
def test_save_load_round_trip(family, head, tmp_path):
    teacher = teacher_for(family)
    slim = cost_eff.slenderize(teacher, heads=3, ffn=20, data=calibration(family), progress=False)  # 3 heads: 32 % 3
    multi = cost_eff.add_exits(slim, layers=[1, 2], head=head, confidence="entropy")
    if head == "affine":
        with torch.no_grad():
            for p in multi.exit_heads.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    multi.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(multi)
    assert loaded.config.exit_layers == [1, 2, DEPTH - 1] and loaded.config.exit_confidence == "entropy"
    inputs = sample_inputs(family)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, multi(**inputs).logits)
    for threshold in (None, 0.3):
        expected = decode(multi, inputs, early_exit_threshold=threshold)
        assert torch.equal(decode(loaded, inputs, early_exit_threshold=threshold), expected)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".bin") == []


# ----------------------------------------------------------------------------- training
def test_compression_trainer_trains_every_exit(family, tmp_path):
    teacher = teacher_for(family)
    multi = cost_eff.add_exits(
        cost_eff.slenderize(teacher, heads=2, ffn=32, data=calibration(family), progress=False)
    ).train()
    rows, collate = copy_task(family, size=32), pad_collator(family)
    batch = collate(rows[:16])

    def exit_losses():
        with torch.no_grad():
            outputs = multi(**batch, output_hidden_states=True)
            return [
                nn.functional.cross_entropy(e.flatten(0, 1), batch["labels"].flatten()).item()
                for e in multi.all_exit_logits(outputs)
            ]

    before = exit_losses()
    args = cost_eff.CostEffTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=30,
        learning_rate=3e-3,
        per_device_train_batch_size=16,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=10,
    )
    teacher_state = copy.deepcopy(teacher.state_dict())
    CompressionTrainer(
        model=multi, teacher=teacher, args=args, method="cost_eff", train_dataset=rows, data_collator=collate
    ).train()
    after = exit_losses()
    assert all(a < b for a, b in zip(after, before, strict=True)), (before, after)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_state.items())


def test_cost_eff_trainer_needs_exits_and_a_teacher(family, tmp_path):
    teacher = teacher_for(family)
    args = cost_eff.CostEffTrainingArguments(output_dir=str(tmp_path), max_steps=1, report_to=[], use_cpu=True)
    with pytest.raises(ConfigError, match="cost_eff"):
        CompressionTrainer(model=cost_eff.as_cost_eff(teacher), teacher=teacher, args=args, method="cost_eff")
    with pytest.raises(ConfigError, match="cost_eff"):
        CompressionTrainer(model=cost_eff.add_exits(teacher), args=args, method="cost_eff")
    assert (args.ce_weight, args.kd_weight, args.kd_temperature) == (0.1, 0.9, 1.0)


# ----------------------------------------------------------------------------- sweep
def test_flops_count_by_hand():
    """Never exiting, one source token, one generated token: count every matrix by hand."""
    teacher = teacher_for("t5")
    model = cost_eff.add_exits(teacher, layers=[1])
    d, inner, ff, vocab = 32, 32, 64, 64
    encoder = 2 * (2 * (4 * d * inner + 2 * d * ff) + 4 * inner)  # 2 layers; scores over 1x1 positions
    cross_kv = DEPTH * 2 * (2 * d * inner)
    decoder = DEPTH * (2 * (4 * d * inner + 2 * d * inner + 2 * d * ff) + 4 * inner + 4 * inner)
    heads = 2 * 2 * d * vocab  # exit 1 evaluated, then the final head
    assert cost_eff.decoding_flops(model, 1, [DEPTH]) == encoder + cross_kv + decoder + heads
    # exiting after layer 1 (2 layers used): layers 2, 3 only fill their self-attention cache
    early = encoder + cross_kv + 2 * (2 * (4 * d * inner + 2 * d * inner + 2 * d * ff) + 8 * inner)
    early += 2 * (2 * 2 * d * inner) + 2 * d * vocab
    assert cost_eff.decoding_flops(model, 1, [2]) == early


def test_sweep_thresholds(family, capsys):
    multi = cost_eff.add_exits(teacher_for(family))
    rows, collate = copy_task(family, size=6), pad_collator(family)
    points = cost_eff.sweep_thresholds(
        multi, rows, collate, thresholds=(None, 0.05), batch_size=3, max_new_tokens=6, latency_examples=3
    )
    never, low = points
    assert never.mean_layers == DEPTH and low.mean_layers < DEPTH
    assert low.flops_per_token < never.flops_per_token
    assert set(never.metrics) == {"TokER", "SER"} and set(never.ms_per_sequence) == {1}
    printed = capsys.readouterr().out
    assert "| never |" in printed and "| 0.05 |" in printed
    assert cost_eff.format_sweep(points).count("\n") == 3
