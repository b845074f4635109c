import json

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from data_preparation.data_scaling import (
    SettingsScaler,
    TraceScaler,
    class_weights,
    load_scalers,
    save_scalers,
    smote,
    split_indices,
    undersample,
)
from parser.configs import SplitConfig

S = 10**9


def _shuffled_times(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n, dtype=np.int64) * S)


# ---------------------------------------------------------------------------------------------
# Splits


def test_time_split_puts_oldest_in_train_then_val_then_test():
    ts = _shuffled_times(100)
    label = np.zeros(100, dtype=np.int8)
    parts = split_indices(ts, label, None, SplitConfig())
    assert [parts[k].size for k in ("train", "val", "test")] == [70, 15, 15]
    assert ts[parts["train"]].max() <= ts[parts["val"]].min()
    assert ts[parts["val"]].max() <= ts[parts["test"]].min()
    assert np.all(np.diff(ts[parts["val"]]) > 0)  # each part in time order
    assert parts["dropped"].size == 0
    all_idx = np.concatenate([parts[k] for k in ("train", "val", "test")])
    assert sorted(all_idx.tolist()) == list(range(100))


def test_time_split_gap_drops_pulses_near_each_boundary():
    ts = np.arange(100, dtype=np.int64) * S
    parts = split_indices(ts, np.zeros(100), None, SplitConfig(gap_seconds=2.5))
    dropped = sorted(ts[parts["dropped"]] // S)
    assert dropped == [68, 69, 70, 71, 72, 83, 84, 85, 86, 87]
    assert ts[parts["train"]].max() // S == 67 and ts[parts["val"]].min() // S == 73
    assert ts[parts["val"]].max() // S == 82 and ts[parts["test"]].min() // S == 88


def test_time_split_never_cuts_through_one_acquisition():
    # 40 acquisitions, 3 pulses each 16.7 ms apart, acquisitions a minute apart: the 70 % cut
    # (pulse 85) and the 86 % cut (pulse 103) fall inside acquisitions 28 and 34.
    pulse = 16_666_667
    ts = np.array([a * 60 * S + k * pulse for a in range(40) for k in range(3)], dtype=np.int64)
    acquisition = ts // (60 * S)
    parts = split_indices(ts, np.zeros(ts.size), None, SplitConfig(train_fraction=0.71),
                          acquisition=acquisition)
    owners = [set(acquisition[parts[k]].tolist()) for k in ("train", "val", "test")]
    assert not (owners[0] & owners[1]) and not (owners[1] & owners[2])
    assert sum(parts[k].size for k in ("train", "val", "test")) == ts.size


def test_empty_part_is_a_clear_error_with_the_pulse_count():
    with pytest.raises(ValueError, match="3 pulses"):
        split_indices(np.arange(3) * S, np.zeros(3), None, SplitConfig(val_fraction=0.1))
    with pytest.raises(ValueError, match="gap"):
        split_indices(np.arange(10) * S, np.zeros(10), None, SplitConfig(gap_seconds=100))


def test_config_group_split_keeps_groups_whole_and_in_time_order():
    ts = np.arange(100, dtype=np.int64) * S
    groups = np.repeat(np.arange(10), [5, 20, 10, 15, 10, 10, 5, 10, 5, 10])
    parts = split_indices(ts, np.zeros(100), groups, SplitConfig(method="config_group"))
    seen = [set(groups[parts[k]]) for k in ("train", "val", "test")]
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])
    assert max(seen[0]) < min(seen[1]) and max(seen[1]) < min(seen[2])
    assert [parts[k].size for k in ("train", "val", "test")] == [70, 15, 15]


def test_config_group_split_needs_three_groups():
    with pytest.raises(ValueError, match="3 configuration groups, found 2"):
        split_indices(np.arange(10) * S, np.zeros(10), np.repeat([0, 1], 5),
                      SplitConfig(method="config_group"))


def test_stratified_random_split_keeps_class_shares():
    label = np.r_[np.zeros(80), np.ones(20)].astype(np.int8)
    parts = split_indices(np.arange(100) * S, label, None,
                          SplitConfig(method="stratified_random"), seed=3)
    assert [int(label[parts[k]].sum()) for k in ("train", "val", "test")] == [14, 3, 3]
    again = split_indices(np.arange(100) * S, label, None,
                          SplitConfig(method="stratified_random"), seed=3)
    np.testing.assert_array_equal(parts["test"], again["test"])


# ---------------------------------------------------------------------------------------------
# Scalers


def test_trace_scaler_statistics_per_kind():
    x = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 100.0]])
    robust = TraceScaler("robust").fit(x)
    assert (robust.center_, robust.scale_) == (3.5, 3.5)
    standard = TraceScaler("standard", chunk_size=1).fit(x)  # chunked == exact
    assert standard.center_ == pytest.approx(x.mean()) and standard.scale_ == pytest.approx(x.std())
    minmax = TraceScaler("minmax").fit(x)
    assert (minmax.center_, minmax.scale_) == (0.0, 100.0)
    np.testing.assert_allclose(minmax.transform(x), x / 100.0)
    none = TraceScaler("none").fit(x)
    np.testing.assert_array_equal(none.transform(x), x.astype(np.float32))


