"""The live reference rule (CONTRACT §3) and a reference model scored through the live engine."""

from __future__ import annotations

import numpy as np
import pytest

from live.references import (
    SOURCE_ARCHIVE,
    SOURCE_FILE,
    SOURCE_SELF,
    ReferenceBuffer,
    ReferenceRule,
)

S = 1_000_000_000


def _w(value: float, length: int = 4) -> np.ndarray:
    return np.full(length, value, np.float32)


def test_in_file_pulses_come_first_right_aligned_then_the_oldest_repeats():
    buffer = ReferenceBuffer(ReferenceRule(count=2, min_count=1), group_tolerance=1e-6)
    assert buffer.lookup(10 * S, _w(0), []) is None  # nothing earlier: skipped
    refs = buffer.lookup(11 * S, _w(1), [(10 * S, _w(0), None)])
    assert refs.count == 1 and refs.timestamp_ns.tolist() == [10 * S, 10 * S]
    refs = buffer.lookup(13 * S, _w(3), [(10 * S, _w(0), None), (11 * S, _w(1), None), (12 * S, _w(2), None)])
    assert refs.timestamp_ns.tolist() == [11 * S, 12 * S]  # slot K-1 = the pulse just before
    assert refs.windows[:, 0].tolist() == [1.0, 2.0]
    assert refs.source.tolist() == [SOURCE_FILE, SOURCE_FILE]


def test_archive_fills_newest_first_within_the_window_and_same_configuration_only():
    buffer = ReferenceBuffer(ReferenceRule(count=3, window_s=60.0), group_tolerance=0.01)
    buffer.see_settings([1.0, 2.0])
    for t in (0, 100, 101, 102):
        buffer.add_normal(t * S, _w(t))
    refs = buffer.lookup(130 * S, _w(9), [(129 * S, _w(129), None)])
    assert refs.timestamp_ns.tolist() == [101 * S, 102 * S, 129 * S]
    assert refs.source.tolist() == [SOURCE_ARCHIVE, SOURCE_ARCHIVE, SOURCE_FILE]
    assert buffer.lookup(170 * S, _w(9), []) is None  # 101 and 102 are more than 60 s back
    assert buffer.lookup(161 * S, _w(9), []).timestamp_ns.tolist() == [101 * S, 101 * S, 102 * S]
    buffer.see_settings([1.0, 2.005])  # within the tolerance: same group
    assert buffer.lookup(130 * S, _w(9), []).count == 3
    buffer.see_settings([1.0, 2.5])  # a new configuration: the archive no longer applies
    assert buffer.lookup(130 * S, _w(9), []) is None


def test_never_a_later_or_simultaneous_pulse():
    buffer = ReferenceBuffer(ReferenceRule(count=2), group_tolerance=1e-6)
    buffer.add_normal(50 * S, _w(5), None)
    assert buffer.lookup(50 * S, _w(0), [(50 * S, _w(1), None)]) is None


def test_missing_self_judges_the_pulse_alone():
    buffer = ReferenceBuffer(ReferenceRule(count=2, min_count=2, missing="self"), 1e-6)
    refs = buffer.lookup(5 * S, _w(7), [(4 * S, _w(4), None)])  # 1 < min_count 2
    assert refs.source.tolist() == [SOURCE_SELF, SOURCE_SELF] and refs.count == 0
    assert refs.windows[:, 0].tolist() == [7.0, 7.0]


def test_buffer_round_trips_through_plain_arrays():
    buffer = ReferenceBuffer(ReferenceRule(count=2), 1e-6)
    buffer.see_settings([3.0])
    buffer.add_normal(1 * S, _w(1), None)
    buffer.add_normal(2 * S, _w(2), None)
    again = ReferenceBuffer(ReferenceRule(count=2), 1e-6)
    again.load_arrays(buffer.to_arrays())
    assert again.lookup(3 * S, _w(0), []).timestamp_ns.tolist() == [1 * S, 2 * S]
    again.see_settings([4.0])
    assert again.lookup(3 * S, _w(0), []) is None


