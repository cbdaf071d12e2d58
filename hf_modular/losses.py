"""Distillation losses, each returned as a SUM over the positions it covers.

The trainer divides each sum by the number of such positions in the whole optimizer step
(all gradient-accumulation micro-batches), which makes one batch of B and k batches of B/k
produce the same gradients even when the micro-batches hold different numbers of tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed token cross-entropy over labels != -100."""
    return F.cross_entropy(logits.flatten(0, -2).float(), labels.flatten(), ignore_index=-100, reduction="sum")


def logit_kd_rows(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(teacher || student) at temperature T, times T^2 (Hinton et al.), summed over each row's
    masked positions (one value per sequence)."""
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    return (kl * mask).sum(-1) * temperature**2


def logit_kd_sum(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``logit_kd_rows`` summed over the batch."""
    return logit_kd_rows(student_logits, teacher_logits, mask, temperature).sum()


def hidden_mse_sum(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between layer-normalised hidden states (mean over the hidden size), summed over masked positions.

    Normalising makes the term scale-free: T5's residual stream grows with depth (hundreds in
    pretrained checkpoints), which would let raw MSE swamp the other terms.
    """
    size = (student.shape[-1],)
    diff = F.layer_norm(student.float(), size) - F.layer_norm(teacher.float(), size)
    return ((diff**2).mean(-1) * mask).sum()


def attention_mse_sum(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between attention maps (batch, heads, query, key), averaged over heads and keys, summed over queries."""
    return (((student.float() - teacher.float()) ** 2).mean(dim=(1, 3)) * mask).sum()
