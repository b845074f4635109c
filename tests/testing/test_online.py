"""Tests for testing.online: the test flow's online operating point follows the config."""

import numpy as np
import pytest

from analysis.thresholds import ThresholdChoice
from parser.configs import ThresholdConfig
from testing.online import online_figures

CHOICE = ThresholdChoice(threshold=0.5, method="best_f1", target_false_alarm_rate=None,
                         false_alarm_rate=0.1, recall=0.8, precision=0.5, f1=0.6, n_normal=10,
                         n_errant=2)


def test_online_figures_run_in_time_order_with_the_configured_step_and_target():
    ts = np.array([30, 10, 20], dtype=np.int64)
    figures = online_figures(ts, [0, 0, 0], [0.9, 0.2, 0.95], CHOICE,
                             ThresholdConfig(target_false_alarm_rate=0.2, online_step=1.0))
    assert figures.summary["target_false_alarm_rate"] == 0.2  # best_f1 has no target of its own
    assert figures.summary["step"] == 1.0 and figures.summary["space"] == "logit"
    assert figures.thresholds[1] == 0.5  # the earliest pulse sees the validation threshold
    assert figures.thresholds[2] < 0.5 < figures.thresholds[0]  # quiet, then a false alarm
    assert figures.alarms.tolist() == [True, False, True]


def test_online_off_gives_nothing():
    figures = online_figures([1, 2], [0, 1], [0.1, 0.9], CHOICE, ThresholdConfig(online=False))
    assert figures.summary is None and figures.alarms is None


def test_scores_outside_unit_range_are_tracked_in_score_units():
    figures = online_figures([1, 2], [0, 0], [3.0, 1.0], CHOICE, ThresholdConfig(online_step=0.5))
    assert figures.summary["space"] == "linear"
    assert figures.thresholds.tolist() == pytest.approx([0.5, 0.5 + 0.5 * 0.99])
