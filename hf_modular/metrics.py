"""Token-sequence metrics for seq2seq evaluation (no tokenizer, no downloads).

Predictions and references are token-id lists with special tokens removed, which is what
``evaluate_assemblies`` hands a metric function.
"""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def sequence_metrics(predictions: Sequence[Sequence[int]], references: Sequence[Sequence[int]]) -> dict[str, float]:
    """TER: token edit distance over reference tokens (%); SER: sequences not exactly right (%)."""
    pairs = list(zip(predictions, references, strict=True))
    errors = sum(edit_distance(p, r) for p, r in pairs)
    tokens = sum(len(r) for r in references)
    wrong = sum(list(p) != list(r) for p, r in pairs)
    return {"TER": 100 * errors / max(tokens, 1), "SER": 100 * wrong / max(len(pairs), 1)}
