"""Epoch-keyed training order: a pass resumed at epoch e yields what an unbroken pass does."""

from __future__ import annotations

import numpy as np
import pytest

from data_preparation.ledger import DataLedger
from data_preparation.sample_set import SampleSet
from data_preparation.scalers import SettingsScaler, TraceScaler
from data_preparation.trace_store import TraceStore
from training.dataset import make_dataset


def _samples(tmp_path, streamed: bool) -> SampleSet:
    n, length = 20, 4
    traces = (np.arange(n, dtype=np.float32)[:, None] + np.zeros(length, np.float32))
    if streamed:
        import h5py

        from data_preparation.cache_checksums import row_checksums

        with h5py.File(tmp_path / "shard.h5", "w") as h5:
            h5["traces"] = traces
            h5["crc32"] = row_checksums(traces)
        traces = TraceStore([str(tmp_path / "shard.h5")], np.zeros(n), np.arange(n), length)
    return SampleSet(traces=traces, settings=np.zeros((n, 1), np.float32), settings_names=("pv",),
                     label=np.zeros(n, np.int8), timestamp_ns=np.arange(n, dtype=np.int64),
                     group=np.zeros(n, np.int64), file_index=np.zeros(n, np.int32), files=["f"],
                     ledger=DataLedger())


def _ids(dataset) -> list[int]:
    return [int(v) for x, _ in dataset for v in x["trace"].numpy()[:, 0, 0]]


@pytest.mark.parametrize("streamed", [False, True])
def test_resumed_pass_repeats_the_unbroken_order(tmp_path, streamed):
    samples = _samples(tmp_path, streamed)
    scalers = (TraceScaler("none").fit(np.zeros((1, 4))), SettingsScaler("none").fit(np.zeros((1, 1))))
    kwargs = dict(batch_size=8, shuffle=True, seed=4)
    idx = np.arange(20)
    unbroken = _ids(make_dataset(samples, idx, *scalers, epochs=(0, 3), **kwargs))
    resumed = _ids(make_dataset(samples, idx, *scalers, epochs=(1, 3), **kwargs))
    assert len(unbroken) == 60 and resumed == unbroken[20:]
    epochs = [unbroken[i * 20:(i + 1) * 20] for i in range(3)]
    assert all(sorted(e) == list(range(20)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch
