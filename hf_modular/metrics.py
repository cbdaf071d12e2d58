"""Metrics for seq2seq evaluation, all computed locally (nothing is downloaded at run time).

Predictions and references are token-id lists with special tokens removed, which is what
``evaluate_assemblies`` hands a metric function. Two kinds:

- token metrics (``sequence_metrics``): token edit rate and sequence error rate on the ids;
- text metrics (``text_metrics``): the ids decoded with the tokenizer and scored with sacrebleu
  (BLEU, chrF, TER = translation edit rate) and rouge-score (ROUGE-L F1), libraries that ship
  their code (install ``hf_modular[metrics]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import DataError


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
    """TokER: token edit distance over reference tokens (%); SER: sequences not exactly right (%)."""
    pairs = list(zip(predictions, references, strict=True))
    errors = sum(edit_distance(p, r) for p, r in pairs)
    tokens = sum(len(r) for r in references)
    wrong = sum(list(p) != list(r) for p, r in pairs)
    return {"TokER": 100 * errors / max(tokens, 1), "SER": 100 * wrong / max(len(pairs), 1)}


def _sacrebleu(name: str) -> Callable[[list[str], list[str]], float]:
    def score(hypotheses: list[str], references: list[str]) -> float:
        import sacrebleu

        metric = {"BLEU": sacrebleu.metrics.BLEU, "chrF": sacrebleu.metrics.CHRF, "TER": sacrebleu.metrics.TER}[name]
        return float(metric().corpus_score(hypotheses, [references]).score)

    return score


def _rouge_l(hypotheses: list[str], references: list[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    scores = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hypotheses, references, strict=True)]
    return 100 * sum(scores) / max(len(scores), 1)


# name on the command line -> (name in tables, scorer of decoded texts); lower is better only for TER
TEXT_METRICS: dict[str, tuple[str, Callable[[list[str], list[str]], float]]] = {
    "bleu": ("BLEU", _sacrebleu("BLEU")),
    "chrf": ("chrF", _sacrebleu("chrF")),
    "ter": ("TER", _sacrebleu("TER")),
    "rouge": ("ROUGE-L", _rouge_l),
}
METRIC_CHOICES = ("tokens", *TEXT_METRICS)


def check_metrics(names: Sequence[str]) -> list[str]:
    """``names`` validated (``tokens`` and the text metrics), with their libraries importable."""
    unknown = [n for n in names if n not in METRIC_CHOICES]
    if unknown or not names:
        raise DataError(f"unknown metric(s) {unknown or names}: choose from {list(METRIC_CHOICES)}")
    needs = {"sacrebleu": {"bleu", "chrf", "ter"}, "rouge_score": {"rouge"}}
    for module, metrics in needs.items():
        if metrics & set(names):
            try:
                __import__(module)
            except ImportError as error:
                raise DataError(
                    f"metric(s) {sorted(metrics & set(names))} need {module}: pip install 'hf_modular[metrics]'"
                ) from error
    return list(names)


def text_metrics(tokenizer: Any, names: Sequence[str]) -> Callable[[list[list[int]], list[list[int]]], dict]:
    """A metric function for ``evaluate_assemblies`` that decodes ids with ``tokenizer`` and scores
    ``names`` (``tokens`` adds TokER/SER on the ids)."""
    names = check_metrics(names)

    def metrics(predictions: list[list[int]], references: list[list[int]]) -> dict[str, float]:
        result = sequence_metrics(predictions, references) if "tokens" in names else {}
        wanted = [n for n in names if n in TEXT_METRICS]
        if wanted:
            hypotheses = tokenizer.batch_decode(predictions, skip_special_tokens=True)
            targets = tokenizer.batch_decode(references, skip_special_tokens=True)
            for name in wanted:
                label, score = TEXT_METRICS[name]
                result[label] = score(hypotheses, targets)
        return result

    return metrics
