import numpy as np
import pytest

from data_preparation.pipeline import (
    balance_training,
    fit_scalers,
    prepare_samples,
)
from data_preparation.split import split_indices
from parser.configs import (
    BPMDataConfig,
    Config,
    ReferenceConfig,
    ScalingConfig,
    SplitConfig,
    TrainConfig,
)
from tests.data_preparation import builders as b
from training.dataset import make_dataset

WILD = 1.0e6


NORMAL_K = list(range(0, 120, 2))  # 60 normal pulses in 6 files
PRECURSOR_K = list(range(5, 120, 10))  # 12 anomaly files, one errant precursor each


def _archive(root, wild_from=None):
    """Pulses at time index k (see NORMAL_K, PRECURSOR_K); those at k >= `wild_from` get
    wild traces."""
    def pid(k, base):
        return base + WILD if wild_from is not None and k >= wild_from else base

    for f in range(6):
        ks = NORMAL_K[10 * f : 10 * f + 10]
        b.write_file(root / "normal" / f"n{f}.bin.gz", [(b.ts_of(k), pid(k, k)) for k in ks])
    for f, k in enumerate(PRECURSOR_K):
        b.write_file(
            root / "anomaly" / f"a{f:02d}.bin.gz",
            [(b.ts_of(k - 1), 0.5), (b.ts_of(k), pid(k, 500 + f)), (b.ts_of(k + 1), 0.7, 48)],
        )


