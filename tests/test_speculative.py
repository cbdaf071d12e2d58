"""Self-speculative decoding: target and draft are built on one artifact's tensors, and assisted
greedy decoding returns exactly the target's own greedy tokens, with drafts both accepted and
rejected along the way (on the shipped G2P teachers, whose outputs are real words)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import hf_modular
from hf_modular.errors import ConfigError
from tests.conftest import modular_class

TEACHERS = Path(__file__).resolve().parents[1] / "examples" / "g2p" / "teachers"
WORDS = ["speculative", "decoding", "modular", "transformers", "hello", "pronunciation", "zebra", "quickly"]
# the teacher with its last two decoder layers replaced by one module (a copy of layer 4): close to
# the teacher, so most drafted tokens are accepted, but not all
NEAR_DRAFT = {"encoder": [[i, i + 1] for i in range(6)], "decoder": [[0, 1], [1, 2], [2, 3], [3, 4], [4, 6]]}


@pytest.fixture(scope="module", params=["t5", "bart"])
def g2p(request):
    path = TEACHERS / request.param
    teacher = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return modular_class(request.param).from_teacher(teacher).eval(), tokenizer


def decode_words(model, tokenizer, **kwargs) -> list[list[int]]:
    outputs = []
    for word in WORDS:
        inputs = tokenizer(" ".join(word), return_tensors="pt")
        outputs.append(model.generate(**inputs, do_sample=False, max_new_tokens=24, **kwargs)[0].tolist())
    return outputs


def counting_forwards(model) -> list[int]:
    calls = [0]
    model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("draft", [NEAR_DRAFT, "3x"])
def test_assisted_greedy_decoding_returns_the_targets_own_tokens(g2p, draft):
    artifact, tokenizer = g2p
    target, draft_model = hf_modular.speculative_pair(artifact, draft=draft)
    plain = decode_words(target, tokenizer)
    target_calls, draft_calls = counting_forwards(target), counting_forwards(draft_model)
    assisted = decode_words(target, tokenizer, assistant_model=draft_model)
    assert assisted == plain
    assert draft_calls[0] > 0
    assert decode_words(draft_model, tokenizer) != plain  # the draft is wrong somewhere: rejections happened
    if draft is NEAR_DRAFT:  # fewer target forwards than tokens: drafted tokens were accepted
        assert target_calls[0] < sum(len(tokens) - 1 for tokens in plain)


def test_the_pair_shares_the_artifacts_tensors_and_leaves_its_plan(g2p):
    artifact, _ = g2p
    before = artifact.active_plan
    target, draft = hf_modular.speculative_pair(artifact, draft="6x")
    assert artifact.active_plan == before
    assert type(target) is type(draft) is artifact.adapter.stock_model_class
    pointers = {
        name: {p.data_ptr() for p in (m.get_input_embeddings().weight, m.get_output_embeddings().weight)}
        for name, m in (("target", target), ("draft", draft))
    }
    assert pointers["target"] == pointers["draft"]
    artifact_pointers = {p.data_ptr() for p in artifact.parameters()}
    assert {p.data_ptr() for p in draft.parameters()} <= artifact_pointers
    assert {p.data_ptr() for p in target.parameters()} <= artifact_pointers
    assert draft.config.hf_modular["layer_ratio"] > 5 and target.config.hf_modular["layer_ratio"] == 1


def test_a_saved_artifact_gives_the_pair_from_its_folder(g2p, tmp_path):
    artifact, tokenizer = g2p
    artifact.save_pretrained(tmp_path)
    target, draft = hf_modular.speculative_pair(tmp_path, draft="6x")
    expected, _ = hf_modular.speculative_pair(artifact, draft="6x")
    assert decode_words(target, tokenizer, assistant_model=draft) == decode_words(expected, tokenizer)


def test_a_draft_no_smaller_than_its_target_is_refused(g2p):
    artifact, _ = g2p
    with pytest.raises(ConfigError, match=r"draft='3x' \(3\.00x\) must be smaller than target='3x'"):
        hf_modular.speculative_pair(artifact, draft="3x", target="3x")


def test_a_stock_model_is_not_an_artifact(tmp_path):
    teacher = AutoModelForSeq2SeqLM.from_pretrained(TEACHERS / "t5", dtype=torch.float32)
    teacher.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="holds a 't5' model, not a modular artifact"):
        hf_modular.speculative_pair(tmp_path)
    with pytest.raises(ConfigError, match="a T5ForConditionalGeneration is not a modular artifact"):
        hf_modular.speculative_pair(teacher)
