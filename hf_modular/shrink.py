"""Shrinking a teacher by keeping a subset of its layers (DistilBART-style students).

This is the initialisation of the shrink-and-fine-tune baseline and, without training, the
layer-dropping baseline. The result is a stock model of the teacher's family.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from .arch import adapter_for
from .errors import ConfigError
from .plan import STACKS
from .validation import is_int


def alternating_layers(depth: int, keep: int) -> list[int]:
    """``keep`` layers spread evenly over ``depth``, always the first and last (6 -> 3: [0, 2, 5])."""
    if not 1 <= keep <= depth:
        raise ConfigError(f"cannot keep {keep} of {depth} layers: keep between 1 and {depth}")
    if keep == 1:
        return [0]
    return sorted({round(i * (depth - 1) / (keep - 1) - 1e-9) for i in range(keep)})


@torch.no_grad()
def shrink_model(
    teacher: PreTrainedModel, encoder_layers: Sequence[int], decoder_layers: Sequence[int]
) -> PreTrainedModel:
    """A stock model whose stacks are copies of the given teacher layers, in that order.

    Embeddings, final norms and the head are copied too. Parameters only the first layer of a
    stack owns (T5's position bias table) come from the teacher's layer 0 whichever layer is kept first.
    """
    adapter = adapter_for(teacher)
    keep = {"encoder": list(encoder_layers), "decoder": list(decoder_layers)}
    values = teacher.config.to_dict()
    for field, name in zip(adapter.depth_fields, STACKS, strict=True):
        depth = adapter.depth(teacher.config, name)
        bad = [i for i in keep[name] if not is_int(i) or not 0 <= i < depth]
        if not keep[name] or bad:
            raise ConfigError(f"{name} layers {keep[name]!r}: give a non-empty list of indices in 0..{depth - 1}")
        values[field] = len(keep[name])
    student = type(teacher)(type(teacher.config)(**values))
    student_state = student.state_dict()
    teacher_state = teacher.state_dict()
    prefixes = {name: adapter.layers_prefix(teacher, name) for name in STACKS}
    for key in student_state:
        name = next((n for n in STACKS if key.startswith(prefixes[n])), None)
        if name is None:
            student_state[key] = teacher_state[key]
            continue
        position, rest = key[len(prefixes[name]) :].split(".", 1)
        source = keep[name][int(position)]
        if any(fragment in rest for fragment in adapter.start_only_params):
            source = 0
        student_state[key] = teacher_state[f"{prefixes[name]}{source}.{rest}"]
    student.load_state_dict(student_state)
    student.generation_config = copy.deepcopy(teacher.generation_config)
    return student.to(dtype=teacher.dtype, device=teacher.device)
