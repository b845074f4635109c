"""Tests for analysis.thresholds: operating-point choice on validation scores."""

import json

import numpy as np
import pytest

from analysis.thresholds import ThresholdChoice, choose_threshold


def _far(labels, scores, threshold):
    normal = np.asarray(scores, dtype=float)[np.asarray(labels) == 0]
    return np.sum(normal >= threshold) / normal.size


def test_target_far_picks_smallest_score_meeting_target():
    # Ten normals 0.1..1.0; at most 2 may alarm -> 0.9 would do, but the errant 0.85 is
    # lower and still lets only 0.9 and 1.0 alarm.
    normal = np.round(np.arange(1, 11) / 10, 2)
    labels = np.r_[np.zeros(10), [1, 1]]
    scores = np.r_[normal, [0.85, 0.5]]
    choice = choose_threshold(labels, scores, target_false_alarm_rate=0.2)
    assert choice.threshold == 0.85
    assert choice.false_alarm_rate == pytest.approx(0.2)
    assert choice.recall == 0.5
    assert choice.precision == pytest.approx(1 / 3)
    assert choice.f1 == pytest.approx(0.4)
    assert (choice.n_normal, choice.n_errant) == (10, 2)


def test_target_far_counts_ties_whole():
    # Three normals tie at 0.7: taking the tie would give FAR 3/5 > 0.4, so it must go above.
    labels = [0, 0, 0, 0, 0, 1]
    scores = [0.1, 0.2, 0.7, 0.7, 0.7, 0.9]
    choice = choose_threshold(labels, scores, target_false_alarm_rate=0.4)
    assert choice.threshold == 0.9
    assert choice.false_alarm_rate == 0.0


@pytest.mark.parametrize("seed", range(200))
def test_target_far_is_met_and_threshold_is_minimal(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 8, n) / 8.0  # coarse grid: many ties
    target = float(rng.choice([0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1 / 3, 1.0]))
    choice = choose_threshold(labels, scores, target_false_alarm_rate=target)

    assert _far(labels, scores, choice.threshold) <= target
    assert choice.false_alarm_rate == _far(labels, scores, choice.threshold)
    lower = np.unique(scores)[np.unique(scores) < choice.threshold]
    if lower.size:  # the next lower score value would break the target
        assert _far(labels, scores, lower[-1]) > target


def test_all_ties_falls_back_just_above_max_normal_in_score_precision():
    scores = np.full(6, 0.7, dtype=np.float32)
    labels = [0, 0, 0, 0, 1, 1]
    choice = choose_threshold(labels, scores, target_false_alarm_rate=0.1)
    assert choice.threshold > 0.7
    assert choice.threshold == float(np.nextafter(np.float32(0.7), np.float32(1)))
    # Compared later in float32 (as model scores are), no normal may alarm.
    assert not np.any(scores >= choice.threshold)
    assert choice.false_alarm_rate == 0.0 and choice.recall == 0.0 and choice.precision == 0.0


def test_best_f1_picks_the_maximum_over_unique_scores():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 80)
    scores = np.round(rng.random(80) * 0.6 + 0.4 * labels, 2)
    choice = choose_threshold(labels, scores, method="best_f1")

    def f1(t):
        alarm = scores >= t
        tp = np.sum(alarm & (labels == 1))
        return 2 * tp / (2 * tp + np.sum(alarm & (labels == 0)) + np.sum(~alarm & (labels == 1)))

    best = max(f1(t) for t in np.unique(scores))
    assert choice.f1 == pytest.approx(best)
    assert f1(choice.threshold) == pytest.approx(best)
    assert choice.method == "best_f1" and choice.target_false_alarm_rate is None


@pytest.mark.parametrize("labels,missing", [([0, 0, 0], "no errant"), ([1, 1], "no normal")])
def test_one_class_input_names_the_missing_class(labels, missing):
    with pytest.raises(ValueError, match=missing):
        choose_threshold(labels, np.linspace(0, 1, len(labels)))


