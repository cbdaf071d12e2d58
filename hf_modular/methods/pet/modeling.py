"""PET students: stock T5/BART classes with shared parameters, built from a teacher.

``build_student(teacher, layers=(2, 2))`` keeps ``layers`` physical layers per stack (alternating
teacher layers, as DistilBART picks them), shares the decoder's query projections and runs each
stack twice, so a 6+6 teacher becomes a 4+4-deep student that stores 2+2 layers.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
from transformers import BartForConditionalGeneration, PreTrainedModel, T5ForConditionalGeneration

from ...arch import adapter_for
from ...errors import ConfigError
from ...plan import STACKS
from ...registry import get_method
from ...serialization import SafeSerializationMixin
from ...shrink import alternating_layers, shrink_model
from .config import PetBartConfig, PetConfigMixin, PetT5Config
from .layers import share_parameters


class PetModelMixin(SafeSerializationMixin):
    """Builds the stock model at the effective depths, then aliases the shared parts."""

    config: PetConfigMixin

    def __init__(self, config: PetConfigMixin, *args: Any, **kwargs: Any):
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        share_parameters(self, config.share_query, config.reuse_stack)  # type: ignore[arg-type]


class PetT5ForConditionalGeneration(PetModelMixin, T5ForConditionalGeneration):
    config_class = PetT5Config


class PetBartForConditionalGeneration(PetModelMixin, BartForConditionalGeneration):
    config_class = PetBartConfig


@torch.no_grad()
def build_student(
    teacher: PreTrainedModel | str | os.PathLike[str],
    layers: tuple[int, int] = (2, 2),
    share_query: bool = True,
    reuse_stack: bool = True,
) -> PreTrainedModel:
    """A PET student initialised from ``teacher`` (a stock T5/BART model, folder or Hub id).

    The physical layers are those of ``shrink_model`` with alternating teacher layers; a shared
    cross-attention query starts as the teacher's self-attention query of that layer.
    """
    if isinstance(teacher, (str, os.PathLike)):
        from transformers import AutoModelForSeq2SeqLM

        teacher = AutoModelForSeq2SeqLM.from_pretrained(teacher)
    adapter = adapter_for(teacher)
    if type(teacher) is not adapter.stock_model_class:
        raise TypeError(f"build_student needs a stock T5/BART teacher, got {type(teacher).__name__}")
    if len(layers) != 2 or not all(isinstance(n, int) and n >= 1 for n in layers):
        raise ConfigError(f"layers={layers!r} must be (encoder, decoder) physical layer counts >= 1")
    depths = [adapter.depth(teacher.config, name) for name in STACKS]
    if any(n > d for n, d in zip(layers, depths, strict=True)):
        raise ConfigError(f"layers={tuple(layers)} exceeds the teacher's depths {tuple(depths)}")
    cls = get_method("pet").model_class(adapter.family)
    config = cls.config_class.from_teacher_config(
        teacher.config,
        tuple(layers),
        share_query=share_query,
        reuse_stack=reuse_stack,
        teacher_name_or_path=teacher.config.name_or_path or None,
    )
    stock = shrink_model(teacher, *(alternating_layers(d, n) for d, n in zip(depths, layers, strict=True)))
    student = cls(config)
    # Physical layers carry the stock names; second-pass layers and shared queries own no tensors.
    result = student.load_state_dict(stock.state_dict(), strict=False)
    if result.missing_keys or any(adapter.cross_query not in k for k in result.unexpected_keys):
        raise ConfigError(f"the teacher's layers do not fit the student: {result}")
    student.generation_config = copy.deepcopy(teacher.generation_config)
    return student.to(dtype=teacher.dtype, device=teacher.device).eval()
