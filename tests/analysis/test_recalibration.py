"""Tests for analysis.recalibration: the online threshold holds its false-alarm rate, causally."""

import json

import numpy as np
import pytest

from analysis.recalibration import (
    OnlineThreshold,
    online_in_time_order,
    online_thresholds,
)

TARGET = 0.01


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _normal_scores(n, seed=0, shift=0.0):
    """Sigmoid scores of normal pulses: logits N(-4 + shift, 1.5)."""
    return _sigmoid(np.random.default_rng(seed).normal(-4.0 + shift, 1.5, n))


def _logit(p):
    return np.log(p / (1 - p))


@pytest.mark.parametrize("initial_far", [0.5, 1e-5])
def test_stationary_stream_reaches_target_rate_from_a_wrong_threshold(initial_far):
    scores = _normal_scores(20_000)
    initial = float(np.quantile(scores, 1 - initial_far))  # alarms on half / almost none
    result = online_thresholds(scores, np.zeros(scores.size, int), initial, TARGET)
    running = np.cumsum(result.alarms) / np.arange(1, scores.size + 1)
    last = result.alarms[-10_000:].mean()  # the running rate once the start is forgotten
    assert last == pytest.approx(TARGET, rel=0.10)
    assert abs(running[-1] - TARGET) < abs(running[99] - TARGET)  # it moved toward the target
    # The adaptive-conformal identity: the whole-stream excess is the threshold's travel / step.
    travel = _logit(result.final_threshold) - _logit(result.initial_threshold)
    assert result.false_alarm_rate - TARGET == pytest.approx(travel / (result.step * scores.size),
                                                             abs=1e-9)


def test_rate_recovers_after_an_abrupt_shift():
    before, after = _normal_scores(10_000, seed=1), _normal_scores(10_000, seed=2, shift=2.0)
    scores = np.r_[before, after]
    fixed = float(np.quantile(before, 1 - TARGET))
    result = online_thresholds(scores, np.zeros(scores.size, int), fixed, TARGET)
    fixed_rate_after = float(np.mean(after >= fixed))
    assert fixed_rate_after > 5 * TARGET  # the shift breaks a fixed threshold
    assert result.alarms[-5_000:].mean() == pytest.approx(TARGET, rel=0.25)
    new_quantile = _logit(np.quantile(after, 1 - TARGET))
    close = np.abs(_logit(result.thresholds[10_000:]) - new_quantile) < 0.25
    assert 0 < np.argmax(close) < 2_000  # pulses to recover after the shift


def test_errant_pulses_neither_count_nor_move_the_threshold():
    result = online_thresholds([0.9, 0.9, 0.9, 0.1], [1, 1, 1, 0], 0.5, TARGET)
    assert result.thresholds[:4].tolist() == [0.5] * 4
    assert result.alarms.tolist() == [True, True, True, False]
    assert result.false_alarms == 0 and result.caught == 3 and result.recall == 1.0
    assert result.false_alarm_rate == 0.0 and result.final_threshold < 0.5


@pytest.mark.parametrize("i", [0, 7, 50, 99])
def test_threshold_of_a_pulse_depends_only_on_earlier_pulses(i):
    rng = np.random.default_rng(3)
    scores, labels = rng.random(100), (rng.random(100) < 0.2).astype(int)
    base = online_thresholds(scores, labels, 0.3, 0.1)
    changed_scores, changed_labels = scores.copy(), labels.copy()
    changed_scores[i:] = rng.random(100 - i)
    changed_labels[i:] = 1 - changed_labels[i:]
    other = online_thresholds(changed_scores, changed_labels, 0.3, 0.1)
    np.testing.assert_array_equal(other.thresholds[: i + 1], base.thresholds[: i + 1])
    if i < 99:
        assert not np.array_equal(other.thresholds[i + 1:], base.thresholds[i + 1:])


def test_array_function_matches_the_stateful_tracker_pulse_by_pulse():
    rng = np.random.default_rng(4)
    scores, labels = _normal_scores(3_000, seed=4), (rng.random(3_000) < 0.05).astype(int)
    result = online_thresholds(scores, labels, 0.2, TARGET, step=0.3)
    tracker = OnlineThreshold(0.2, TARGET, step=0.3)
    for i, (score, label) in enumerate(zip(scores, labels, strict=True)):
        assert tracker.threshold == result.thresholds[i]
        assert (score >= tracker.threshold) == result.alarms[i]
        tracker.update(score, is_normal=label == 0)
    assert tracker.threshold == result.final_threshold
    assert tracker.n_false_alarms == result.false_alarms


def test_state_round_trips_through_json_and_continues_identically():
    scores = _normal_scores(500, seed=5)
    tracker = OnlineThreshold(0.05, TARGET, step=0.25)
    for score in scores[:250]:
        tracker.update(score, True)
    restored = OnlineThreshold.from_dict(json.loads(json.dumps(tracker.to_dict())))
    assert restored.to_dict() == tracker.to_dict()
    for score in scores[250:]:
        assert restored.update(score, True) == tracker.update(score, True)
    assert restored.threshold == tracker.threshold


def test_time_order_wrapper_runs_in_time_and_answers_in_input_order():
    rng = np.random.default_rng(6)
    ts = rng.permutation(200).astype(np.int64) * 1_000_000
    scores, labels = rng.random(200), (rng.random(200) < 0.1).astype(int)
    shuffled = online_in_time_order(ts, scores, labels, 0.5, 0.05)
    order = np.argsort(ts)
    ordered = online_thresholds(scores[order], labels[order], 0.5, 0.05)
    np.testing.assert_array_equal(shuffled.thresholds[order], ordered.thresholds)
    np.testing.assert_array_equal(shuffled.alarms[order], ordered.alarms)


def test_linear_space_steps_in_score_units():
    result = online_thresholds([5.0, 1.0], [0, 0], 2.0, 0.5, step=1.0, space="linear")
    assert result.thresholds.tolist() == [2.0, 2.5]


@pytest.mark.parametrize(
    "kwargs,match",
    [({"target_false_alarm_rate": 0.0}, "in \\(0, 1\\)"),
     ({"target_false_alarm_rate": 1.5}, "in \\(0, 1\\)"),
     ({"step": 0.0}, "step must be"),
     ({"space": "log"}, "space must be"),
     ({"scores": [0.1, np.nan, 0.3]}, "finite.*index 1"),
     ({"labels": [0, 1]}, "same length"),
     ({"labels": [0, 2, 0]}, "0 \\(normal\\) or 1"),
     ({"scores": [0.1, 1.5, 0.3]}, "space='linear'"),
     ({"initial_threshold": float("inf")}, "initial_threshold")],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    args = {"scores": [0.1, 0.2, 0.3], "labels": [0, 0, 1], "initial_threshold": 0.5,
            "target_false_alarm_rate": TARGET} | kwargs
    with pytest.raises(ValueError, match=match):
        online_thresholds(**args)


@pytest.mark.parametrize("change,match", [({"position": float("nan")}, "position"),
                                          ({"n_normal": -1}, "n_normal"),
                                          ({"extra": 1}, "unknown keys \\['extra'\\]")])
def test_bad_state_is_rejected(change, match):
    state = OnlineThreshold(0.5, TARGET).to_dict() | change
    with pytest.raises(ValueError, match=match):
        OnlineThreshold.from_dict(state)


def test_update_rejects_a_nan_score():
    with pytest.raises(ValueError, match="finite"):
        OnlineThreshold(0.5, TARGET).update(float("nan"), True)