def _settings(path, wild_from=None):
    """A changes at k = 20, 61, 102; RR is below production for k in [40, 45); rows start at 2.

    Rows lie half a period before pulse k (settings timestamps are float64 in the archive).
    With `wild_from`, the features A and B jump to WILD from pulse `wild_from` on.
    """
    rows = {
        "A": [(2, 1.0), (20, 2.0), (61, 3.0), (102, 4.0)],
        "B": [(2, 7.0)],
        "RR": [(2, 60.0), (40, 30.0), (45, 60.0)],
    }
    pvs = {}
    for pv, pairs in rows.items():
        wild = wild_from is not None and pv != "RR"  # the filter PV keeps its verdicts
        if wild:
            pairs = sorted(pairs + [(wild_from, WILD)])
        pvs[pv] = [
            (b.ts_of(k) - b.PERIOD // 2, WILD if wild and k >= wild_from else v) for k, v in pairs
        ]
    return b.write_settings(path, pvs)


def _config(tmp_path, **train):
    return Config(
        data=b.data_config(tmp_path / "dcm"),
        beam_settings=BPMDataConfig(
            data_location=str(tmp_path / "bs"), features=["A", "B"],
            production_filter={"RR": 59.9},
        ),
        split=SplitConfig(train_fraction=0.6, val_fraction=0.2),
        train=TrainConfig(**({"streaming": "false"} | train)),
        reference=ReferenceConfig(count=0),  # these tests are about the join, split and scaling
    )


@pytest.fixture
def setup(tmp_path):
    _archive(tmp_path / "dcm")
    _settings(tmp_path / "bs" / "s.hdf5")
    return _config(tmp_path)


def _k(samples):
    return (samples.timestamp_ns - b.T0 + b.PERIOD // 2) // b.PERIOD


def test_prepare_samples_joins_filters_and_groups(setup):
    samples = prepare_samples(setup, progress=False)
    k = _k(samples)
    kept_normal = [k for k in NORMAL_K if k >= 2 and not 40 <= k < 45]
    assert k.tolist() == sorted(kept_normal + PRECURSOR_K)
    assert samples.label[np.isin(k, PRECURSOR_K)].tolist() == [1] * 12
    assert samples.label.sum() == 12
    assert samples.settings_names == ("A", "B")
    assert samples.settings.dtype == np.float32 and samples.settings.shape == (68, 2)
    assert samples.settings[k == 18, 0] == 1.0 and samples.settings[k == 20, 0] == 2.0
    assert samples.group[k == 18] == 0 and samples.group[k == 20] == 1
    assert samples.group[k == 60] == 1 and samples.group[k == 62] == 2
    assert samples.group[k == 118] == 3 and samples.group.max() == 3
    summary = {row["reason"]: row for row in samples.ledger.summary()}
    assert summary["no_settings"] == {"reason": "no_settings", "files": 1, "pulses": 1}
    assert summary["non_production"] == {"reason": "non_production", "files": 1, "pulses": 3}
    assert len(summary) == 2


def test_prepare_samples_without_settings_and_with_overridden_locations(setup, tmp_path):
    moved = tmp_path / "elsewhere"
    (tmp_path / "dcm").rename(moved)
    config = setup.__class__(
        data=setup.data, beam_settings=BPMDataConfig(use=False), split=setup.split,
        train=setup.train, reference=setup.reference,
    )
    samples = prepare_samples(config, dataset_loc=moved, progress=False)
    assert samples.settings.shape == (72, 0)
    assert samples.group.tolist() == [0] * 72
    assert len(samples.ledger) == 0


def _fitted_state(config, wild_from=None, tmp_path=None):
    samples = prepare_samples(config, progress=False)
    parts = split_indices(samples.timestamp_ns, samples.label, samples.group, config.split)
    trace_scaler, settings_scaler = fit_scalers(samples, parts["train"], config.scaling)
    return samples, parts, trace_scaler, settings_scaler


@pytest.mark.parametrize("kind", ["robust", "standard", "minmax"])
def test_no_val_or_test_pulse_influences_a_fitted_statistic(tmp_path, kind):
    config = _config(tmp_path)
    config = Config(**{**config.__dict__, "scaling": ScalingConfig(trace_scaler=kind, settings_scaler=kind)})
    _archive(tmp_path / "dcm")
    _settings(tmp_path / "bs" / "s.hdf5")
    samples, parts, trace_a, settings_a = _fitted_state(config)
    first_held_out = int(_k(samples)[parts["val"]].min())
    # Rewrite every val/test pulse and every later settings row with wild values; refit.
    _archive(tmp_path / "dcm", wild_from=first_held_out)
    _settings(tmp_path / "bs" / "s.hdf5", wild_from=first_held_out)
    wild, parts_b, trace_b, settings_b = _fitted_state(config)
    assert np.abs(np.asarray(wild.traces)[parts_b["test"]]).min() > WILD / 2  # really changed
    assert np.all(wild.settings[parts_b["test"]][:, 1] == WILD)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(parts[name], parts_b[name])
    assert trace_a.to_dict() == trace_b.to_dict()
    assert settings_a.to_dict() == settings_b.to_dict()


def test_smote_uses_training_rows_only(tmp_path):
    _archive(tmp_path / "dcm", wild_from=80)  # the held-out part is wild
    _settings(tmp_path / "bs" / "s.hdf5", wild_from=80)
    config = _config(tmp_path)
    config = Config(**{**config.__dict__, "scaling": ScalingConfig(imbalance="smote", smote_ratio=0.5)})
    samples, parts, trace_scaler, settings_scaler = _fitted_state(config)
    assert samples.timestamp_ns[parts["train"]].max() < b.ts_of(80)
    resampled, idx, weights = balance_training(
        samples, parts["train"], config.scaling, trace_scaler, settings_scaler, seed=0
    )
    assert weights is None and idx.tolist() == list(range(len(resampled)))
    n_train = parts["train"].size
    np.testing.assert_allclose(resampled.traces[:n_train], samples.traces[parts["train"]], atol=1e-3)
    synthetic = resampled.traces[n_train:]
    assert synthetic.shape[0] > 0 and np.all(resampled.label[n_train:] == 1)
    train_pos = samples.traces[parts["train"]][samples.label[parts["train"]] == 1]
    assert np.all(synthetic >= train_pos.min() - 1e-3) and np.all(synthetic <= train_pos.max() + 1e-3)
    assert np.all(resampled.file_index[n_train:] == -1)


def test_class_weight_and_undersample_balancing(setup):
    samples, parts, ts, ss = _fitted_state(setup)
    _, idx, weights = balance_training(samples, parts["train"], setup.scaling, ts, ss)
    assert set(weights) == {0, 1} and weights[1] > weights[0]
    under = ScalingConfig(imbalance="undersample", undersample_ratio=1.0)
    _, kept, none = balance_training(samples, parts["train"], under, ts, ss, seed=1)
    labels = samples.label[kept]
    assert none is None and labels.sum() == (labels == 0).sum()


def _batches(dataset):
    return [
        (x["trace"].numpy(), x["settings"].numpy(), y.numpy()) for x, y in dataset
    ]


def test_streamed_dataset_yields_the_same_batches_as_in_memory(tmp_path):
    _archive(tmp_path / "dcm")
    _settings(tmp_path / "bs" / "s.hdf5")
    config = _config(tmp_path)
    config = Config(**{**config.__dict__, "data": b.data_config(tmp_path / "dcm", cache_dir=str(tmp_path / "c"))})
    memory = prepare_samples(config, progress=False)
    streamed = prepare_samples(
        Config(**{**config.__dict__, "train": TrainConfig(streaming="true")}), progress=False
    )
    assert streamed.streaming and not memory.streaming
    parts = split_indices(memory.timestamp_ns, memory.label, memory.group, config.split)
    scalers = fit_scalers(memory, parts["train"], config.scaling)
    assert scalers[0].to_dict() == fit_scalers(streamed, parts["train"], config.scaling)[0].to_dict()
    kwargs = dict(batch_size=8, shuffle=False, seed=0)
    a = _batches(make_dataset(memory, parts["train"], *scalers, **kwargs))
    from_cache = make_dataset(streamed, parts["train"], *scalers, **kwargs)
    c = _batches(from_cache)
    assert len(a) == len(c) == -(-parts["train"].size // 8) > 1
    # the generator's length is stated, so Keras counts an epoch's steps (no "ran out of data")
    assert int(from_cache.cardinality()) == len(c)
    two_epochs = make_dataset(streamed, parts["train"], *scalers, batch_size=8, shuffle=True,
                              seed=0, epochs=(1, 3))
    assert int(two_epochs.cardinality()) == len(_batches(two_epochs)) == 2 * len(c)
    for (ta, sa, ya), (tc, sc, yc) in zip(a, c, strict=True):
        assert ta.shape[1:] == (b.SHIFT, 1) and ya.shape[1:] == (1,)
        np.testing.assert_array_equal(ta, tc)
        np.testing.assert_array_equal(sa, sc)
        np.testing.assert_array_equal(ya, yc)
    shuffled = make_dataset(streamed, parts["train"], *scalers, batch_size=8, shuffle=True, seed=3)
    epoch1 = np.concatenate([t[:, 0, 0] for t, _, _ in _batches(shuffled)])
    epoch2 = np.concatenate([t[:, 0, 0] for t, _, _ in _batches(shuffled)])
    in_order = np.concatenate([t[:, 0, 0] for t, _, _ in a])
    assert sorted(epoch1) == sorted(in_order) and not np.array_equal(epoch1, epoch2)


def test_make_dataset_trace_only_with_weights_and_repeat(setup):
    samples, parts, ts, ss = _fitted_state(setup)
    weights = np.arange(parts["val"].size, dtype=np.float32)
    dataset = make_dataset(
        samples, parts["val"], ts, ss, batch_size=4, shuffle=False, seed=0,
        input_names=("trace",), sample_weight=weights, repeat=True,
    )
    x, y, w = next(iter(dataset))
    assert list(x) == ["trace"] and w.numpy().tolist() == [0, 1, 2, 3]
    assert len(list(dataset.take(10))) == 10  # repeats past the end
    with pytest.raises(ValueError, match="input_names"):
        make_dataset(samples, parts["val"], ts, ss, batch_size=4, shuffle=False, seed=0,
                     input_names=("image",))


def test_npz_source_keeps_its_own_settings_and_channels(tmp_path):
    path = tmp_path / "windows.npz"
    np.savez(
        path, traces=np.ones((6, 8, 2)), label=np.array([0, 1, 0, 0, 1, 0]),
        timestamp_ns=np.arange(6) * 10, settings=np.array([[1.0], [1], [2], [2], [2], [3]]),
        settings_names=np.array(["pv"]),
    )
    config = Config(data=b.data_config(path, source="npz"), reference=ReferenceConfig(count=0))
    samples = prepare_samples(config, progress=False)
    assert samples.trace_shape == (8, 2) and samples.settings_names == ("pv",)
    assert samples.group.tolist() == [0, 0, 1, 1, 1, 2]
    ts, ss = fit_scalers(samples, np.arange(4), ScalingConfig())
    x, y = next(iter(make_dataset(samples, np.arange(6), ts, ss, batch_size=6, shuffle=False, seed=0)))
    assert x["trace"].shape == (6, 8, 2) and x["settings"].shape == (6, 1) and y.shape == (6, 1)


def test_auto_streaming_follows_the_size_threshold(setup, tmp_path):
    cached = b.data_config(tmp_path / "dcm", cache_dir=str(tmp_path / "c"))
    small = Config(**{**setup.__dict__, "data": cached,
                      "train": TrainConfig(streaming="auto", streaming_threshold_mb=1)})
    big = Config(**{**setup.__dict__, "data": cached,
                    "train": TrainConfig(streaming="auto", streaming_threshold_mb=0)})
    no_cache = Config(**{**setup.__dict__, "train": TrainConfig(streaming="auto",
                                                                streaming_threshold_mb=0)})
    assert not prepare_samples(small, progress=False).streaming  # 72 x 32 floats fit in 1 MB
    assert prepare_samples(big, progress=False).streaming
    assert not prepare_samples(no_cache, progress=False).streaming  # nothing to stream from
