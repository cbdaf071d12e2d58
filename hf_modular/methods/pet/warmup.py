"""PET's warm-up task: before distillation, the student learns to predict, per target token,
how the teacher fares there: {correct & confident, correct & unsure, wrong & confident,
wrong & unsure}.

Teacher label: correct if its top token is the gold token; confident if its top probability
exceeds ``correct_threshold`` (when correct) or ``wrong_threshold`` (when wrong). Student: with
p its probability of the gold token and m its top probability, the 4-way distribution is
[m*p, (1-m)*p, m*(1-p), (1-m)*(1-p)] (it sums to 1), scored by negative log-likelihood. Both
p and m carry gradients into the student.
"""

from __future__ import annotations

import torch

CLASSES = ("correct & confident", "correct & unsure", "wrong & confident", "wrong & unsure")


@torch.no_grad()
def warmup_labels(
    teacher_logits: torch.Tensor, labels: torch.Tensor, correct_threshold: float = 0.9, wrong_threshold: float = 0.7
) -> torch.Tensor:
    """Class index 0-3 per target token (-100 where ``labels`` is -100)."""
    probs = teacher_logits.float().softmax(-1)
    top_prob, top_token = probs.max(-1)
    correct = top_token.eq(labels)
    confident = torch.where(correct, top_prob > correct_threshold, top_prob > wrong_threshold)
    classes = (~correct).long() * 2 + (~confident).long()
    return classes.masked_fill(labels.eq(-100), -100)


def student_distribution(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The student's 4-way distribution per token, from its own token probabilities."""
    probs = student_logits.float().softmax(-1)
    gold = probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    top = probs.max(-1).values
    return torch.stack([top * gold, (1 - top) * gold, top * (1 - gold), (1 - top) * (1 - gold)], dim=-1)


def warmup_nll_sum(student_logits: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood of the teacher's classes under the student's distribution."""
    mask = classes.ne(-100)
    distribution = student_distribution(student_logits, labels)
    chosen = distribution.gather(-1, classes.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(chosen.clamp_min(1e-12).log() * mask).sum()
