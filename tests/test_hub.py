"""Pushing artifacts and assemblies to a Hub (the fake in tests/fake_hub.py, spoken to by the real
huggingface_hub client over HTTP) and loading them back by repo id."""

from __future__ import annotations

import pytest
import torch
from conftest import generate, modular_model, sample_inputs
from huggingface_hub import ModelCard
from transformers import AutoModelForSeq2SeqLM

from hf_modular import AssemblyError, AssemblyTable, CheckpointError, evaluate_assemblies
from hf_modular.integrations.hub import TABLE_NAME, push_all_assemblies
from hf_modular.methods.modular.assembly import format_ratio

REPO = "fake-user/g2p-modular"


def _logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def test_push_the_artifact_then_load_any_size_by_repo_id(family, fake_hub):
    _, model = modular_model(family)
    commit = model.push_to_hub(REPO)
    history = len(fake_hub.commits(REPO))
    again = model.push_to_hub(REPO)  # nothing changed: no commit
    assert len(fake_hub.commits(REPO)) == history and again.oid == commit.oid
    files = fake_hub.files(REPO)
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)

    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "transformers"
    assert {"hf_modular", "modular-transformers", family} <= set(card.data.tags)
    for ratio in model.reachable_ratios():  # one load line per size
        assert f'from_pretrained("{REPO}", assemble="{format_ratio(ratio)}")' in card.text

    inputs = sample_inputs(family)
    for spec in ("1x", "2x", "3x"):
        loaded = AutoModelForSeq2SeqLM.from_pretrained(REPO, assemble=spec).eval()
        model.assemble(spec)
        assert torch.equal(_logits(loaded, inputs), _logits(model, inputs))
        assert torch.equal(generate(loaded, inputs), generate(model, inputs))


def test_old_revisions_stay_loadable(fake_hub):
    _, model = modular_model("t5")
    first = model.push_to_hub(REPO)
    inputs = sample_inputs("t5")
    model.assemble("2x")
    before = _logits(model, inputs)
    with torch.no_grad():
        for param in model.planned_layers("decoder").pool.parameters():
            param.mul_(0.5)
    second = model.push_to_hub(REPO)
    assert second.oid != first.oid and len(fake_hub.commits(REPO)) == 3  # create + 2 pushes

    old = AutoModelForSeq2SeqLM.from_pretrained(REPO, revision=first.oid, assemble="2x").eval()
    new = AutoModelForSeq2SeqLM.from_pretrained(REPO, assemble="2x").eval()
    assert torch.equal(_logits(old, inputs), before)
    assert torch.equal(_logits(new, inputs), _logits(model, inputs))


def test_push_one_assembly_as_a_stock_checkpoint_on_a_branch(family, fake_hub):
    _, model = modular_model(family)
    model.assemble("1x")
    model.push_to_hub(REPO, assemble="3x", revision="3x")
    assert "main" in fake_hub.branches(REPO) and "config.json" not in fake_hub.files(REPO)  # main untouched
    assert model.compression_report().layer_ratio == 1  # the model's own plan is left as it was

    stock = AutoModelForSeq2SeqLM.from_pretrained(REPO, revision="3x").eval()
    assert type(stock).__name__ in ("T5ForConditionalGeneration", "BartForConditionalGeneration")
    card = ModelCard(fake_hub.files(REPO, "3x")["README.md"].decode())
    exact = format_ratio(model.plan_space.plan_ratio(model.resolve_plan("3x")))
    assert f"compression-{exact}" in card.data.tags and f'from_pretrained("{REPO}", revision="3x")' in card.text
    model.assemble("3x")
    inputs = sample_inputs(family)
    assert torch.equal(generate(stock, inputs), generate(model, inputs))


def test_push_all_assemblies_puts_each_ratio_on_its_own_branch(fake_hub):
    _, model = modular_model("bart", encoder_layers=4, decoder_layers=4)
    commits = push_all_assemblies(model, REPO, ratios=["2x", "4x"])
    assert set(commits) == {"main", "2x", "4x"}
    assert set(fake_hub.branches(REPO)) == {"main", "2x", "4x"}
    card = fake_hub.files(REPO)["README.md"].decode()
    assert f'from_pretrained("{REPO}", revision="2x")' in card
    inputs = sample_inputs("bart")
    for spec, depth in (("2x", 2), ("4x", 1)):
        stock = AutoModelForSeq2SeqLM.from_pretrained(REPO, revision=spec).eval()
        assert stock.config.encoder_layers == stock.config.decoder_layers == depth
        model.assemble(spec)
        assert torch.equal(generate(stock, inputs), generate(model, inputs))
    with pytest.raises(AssemblyError, match="same assembly twice"):
        push_all_assemblies(model, REPO, ratios=["2x", "2.0x"])


