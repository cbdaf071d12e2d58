"""LoRA fine-tuning of an assembled model with the real peft and Trainer.

An assembled model is a stock T5/BART, so peft's own defaults apply (the modular types get the
same defaults for the whole artifact); train, save the adapter, load it back with AutoPeftModel
(the base model's revision names the size), merge, generate.
"""

from __future__ import annotations

import torch
from conftest import copy_task, generate, modular_model, pad_collator
from peft import AutoPeftModelForSeq2SeqLM, LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainer, Seq2SeqTrainingArguments


def _loss(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        return model(**batch).loss.item()


def test_lora_on_an_assembly_trains_saves_loads_and_merges(family, tmp_path):
    _, model = modular_model(family)
    model.save_pretrained(tmp_path / "artifact")
    base = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "artifact", assemble="2x")
    assert type(base) is model.adapter.stock_model_class
    frozen = {k: v.clone() for k, v in base.state_dict().items()}

    config = LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=4, lora_alpha=8)
    # the revision names the size, so AutoPeftModel rebuilds this assembly from the artifact
    peft_model = get_peft_model(base, config, revision=base.config.hf_modular["assemble"])
    expected = {"q", "v"} if family == "t5" else {"q_proj", "v_proj"}
    assert set(peft_model.peft_config["default"].target_modules) == expected
    wrapped = [n for n, _ in peft_model.named_modules() if n.endswith("lora_A")]
    assert len(wrapped) == 2 * (3 + 2 * 3)  # q, v of 3 encoder self-attentions, 3 decoder self + 3 cross

    data = copy_task(family, size=8)  # a batch LoRA can memorise quickly
    collate = pad_collator(family)
    batch = collate(data)
    before = _loss(peft_model, batch)
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=40,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    Seq2SeqTrainer(model=peft_model, args=args, train_dataset=data, data_collator=collate).train()
    assert _loss(peft_model, batch) < before - 0.1  # LoRA on q, v alone: a modest but clear drop
    base_after = peft_model.get_base_model().state_dict()
    assert all(torch.equal(base_after[k], v) for k, v in frozen.items() if k in base_after)  # only LoRA moved

    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    fresh = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "artifact", assemble="2x")
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    peft_model.eval()
    with torch.no_grad():
        reference = peft_model(**batch).logits
        assert torch.equal(loaded(**batch).logits, reference)
        auto = AutoPeftModelForSeq2SeqLM.from_pretrained(tmp_path / "adapter").eval()
        assert type(auto.get_base_model()) is model.adapter.stock_model_class
        assert auto.get_base_model().config.hf_modular["plan"] == base.config.hf_modular["plan"]
        assert torch.equal(auto(**batch).logits, reference)  # the adapted small model, not the teacher

    tokens = generate(loaded, batch)
    merged = loaded.merge_and_unload()
    assert type(merged) is model.adapter.stock_model_class
    with torch.no_grad():
        torch.testing.assert_close(
            merged(**batch).logits, reference, atol=1e-3, rtol=1e-4
        )  # merged weights round differently
    assert torch.equal(generate(merged, batch), tokens)

    merged.save_pretrained(tmp_path / "stock")
    stock = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "stock").eval()
    assert type(stock) is model.adapter.stock_model_class
    assert torch.equal(generate(stock, batch), tokens)
