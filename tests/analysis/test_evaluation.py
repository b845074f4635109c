"""Tests for analysis.evaluation against a hand-computed example."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from analysis.evaluation import (
    bootstrap_interval,
    compute_metrics,
    confusion_counts,
    rates_by_block,
    recall_at_false_alarm_rate,
    reliability_curve,
    time_blocks,
)

# Six normal, four errant pulses; alarm at score >= 0.5:
#   normals 0.6, 0.7 alarm (FP=2, TN=4); errant 0.35 is missed (FN=1), 0.65/0.8/0.9 caught (TP=3).
LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
SCORES = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.35, 0.65, 0.8, 0.9])


def test_metrics_match_hand_computation():
    m = compute_metrics(LABELS, SCORES, threshold=0.5)
    assert m["confusion_matrix"] == {"tn": 4, "fp": 2, "fn": 1, "tp": 3}
    assert (m["n"], m["n_normal"], m["n_errant"]) == (10, 6, 4)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["recall_at_threshold"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (12 - 2) / sqrt(5*4*6*5)
    assert m["mcc"] == pytest.approx(10 / math.sqrt(600))
    assert m["false_alarm_rate"] == pytest.approx(2 / 6)
    # Brier: normals sum s^2 = 1.15, errant sum (1-s)^2 = 0.595 -> 1.745 / 10
    assert m["brier"] == pytest.approx(0.1745)
    # ROC AUC: 20 of the 24 (errant, normal) pairs are ordered correctly.
    assert m["roc_auc"] == pytest.approx(20 / 24)
    # Average precision: errant at ranks 1, 2, 4, 7 -> (1 + 1 + 3/4 + 4/7) / 4
    assert m["pr_auc"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 7) / 4)
    assert m["errant_caught"] == {"caught": 3, "total": 4}
    assert m["false_alarms_per_hour"] == pytest.approx(2 / 6 * 60 * 3600)
    assert m["notes"] == []


def test_false_alarms_per_hour_scales_with_pulse_rate():
    m = compute_metrics(LABELS, SCORES, threshold=0.5, pulse_rate_hz=1.0)
    assert m["false_alarms_per_hour"] == pytest.approx(2 / 6 * 3600)


def test_metrics_are_plain_json_types():
    m = compute_metrics(LABELS.astype(np.int8), SCORES.astype(np.float32), threshold=0.5)
    text = json.dumps(m, allow_nan=False)
    assert json.loads(text)["confusion_matrix"]["tp"] == 3


def test_reliability_curve_bins_by_hand():
    bins = reliability_curve(LABELS, SCORES)
    assert len(bins) == 10
    assert [b["count"] for b in bins] == [0, 1, 1, 2, 1, 0, 2, 1, 1, 1]
    assert bins[0]["mean_predicted"] is None and bins[0]["observed_frequency"] is None
    assert bins[3]["mean_predicted"] == pytest.approx(0.325)  # 0.3 and 0.35
    assert bins[3]["observed_frequency"] == pytest.approx(0.5)
    assert bins[6]["observed_frequency"] == pytest.approx(0.5)  # 0.6 normal, 0.65 errant
    assert bins[9]["observed_frequency"] == 1.0


def test_one_class_part_gives_none_and_a_note_not_a_crash():
    m = compute_metrics([0, 0, 0, 0], [0.1, 0.2, 0.6, 0.3], threshold=0.5)
    assert m["roc_auc"] is None and m["pr_auc"] is None and m["mcc"] is None
    assert m["recall"] is None
    assert m["false_alarm_rate"] == pytest.approx(0.25)
    assert m["errant_caught"] == {"caught": 0, "total": 0}
    assert any("Only one class" in note for note in m["notes"])


def test_no_alarm_reports_zero_precision_with_note():
    m = compute_metrics(LABELS, SCORES, threshold=0.95)
    assert m["precision"] == 0.0
    assert m["false_alarms_per_hour"] == 0.0
    assert any("No alarms" in note for note in m["notes"])


def test_scores_outside_unit_range_leave_calibration_undefined():
    m = compute_metrics([0, 1], [-2.0, 3.0], threshold=0.0)
    assert m["brier"] is None and m["reliability"] == []
    assert m["roc_auc"] == 1.0


def test_confusion_counts_use_greater_or_equal():
    assert confusion_counts([0, 1], [0.5, 0.5], 0.5) == {"tn": 0, "fp": 1, "fn": 0, "tp": 1}


def test_recall_at_false_alarm_rate():
    # FAR <= 1/6 allows one normal alarm (0.7): the lowest such threshold is the errant
    # 0.65, so 0.65, 0.8 and 0.9 are caught. FAR 0: threshold 0.8 catches two.
    assert recall_at_false_alarm_rate(LABELS, SCORES, 1 / 6) == pytest.approx(0.75)
    assert recall_at_false_alarm_rate(LABELS, SCORES, 0.0) == pytest.approx(0.5)
    assert recall_at_false_alarm_rate(LABELS, SCORES, 2 / 6) == pytest.approx(0.75)


def _separable_example(seed=0, n=300):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.2).astype(int)
    scores = np.clip(rng.normal(0.3 + 0.35 * labels, 0.2), 0, 1)
    return labels, scores


def test_bootstrap_interval_contains_estimate_and_is_reproducible():
    labels, scores = _separable_example()
    point = roc_auc_score(labels, scores)
    lo, hi = bootstrap_interval(labels, scores, roc_auc_score, n_boot=200, seed=7)
    assert lo < point < hi
    assert hi - lo < 0.3
    assert bootstrap_interval(labels, scores, roc_auc_score, n_boot=200, seed=7) == (lo, hi)
    assert bootstrap_interval(labels, scores, roc_auc_score, n_boot=200, seed=8) != (lo, hi)


def test_bootstrap_is_stratified():
    labels, scores = _separable_example(n=50)
    seen = []
    bootstrap_interval(labels, scores, lambda y, s: seen.append(int(y.sum())) or 0.0, n_boot=20)
    assert set(seen) == {int(labels.sum())}


def test_bootstrap_errors_when_metric_always_undefined():
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_interval(LABELS, SCORES, lambda y, s: None, n_boot=5)


@pytest.mark.parametrize(
    "labels,scores,message",
    [([], [], "empty"), ([0, 1], [0.1], "same length"), ([0, 1], [0.1, np.inf], "finite")],
)
def test_compute_metrics_rejects_bad_input(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(labels, scores, threshold=0.5)


def test_time_blocks_cut_time_order_into_equal_counts():
    ts = np.array([50, 10, 30, 20, 40, 90, 70, 60, 80], dtype=np.int64)
    blocks = time_blocks(ts, 3)
    assert blocks[np.argsort(ts)].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert time_blocks(ts[:2], 5).tolist() == [1, 0]  # fewer pulses than blocks
    with pytest.raises(ValueError, match="n_blocks"):
        time_blocks(ts, 0)


def test_rates_by_block_counts_each_block_and_the_online_alarms():
    labels = [0, 0, 1, 0, 0, 1, 0]
    scores = [0.1, 0.9, 0.8, 0.2, 0.6, 0.3, 0.7]
    online = np.array([0, 0, 1, 0, 0, 1, 1], bool)
    table = rates_by_block(labels, scores, 0.5, ["a", "a", "a", "b", "b", "b", "c"], online)
    assert [row["block"] for row in table] == ["a", "b", "c"]
    a, b, c = table
    assert (a["false_alarms"], a["false_alarm_rate"], a["recall"]) == (1, 0.5, 1.0)
    assert (b["false_alarm_rate"], b["recall"], b["online_recall"]) == (0.5, 0.0, 1.0)
    assert (c["n_errant"], c["recall"], c["online_false_alarm_rate"]) == (0, None, 1.0)
    assert "online_recall" not in rates_by_block(labels, scores, 0.5, [0] * 7)[0]
    with pytest.raises(ValueError, match="one id per pulse"):
        rates_by_block(labels, scores, 0.5, [0, 1])
    with pytest.raises(ValueError, match="online_alarms must be bool"):
        rates_by_block(labels, scores, 0.5, [0] * 7, online.astype(int))


def test_metrics_carry_intervals_around_their_rates():
    from analysis.evaluation import compute_metrics
    y = np.array([0] * 95 + [1] * 5)
    s = np.linspace(0, 1, 100)
    m = compute_metrics(y, s, threshold=0.9, pulse_rate_hz=60.0)
    lo, hi = m["false_alarms_per_hour_interval"]
    assert lo < m["false_alarms_per_hour"] < hi
    lo, hi = m["recall_interval"]
    assert lo <= m["recall"] <= hi and 0.0 <= lo and hi <= 1.0


def test_operating_curve_never_exceeds_the_rate_it_was_placed_at():
    from analysis.evaluation import operating_curve
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(60 * 3600, int), np.ones(40, int)]  # one hour of normal beam at 60 Hz
    s = np.r_[rng.normal(0, 1, 60 * 3600), rng.normal(3, 1, 40)]
    rows = operating_curve(y, s, pulse_rate_hz=60.0, per_hour=(0.5, 1, 10, 100))
    assert [r["resolved"] for r in rows] == [False, True, True, True]
    for r in rows:
        assert r["false_alarms"] <= max(r["per_hour"] * r["hours"], 0) + 1e-9
    recalls = [r["recall"] for r in rows]
    assert recalls == sorted(recalls) and recalls[-1] > recalls[0]
    assert rows[2]["false_alarms"] == 10  # continuous scores: the allowed count is met exactly


def test_threshold_for_false_alarms_counts_ties_whole():
    from analysis.thresholds import threshold_for_false_alarms
    normal = np.array([0.1, 0.5, 0.5, 0.5, 0.9])
    t = threshold_for_false_alarms(normal, 2)  # the tied 0.5s would make 4 alarms
    assert np.sum(normal >= t) == 1
    assert np.sum(normal >= threshold_for_false_alarms(normal, 0)) == 0


def test_operating_curve_of_a_stretch_without_trips_still_counts_false_alarms():
    from analysis.evaluation import operating_curve
    rows = operating_curve(np.zeros(7200, int), np.linspace(0, 1, 7200), per_hour=(100.0,))
    assert rows[0]["false_alarms"] == 3 and rows[0]["recall"] is None  # 2 minutes of beam
    with pytest.raises(ValueError, match="no normal"):
        operating_curve(np.ones(5, int), np.linspace(0, 1, 5))
