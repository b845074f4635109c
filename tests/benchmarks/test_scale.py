"""Tests of the scale benchmark's growth ratios and peak-memory reading."""

from __future__ import annotations

import pytest

from benchmarks.children import resident_mb
from benchmarks.scale import growth


def _row(factor, samples, build_s, build_mb, epoch_s, epoch_mb):
    return {"factor": factor, "build": {"samples": samples, "seconds": build_s,
                                        "peak_rss_mb": build_mb},
            "epoch": {"seconds": epoch_s, "peak_rss_mb": epoch_mb}}


def test_growth_is_relative_to_the_smallest_archive():
    rows = [_row(1, 100, 2.0, 200.0, 1.0, 900.0), _row(4, 400, 8.0, 210.0, 3.0, 900.0)]
    (g,) = growth(rows)
    assert g["size_ratio"] == 4.0
    assert g["build_time_ratio"] == 4.0 and g["build_time_per_size"] == 1.0
    assert g["build_memory_ratio"] == pytest.approx(1.05)
    assert g["epoch_time_ratio"] == 3.0 and g["epoch_memory_ratio"] == 1.0


def test_growth_of_one_row_or_none_is_empty():
    assert growth([]) == []
    assert growth([_row(1, 10, 1.0, 1.0, 1.0, 1.0)]) == []


def test_resident_memory_is_a_positive_number_of_mib_below_its_peak():
    current, peak = resident_mb()
    assert 1.0 < current <= peak < 1e6


def test_epoch_child_trains_the_default_model_with_its_reference_inputs(tmp_path):
    """The scale section's epoch runs the shipped default; since that model reads reference
    pulses, the child must build it with K references and feed them (it once built it
    without and failed)."""
    from benchmarks.scale import child_epoch
    from enterprise_tools.simulator import SimulatorParams, simulate_archive
    from parser.configs import ModelConfig

    archive = tmp_path / "archive"
    simulate_archive(archive, SimulatorParams.tiny(seed=5, hours=0.6))
    result = child_epoch(archive, tmp_path / "work", workers=1, epochs=1)
    assert ModelConfig().name == "sns_reference_cnn_lstm"
    assert result["train_samples"] > 0 and len(result["epoch_seconds"]) == 1
