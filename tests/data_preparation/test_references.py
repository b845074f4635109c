"""The reference rule (data_preparation.references), rule by rule on hand-made arrays."""

import time

import numpy as np
import pytest

from data_preparation.references import (
    SOURCE_ARCHIVE,
    SOURCE_EMPTY,
    SOURCE_FILE,
    SOURCE_SELF,
    ReferenceView,
    plan_references,
    resolve_in_place,
    source_counts,
)

S = 10**9  # one second in ns
T0 = 1_700_000_000 * S


def empty(n, k):
    return np.full((n, k), -1, dtype=np.int64)


def plan(in_file, seconds, label, group, window_s=100.0, min_count=1, missing="skip"):
    t = T0 + np.asarray(seconds, dtype=np.int64) * S
    return plan_references(in_file, t, np.asarray(label), np.asarray(group), window_s=window_s,
                           min_count=min_count, missing=missing)


def secs(plan_, i):
    """Reference times of sample i in seconds after T0 (None for empty slots)."""
    return [None if ts < 0 else int((ts - T0) // S) for ts in plan_.timestamp_ns[i]]


def test_in_file_references_come_first_and_are_kept():
    in_file = empty(3, 2)
    in_file[2] = [T0 + 25 * S, T0 + 28 * S]  # a full set from its own file
    p = plan(in_file, [10, 20, 30], [0, 0, 0], [0, 0, 0])
    assert secs(p, 2) == [25, 28] and p.source[2].tolist() == [SOURCE_FILE] * 2
    assert p.row[2].tolist() == [0, 1]


def test_archive_fills_newest_first_before_the_oldest_in_file_reference():
    in_file = empty(5, 3)
    in_file[4, 2] = T0 + 45 * S  # one in-file reference, at 45 s
    p = plan(in_file, [10, 20, 30, 40, 50], [0, 0, 0, 0, 0], [0] * 5)
    assert secs(p, 4) == [30, 40, 45]  # the archive slots are older than the in-file one
    assert p.source[4].tolist() == [SOURCE_ARCHIVE, SOURCE_ARCHIVE, SOURCE_FILE]
    assert p.row[4].tolist() == [2, 3, 2]  # samples 2 and 3, then in-file slot 2


def test_archive_uses_only_normal_samples_of_the_same_group():
    p = plan(empty(5, 2), [10, 20, 30, 40, 50], [0, 0, 0, 1, 0], [0, 1, 0, 0, 0])
    assert secs(p, 4) == [10, 30]  # 40 is errant, 20 is another configuration
    assert p.source[4].tolist() == [SOURCE_ARCHIVE] * 2


def test_archive_respects_the_time_window():
    p = plan(empty(3, 2), [0, 70, 100], [0, 0, 0], [0, 0, 0], window_s=50.0)
    assert secs(p, 2) == [70, 70]  # 0 s is 100 s before: out of the 50 s window; padded
    assert secs(p, 1) == [None, None] and p.missing.tolist() == [True, True, False]


def test_a_later_or_equal_time_pulse_is_never_a_reference():
    # Samples 1 and 2 share a time; sample 3 is later than everyone else.
    p = plan(empty(4, 3), [50, 60, 60, 70], [0, 0, 0, 0], [0, 0, 0, 0])
    assert secs(p, 1) == [50, 50, 50] and secs(p, 2) == [50, 50, 50]  # not each other
    assert secs(p, 0) == [None] * 3 and p.missing[0]
    t = T0 + np.array([50, 60, 60, 70]) * S
    for i in range(4):
        real = p.source[i] != SOURCE_EMPTY
        assert np.all(p.timestamp_ns[i][real] < t[i])
    # Order of the input does not matter: shuffle and compare by time.
    order = np.array([3, 1, 0, 2])
    q = plan(empty(4, 3), np.array([50, 60, 60, 70])[order], [0] * 4, [0] * 4)
    np.testing.assert_array_equal(q.timestamp_ns, p.timestamp_ns[order])


def test_too_few_references_are_reported_missing():
    in_file = empty(2, 3)
    in_file[1, 2] = T0 + 15 * S
    p = plan(in_file, [10, 20], [1, 0], [0, 0], min_count=2)
    assert p.missing.tolist() == [True, True]  # sample 0 is errant: no archive reference
    p = plan(in_file, [10, 20], [0, 0], [0, 0], min_count=2)
    assert p.missing.tolist() == [True, False] and secs(p, 1) == [10, 10, 15]


def test_missing_self_makes_the_sample_its_own_reference():
    p = plan(empty(2, 2), [10, 20], [0, 0], [0, 1], missing="self")
    assert not p.missing.any()
    assert p.source.tolist() == [[SOURCE_SELF] * 2] * 2
    assert p.row.tolist() == [[0, 0], [1, 1]] and secs(p, 1) == [20, 20]


def test_padding_repeats_the_oldest_filled_slot():
    in_file = empty(1, 4)
    in_file[0, 3] = T0 + 5 * S
    p = plan(in_file, [10], [0], [0])
    assert secs(p, 0) == [5, 5, 5, 5] and p.row[0].tolist() == [3, 3, 3, 3]
    assert p.source[0].tolist() == [SOURCE_FILE] * 4


def test_bad_input_is_rejected_with_a_reason():
    left = empty(1, 2)
    left[0, 0] = T0  # filled slot before an empty one: not right-aligned
    with pytest.raises(ValueError, match="right-aligned"):
        plan(left, [10], [0], [0])
    future = empty(1, 2)
    future[0, 1] = T0 + 20 * S
    with pytest.raises(ValueError, match="not earlier"):
        plan(future, [10], [0], [0])
    with pytest.raises(ValueError, match="missing"):
        plan(empty(1, 2), [10], [0], [0], missing="drop")


def _windows_case():
    """4 samples, K=2, windows whose value tells sample and slot apart."""
    traces = np.arange(4, dtype=np.float32)[:, None] * np.ones((4, 3), np.float32)
    in_file = np.zeros((4, 2, 3), np.float32)
    stamps = empty(4, 2)
    in_file[3, 1] = 77.0  # sample 3 has one in-file reference
    stamps[3, 1] = T0 + 35 * S
    p = plan(stamps, [10, 20, 30, 40], [0, 0, 0, 0], [0, 0, 0, 0])
    return p, in_file, traces


def test_resolve_in_place_and_the_lazy_view_give_the_same_windows():
    p, in_file, traces = _windows_case()
    view = ReferenceView(in_file.copy(), traces, p)
    resolved = resolve_in_place(p, in_file, traces)
    assert resolved is in_file  # no copy
    assert resolved[3, :, 0].tolist() == [2.0, 77.0]  # archive: sample 2 (30 s), then in-file
    assert resolved[1, :, 0].tolist() == [0.0, 0.0]  # sample 0, padded
    assert resolved[0].tolist() == [[0.0] * 3] * 2  # no reference: zeros (missing)
    np.testing.assert_array_equal(view.read(np.arange(4)), resolved)
    part = view.take([3, 1])
    assert part.shape == (2, 2, 3)
    np.testing.assert_array_equal(part[np.arange(2)], resolved[[3, 1]])


def test_source_counts_per_sample():
    source = np.array([[1, 1], [2, 1], [3, 3], [0, 0], [2, 2]], dtype=np.int8)
    assert source_counts(source) == {"same_file": 1, "archive": 2, "self": 1, "none": 1}


def test_twenty_thousand_samples_take_well_under_a_second():
    rng = np.random.default_rng(0)
    n, k = 20_000, 3
    seconds = np.sort(rng.integers(0, 10 * 3600, n))
    in_file = empty(n, k)
    has = rng.random(n) < 0.5
    in_file[has, 2] = T0 + (seconds[has] - 1) * S
    started = time.perf_counter()
    p = plan(in_file, seconds, (rng.random(n) < 0.05).astype(int), rng.integers(0, 200, n),
             window_s=3600.0)
    assert time.perf_counter() - started < 1.0
    t = T0 + seconds * S
    real = p.source != SOURCE_EMPTY
    assert np.all(p.timestamp_ns[real] < np.broadcast_to(t[:, None], real.shape)[real])
    assert (p.source == SOURCE_ARCHIVE).any() and p.missing.any()


def test_without_own_file_references_come_only_from_other_acquisitions_old_enough():
    in_file = empty(6, 2)
    in_file[2] = [T0 + 100 * S, T0 + 101 * S]  # its own file's run-up: never used
    in_file[5] = [T0 + 300 * S, T0 + 301 * S]
    t = T0 + np.array([10, 11, 102, 200, 201, 302]) * S
    acquisition = np.array([0, 0, 1, 2, 2, 3])  # 1 and 3 are anomaly files, 0 and 2 normal
    label = np.array([0, 0, 1, 0, 0, 1])
    p = plan_references(in_file, t, label, np.zeros(6), window_s=1000.0, min_count=1,
                        own_file=False, acquisition=acquisition, min_age_s=50.0)
    assert SOURCE_FILE not in p.source
    assert secs(p, 2) == [10, 11]  # errant: the normal file before, not its run-up
    assert secs(p, 4) == [10, 11]  # normal: not its own file's earlier pulse (200)
    assert secs(p, 5) == [200, 201]  # 250 s before its acquisition: old enough
    assert p.missing.tolist() == [True, True, False, False, False, False]


def test_without_own_file_a_run_up_inside_min_age_is_not_a_reference():
    t = T0 + np.array([100, 130]) * S
    p = plan_references(empty(2, 1), t, np.array([0, 1]), np.zeros(2), window_s=1000.0,
                        min_count=1, own_file=False, acquisition=np.array([0, 1]), min_age_s=60.0)
    assert p.missing.tolist() == [True, True]  # 30 s apart: too young to be a reference


def test_own_file_false_needs_acquisitions():
    with pytest.raises(ValueError, match="acquisition"):
        plan_references(empty(2, 1), np.array([1, 2]) * S, np.array([0, 1]), np.zeros(2),
                        window_s=10.0, min_count=1, own_file=False)


def test_reference_age_and_source_carry_no_label_signal(tmp_path):
    """On a simulated archive with multi-pulse run-ups: with own_file false, how old a sample's
    references are and where they come from tells nothing about its label."""
    from sklearn.metrics import roc_auc_score

    from data_preparation.pipeline import prepare_samples
    from enterprise_tools.simulator import SimulatorParams, simulate_archive
    from parser.configs import load_config

    params = SimulatorParams.tiny(seed=3, hours=1.0, errant_trips_per_hour=60.0, study_per_day=0.0,
                                  precursor_onset_mean=2.5, precursor_onset_max=6,
                                  context_pulses=4, normal_interval_s=30.0)
    simulate_archive(tmp_path / "sim", params)
    config = load_config(None, [f"data.dataset_loc={tmp_path / 'sim' / 'dcm'}",
                                f"beam_settings.data_location={tmp_path / 'sim' / 'beam_settings'}",
                                "data.shift=500", "data.workers=1", "data.cache_dir=null",
                                "reference.own_file=false", "reference.min_age_s=30",
                                f"run.log_dir={tmp_path / 'logs'}"])
    samples = prepare_samples(config, progress=False)
    assert samples.n_references == 3 and 20 <= samples.label.sum() < samples.label.size - 50
    assert set(np.unique(samples.reference_source)) == {SOURCE_ARCHIVE}
    age = samples.timestamp_ns - samples.reference_timestamp_ns.max(axis=1)
    assert age.min() >= 30 * S
    auc = roc_auc_score(samples.label, age)
    assert 0.35 < auc < 0.65, f"reference age predicts the label (AUC {auc:.2f})"
