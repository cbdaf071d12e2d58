"""Seq2seq training/evaluation data from local JSON Lines, CSV or Parquet files (via ``datasets``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError

FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_pairs(path: Path, source: str, target: str) -> Any:
    """A ``datasets.Dataset`` with (at least) the ``source`` and ``target`` text columns."""
    builder = FORMATS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unknown data file type {path.suffix!r}; use one of {sorted(FORMATS)}")
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: it holds no rows")
    from datasets import load_dataset

    try:
        data = load_dataset(builder, data_files=str(path), split="train")
    except Exception as error:  # datasets raises many types for unreadable files
        raise DataError(f"{path}: cannot read it as {builder}: {type(error).__name__}: {error}") from error
    missing = [c for c in (source, target) if c not in data.column_names]
    if missing:
        raise DataError(f"{path}: no column(s) {missing}; it has {data.column_names} (see --source/--target)")
    if len(data) == 0:
        raise DataError(f"{path} holds no rows")
    for column in (source, target):
        for row, value in enumerate(data[column], start=1):
            if not isinstance(value, str):
                kind = "empty (null)" if value is None else f"a {type(value).__name__} ({value!r}), not text"
                raise DataError(f"{path}: row {row} of column {column!r} is {kind}; every cell must be text")
            if not value.strip():
                raise DataError(f"{path}: row {row} of column {column!r} is an empty string")
    return data


def tokenize_pairs(data: Any, tokenizer: Any, source: str, target: str, max_length: int) -> list[dict[str, list[int]]]:
    """Rows of input_ids / attention_mask / labels, truncated to ``max_length`` tokens."""
    if tokenizer is None:
        raise DataError("the model folder has no tokenizer: save one next to it (tokenizer.save_pretrained)")
    sources, targets = list(data[source]), list(data[target])  # text, checked by load_pairs
    encoded = tokenizer(sources, truncation=True, max_length=max_length)
    labels = tokenizer(text_target=targets, truncation=True, max_length=max_length)["input_ids"]
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True)
    ]


def seq2seq_collator(tokenizer: Any) -> Any:
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, return_tensors="pt")
