"""Every metric function against values worked out by hand (the working is in the comments)."""

from __future__ import annotations

import math

import pytest

from platforms.local.metrics import (
    bleu_metrics,
    classification_metrics,
    perplexity,
    question_answering_metrics,
    rouge_metrics,
    token_classification_metrics,
)


def test_classification_metrics():
    # refs a a a b, preds a a b b.  a: TP 2, FP 0, FN 1 -> P 1, R 2/3, F1 0.8 (support 3)
    #                               b: TP 1, FP 1, FN 0 -> P 1/2, R 1, F1 2/3 (support 1)
    metrics = classification_metrics(["a", "a", "a", "b"], ["a", "a", "b", "b"])
    assert metrics == pytest.approx({
        "accuracy": 3 / 4,
        "f1_score_macro": (0.8 + 2 / 3) / 2,
        "f1_score_micro": 3 / 4,  # micro F1 of single-label classes is accuracy
        "f1_score_weighted": (3 * 0.8 + 1 * 2 / 3) / 4,
        "precision_score_macro": (1 + 1 / 2) / 2,
        "recall_score_macro": (2 / 3 + 1) / 2,
        # b as positive: TP 1, TN 2, FP 1, FN 0 -> (1*2 - 1*0) / sqrt(2 * 1 * 3 * 2)
        "matthews_correlation": 2 / math.sqrt(12),
    })


def test_token_classification_metrics_are_entity_level():
    # Entities: sentence 1 PER(0-1), LOC(3); sentence 2 PER(0). Predicted: PER(0-1), PER(0); LOC missed.
    # PER: TP 2 of 2 predicted, 2 true -> P 1, R 1, F1 1 (support 2); LOC: nothing predicted -> 0 (support 1).
    references = [["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "O"]]
    predictions = [["B-PER", "I-PER", "O", "O"], ["B-PER", "O"]]
    metrics = token_classification_metrics(references, predictions)
    assert metrics == pytest.approx({
        "accuracy": 5 / 6,  # tokens: 5 of 6 right
        "f1_score_micro": 0.8,  # TP 2, predicted 2, true 3 -> P 1, R 2/3
        "precision_score_micro": 1.0,
        "recall_score_micro": 2 / 3,
        "f1_score_macro": 0.5,
        "precision_score_macro": 0.5,
        "recall_score_macro": 0.5,
        "f1_score_weighted": 2 / 3,  # (2 * 1 + 1 * 0) / 3
        "precision_score_weighted": 2 / 3,
        "recall_score_weighted": 2 / 3,
    })


def test_question_answering_metrics_best_over_references():
    # Q1 matches its first answer exactly. Q2: "the 10th century" normalises to "10th century" (2 tokens),
    # "in 10th century" has 3 tokens, 2 shared -> P 2/3, R 1, F1 0.8, no exact match.
    metrics = question_answering_metrics([["Denver Broncos", "Broncos"], ["the 10th century"]],
                                         ["Denver Broncos", "in 10th century"])
    assert metrics == pytest.approx({"exact_match": 1 / 2, "f1_score": (1 + 0.8) / 2})


def test_question_answering_normalisation_and_unanswerable():
    # Case, punctuation and articles are dropped; an unanswerable question (no answers) expects "".
    metrics = question_answering_metrics([["The Broncos!"], []], ["broncos", ""])
    assert metrics == {"exact_match": 1.0, "f1_score": 1.0}


def test_rouge_metrics():
    # "the cat sat" vs "the cat sat on the mat": unigrams 3 shared -> P 1, R 3/6, F 2/3;
    # bigrams (the cat, cat sat) 2 shared of 5 -> P 1, R 2/5, F 4/7; LCS 3 -> F 2/3.
    # The second pair is identical (all 1); the results are means over both pairs.
    metrics = rouge_metrics(["the cat sat on the mat", "a dog barked"], ["the cat sat", "a dog barked"])
    assert metrics == pytest.approx({
        "rouge1": (2 / 3 + 1) / 2, "rouge2": (4 / 7 + 1) / 2, "rougeL": (2 / 3 + 1) / 2, "rougeLsum": (2 / 3 + 1) / 2,
    })


def test_bleu_metrics():
    # "the cat sat on mat" vs "the cat sat on the mat": n-gram precisions 5/5, 3/4, 2/3, 1/2;
    # brevity penalty exp(1 - 6/5). BLEU-n = BP * geometric mean of the first n precisions.
    bp = math.exp(1 - 6 / 5)
    metrics = bleu_metrics(["the cat sat on the mat"], ["the cat sat on mat"])
    assert metrics == pytest.approx({
        "bleu_1": bp,
        "bleu_2": bp * (1 * 3 / 4) ** (1 / 2),
        "bleu_3": bp * (1 * 3 / 4 * 2 / 3) ** (1 / 3),
        "bleu_4": bp * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** (1 / 4),
        "sacrebleu": bp * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** (1 / 4),
    })


def test_bleu_of_identical_text_is_one():
    metrics = bleu_metrics(["Acesta este un test."], ["Acesta este un test."])
    assert metrics == pytest.approx(dict.fromkeys(("bleu_1", "bleu_2", "bleu_3", "bleu_4", "sacrebleu"), 1.0))


def test_perplexity_is_exp_of_mean_loss_and_capped():
    assert perplexity(math.log(20)) == pytest.approx(20)
    assert perplexity(0.0) == 1.0
    assert perplexity(1000.0) == pytest.approx(math.exp(50))  # a diverged model does not overflow