def test_rule_is_validated():
    with pytest.raises(ValueError, match="missing must be 'skip' or 'self'"):
        ReferenceRule(count=2, missing="drop")


def test_reference_model_scored_by_the_live_engine_sees_the_rule_s_references(tmp_path):
    import keras

    from live.engine import LiveScorer
    from live.scorer import SavedModelBackend
    from live.serving import Scaling, build_serving_module, input_layout, save_module

    trace = keras.Input((4, 1), name="trace")
    reference = keras.Input((2, 4, 1), name="reference")
    # score = sigmoid(mean(trace) - mean(newest reference)): depends on which pulse is in slot K-1
    newest = keras.layers.Lambda(lambda r: r[:, -1])(reference)
    gap = keras.layers.Subtract()([keras.layers.GlobalAveragePooling1D()(trace),
                                   keras.layers.GlobalAveragePooling1D()(newest)])
    score = keras.layers.Activation("sigmoid", name="score")(gap)
    tiny = keras.Model({"trace": trace, "reference": reference}, score)
    save_module(build_serving_module(tiny, Scaling(0.0, 1.0)), tmp_path / "sm")
    layout = input_layout(tiny)
    meta = {"layout": layout.to_dict(), "threshold": 0.6,
            "window": {"alarm": 48}, "reference": {"count": 2, "window_s": 3600.0,
                                                    "min_count": 1, "missing": "skip"},
            "settings": {"features": [], "production_filter": {}, "group_tolerance": 1e-6},
            "scaling": {"settings": {"center": [], "scale": []}}, "unseen_configuration": None}
    scorer = LiveScorer(SavedModelBackend(tmp_path / "sm", layout), meta)
    traces = np.stack([_w(v) for v in (0.0, 1.0, 3.0)])
    rows, skipped = scorer.score_file("f1", traces, np.array([1, 2, 3]) * S, [0, 0, 0])
    assert skipped == [("no_reference", 1, "fewer references than reference.min_count")]
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert [r.pulse_in_file for r in rows] == [1, 2]
    np.testing.assert_allclose([r.score for r in rows], [sigmoid(1.0), sigmoid(2.0)], atol=1e-6)
    assert [r.alarm for r in rows] == [True, True] and [r.label for r in rows] == [0, 0]
    # the next file starts with the archive: the newest normal pulse of the clean file f1
    rows, _ = scorer.score_file("f2", np.stack([_w(5.0), _w(5.0)]), np.array([9, 10]) * S, [0, 48])
    np.testing.assert_allclose(rows[0].score, sigmoid(5.0 - 3.0), atol=1e-6)
    assert rows[0].references == 2 and rows[0].label == 1 and rows[1].label == -1


def test_without_own_file_live_references_are_clean_pulses_at_least_min_age_old():
    rule = ReferenceRule(count=2, min_count=1, own_file=False, min_age_s=10.0)
    buffer = ReferenceBuffer(rule, group_tolerance=1e-6)
    for second in range(0, 40):  # a clean stream, one pulse a second
        buffer.add_normal(second * S, _w(second))
    refs = buffer.lookup(45 * S, _w(45), [(44 * S, _w(44), None)])  # the run-up is not used
    assert SOURCE_FILE not in refs.source.tolist()
    assert max(refs.timestamp_ns) <= 35 * S and refs.count == 2
    assert len(buffer._young) <= 40 - 35 + 1  # waiting pulses are decimated and bounded
    assert buffer.lookup(5 * S, _w(5), []) is None  # nothing old enough yet at 5 s


def test_rule_from_serving_json_written_before_own_file_keeps_in_file_references():
    rule = ReferenceRule.from_dict({"count": 2, "window_s": 60.0, "min_count": 1,
                                    "missing": "skip"})
    assert rule.own_file and rule.min_age_s == 0.0
