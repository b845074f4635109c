"""The stream benchmark's histogram percentiles and its table."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import stream


def test_histogram_percentiles_match_the_samples():
    rng = np.random.default_rng(0)
    us = rng.integers(100, 5000, 20_000)
    hist = np.bincount(us // stream._BIN_US, minlength=stream._BINS)
    assert abs(stream._percentile(hist, 50) - np.percentile(us, 50) / 1000) < 0.02
    assert abs(stream._percentile(hist, 99) - np.percentile(us, 99) / 1000) < 0.02
    assert np.isnan(stream._percentile(np.zeros(10, np.int64), 50))


def test_render_shows_measured_next_to_extrapolated_false_alarms():
    result = {
        "hours_of_beam": 1.0, "pulses": 216000, "scored": 215000, "pulses_per_second": 2500.0,
        "real_time_ratio": 41.7, "latency_p50_ms": 20.0, "latency_p99_ms": 35.0,
        "generate_seconds": 30.0, "memory": [{"hours": 0.5, "rss_mb": 900.0, "peak_rss_mb": 910.0}],
        "false_alarms_per_hour": 12.0, "false_alarms": 12, "normal": 214000,
        "extrapolated": {"false_alarms_per_hour": 2160.0, "false_alarm_rate": 0.01,
                         "n_normal": 400},
        "errant_caught": 7, "errant_pulses": 9, "unseen": 5, "online_recalibration": "n/a",
        "backend": "saved_model", "pinned_with": "taskset -c 0", "run": "r",
        "paths": {"litert float32": {"p50_ms": 0.9, "p99_ms": 1.5, "n": 500},
                  "onnx": {"error": "not supported"}},
        "parity": {"formats": {"saved_model": {"max_abs_diff": 1e-7, "delta_pr_auc": 0.0,
                                               "bytes": 10}, "onnx": {"error": "no tf2onnx"}}},
    }
    text = stream.render(result)
    assert "12.0 (12 on 214,000 normal pulses)" in text
    assert "2,160 (rate 0.0100 on 400 sampled normal pulses)" in text
    assert "| litert float32 | 0.900 | 1.500 | 0.75x |" in text
    assert "no tf2onnx" in text and "7 / 9" in text


def test_latency_inputs_hold_the_k_pulses_before_each_pulse_and_a_full_history():
    from benchmarks.stream import _raw_inputs
    from live.serving import InputLayout

    traces = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    settings = np.ones((5, 2), np.float32)
    raw = _raw_inputs(traces, settings, 1, InputLayout(4, 1, 2, n_references=3))
    assert raw["reference"].shape == (3, 4)
    # pulse 1's references, oldest first as the live rule keeps them: pulses 3, 4 (the sample
    # cycled), then 0, the pulse just before
    assert np.array_equal(raw["reference"][:, 0], traces[[3, 4, 0], 0])
    assert np.array_equal(raw["trace"], traces[1])
    assert "reference" not in _raw_inputs(traces, settings, 1, InputLayout(4, 1, 2))
    history = _raw_inputs(traces, settings, 1, InputLayout(4, 1, 2, n_history=2))
    # a stream is one long file: pulse 1's history is pulses 4 (cycled) then 0, oldest first
    assert np.array_equal(history["history"][:, 0], traces[[4, 0], 0])
    assert history["history_count"] == 2


def test_the_stream_replays_the_runs_own_machine_from_its_test_period(tmp_path):
    import dataclasses
    import json

    import yaml

    from benchmarks.stream import test_period_machine
    from enterprise_tools.simulator import SimulatorParams

    params = SimulatorParams.demo(seed=7)
    archive = tmp_path / "archive"
    archive.mkdir()
    stored = {k: list(v) if isinstance(v, tuple) else v
              for k, v in dataclasses.asdict(params).items()}
    (archive / "simulation.json").write_text(json.dumps({"params": stored}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"dataset_loc": str(archive / "dcm")}}))
    (run / "metrics.json").write_text(json.dumps({"splits": {"test": {"start": "2026-01-06 10:00:00"}}}))
    replayed, start_ns = test_period_machine(run)
    assert replayed == params
    assert start_ns == 1767693600 * 10**9


def test_engine_table_sets_each_way_against_the_targets():
    engine = {
        "per pulse, encode once": {"p50_ms": 0.3, "p99_ms": 0.4, "pulses_per_cpu_second": 3000.0,
                                   "n": 480, "per_pulse": True, "encode_once": True},
        "per 60-pulse chunk, encode once": {"p50_ms": 40.0, "p99_ms": 50.0,
                                            "pulses_per_cpu_second": 7500.0, "n": 480,
                                            "per_pulse": False, "encode_once": True},
    }
    text = stream.render_engine(engine)
    assert "| per pulse, encode once | 0.300 | 0.400 | 0.80x | 3,000 | 0.50x | 480 |" in text
    # a chunk's latency is the chunk's, not a pulse's: no per-pulse figures for it
    assert "| per 60-pulse chunk, encode once |  |  |  | 7,500 | 1.25x | 480 |" in text


def test_a_stream_that_scored_nothing_stops_with_one_line_naming_the_skips():
    from benchmarks.stream import _require_scored

    _require_scored({"scored": 1, "pulses": 3, "skipped": 2}, 0.001, {"no_reference": 2})
    with pytest.raises(SystemExit, match=r"none of the 3 pulses .*\(3 skipped: no_reference 3\)"):
        _require_scored({"scored": 0, "pulses": 3, "skipped": 3}, 0.001, {"no_reference": 3})
