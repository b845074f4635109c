"""Rolling-origin evaluation: block cutting, folds that train only on the past, the paired
bootstrap, and the tables (no training, tiny arrays)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from benchmarks.rolling_figures import (
    DEFAULT_MODEL,
    average_precision,
    paired_bootstrap,
    summarize_model,
)
from benchmarks.rolling_folds import cut_blocks, make_folds, split_newest
from benchmarks.rolling_tables import render


def _archive(n_files: int = 40, seed: int = 0):
    """Files of 1-6 pulses each, 16.7 ms apart inside a file, minutes between files."""
    rng = np.random.default_rng(seed)
    ts, acq = [], []
    t = 10**18
    for f in range(n_files):
        for p in range(int(rng.integers(1, 7))):
            ts.append(t + p * 16_700_000)
            acq.append(f)
        t += int(rng.integers(60, 600)) * 10**9
    order = rng.permutation(len(ts))  # the loader's order need not be time order
    return np.array(ts, np.int64)[order], np.array(acq)[order]


def test_blocks_are_contiguous_in_time_cover_everything_and_keep_files_whole():
    ts, acq = _archive()
    blocks = cut_blocks(ts, acq, 5)
    assert len(blocks) == 5
    joined = np.concatenate(blocks)
    assert np.array_equal(np.sort(joined), np.arange(ts.size))
    for earlier, later in zip(blocks[:-1], blocks[1:], strict=True):
        assert ts[earlier].max() < ts[later].min()
    owners = [{int(a) for a in acq[b]} for b in blocks]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not owners[i] & owners[j]
    sizes = np.array([b.size for b in blocks])
    assert sizes.max() - sizes.min() <= 12  # equal counts up to two files of <= 6 pulses
    for block in blocks:
        assert np.all(np.diff(ts[block]) >= 0)


def test_blocks_without_acquisitions_are_equal_counts():
    ts = np.arange(100, dtype=np.int64)[::-1].copy()
    blocks = cut_blocks(ts, None, 5)
    assert [b.size for b in blocks] == [20] * 5
    assert ts[blocks[0]].max() == 19


def test_too_many_blocks_for_the_files_is_a_clear_error():
    ts = np.arange(6, dtype=np.int64)
    with pytest.raises(ValueError, match="empty"):
        cut_blocks(ts, np.array([0, 0, 0, 1, 1, 1]), 3)


def test_folds_start_at_block_two_and_train_only_on_the_past():
    ts, acq = _archive(60, seed=1)
    blocks = cut_blocks(ts, acq, 6)
    folds = make_folds(blocks, ts, acq, val_fraction=0.25)
    assert [f["block"] for f in folds] == [2, 3, 4, 5]
    for fold in folds:
        test_start = ts[fold["test"]].min()
        assert ts[fold["train"]].max() < ts[fold["val"]].min()
        assert ts[fold["val"]].max() < test_start
        assert np.array_equal(np.sort(np.r_[fold["train"], fold["val"]]),
                              np.sort(np.concatenate(blocks[:fold["block"]])))
        assert not set(acq[fold["train"]]) & set(acq[fold["val"]])
    assert [f["block"] for f in make_folds(blocks, ts, acq, val_fraction=0.25,
                                           last_folds=2)] == [4, 5]


def test_split_newest_cuts_at_a_file_boundary():
    ts = np.arange(10, dtype=np.int64)
    acq = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    older, newest = split_newest(np.arange(10), ts, acq, 0.25)
    assert newest.tolist() == [7, 8, 9] and older.tolist() == list(range(7))
    with pytest.raises(ValueError, match="empty"):
        split_newest(np.arange(3), ts[:3], acq[:3], 0.5)


def test_average_precision_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.2).astype(int)
    s = np.round(rng.random(300) + 0.5 * y, 1)  # many ties
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_paired_bootstrap_hand_checkable_cases():
    y = np.array([0] * 8 + [1] * 2)
    perfect = np.r_[np.zeros(8), np.ones(2)]
    constant = np.full(10, 0.5)
    # A perfect ranking (PR AUC 1) against a constant score (PR AUC = prevalence 0.2): every
    # stratified replicate keeps the prevalence, so the difference is exactly 0.8 throughout.
    out = paired_bootstrap([y, y], [[perfect], [perfect]], [[constant], [constant]],
                           n_boot=50, seed=0)
    assert out["difference"] == pytest.approx(0.8)
    assert out["lo"] == pytest.approx(0.8) and out["hi"] == pytest.approx(0.8)
    assert out["share_a_better"] == 1.0 and out["blocks"] == 2
    # A monotone transform of the same scores ranks every resample identically: difference 0.
    rng = np.random.default_rng(0)
    noisy = rng.random(10)
    same = paired_bootstrap([y], [[noisy]], [[noisy * 3 + 1]], n_boot=50, seed=0)
    assert same["difference"] == 0.0 and same["lo"] == 0.0 and same["hi"] == 0.0


def test_paired_bootstrap_sees_a_real_difference_and_averages_seeds():
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.15).astype(int)
    good = [y + rng.normal(0, 0.6, 400) for _ in range(2)]
    weak = [y + rng.normal(0, 2.0, 400)]
    out = paired_bootstrap([y], [good], [weak], n_boot=200, seed=0)
    expected = np.mean([average_precision(y, g) for g in good]) - average_precision(y, weak[0])
    assert out["difference"] == pytest.approx(expected)
    assert out["lo"] > 0 and out["lo"] < out["difference"] < out["hi"]
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap([y], [[good[0][:10]]], [weak])


def _fold(block, pr, far):
    cell = lambda v: {"value": v, "lo": v - 0.1, "hi": v + 0.1}  # noqa: E731
    seed = {"pr_auc": cell(pr), "roc_auc": cell(0.9), "recall": cell(0.5),
            "false_alarms_per_hour": cell(far * 216000), "caught": cell(3.0),
            "false_alarm_rate": far, "n_errant": 6, "n_normal": 50,
            "online": {"recall": 0.4, "false_alarm_rate": 0.012},
            "breakdown": {"by_kind": {"ramp": {"caught": 2, "total": 3, "recall": 2 / 3}},
                          "by_strength": {"weak": {"caught": 1, "total": 2, "recall": 0.5}},
                          "by_onset": {">=4": {"caught": 1, "total": 1, "recall": 1.0},
                                       "2": {"caught": 0, "total": 2, "recall": 0.0}},
                          "ceiling": {"with_precursor": 5, "trips": 6, "share": 5 / 6},
                          "unmatched": 0}}
    from benchmarks import stats

    return {"block": block, "seeds": [seed],
            "summary": stats.combine_seeds([seed]) | {"false_alarm_rate": stats.mean_spread([far])}}


def test_summary_and_tables_state_the_comparison():
    folds_a = [_fold(2, 0.7, 0.05), _fold(3, 0.8, 0.01)]
    folds_b = [_fold(2, 0.9, 0.0), _fold(3, 0.9, 0.0)]
    summary = summarize_model(folds_a, 0.01)
    assert summary["pr_auc"]["mean"] == pytest.approx(0.75)
    assert summary["blocks_far_over_2x_target"] == 1
    assert summary["online_recall"]["mean"] == pytest.approx(0.4)
    part = {"n": 50, "n_errant": 6}
    result = {"archive": "/w/archive-42h", "samples": 250, "n_blocks": 5, "val_fraction": 0.25,
              "blocks": [part] * 5, "folds": [{"block": 2}, {"block": 3}],
              "target_false_alarm_rate": 0.01, "pulse_rate_hz": 60.0, "n_boot": 10, "seeds": [0],
              "epochs": 2,
              "recalibration": "x", "skipped": {"minirocket_reference": "no references"},
              "models": {"sns_cnn_lstm": {"folds": folds_a, "runs": [{"train_seconds": 1.0}],
                                          "summary": summary},
                         "minirocket": {"folds": folds_b, "runs": [{"train_seconds": 2.0}],
                                        "summary": summarize_model(folds_b, 0.01)}},
              "paired": {"default": "sns_cnn_lstm", "best_peer": "minirocket",
                         "against": {"minirocket": {"difference": -0.15, "lo": -0.25,
                                                    "hi": -0.05, "share_a_better": 0.0}}}}
    text = render({"demo": result, "realistic": {"skipped": "no preset"}})
    assert "`minirocket` is better than the default" in text
    assert "-0.150 [-0.250, -0.050]" in text
    assert "| sns_cnn_lstm | 2 | 0.700 [0.600, 0.800] |" in text
    assert "5.0 % [5.0, 5.0]" in text  # the false-alarm interval, per hour back to a rate
    assert "onset >=4" in text and text.index("onset 2") < text.index("onset >=4")
    assert "`minirocket_reference` (no references)" in text
    assert "realistic" in text and "no preset" in text


def test_models_missing_here_are_skipped_with_the_reason():
    from benchmarks.peers import PeerData
    from benchmarks.rolling import RollingSettings, available_models

    class Samples:  # a SampleSet without reference pulses (reference.count = 0)
        traces = np.zeros((4, 20, 1), np.float32)
        references = None
        settings = np.zeros((4, 1), np.float32)
        label = np.array([0, 1, 0, 1], np.int8)

        def __len__(self):
            return 4

    settings = RollingSettings(neural=("sns_cnn_lstm", "not_a_model", "sns_reference_cnn_lstm"),
                               peers=("logistic_reference", "logistic_regression"))
    run, skipped = available_models(settings, PeerData(Samples(), pool=2))
    assert run == ["sns_cnn_lstm", "logistic_regression"]
    assert "not a registered model" in skipped["not_a_model"]
    assert "reference" in skipped["logistic_reference"]
    assert "sns_reference_cnn_lstm" in skipped


def test_rolling_run_on_a_tiny_archive_writes_json_and_tables(tmp_path):
    """The whole wiring (pipeline, blocks, peers, thresholds, paired bootstrap, leaky recipe,
    scores CSV, JSON, tables) on a tiny simulated archive with two cheap peers."""
    import json

    from benchmarks.rolling import RollingSettings, run
    from enterprise_tools.simulator import SimulatorParams, simulate_archive
    from utils.run_folder import atomic_write_json

    archive = tmp_path / "archive"
    simulate_archive(archive, SimulatorParams.tiny(seed=3, hours=0.6))
    settings = RollingSettings(n_blocks=4, seeds=(0,), neural=(), n_boot=20,
                               peers=("logistic_regression", "isolation_forest",
                                      "logistic_reference"))
    result = run(archive, tmp_path / "work", settings, preset="tiny")
    assert [f["block"] for f in result["folds"]] == [2, 3]
    # The default config attaches K = 3 reference pulses, so the reference peer runs too.
    assert set(result["models"]) == {"logistic_regression", "isolation_forest",
                                     "logistic_reference"}
    assert "logistic_reference" not in result["skipped"]
    assert result["paired"]["note"].startswith(f"{DEFAULT_MODEL} did not run")
    assert set(result["leaky"]["recipes"]) == {"leaky", "random_split", "honest"}
    atomic_write_json(tmp_path / "r.json", result)  # JSON-able as the suite writes it
    assert json.loads((tmp_path / "r.json").read_text())["preset"] == "tiny"
    scores = (tmp_path / "work" / "scores" / "rolling-tiny.csv").read_text().splitlines()
    assert scores[0] == "model,block,seed,timestamp_ns,label,score,alarm" and len(scores) > 10
    text = render({"tiny": result})
    assert "| logistic_regression | 2 |" in text and "Leaky against honest" in text


def test_fold_figures_use_online_recalibration_when_it_exists():
    from types import SimpleNamespace

    from benchmarks.rolling_figures import fold_figures

    calls = []

    def tracker(scores, labels, initial_threshold, target_false_alarm_rate, *, step=0.01):
        calls.append((initial_threshold, target_false_alarm_rate))
        alarms = scores >= initial_threshold + 0.1  # a stand-in that raised its threshold
        return SimpleNamespace(thresholds=np.full(scores.size, initial_threshold + 0.1),
                               alarms=alarms)

    y = np.array([0] * 8 + [1] * 4)
    s = np.array([0.1] * 7 + [0.55] + [0.9, 0.9, 0.58, 0.2])
    out = fold_figures(y, s, 0.5, target=0.01, n_boot=10, seed=0, pulse_rate_hz=60.0,
                       recalibrate=tracker)
    assert calls == [(0.5, 0.01)]
    assert out["false_alarm_rate"] == pytest.approx(1 / 8)
    assert out["recall"]["value"] == pytest.approx(0.75)
    assert out["online"]["false_alarm_rate"] == 0.0 and out["online"]["recall"] == 0.5
    assert "step" not in out["online"]  # the tracker's own default step was used
    broken = fold_figures(y, s, 0.5, target=0.01, n_boot=10, seed=0, pulse_rate_hz=60.0,
                          recalibrate=lambda *a, **k: (_ for _ in ()).throw(TypeError("x")))
    assert broken["online"]["error"].startswith("TypeError")


def test_a_profile_can_train_one_presets_networks_longer():
    from benchmarks import suite

    standard = suite.PROFILES["standard"]
    assert standard.rolling_settings("demo").epochs == 25
    assert standard.rolling_settings("realistic").epochs == standard.rolling.epochs == 12
    # everything else is the profile's one RollingSettings
    assert standard.rolling_settings("demo").seeds == standard.rolling.seeds
    quick = suite.PROFILES["quick"]
    assert quick.rolling_settings("demo") == quick.rolling