def test_trace_scaler_zero_spread_scales_by_one_and_inverts():
    x = np.full((3, 5), 7.0)
    scaler = TraceScaler("robust").fit(x)
    assert scaler.scale_ == 1.0
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(x)), x)


def test_trace_scaler_robust_subsample_is_seeded_and_bounded():
    x = np.random.default_rng(0).normal(size=(300, 10))
    a = TraceScaler("robust", max_fit_traces=50, random_state=1).fit(x)
    b = TraceScaler("robust", max_fit_traces=50, random_state=1).fit(x)
    c = TraceScaler("robust", max_fit_traces=50, random_state=2).fit(x)
    assert a.center_ == b.center_ and a.center_ != c.center_


def test_settings_scaler_per_feature_with_constant_feature():
    x = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 10.0], [5.0, 5.0, 20.0]])
    scaler = SettingsScaler("standard").fit(x)
    assert scaler.scale_[1] == 1.0 and scaler.center_[1] == 5.0
    out = scaler.transform(x)
    assert out.dtype == np.float32 and np.allclose(out[:, 1], 0.0)
    assert np.allclose(out[:, [0, 2]].std(axis=0), 1.0)
    assert SettingsScaler("robust").fit(x).center_.tolist() == [3.0, 5.0, 10.0]
    assert SettingsScaler("minmax").fit(x).scale_.tolist() == [4.0, 1.0, 20.0]
    empty = SettingsScaler().fit(np.zeros((4, 0)))
    assert empty.transform(np.zeros((2, 0))).shape == (2, 0)


def test_scalers_refuse_to_transform_before_fit_and_bad_input():
    with pytest.raises(NotFittedError):
        TraceScaler().transform(np.zeros((1, 3)))
    with pytest.raises(NotFittedError):
        SettingsScaler().to_dict()
    with pytest.raises(ValueError, match="kind"):
        TraceScaler("log").fit(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        SettingsScaler().fit(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="fitted on 2 features"):
        SettingsScaler().fit(np.ones((3, 2))).transform(np.ones((3, 1)))


def test_scalers_round_trip_through_json_file(tmp_path):
    rng = np.random.default_rng(0)
    traces, settings = rng.normal(size=(20, 8)), rng.normal(size=(20, 3))
    trace_scaler = TraceScaler("standard").fit(traces)
    settings_scaler = SettingsScaler("robust").fit(settings)
    path = tmp_path / "scalers.json"
    save_scalers(path, trace_scaler, settings_scaler, {"features": ["a", "b", "c"]})
    json.loads(path.read_text())  # plain JSON
    t2, s2, extra = load_scalers(path)
    np.testing.assert_array_equal(t2.transform(traces), trace_scaler.transform(traces))
    np.testing.assert_array_equal(s2.transform(settings), settings_scaler.transform(settings))
    assert extra == {"features": ["a", "b", "c"]} and t2.kind == "standard"
    path.write_text('{"format": 99}')
    with pytest.raises(ValueError, match="not a beamwatch scalers file"):
        load_scalers(path)
    with pytest.raises(ValueError, match="expected class"):
        TraceScaler.from_dict(settings_scaler.to_dict())


# ---------------------------------------------------------------------------------------------
# Imbalance


def test_class_weights_are_balanced():
    weights = class_weights(np.array([0] * 8 + [1] * 2))
    assert weights == {0: 10 / 16, 1: 10 / 4}
    with pytest.raises(ValueError, match="both classes"):
        class_weights(np.zeros(4))


def test_smote_adds_minority_rows_between_training_rows_only():
    rng = np.random.default_rng(0)
    majority = rng.uniform(0, 1, size=(40, 3))
    minority = rng.uniform(2, 3, size=(6, 3))
    x = np.vstack([majority, minority])
    y = np.r_[np.zeros(40), np.ones(6)].astype(np.int8)
    x_res, y_res = smote(x, y, ratio=0.5, seed=0)
    assert int((y_res == 1).sum()) == 20 and int((y_res == 0).sum()) == 40
    np.testing.assert_array_equal(x_res[:46], x)
    synthetic = x_res[46:]
    assert np.all(synthetic >= minority.min(axis=0)) and np.all(synthetic <= minority.max(axis=0))
    x_again, _ = smote(x, y, ratio=0.5, seed=0)
    np.testing.assert_array_equal(x_res, x_again)


def test_smote_refuses_streamed_data_and_keeps_balanced_data():
    with pytest.raises(TypeError, match="in memory"):
        smote([[0.0]], [0], 0.5, 0)
    x, y = np.zeros((4, 2)), np.array([0, 0, 1, 1])
    x_res, y_res = smote(x, y, 0.5, 0)
    assert x_res is x and y_res is y


def test_undersample_keeps_every_minority_and_reaches_the_ratio():
    indices = np.arange(100, 200)
    labels = np.r_[np.zeros(90), np.ones(10)].astype(np.int8)
    kept = undersample(indices, labels, ratio=0.5, seed=0)
    assert kept.size == 30 and np.all(np.diff(kept) > 0)
    assert set(range(190, 200)) <= set(kept.tolist())
    np.testing.assert_array_equal(kept, undersample(indices, labels, 0.5, 0))
    with pytest.raises(ValueError, match="one to one"):
        undersample(indices, labels[:5], 0.5, 0)