@pytest.mark.parametrize(
    "labels,scores,kwargs,message",
    [
        ([0, 1], [0.1], {}, "same length"),
        ([0, 2], [0.1, 0.2], {}, "0 \\(normal\\) or 1"),
        ([0, 1], [0.1, np.nan], {}, "finite"),
        ([0, 1], [0.1, 0.2], {"target_false_alarm_rate": 1.5}, "in \\[0, 1\\]"),
        ([0, 1], [0.1, 0.2], {"method": "youden"}, "Unknown threshold method"),
    ],
)
def test_bad_input_raises_clear_error(labels, scores, kwargs, message):
    with pytest.raises(ValueError, match=message):
        choose_threshold(labels, scores, **kwargs)


def test_threshold_choice_round_trips_through_dict():
    choice = choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], target_false_alarm_rate=0.5)
    assert ThresholdChoice.from_dict(choice.to_dict()) == choice
    with pytest.raises(ValueError, match="missing keys"):
        ThresholdChoice.from_dict({"threshold": 0.5})


def test_threshold_record_as_the_train_flow_writes_it_loads():
    """threshold.json carries `chosen_on`; records written before it existed load too."""
    choice = choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], target_false_alarm_rate=0.5)
    record = json.loads(json.dumps({**choice.to_dict(), "chosen_on": "validation part"}))
    loaded = ThresholdChoice.from_dict(record)
    assert loaded.chosen_on == "validation part" and loaded.threshold == choice.threshold
    assert loaded.to_dict() == record
    old = {k: v for k, v in record.items() if k != "chosen_on"}
    assert ThresholdChoice.from_dict(old).chosen_on is None


@pytest.mark.parametrize("change,match", [({"threshold": "0.5"}, "finite number"),
                                          ({"threshold": float("nan")}, "finite number"),
                                          ({"method": "magic"}, "method 'magic'"),
                                          ({"extra": 1}, "unknown keys \\['extra'\\]")])
def test_bad_threshold_record_is_rejected(change, match):
    record = choose_threshold([0, 1], [0.2, 0.8]).to_dict() | change
    with pytest.raises(ValueError, match=match):
        ThresholdChoice.from_dict(record)


def test_threshold_placed_in_false_alarms_per_hour_holds_the_rate_on_the_pulses_it_saw():
    rng = np.random.default_rng(3)
    normal = rng.normal(0.0, 1.0, 60 * 3600)  # one hour of every pulse at 60 Hz
    errant = rng.normal(3.0, 1.0, 50)
    y = np.r_[np.zeros(normal.size, int), np.ones(errant.size, int)]
    choice = choose_threshold(y, np.r_[normal, errant], "false_alarms_per_hour",
                              false_alarms_per_hour=10.0, pulse_rate_hz=60.0)
    assert choice.resolved and choice.normal_beam_hours == pytest.approx(1.0)
    assert np.sum(normal >= choice.threshold) == 10
    assert choice.target_false_alarm_rate == pytest.approx(10 / 216000)
    assert ThresholdChoice.from_dict(choice.to_dict()) == choice


def test_a_validation_part_too_short_for_the_rate_is_marked_unresolved():
    y = np.array([0] * 300 + [1] * 20)  # 300 normal pulses: 5 s of beam
    s = np.r_[np.linspace(0.0, 0.6, 300), np.linspace(0.4, 1.0, 20)]
    choice = choose_threshold(y, s, "false_alarms_per_hour", false_alarms_per_hour=10.0)
    assert choice.resolved is False and choice.false_alarm_rate == 0.0
    assert choice.threshold > 0.6 and choice.recall == pytest.approx(np.mean(s[300:] > 0.6))


def test_false_alarms_per_hour_needs_a_positive_rate():
    with pytest.raises(ValueError, match="false_alarms_per_hour"):
        choose_threshold([0, 1], [0.1, 0.9], "false_alarms_per_hour")


def test_threshold_records_written_before_false_alarms_per_hour_still_load():
    old = dict(threshold=0.5, method="target_false_alarm_rate", target_false_alarm_rate=0.01,
               false_alarm_rate=0.01, recall=0.5, precision=0.5, f1=0.5, n_normal=10, n_errant=2)
    assert ThresholdChoice.from_dict(old).resolved is None