def test_the_card_shows_measured_results_and_the_plot(fake_hub):
    _, model = modular_model("t5")
    data = [{k: v[i] for k, v in sample_inputs("t5", batch=4).items()} for i in range(4)]
    for row in data:
        row["labels"] = row.pop("decoder_input_ids")
    table = evaluate_assemblies(
        model, data, torch.utils.data.default_collate, ratios=["1x", "2x"], latency_batch_sizes=(1,), latency_repeats=1
    )
    model.push_to_hub(REPO, table=table)
    files = fake_hub.files(REPO)
    assert files["assemblies.png"].startswith(b"\x89PNG")
    assert AssemblyTable.from_json(files[TABLE_NAME].decode()) == table
    card = files["README.md"].decode()
    assert table.to_markdown() in card and "![quality vs speedup](assemblies.png)" in card


def test_a_missing_repo_or_a_bad_spec_fails_clearly(fake_hub):
    with pytest.raises(OSError, match="fake-user/missing"):
        AutoModelForSeq2SeqLM.from_pretrained("fake-user/missing", assemble="2x")
    from hf_modular import ModularT5ForConditionalGeneration

    with pytest.raises(CheckpointError, match="fake-user/missing"):
        ModularT5ForConditionalGeneration.from_pretrained("fake-user/missing")
    _, model = modular_model("t5")
    with pytest.raises(AssemblyError, match="5x"):
        model.push_to_hub(REPO, assemble="5x")
    assert REPO not in fake_hub.repos  # nothing was created


def test_pushes_carry_the_tokenizer_and_cards_follow_the_hub_conventions(fake_hub, tmp_path):
    from transformers import PreTrainedTokenizerFast

    from hf_modular import ModularT5ForConditionalGeneration
    from tests.conftest import tiny_teacher

    teacher_dir = tmp_path / "teacher"
    tiny_teacher("t5").save_pretrained(teacher_dir)
    (teacher_dir / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a teacher\n")
    from tokenizers import Tokenizer, models

    vocab = {f"t{i}": i for i in range(64)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t2")), pad_token="t0", eos_token="t1"
    )
    tokenizer.save_pretrained(teacher_dir)
    model = ModularT5ForConditionalGeneration.from_teacher(teacher_dir)
    model.config.teacher_name_or_path = str(teacher_dir)
    data = [{k: v[i] for k, v in sample_inputs("t5", batch=4).items()} for i in range(4)]
    for row in data:
        row["labels"] = row.pop("decoder_input_ids")
    table = evaluate_assemblies(
        model, data, torch.utils.data.default_collate, ratios=["1x", "3x"], latency_batch_sizes=(), progress=False
    )
    for row in table.rows:
        row.metrics = {"BLEU": 10.0 + row.layer_ratio}

    model.push_to_hub(REPO, table=table, datasets=["cmudict"])  # no tokenizer=: found next to the teacher
    model.push_to_hub(REPO, assemble="3x", revision="3x", table=table, datasets=["cmudict"], task="translation")
    for branch in ("main", "3x"):
        files = fake_hub.files(REPO, branch)
        assert "tokenizer.json" in files, branch
        card = ModelCard(files["README.md"].decode())
        assert card.data.license == "apache-2.0" and card.data.datasets == ["cmudict"]
        assert card.data.eval_results and card.data.model_name  # a model-index
        assert card.data.pipeline_tag == ("translation" if branch == "3x" else None)  # no text2text pipeline in v5
    small = ModelCard(fake_hub.files(REPO, "3x")["README.md"].decode())
    assert f'from_pretrained("{REPO}", revision="3x")' in small.text  # the load line works on that branch
    assert [r.metric_value for r in small.data.eval_results] == [round(10.0 + table.rows[1].layer_ratio, 4)]
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(REPO).convert_tokens_to_ids("t5") == 5
    model.config.teacher_name_or_path = "google-t5/t5-small"  # a Hub id becomes the card's base_model
    model.push_to_hub(REPO, tokenizer=tokenizer)
    assert ModelCard(fake_hub.files(REPO)["README.md"].decode()).data.base_model == "google-t5/t5-small"
