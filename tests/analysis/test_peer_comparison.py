"""analysis.classification.compare_with_peer: side by side with Wilson intervals, plain verdict."""

from __future__ import annotations

import numpy as np

from analysis.classification import accuracy_interval, classification_metrics, compare_with_peer


def _metrics(correct: int, n: int) -> dict:
    labels = np.zeros(n, np.int64)
    labels[n // 2:] = 1
    predicted = labels.copy()
    predicted[:n - correct] = 1 - predicted[:n - correct]
    return classification_metrics(labels, np.eye(2)[predicted], ["a", "b"])


def test_accuracy_interval_is_wilson_of_the_diagonal():
    lo, hi = accuracy_interval(_metrics(30, 40))
    assert lo < 0.75 < hi and 0 < lo and hi < 1


def test_peer_ahead_is_said_plainly_with_both_intervals():
    out = compare_with_peer(_metrics(13, 40), _metrics(40, 40), "minirocket_ridge")
    assert out["ahead"] == "peer" and not out["intervals_overlap"]
    assert out["verdict"].startswith("The simple peer (minirocket_ridge) beats the network")
    assert "1.000" in out["verdict"] and "0.325" in out["verdict"]
    assert out["accuracy_gap_peer_minus_network"] == 1.0 - 13 / 40


def test_network_ahead_and_overlapping_intervals():
    out = compare_with_peer(_metrics(36, 40), _metrics(35, 40), "logistic_regression")
    assert out["ahead"] == "network" and out["intervals_overlap"]
    assert "may be chance" in out["verdict"]
    assert compare_with_peer(_metrics(5, 10), _metrics(5, 10), "p")["ahead"] == "tie"
