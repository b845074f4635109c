"""Tests of the detection benchmark's pure helpers: truth join, recall breakdown, subsampling,
calibration checks (no training, no archive)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.detection_calibration import calibration_checks
from benchmarks.detection_models import subsample
from benchmarks.detection_tables import render
from benchmarks.detection_truth import join_truth, recall_breakdown, strength_edges


def _truth() -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp_ns": [10, 20, 30, 40, 50, 60, 70],
        "label": [0, 1, 1, 1, 1, -1, 0],
        "precursor_kind": ["none", "ramp", "burst", "none", "ramp", "none", "none"],
        "precursor_strength": [0.0, 0.2, 1.0, 0.0, 3.0, 0.0, 0.0],
    })


def test_join_truth_finds_kind_and_strength_bin_by_timestamp_and_label():
    truth = _truth()
    edges = strength_edges(truth)
    joined = join_truth([20, 30, 40, 50, 70, 99], [1, 1, 1, 1, 0, 1], truth, edges)
    assert joined["precursor_kind"].tolist() == ["ramp", "burst", "none", "ramp", "none",
                                                 "unknown"]
    assert joined["strength_bin"].tolist() == ["weak", "medium", "", "strong", "", ""]


def test_recall_breakdown_counts_caught_trips_and_the_ceiling():
    truth = _truth()
    joined = join_truth([10, 20, 30, 40, 50], [0, 1, 1, 1, 1], truth, strength_edges(truth))
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.95])  # alarm at >= 0.5
    out = recall_breakdown(joined, scores, 0.5)
    assert out["by_kind"]["ramp"] == {"caught": 1, "total": 2, "recall": 0.5}
    assert out["by_kind"]["none"] == {"caught": 1, "total": 1, "recall": 1.0}
    assert out["by_strength"]["weak"]["caught"] == 0
    assert out["ceiling"] == {"with_precursor": 3, "trips": 4, "share": 0.75}
    assert out["unmatched"] == 0


def test_subsample_keeps_class_shares_and_is_seeded():
    labels = np.r_[np.zeros(900, np.int8), np.ones(100, np.int8)]
    idx = np.arange(1000)
    a = subsample(idx, labels, 200, seed=1)
    assert a.size == 200 and np.all(np.diff(a) > 0)
    assert labels[a].sum() == 20
    assert np.array_equal(a, subsample(idx, labels, 200, seed=1))
    assert np.array_equal(subsample(idx, labels, None, seed=1), idx)


def test_subsample_keeps_at_least_two_of_a_rare_class():
    labels = np.r_[np.zeros(999, np.int8), np.ones(1, np.int8)]
    picked = subsample(np.arange(1000), labels, 10, seed=0)
    assert labels[picked].sum() == 1 and picked.size == 10


def _model(pr, recall, weak, strong):
    cell = lambda v: {"mean": v, "spread": None, "n": 1, "lo": v, "hi": v}  # noqa: E731
    breakdown = {"by_kind": {}, "by_strength": {"weak": weak, "strong": strong},
                 "ceiling": {"with_precursor": 8, "trips": 10, "share": 0.8}, "unmatched": 0}
    return {"summary": {"pr_auc": cell(pr), "recall": cell(recall), "roc_auc": cell(0.9),
                        "false_alarms_per_hour": cell(0.0), "caught": cell(5.0), "seeds": 1,
                        "n_errant": 10, "n_normal": 90},
            "seeds": [{"breakdown": breakdown}],
            "runs": [{"train_seconds": 1.0, "epochs_trained": 2, "train_samples": 50}]}


def test_calibration_checks_flag_a_baseline_that_matches_the_best_model():
    weak = {"caught": 1, "total": 4, "recall": 0.25}
    strong = {"caught": 4, "total": 4, "recall": 1.0}
    result = {"models": {"sns_cnn_lstm": _model(0.80, 0.6, weak, strong),
                         "sns_cnn_lstm_trace_only": _model(0.60, 0.5, weak, strong),
                         "hist_gradient_boosting": _model(0.78, 0.5, weak, strong)}}
    checks = {c["check"].split(" (")[0]: c["passed"] for c in calibration_checks(result)}
    assert checks == {
        "weak precursors not trivial": True,
        "strong precursors learnable": True,
        "overall recall below the ceiling": True,
        "feature baseline clearly below best model": False,
        "trace-only clearly below settings-aware": True,
    }


def test_render_shows_every_model_and_the_ceiling():
    weak = {"caught": 1, "total": 4, "recall": 0.25}
    result = {"archive": "/x/archive", "samples": 100, "n_boot": 10,
              "target_false_alarm_rate": 0.01, "strength_edges": [0.3, 1.2],
              "split": {"train": {"n": 70, "n_errant": 7}, "val": {"n": 15, "n_errant": 2},
                        "test": {"n": 15, "n_errant": 2}},
              "models": {"sns_cnn_lstm": _model(0.8, 0.6, weak, weak),
                         "logistic_regression": _model(0.4, 0.3, weak, weak)}}
    result["calibration"] = calibration_checks(result)
    text = render(result)
    assert "| sns_cnn_lstm |" in text and "| logistic_regression |" in text
    assert "0.50x" in text  # 0.4 / 0.8 against the default
    assert "8 of 10 test trips have any precursor" in text


def test_strength_edges_are_tertiles_and_need_three_precursors():
    truth = pd.DataFrame({"timestamp_ns": [1, 2, 3], "label": [1, 1, 1],
                          "precursor_kind": ["ramp"] * 3, "precursor_strength": [0.0, 3.0, 6.0]})
    assert strength_edges(truth) == pytest.approx([2.0, 4.0])
    assert strength_edges(truth.iloc[:2]) == [float("-inf"), float("inf")]


def test_onset_breakdown_appears_only_when_truth_has_the_column():
    truth = _truth()
    truth["precursor_onset"] = [0, 1, 6, 0, 2, 0, 0]
    joined = join_truth([20, 30, 40, 50], [1, 1, 1, 1], truth, strength_edges(truth))
    assert joined["onset_bin"].tolist() == ["1", ">=4", "", "2"]
    out = recall_breakdown(joined, np.array([0.9, 0.1, 0.9, 0.9]), 0.5)
    assert out["by_onset"] == {"1": {"caught": 1, "total": 1, "recall": 1.0},
                               ">=4": {"caught": 0, "total": 1, "recall": 0.0},
                               "2": {"caught": 1, "total": 1, "recall": 1.0}}
    plain = join_truth([20], [1], _truth(), strength_edges(_truth()))
    assert "by_onset" not in recall_breakdown(plain, np.array([0.9]), 0.5)
