"""The live history (`live.history` in `live.engine`) equals the archive's, pulse for pulse.

A tiny file set holds a file longer than N, one shorter, an anomaly file with a trip inside its
run-up and a file with a NaN pulse; the archive pipeline (`prepare_samples`, history.count N)
and the live engine fed by `pulse_windows` must give each sample the same windows, the same
filled count (so `HistoryMask` masks the same slots) and drop the same samples.
"""

from __future__ import annotations

import numpy as np

from data_preparation.ledger import NON_FINITE_TRACE
from data_preparation.pipeline import prepare_samples
from enterprise_tools.trace_windows import pulse_windows
from live.engine import LiveScorer
from live.history import HistoryRing
from live.serving import InputLayout
from parser.configs import BPMDataConfig, Config, HistoryConfig, ModelConfig, ReferenceConfig
from tests.data_preparation import builders as b

N = 3


class _Recording:
    """Stands in for the exported artefact and keeps what the engine fed it."""

    name = "recording"
    encodes = False

    def __init__(self):
        self.fed: list[dict] = []

    def score_batch(self, batch):
        self.fed.append(batch)
        return np.zeros(len(batch["trace"]))

    def score_one(self, raw):
        self.fed.append({k: np.asarray(v)[None] for k, v in raw.items()})
        return 0.0


def _meta() -> dict:
    return {"layout": InputLayout(b.SHIFT, 1, n_history=N).to_dict(), "threshold": 0.5,
            "window": {"alarm": 48},
            "settings": {"features": [], "production_filter": {}, "group_tolerance": 1e-6},
            "scaling": {"settings": {"center": [], "scale": []}}, "unseen_configuration": None,
            "online": None}


def _file_set(root) -> list:
    nan = float("nan")
    return [
        b.normal_file(root / "normal" / "n1.bin", 0, [1, 2, 3, 4, 5]),  # longer than N
        b.normal_file(root / "normal" / "n2.bin", 10, [6, 7]),  # shorter than N
        # a trip inside the run-up: samples 10.6 and 10, whose history skips the trip 10.7
        b.write_file(root / "anomaly" / "a1.bin", [(b.ts_of(20), 10.5), (b.ts_of(21), 10.6),
                                       (b.ts_of(22), 10.7, 48), (b.ts_of(23), 10.8),
                                       (b.ts_of(24), 10), (b.ts_of(25), 10.9, 48)]),
        # a NaN pulse: dropped itself, and so is the pulse whose history holds it
        b.normal_file(root / "normal" / "n3.bin", 30, [8, nan, 9]),
    ]


def _live(files, per_pulse: bool) -> tuple[dict, int]:
    """{timestamp: (history, count)} the engine fed, and its non_finite_trace count."""
    backend = _Recording()
    scorer = LiveScorer(backend, _meta(), per_pulse=per_pulse)
    fed, non_finite = {}, 0
    for path in files:
        pulses = pulse_windows(path, begin=b.BEGIN, shift=b.SHIFT)
        backend.fed.clear()
        rows, skipped = scorer.score_file(path.name, pulses.traces, pulses.timestamps_ns,
                                          pulses.alarms)
        non_finite += sum(count for reason, count, _ in skipped if reason == NON_FINITE_TRACE)
        history = np.concatenate([batch["history"] for batch in backend.fed]) if rows else []
        count = np.concatenate([batch["history_count"] for batch in backend.fed]) if rows else []
        for row, h, c in zip(rows, history, count, strict=True):
            fed[row.timestamp_ns] = (h, c)
    return fed, non_finite


def test_live_history_equals_the_archive_history_for_every_sample(tmp_path):
    files = _file_set(tmp_path / "dcm")
    config = Config(data=b.data_config(tmp_path / "dcm"), beam_settings=BPMDataConfig(use=False),
                    model=ModelConfig(name="sns_history_siamese"), history=HistoryConfig(count=N),
                    reference=ReferenceConfig(count=1, own_file=False, min_age_s=0.0,
                                              missing="self"))
    samples = prepare_samples(config, progress=False)
    archive_dropped = sum(e.count for e in samples.ledger.entries
                          if e.reason == NON_FINITE_TRACE)
    for per_pulse in (False, True):  # a file in one batch, and pulse by pulse
        live, live_dropped = _live(files, per_pulse)
        for j, ts in enumerate(samples.timestamp_ns):
            history, count = live[int(ts)]
            np.testing.assert_array_equal(history, samples.history[j])  # zeros where empty
            assert count == samples.history_count[j]  # the same slots masked
        assert live_dropped == archive_dropped == 2  # the NaN pulse and the one after it
        # the live engine also scores the pulses the archive does not sample (the trips and
        # the pulse before the first trip's context); every archive sample is among them
        assert set(map(int, samples.timestamp_ns)) <= set(live)
    counts = dict(zip(map(int, samples.timestamp_ns), samples.history_count.tolist(), strict=True))
    assert counts[b.ts_of(0)] == 0  # the first pulse of a file has none
    assert counts[b.ts_of(11)] == 1  # a file shorter than N: the rest masked
    assert counts[b.ts_of(4)] == 3 and counts[b.ts_of(24)] == 3  # full: past the trip


def test_a_stream_fed_in_pieces_keeps_its_history_and_a_new_file_starts_empty():
    rng = np.random.default_rng(0)
    traces = rng.normal(size=(7, 4)).astype(np.float32)
    stamps = np.arange(7) * 16_666_667
    alarms = np.array([0, 0, 48, 0, 0, 0, 0])
    whole, pieces = _Recording(), _Recording()
    meta = {**_meta(), "layout": InputLayout(4, 1, n_history=N).to_dict()}
    LiveScorer(whole, meta).score_file("s", traces, stamps, alarms)
    scorer = LiveScorer(pieces, meta, per_pulse=True)
    for i in range(7):  # one pulse a call, as --epics-input feeds it
        scorer.score_file("s", traces[i:i + 1], stamps[i:i + 1], alarms[i:i + 1], continues=True)
    fed = {k: np.concatenate([batch[k] for batch in pieces.fed]) for k in ("history",
                                                                             "history_count")}
    np.testing.assert_array_equal(fed["history"], whole.fed[0]["history"])
    np.testing.assert_array_equal(fed["history_count"], [0, 1, 2, 2, 3, 3, 3])
    scorer.score_file("t", traces[:1], stamps[:1] + 10**12, alarms[:1])  # a new file
    assert pieces.fed[-1]["history_count"].tolist() == [0]


def test_ring_keeps_the_last_n_non_tripping_pulses_right_aligned():
    ring = HistoryRing(2)
    for ts, value, alarm in ((1, 1.0, 0), (2, 2.0, 48), (3, 3.0, 0), (4, 4.0, 0)):
        ring.add(ts, np.full(2, value, np.float32), alarm, finite=True)
    past = ring.history(5, (2,))
    assert past.count == 2 and past.windows[:, 0].tolist() == [3.0, 4.0] and past.finite
    assert ring.history(4, (2,)).windows[:, 0].tolist() == [0.0, 3.0]  # strictly earlier only
    ring.reset()
    assert ring.history(5, (2,)).count == 0
