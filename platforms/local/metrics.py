"""Metric functions with Azure ML's metric names, computed from predictions and references.

Hugging Face `evaluate` fetches its metric scripts from the hub, which is not reachable from a
worker without internet; these use scikit-learn, seqeval, rouge-score and sacrebleu directly.
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Sequence


def classification_metrics(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score

    refs, preds = list(references), list(predictions)
    metrics = {"accuracy": accuracy_score(refs, preds)}
    for average in ("macro", "micro", "weighted"):
        metrics[f"f1_score_{average}"] = f1_score(refs, preds, average=average, zero_division=0)
    metrics["precision_score_macro"] = precision_score(refs, preds, average="macro", zero_division=0)
    metrics["recall_score_macro"] = recall_score(refs, preds, average="macro", zero_division=0)
    metrics["matthews_correlation"] = matthews_corrcoef(refs, preds)
    return {name: float(value) for name, value in metrics.items()}


def token_classification_metrics(references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level scores (seqeval), plus token accuracy."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    refs, preds = [list(r) for r in references], [list(p) for p in predictions]
    metrics = {"accuracy": accuracy_score(refs, preds)}
    for average in ("macro", "micro", "weighted"):
        metrics[f"f1_score_{average}"] = f1_score(refs, preds, average=average, zero_division=0)
        metrics[f"precision_score_{average}"] = precision_score(refs, preds, average=average, zero_division=0)
        metrics[f"recall_score_{average}"] = recall_score(refs, preds, average=average, zero_division=0)
    return {name: float(value) for name, value in metrics.items()}


def _normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(reference: str, prediction: str) -> float:
    ref_tokens, pred_tokens = _normalize_answer(reference).split(), _normalize_answer(prediction).split()
    if not ref_tokens or not pred_tokens:
        return float(ref_tokens == pred_tokens)
    common = collections.Counter(ref_tokens) & collections.Counter(pred_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def question_answering_metrics(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, float]:
    """SQuAD exact match and token F1, best over each question's reference answers, as fractions."""
    exact, f1 = [], []
    for answers, prediction in zip(references, predictions, strict=True):
        answers = list(answers) or [""]
        exact.append(max(float(_normalize_answer(a) == _normalize_answer(prediction)) for a in answers))
        f1.append(max(_token_f1(a, prediction) for a in answers))
    count = max(len(exact), 1)
    return {"exact_match": sum(exact) / count, "f1_score": sum(f1) / count}


def rouge_metrics(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    kinds = ("rouge1", "rouge2", "rougeL", "rougeLsum")
    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    totals = dict.fromkeys(kinds, 0.0)
    for reference, prediction in zip(references, predictions, strict=True):
        # rougeLsum splits summaries on newlines; keep sentences on lines as Azure ML does.
        scores = scorer.score(reference, prediction)
        for kind in kinds:
            totals[kind] += scores[kind].fmeasure
    count = max(len(references), 1)
    return {kind: total / count for kind, total in totals.items()}


def bleu_metrics(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """BLEU with 1..4-gram orders (Azure ML's bleu_1..bleu_4) and the standard sacreBLEU score, as 0..1."""
    from sacrebleu.metrics import BLEU

    refs, preds = [list(references)], list(predictions)
    metrics = {}
    for order in range(1, 5):
        bleu = BLEU(max_ngram_order=order, effective_order=True)
        metrics[f"bleu_{order}"] = bleu.corpus_score(preds, refs).score / 100
    metrics["sacrebleu"] = BLEU().corpus_score(preds, refs).score / 100
    return metrics


def perplexity(mean_loss: float) -> float:
    return float(math.exp(min(mean_loss, 50.0)))


def multilabel_metrics(references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]],
                       classes: Sequence[str]) -> dict[str, float]:
    """Azure's multi-label names: accuracy is the exact match of the label sets (scikit-learn's
    subset accuracy), the averaged scores are over label indicators, hamming loss over every cell."""
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_score, recall_score
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer(classes=list(classes))
    refs = binarizer.fit_transform(references)
    preds = binarizer.transform(predictions)
    metrics = {"accuracy": accuracy_score(refs, preds)}
    for name, score in (("f1_score", f1_score), ("precision_score", precision_score), ("recall_score", recall_score)):
        for average in ("macro", "micro", "weighted"):
            metrics[f"{name}_{average}"] = score(refs, preds, average=average, zero_division=0)
    metrics["hamming_loss"] = hamming_loss(refs, preds)
    return {name: float(value) for name, value in metrics.items()}
