"""Multiclass metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.classification import as_probabilities, classification_metrics

LABELS = np.array([0, 0, 1, 1, 2, 2])
PROBS = np.array([
    [0.7, 0.2, 0.1],  # -> 0 (right)
    [0.3, 0.6, 0.1],  # -> 1 (true 0)
    [0.1, 0.8, 0.1],  # -> 1 (right)
    [0.2, 0.5, 0.3],  # -> 1 (right)
    [0.1, 0.2, 0.7],  # -> 2 (right)
    [0.5, 0.1, 0.4],  # -> 0 (true 2)
])


def test_three_class_metrics_by_hand():
    m = classification_metrics(LABELS, PROBS, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    # precision a 1/2, b 2/3, c 1; recall a 1/2, b 1, c 1/2; F1 1/2, 4/5, 2/3
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["recall"] == pytest.approx(1 / 2)
    assert m["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)  # equal supports
    # class a vs rest: positives 0.7, 0.3; negatives 0.1, 0.2, 0.1, 0.5 -> 7 of 8 pairs
    assert m["per_class"]["a"]["roc_auc"] == pytest.approx(7 / 8)
    # ranking by p_a: 0.7 (pos), 0.5 (neg), 0.3 (pos): AP = (1 + 2/3) / 2
    assert m["per_class"]["a"]["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)


def test_weighted_f1_follows_support_and_unpredicted_class_scores_zero():
    labels = np.array([0, 0, 0, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.7, 0.3]])
    m = classification_metrics(labels, probs, ["n", "p"])
    # class n: tp 2, precision 2/3, recall 2/3 -> F1 2/3; class p: tp 0 -> F1 0
    assert m["macro_f1"] == pytest.approx(1 / 3)
    assert m["weighted_f1"] == pytest.approx(3 / 4 * 2 / 3)


def test_binary_threshold_decides_and_sigmoid_column_is_expanded():
    scores = np.array([0.2, 0.6, 0.4, 0.7])
    probs = as_probabilities(scores[:, None])
    assert probs[:, 0].tolist() == pytest.approx([0.8, 0.4, 0.6, 0.3])
    m = classification_metrics(np.array([0, 1, 1, 0]), probs, ["ok", "bad"], threshold=0.35)
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["threshold"] == 0.35


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="expected \\(6, 2\\)"):
        classification_metrics(LABELS, PROBS, ["a", "b"])
