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
    encodes = False

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


class _Counting:
    """Wraps a SavedModelBackend and counts the traces it encodes."""

    def __init__(self, backend):
        self._backend, self.encoded = backend, 0
        self.name, self.layout, self.encodes = backend.name, backend.layout, backend.encodes

    def encode_one(self, trace):
        self.encoded += 1
        return self._backend.encode_one(trace)

    def encode_batch(self, traces):
        self.encoded += len(traces)
        return self._backend.encode_batch(traces)

    def encode_and_score_one(self, trace, references, settings):
        self.encoded += 1
        return self._backend.encode_and_score_one(trace, references, settings)

    def __getattr__(self, name):
        return getattr(self._backend, name)


def test_encode_once_scores_equal_the_all_in_one_path_and_encode_each_pulse_once(tmp_path):
    """A reference model's export scores live from stored features; per pulse and per file it
    gives the all-in-one `serve_one`/`serving_default` scores, and no pulse is encoded twice."""
    import keras

    from live.scorer import SavedModelBackend
    from live.serving import Scaling, build_serving_module, input_layout, save_module
    from model import InputSpec, build_model
    from tests.model.helpers import model_config

    keras.utils.set_random_seed(7)
    length, n_settings = 64, 2
    model = build_model(model_config(name="sns_reference_cnn_lstm"),
                        InputSpec(length, 1, n_settings, n_references=3))
    weights = np.random.default_rng(1)
    for weight in model.weights:  # moving statistics and weights as after training
        if "moving_mean" in weight.path:
            weight.assign(np.full(weight.shape, 0.3, "float32"))
        elif "kernel" in weight.path:
            weight.assign(weights.normal(0, 0.7, weight.shape).astype("float32"))
    save_module(build_serving_module(model, Scaling(1.0, 2.0, (0.5, 0.5), (2.0, 2.0))),
                tmp_path / "sm")
    layout = input_layout(model)
    meta = {**_meta(None), "layout": layout.to_dict(),
            "reference": {"count": 3, "window_s": 3600.0, "min_count": 1, "missing": "skip"},
            "settings": {"features": ["a", "b"], "production_filter": {},
                         "group_tolerance": 1e-6},
            "scaling": {"settings": {"center": [0.0, 0.0], "scale": [1.0, 1.0]}}}
    rng = np.random.default_rng(0)
    files = [(rng.normal(size=(n, length)).astype(np.float32), alarms)
             for n, alarms in ((6, [0] * 6), (5, [0, 0, 0, 0, 48]), (4, [0] * 4))]
    scores = {}
    loaded = SavedModelBackend(tmp_path / "sm", layout)  # loaded and compiled once, counted apart
    for encode_once in (True, False):
        for per_pulse in (True, False):
            backend = _Counting(loaded)
            assert backend.encodes
            scorer = LiveScorer(backend, meta, per_pulse=per_pulse, encode_once=encode_once)
            got, start = [], 0
            for traces, alarms in files:
                stamps = (start + np.arange(len(traces))) * S
                settings = np.tile([1.0, 2.0], (len(traces), 1))
                rows, _ = scorer.score_file("f", traces, stamps, alarms, settings)
                got += [row.score for row in rows]
                start += len(traces) + 10
            scores[encode_once, per_pulse] = np.array(got)
            assert backend.encoded == (sum(len(t) for t, _ in files) if encode_once else 0)
    assert len(scores[True, True]) == 14  # every pulse but the very first (no reference)
    for key, values in scores.items():
        np.testing.assert_allclose(values, scores[False, False], atol=1e-5, err_msg=str(key))
    assert np.ptp(scores[False, False]) > 1e-2  # the scores differ: the comparison means something


def test_reference_buffer_keeps_features_through_its_arrays_and_reads_a_state_without():
    from live.references import ReferenceBuffer, ReferenceRule

    buffer = ReferenceBuffer(ReferenceRule(count=2), 1e-6)
    for t in (1, 2):
        buffer.add_normal(t * S, np.full(4, t, np.float32), np.full((2, 3), 10.0 * t, np.float32))
    refs = buffer.lookup(3 * S, np.zeros(4, np.float32), [])
    np.testing.assert_array_equal(refs.features[:, 0, 0], [10.0, 20.0])
    arrays = buffer.to_arrays()
    again = ReferenceBuffer(ReferenceRule(count=2), 1e-6)
    again.load_arrays(arrays)
    np.testing.assert_array_equal(again.lookup(3 * S, np.zeros(4, np.float32), []).features,
                                  refs.features)
    old = {k: v for k, v in arrays.items() if k != "features"}  # a state from before
    again.load_arrays(old)
    refs = again.lookup(3 * S, np.zeros(4, np.float32), [])
    assert refs.features is None and refs.windows.shape == (2, 4)


def test_batches_are_padded_to_a_power_of_two_and_cut_back():
    from live.scorer import _padded

    batch = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    padded = _padded(batch)
    assert padded.shape == (8, 2)
    np.testing.assert_array_equal(padded[:5], batch)
    np.testing.assert_array_equal(padded[5:], np.repeat(batch[-1:], 3, axis=0))
    assert _padded(batch[:4]) is not None and _padded(batch[:4]).shape == (4, 2)
    assert _padded(batch[:1]).shape == (1, 2)
