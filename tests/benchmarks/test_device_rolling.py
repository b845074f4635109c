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


def _seed_figures(seed, pr_auc, far):
    cell = {"value": 0.5, "lo": 0.4, "hi": 0.6}
    return {"seed": seed, "pr_auc": {"value": pr_auc, "lo": pr_auc - 0.1, "hi": pr_auc + 0.1},
            "roc_auc": cell, "recall": cell, "false_alarms_per_hour": cell, "caught": cell,
            "false_alarm_rate": far, "n_errant": 5, "n_normal": 50}


def test_per_seed_slices_merge_into_one_fold_per_block(tmp_path):
    for block, seed, pr_auc, far in ((3, 1, 0.6, 0.02), (3, 0, 0.4, 0.0), (2, 0, 0.5, 0.01)):
        part = {"preset": "demo", "epochs": 25, "skipped": {},
                "folds": [{"block": block, "train": {"n": 10}}],
                "models": {"m": {"kind": "neural", "runs": [{"seed": seed, "block": block}],
                                 "folds": [{"block": block,
                                            "seeds": [_seed_figures(seed, pr_auc, far)]}]}}}
        (tmp_path / f"slice-demo-m-b{block}-s{seed}.json").write_text(json.dumps(part))
    merged = device_rolling.merge_slices(tmp_path, ["demo"])["demo"]
    record = merged["models"]["m"]
    assert [f["block"] for f in merged["folds"]] == [2, 3]
    assert [(f["block"], [s["seed"] for s in f["seeds"]]) for f in record["folds"]] == [
        (2, [0]), (3, [0, 1])]
    assert record["folds"][1]["summary"]["pr_auc"]["mean"] == pytest.approx(0.5)
    assert record["summary"]["pr_auc"]["mean"] == pytest.approx(0.5)  # (0.5 + 0.5) / 2 blocks
    assert record["summary"]["false_alarm_rate"]["mean"] == pytest.approx(0.01)
    assert merged["seeds"] == [0, 1]


def _scores(model, block, seed, times, labels, scores):
    import pandas as pd

    return pd.DataFrame({"model": model, "block": block, "seed": seed, "timestamp_ns": times,
                         "label": labels, "score": scores})


def test_paired_with_peers_matches_pulses_by_time_and_sees_the_better_model():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    times = np.arange(200, dtype=np.int64) * 1000
    labels = (rng.random(200) < 0.2).astype(int)
    good = labels + 0.3 * rng.random(200)
    noise = rng.random(200)
    order = rng.permutation(200)  # the device CSV lists pulses in another order
    device = _scores("sns_reference_cnn_lstm", 3, 0, times[order], labels[order], good[order])
    cpu = pd.concat([_scores("minirocket", 3, 0, times, labels, noise),
                     _scores("sns_reference_cnn_lstm", 3, 0, times, labels, noise),
                     _scores("peer_elsewhere", 4, 0, times, labels, noise)])
    paired = device_rolling.paired_with_peers(device, cpu, "sns_reference_cnn_lstm", n_boot=200)
    assert set(paired) == {"minirocket"}  # not itself; block 4 has no device scores
    assert paired["minirocket"]["blocks"] == 1
    assert paired["minirocket"]["lo"] > 0.3  # a near-perfect ranking against noise


def test_paired_with_peers_leaves_out_a_block_with_missing_pulses():
    import numpy as np

    times = np.arange(50, dtype=np.int64)
    labels = np.r_[np.ones(10, int), np.zeros(40, int)]
    device = _scores("d", 2, 0, times[:-1], labels[:-1], np.linspace(0, 1, 49))
    cpu = _scores("p", 2, 0, times, labels, np.linspace(0, 1, 50))
    assert device_rolling.paired_with_peers(device, cpu, "d", n_boot=50) == {}
