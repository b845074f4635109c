"""Operating figures of a scored every-pulse stream: the curve, the deployed points, recall by
precursor - on a tiny simulated stream scored by a stand-in model."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.operating import render, stream_figures
from enterprise_tools.simulator import SimulatorParams
from enterprise_tools.sns_stream import StreamSpec, pulse_stream


@pytest.fixture(scope="module")
def scored_stream():
    params = SimulatorParams.realistic(seed=5, errant_trips_per_hour=2400.0, study_per_day=0.0,
                                       beam_off_per_day=0.0, low_rr_per_day=0.0)
    chunks = list(pulse_stream(StreamSpec(params, hours=0.01, shift=2000, bank_size=4), seed=0))
    field = {k: np.concatenate([getattr(c, k) for c in chunks])
             for k in ("labels", "precursor", "onset", "strength")}
    # stand-in model: sees the precursor's strength through noise (the plumbing is under test)
    noise = np.random.default_rng(0).normal(0.0, 0.15, field["labels"].size)
    field["scores"] = 1.0 + field["strength"] + noise
    return field


def test_curve_recall_rises_with_the_false_alarms_allowed(scored_stream):
    f = scored_stream
    figures = stream_figures(f["labels"], f["scores"], f["scores"] > 1.2, 1.5,
                             precursor=f["precursor"], onset=f["onset"], strength=f["strength"],
                             target_per_hour=10.0)
    curve = figures["curve"]
    assert [r["per_hour"] for r in curve][0] == 0.1 and len(curve) == 9
    recalls = [r["recall"] for r in curve]
    assert recalls == sorted(recalls) and recalls[-1] > recalls[0]
    # the stream is 0.02 h: rates below 50 / h cannot hold one false alarm
    assert [r["resolved"] for r in curve] == [r["per_hour"] * figures["hours_of_normal_beam"] >= 1
                                              for r in curve]
    normal = f["scores"][f["labels"] == 0]
    assert figures["fixed"]["false_alarms"] == int(np.sum(normal >= 1.5))
    assert figures["online"]["false_alarms"] == int(np.sum(normal > 1.2))
    assert figures["online"]["measured_over_target"] == pytest.approx(
        figures["online"]["false_alarms_per_hour"] / 10.0)
    assert figures["n_errant"] == int(np.sum(f["labels"] == 1)) >= 5


def test_breakdown_counts_every_errant_pulse_once_per_grouping(scored_stream):
    f = scored_stream
    figures = stream_figures(f["labels"], f["scores"], None, 1.5, precursor=f["precursor"],
                             onset=f["onset"], strength=f["strength"])
    assert "online" not in figures
    for table in figures["breakdown"].values():
        for values in table.values():
            assert sum(c["total"] for c in values.values()) == figures["n_errant"]
    text = render(figures)
    assert "false alarms / h (measured)" in text and "by precursor" in text
