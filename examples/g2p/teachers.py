"""The G2P teachers: a T5 and a BART of the same size (6 encoder + 6 decoder layers)."""

from __future__ import annotations

from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GenerationConfig,
    PreTrainedModel,
    T5Config,
    T5ForConditionalGeneration,
)

FAMILIES = ("t5", "bart")
MAX_NEW_TOKENS = 32  # the longest pronunciation has 28 phones


def new_teacher(family: str, vocab_size: int, layers: int = 6) -> PreTrainedModel:
    """d_model 160, 4 heads, FFN 512, no dropout: about 3.8M parameters, under 8 MB in fp16."""
    if family == "t5":
        config = T5Config(
            vocab_size=vocab_size,
            d_model=160,
            d_kv=40,
            d_ff=512,
            num_heads=4,
            num_layers=layers,
            num_decoder_layers=layers,
            dropout_rate=0.0,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
        model = T5ForConditionalGeneration(config)
    elif family == "bart":
        config = BartConfig(
            vocab_size=vocab_size,
            d_model=160,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=512,
            decoder_ffn_dim=512,
            encoder_layers=layers,
            decoder_layers=layers,
            max_position_embeddings=64,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=3,
            decoder_start_token_id=1,
            forced_eos_token_id=None,
        )
        model = BartForConditionalGeneration(config)
    else:
        raise ValueError(f"family={family!r} is not one of {list(FAMILIES)}")
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=3,
        max_new_tokens=MAX_NEW_TOKENS,
        do_sample=False,
        num_beams=1,
    )
    return model
