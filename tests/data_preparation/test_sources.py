"""The data-source registry and the sessions, npz, feature-table and text loaders, rule by rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_preparation.augment import augment_sequences
from data_preparation.sample_prep import ChannelScaler, Preprocessor, rebalance
from data_preparation.sources import SOURCES, get_source, load_samples
from data_preparation.sources.contract import MISSING_COLUMNS, NO_TIMESTAMP, UNLABELLED
from data_preparation.sources.split import split_samples
from parser.configs import Config, ConfigError, config_from_dict


def config(**sections) -> Config:
    return config_from_dict(sections)


def session(path, n=10, *, drop=(), time=True, extra=None):
    """A session file with timestamp, ax/ay/az = 1, 2, 2 (norm 3), temp = 20 + step."""
    t = 1_700_000_000 + np.arange(n) * 0.02
    frame = pd.DataFrame({"timestamp": t, "ax": 1.0, "ay": 2.0, "az": 2.0,
                          "temp": 20.0 + np.arange(n)})
    if not time:
        frame = frame.drop(columns="timestamp")
    frame = frame.drop(columns=list(drop))
    for k, v in (extra or {}).items():
        frame[k] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".xlsx":
        frame.to_excel(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def test_unknown_source_is_a_config_error_naming_the_registered_ones():
    assert get_source("npz") is SOURCES["npz"]
    with pytest.raises(ConfigError, match="registered sources: features, npz, sessions, "
                                          "sns_dcm, text. Did you mean 'text'"):
        get_source("txt")


def test_sessions_every_numeric_column_but_time_is_a_channel_csv_and_xlsx(tmp_path):
    session(tmp_path / "walk" / "a.csv", 10)
    session(tmp_path / "sit" / "b.xlsx", 12, extra={"note": "x"})  # text column: not a channel
    session(tmp_path / "sit" / "c.csv", 14)
    s = load_samples(config(data={"source": "sessions", "dataset_loc": str(tmp_path)}))
    assert s.layout["channels"] == ["ax", "ay", "az", "temp"]
    assert s.class_names == ("sit", "walk")
    assert s.label.tolist() == [0, 0, 1]  # files in path order: sit/b, sit/c, walk/a
    assert s.inputs["trace"].shape == (3, 12, 4)  # median length 12
    trace = s.inputs["trace"]
    assert trace[2, 10:].sum() == 0  # the 10-step session is zero-padded
    assert trace[1, -1, 3] == pytest.approx(31.0)  # the 14-step one trimmed at the end
    assert s.timestamp_ns.dtype == np.int64 and s.timestamp_ns[0] == 1_700_000_000 * 10**9


def test_sessions_norms_replace_their_components(tmp_path):
    session(tmp_path / "walk" / "a.csv")
    session(tmp_path / "sit" / "b.csv")
    cfg = config(data={"source": "sessions", "dataset_loc": str(tmp_path)},
                 sessions={"norms": ["A=ax,ay,az"], "length": 8})
    s = load_samples(cfg)
    assert s.layout["channels"] == ["temp", "A"]
    assert np.allclose(s.inputs["trace"][:, :, 1], 3.0)
    kept = load_samples(config(data={"source": "sessions", "dataset_loc": str(tmp_path)},
                               sessions={"norms": ["A=ax,ay,az"], "keep_norm_components": True}))
    assert kept.layout["channels"] == ["ax", "ay", "az", "temp", "A"]


def test_session_times_numbers_and_dates_become_int64_ns():
    from data_preparation.sources.sessions import session_times

    text = pd.DataFrame({"timestamp": ["2024-01-01 00:00:00", "2024-01-01 00:00:01", "bad"]})
    assert session_times(text, "timestamp").tolist() == [
        1_704_067_200 * 10**9, 1_704_067_201 * 10**9, np.iinfo(np.int64).min]
    millis = pd.DataFrame({"timestamp": [1_704_067_200_000, 1_704_067_200_020]})
    assert session_times(millis, "timestamp").tolist() == [1_704_067_200 * 10**9,
                                                            1_704_067_200_020_000_000]
    assert session_times(pd.DataFrame({"t": ["x", "y"]}), "t") is None


def test_sessions_with_too_many_missing_columns_or_no_time_are_ledgered(tmp_path):
    session(tmp_path / "walk" / "ok.csv")
    session(tmp_path / "walk" / "two_missing.csv", drop=("ax", "ay"))
    session(tmp_path / "sit" / "three_missing.csv", drop=("ax", "ay", "az"))
    session(tmp_path / "sit" / "no_time.csv", time=False)
    session(tmp_path / "sit" / "ok.csv")
    cfg = config(data={"source": "sessions", "dataset_loc": str(tmp_path)},
                 sessions={"expected_columns": ["ax", "ay", "az", "temp"],
                           "max_missing_columns": 2})
    s = load_samples(cfg)
    reasons = {e.path.split("/")[-1]: e.reason for e in s.ledger.entries if e.scope == "file"}
    assert reasons == {"three_missing.csv": MISSING_COLUMNS, "no_time.csv": NO_TIMESTAMP}
    differ = [e for e in s.ledger.entries if e.reason == "columns_differ"]
    assert [e.path.split("/")[-1] for e in differ] == ["two_missing.csv"]
    assert "missing, filled with zeros: ax, ay" in differ[0].detail and differ[0].count == 0
    assert len(s) == 3
    two = [i for i, p in enumerate(s.ids) if p.endswith("two_missing.csv")][0]
    assert np.all(s.inputs["trace"][two, :, :2] == 0)  # missing columns are zeros


def test_sessions_folder_without_a_valid_file_is_a_clear_error(tmp_path):
    (tmp_path / "walk").mkdir()
    cfg = config(data={"source": "sessions", "dataset_loc": str(tmp_path)})
    with pytest.raises(ValueError, match=r"no session file in .*: expected files ending in "
                       r"\.csv, \.xlsx, \.xls in <class>/ folders"):
        load_samples(cfg)
    session(tmp_path / "walk" / "no_time.csv", time=False)
    with pytest.raises(ValueError, match="no_timestamp"):
        load_samples(cfg)


def test_sessions_labels_csv_and_split_folders(tmp_path):
    for i, (part, cls) in enumerate([("train", "a"), ("train", "b"), ("test", "a")]):
        session(tmp_path / part / cls / f"s{i}.csv")
    s = load_samples(config(data={"source": "sessions", "dataset_loc": str(tmp_path)}))
    assert s.split.tolist() == ["test", "train", "train"]
    assert s.class_names == ("a", "b")
    flat = tmp_path / "flat"
    for name in ("x.csv", "y.csv", "z.csv"):
        session(flat / name)
    pd.DataFrame({"file": ["x.csv", "y.csv", "z.csv"], "label": ["up", "down", "up"],
                  "split": ["train", "validation", "test"], "group": [1, 1, 2]}
                 ).to_csv(flat / "labels.csv", index=False)
    s = load_samples(config(data={"source": "sessions", "dataset_loc": str(flat)}))
    assert [s.class_names[i] for i in s.label] == ["up", "down", "up"]
    assert s.split.tolist() == ["train", "val", "test"]
    assert s.group.tolist() == [0, 0, 1]


def test_npz_windows_string_labels_and_class_names(tmp_path):
    x = np.zeros((4, 5, 2), np.float32)
    np.savez(tmp_path / "w.npz", X=x, y=np.array([2, 0, 1, 2]),
             class_names=np.array(["lie", "sit", "walk"]))
    s = load_samples(config(data={"source": "npz", "dataset_loc": str(tmp_path / "w.npz")}))
    assert s.class_names == ("lie", "sit", "walk") and s.label.tolist() == [2, 0, 1, 2]
    np.savez(tmp_path / "old.npz", traces=np.zeros((3, 5)), label=np.array([0, 1, 0]),
             timestamp_ns=np.arange(3))
    s = load_samples(config(data={"source": "npz", "dataset_loc": str(tmp_path / "old.npz")}))
    assert s.inputs["trace"].shape == (3, 5, 1) and s.timestamp_ns.tolist() == [0, 1, 2]
    np.savez(tmp_path / "bad.npz", X=x)
    with pytest.raises(KeyError, match="no array y or label; found X"):
        load_samples(config(data={"source": "npz", "dataset_loc": str(tmp_path / "bad.npz")}))


def test_feature_table_columns_missing_labels_and_unknown_label_column(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"label": ["a", "b", None, "a"], "f1": [1.0, 2, 3, 4], "f2": [0.0, 1, 0, 1],
                  "name": list("wxyz"), "split": ["train", "train", "test", "test"]}
                 ).to_csv(path, index=False)
    s = load_samples(config(data={"source": "features", "dataset_loc": str(path)}))
    assert s.layout["feature_columns"] == ["f1", "f2"]
    assert s.inputs["features"].tolist() == [[1, 0], [2, 1], [4, 1]]
    assert [e.reason for e in s.ledger.entries] == ["empty_sample"]
    assert s.split.tolist() == ["train", "train", "test"]
    with pytest.raises(KeyError, match="no label column 'genre'"):
        load_samples(config(data={"source": "features", "dataset_loc": str(path)},
                            features={"label_column": "genre"}))
    unlabelled = load_samples(config(data={"source": "features"}, features={"label_column": "x"}),
                              layout=s.layout, files=[str(path)])
    assert (unlabelled.label == UNLABELLED).all() and len(unlabelled) == 4


def test_text_rows_and_missing_text(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["good day", None, "bad day"], "label": ["pos", "neg", "neg"]}
                 ).to_csv(path, index=False)
    s = load_samples(config(data={"source": "text", "dataset_loc": str(path)}))
    assert s.inputs["text"].tolist() == ["good day", "bad day"]
    assert s.label.tolist() == [1, 0] and len(s.ledger) == 1


def _samples(n, labels, group=None, split=None):
    from data_preparation.sources.contract import Samples

    return Samples(inputs={"features": np.zeros((n, 1), np.float32)},
                   label=np.asarray(labels), class_names=("a", "b"),
                   group=np.arange(n) if group is None else np.asarray(group),
                   ids=np.arange(n).astype(str), split=split)


def test_predefined_split_carves_validation_from_train_stratified():
    labels = np.array([0, 1] * 10)
    split = np.array(["train"] * 16 + ["test"] * 4, dtype=object)
    cfg = config(split={"method": "predefined", "train_fraction": 0.6, "val_fraction": 0.2})
    parts = split_samples(_samples(20, labels, split=split), cfg.split, seed=0)
    assert parts["test"].tolist() == [16, 17, 18, 19]
    assert len(parts["val"]) == 4 and labels[parts["val"]].sum() == 2  # 0.2 / 0.8 of 16, 2+2
    assert not set(parts["val"]) & set(parts["train"])
    with pytest.raises(ValueError, match="predefined"):
        split_samples(_samples(20, labels), cfg.split, seed=0)


def test_predefined_validation_too_small_for_every_class_holds_one_of_each():
    # PickupGestureWiimoteZ's shape: 10 classes, 5 training series each; a 15 % validation
    # share is 8 series, fewer than the classes (scikit-learn refuses to stratify that)
    labels = np.repeat(np.arange(10), 6)
    split = np.array(["train", "train", "train", "train", "train", "test"] * 10, dtype=object)
    cfg = config(split={"method": "predefined", "train_fraction": 0.7, "val_fraction": 0.15})
    parts = split_samples(_samples(60, labels, split=split), cfg.split, seed=0)
    assert sorted(labels[parts["val"]].tolist()) == list(range(10))
    assert len(parts["train"]) == 40 and set(labels[parts["train"]]) == set(range(10))
    # two of each class: one of each in validation, one of each left to train on
    few_split = np.array(["train", "train", "test"] * 10, dtype=object)
    few_labels = np.repeat(np.arange(10), 3)
    few = split_samples(_samples(30, few_labels, split=few_split), cfg.split, seed=0)
    assert sorted(few_labels[few["val"]].tolist()) == sorted(few_labels[few["train"]].tolist()) \
        == list(range(10))


def test_group_split_keeps_each_group_in_one_part_and_time_needs_times():
    groups = np.repeat(np.arange(10), 3)
    s = _samples(30, np.tile([0, 1, 0], 10), group=groups)
    parts = split_samples(s, config(split={"method": "group"}).split, seed=1)
    owners = [{int(g) for g in groups[parts[p]]} for p in ("train", "val", "test")]
    assert all(owners) and not (owners[0] & owners[1] or owners[0] & owners[2]
                                or owners[1] & owners[2])
    with pytest.raises(ValueError, match="needs sample times"):
        split_samples(s, config(split={"method": "time"}).split, seed=0)


def test_scaler_fits_real_steps_and_keeps_padding_at_zero():
    x = np.zeros((2, 4, 1), np.float32)
    x[0, :2, 0] = [1.0, 3.0]
    x[1, :3, 0] = [2.0, 2.0, 2.0]
    scaler = ChannelScaler("standard").fit(x)
    assert scaler.center_[0] == pytest.approx(2.0)  # mean of 1, 3, 2, 2, 2: padding left out
    out = scaler.transform(x)
    assert out[0, 2:].sum() == 0 and out[1, 3] == 0


def test_text_vocabulary_is_fitted_on_training_texts_and_round_trips_as_json():
    import json

    cfg = Config().text
    prep = Preprocessor("none", "none", cfg).fit({"text": np.array(["alpha beta", "beta"])})
    again = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())), "none", "none", cfg)
    ids = again.transform({"text": np.array(["beta gamma alpha"])})["tokens"][0]
    assert ids[:3].tolist() == [2, 1, 3]  # beta (most frequent), gamma unknown (1), alpha
    assert (ids == prep.transform({"text": np.array(["beta gamma alpha"])})["tokens"][0]).all()


def test_smote_balances_every_class_of_the_training_arrays():
    x = {"features": np.random.default_rng(0).normal(size=(14, 3)).astype(np.float32)}
    labels = np.array([0] * 8 + [1] * 3 + [2] * 3)
    cfg = config(scaling={"imbalance": "smote", "smote_ratio": 1.0}).scaling
    out, y, weights, _ = rebalance(x, labels, 3, cfg, seed=0)
    assert np.bincount(y).tolist() == [8, 8, 8] and out["features"].shape == (24, 3)
    assert weights is None


def test_augmentation_keeps_shape_and_padding():
    x = np.zeros((3, 20, 2), np.float32)
    x[:, :10] = 1.0
    out = augment_sequences(x, np.random.default_rng(0), time_warp=0.1, noise_std=0.1,
                            feature_dropout=0.0)
    assert out.shape == x.shape and not np.array_equal(out, x)
    assert np.all(out[:, 12:] == 0)  # 10 steps warped to at most 11


def test_sns_dcm_source_gives_the_same_pulses_as_the_sns_pipeline(simulated_archive):
    from data_preparation.pipeline import prepare_samples
    from parser.configs import BPMDataConfig, DCMDataConfig

    cfg = Config(data=DCMDataConfig(dataset_loc=str(simulated_archive / "dcm"), workers=2,
                                    cache_dir=None),
                 beam_settings=BPMDataConfig(data_location=str(simulated_archive /
                                                               "beam_settings")))
    pulses = prepare_samples(cfg, progress=False)
    s = load_samples(cfg)
    assert s.class_names == ("normal", "errant")
    assert s.inputs["trace"].shape == (len(pulses), *pulses.trace_shape)
    assert s.inputs["settings"].shape == pulses.settings.shape
    assert (s.label == pulses.label).all() and (s.timestamp_ns == pulses.timestamp_ns).all()
    assert len(s.ledger) == len(pulses.ledger)


def test_benchmark_folders_with_train_and_test_files_give_a_predefined_split(tmp_path):
    x = np.ones((3, 4, 1), np.float32)
    np.savez(tmp_path / "train.npz", X=x, y=np.array(["b", "b", "c"]))
    np.savez(tmp_path / "test.npz", X=x, y=np.array(["a", "b", "c"]))
    s = load_samples(config(data={"source": "npz", "dataset_loc": str(tmp_path)}))
    assert s.class_names == ("a", "b", "c")  # one class list over both parts
    assert s.label.tolist() == [0, 1, 2, 1, 1, 2]  # test.npz sorts first
    assert s.split.tolist() == ["test"] * 3 + ["train"] * 3
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame({"text": ["x y", "y z"], "label": [1, 2]}).to_csv(tables / "train.csv",
                                                                  index=False)
    pd.DataFrame({"text": ["z"], "label": [3]}).to_csv(tables / "test.csv", index=False)
    s = load_samples(config(data={"source": "text", "dataset_loc": str(tables)}))
    assert s.split.tolist() == ["test", "train", "train"]
    assert s.class_names == ("1", "2", "3") and s.label.tolist() == [2, 0, 1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="without train/val/test"):
        load_samples(config(data={"source": "features", "dataset_loc": str(tmp_path / "empty")}))
