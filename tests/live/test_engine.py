"""The live engine's operating point: the run's threshold, followed online where serving.json
asks, each pulse judged at the threshold in force before its own label is known."""

from __future__ import annotations

import numpy as np

from analysis.recalibration import OnlineThreshold
from live.engine import LiveScorer, csv_row
from live.serving import InputLayout

S = 1_000_000_000


class _MaxBackend:
    """Score = the window's maximum: a stand-in for the exported artefact."""

    name = "max"

    def score_batch(self, batch):
        return batch["trace"].reshape(len(batch["trace"]), -1).max(axis=1)

    def score_one(self, raw):
        return float(np.max(raw["trace"]))


def _meta(online):
    return {"layout": InputLayout(4, 1).to_dict(), "threshold": 0.5, "window": {"alarm": 48},
            "settings": {"features": [], "production_filter": {}, "group_tolerance": 1e-6},
            "scaling": {"settings": {"center": [], "scale": []}}, "unseen_configuration": None,
            "online": online}


def test_online_threshold_follows_the_pulses_whose_labels_are_known():
    scores = np.array([0.7, 0.7, 0.2, 0.2, 0.9, 0.2])
    alarms = np.array([0, 0, 0, 0, 0, 48])  # pulse 4 is the precursor of a trip
    traces = np.repeat(scores[:, None], 4, axis=1).astype(np.float32)
    online = {"target_false_alarm_rate": 0.01, "step": 0.5, "false_alarms_per_hour": None}
    scorer = LiveScorer(_MaxBackend(), _meta(online))
    rows, _ = scorer.score_file("f", traces, np.arange(6) * S, alarms)

    reference = OnlineThreshold(0.5, 0.01, step=0.5)
    expected = []
    for score, label in zip(scores[:5], [0, 0, 0, 0, 1], strict=True):
        expected.append(reference.threshold)
        reference.update(score, is_normal=label == 0)
    np.testing.assert_allclose([r.threshold for r in rows[:5]], expected)
    assert rows[1].threshold > rows[0].threshold  # the first false alarm raised it
    assert [r.alarm for r in rows[:2]] == [True, True] and rows[4].label == 1
    assert rows[5].label == -1 and rows[5].threshold == rows[4].threshold  # errant: no move
    assert csv_row(rows[1])[5] == f"{rows[1].threshold:.6g}"


def test_without_online_settings_the_threshold_stays_fixed():
    traces = np.full((3, 4), 0.7, np.float32)
    scorer = LiveScorer(_MaxBackend(), _meta(None))
    rows, _ = scorer.score_file("f", traces, np.arange(3) * S, [0, 0, 0])
    assert [r.threshold for r in rows] == [0.5] * 3 and all(r.alarm for r in rows)
