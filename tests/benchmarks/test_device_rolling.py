"""The GPU runner's slices: a slice whose network failed must fail, not hand back nothing."""

import json

import pytest

from benchmarks import device_rolling, rolling


def _fake_run(models, skipped):
    def run(archive, workdir, settings, *, preset):
        return {"preset": preset, "models": models, "skipped": skipped, "folds": []}
    return run


def test_a_slice_whose_network_failed_raises_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(rolling, "run", _fake_run(
        {}, {"sns_reference_cnn_lstm": "failed: ModuleNotFoundError: No module named 'x'"}))
    (tmp_path / "cache").mkdir()
    with pytest.raises(RuntimeError, match="demo/sns_reference_cnn_lstm/b3: failed: Module"):
        device_rolling.run_slice(tmp_path, tmp_path, "demo", "sns_reference_cnn_lstm", 3,
                                 (0,), 1, 10, 1.0)
    assert not list(tmp_path.glob("slice-*.json"))


def test_a_slice_that_trained_writes_its_json(tmp_path, monkeypatch):
    record = {"kind": "neural", "folds": [{"block": 3}], "runs": [{"seed": 0}]}
    monkeypatch.setattr(rolling, "run", _fake_run({"sns_cnn_lstm": record}, {}))
    (tmp_path / "cache").mkdir()
    path = device_rolling.run_slice(tmp_path, tmp_path, "demo", "sns_cnn_lstm", 3, (0,), 1, 10,
                                    1.0)
    assert json.loads(path.read_text())["models"]["sns_cnn_lstm"] == record
