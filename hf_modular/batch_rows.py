"""Every n-th row of a batch: how a term or a plan trains on a share of each micro-batch.

A stride (rows 0, n, 2n, ...) rather than the first rows picks the same rows of a global batch
whether one process or several DDP ranks split it, when each rank's share is a multiple of n.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def every_nth_row(value: Any, n: int, batch: int) -> Any:
    """``value`` with every batch-first tensor in it cut to rows 0, n, 2n, ... (copied contiguous, as
    ``.view`` in the models' losses needs); mappings (model outputs and tokenizer batches included),
    tuples and lists are walked, anything else is returned as it is. Only tensors of two or more
    dimensions whose first is ``batch`` count as batch-first (T5's position bias, first dimension 1,
    and 1-D positions stay whole)."""
    if n == 1:
        return value
    if isinstance(value, torch.Tensor):
        return value[::n].contiguous() if value.dim() >= 2 and value.shape[0] == batch else value
    if isinstance(value, Mapping):  # a model output keeps its class; a tokenizer's BatchEncoding becomes a dict
        items = {key: every_nth_row(item, n, batch) for key, item in value.items()}
        return type(value)(**items) if isinstance(value, dict) else items
    if isinstance(value, (tuple, list)):
        return type(value)(every_nth_row(item, n, batch) for item in value)
    return value
