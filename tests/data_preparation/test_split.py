"""data_preparation.split: time, configuration-group and stratified splits before any fit."""

import numpy as np
import pytest

from data_preparation.split import split_indices
from parser.configs import SplitConfig

S = 10**9


def _shuffled_times(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n, dtype=np.int64) * S)




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
