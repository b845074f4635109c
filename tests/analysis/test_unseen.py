"""Unseen-configuration flag: a test period holding a configuration far outside training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.deployment import deployment_notes
from analysis.unseen import MIN_RADIUS, UnseenDetector, fit_unseen
from testing.deployment import deployment_summary


def _settings(rng, centres, n):
    return np.concatenate([c + 0.01 * rng.standard_normal((n, 3)) for c in centres])


def test_far_configuration_is_flagged_and_trained_ones_are_not():
    rng = np.random.default_rng(0)
    train = _settings(rng, [np.zeros(3), np.full(3, 0.5), np.ones(3)], 50)
    val = _settings(rng, [np.full(3, 0.25), np.full(3, 0.75)], 50)
    detector = fit_unseen(train, val, quantile=0.99)
    assert detector.radius >= MIN_RADIUS
    test = np.concatenate([_settings(rng, [np.full(3, 0.5)], 20), _settings(rng, [np.full(3, 5.0)], 20)])
    flags = detector.flags(test)
    assert not flags[:20].any() and flags[20:].all()
    again = UnseenDetector.from_dict(json.loads(json.dumps(detector.to_dict())))
    assert np.array_equal(again.flags(test), flags)


def test_fit_needs_settings():
    with pytest.raises(ValueError, match="training settings"):
        fit_unseen(np.zeros((0, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="anchors must be"):
        UnseenDetector.from_dict({"anchors": [], "radius": 1.0})


def test_test_flow_summary_splits_recall_and_false_alarms_by_flag(tmp_path):
    detector = UnseenDetector(np.zeros((1, 2), np.float32), 0.5)
    export = tmp_path / "export"
    export.mkdir()
    (export / "serving.json").write_text(json.dumps({
        "format": "beamwatch-serving-1", "unseen_configuration": detector.to_dict(),
        "scaling": {"settings": {"center": [10.0, 10.0], "scale": [2.0, 2.0]}}}))
    (export / "parity.json").write_text(json.dumps({"formats": {
        "litert_float32": {"max_abs_diff": 1e-7, "delta_pr_auc": 0.0, "bytes": 1000},
        "onnx": {"error": "not written: tf2onnx is not installed"}}}))
    settings = np.array([[10, 10], [10, 10], [10, 10], [30, 30], [30, 30], [30, 30]], float)
    labels = np.array([1, 0, 0, 1, 1, 0])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.9, 0.9])
    summary = deployment_summary(tmp_path, settings, labels, scores, 0.5)
    unseen = summary["unseen_configuration"]
    assert unseen["flags"].tolist() == [False] * 3 + [True] * 3
    assert unseen["flagged"]["recall"] == 0.5 and unseen["flagged"]["false_alarm_rate"] == 1.0
    assert unseen["unflagged"]["recall"] == 1.0 and unseen["unflagged"]["false_alarm_rate"] == 0.5
    notes = deployment_notes(summary)
    assert any("3 of 6 pulses flagged" in n for n in notes)
    assert any("tf2onnx is not installed" in n for n in notes)
    assert deployment_summary(tmp_path / "nothing", settings, labels, scores, 0.5) is None
