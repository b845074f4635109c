"""History pulses (history.count N) through loader, cache, prepare_samples and make_dataset.

The history of a sample is the N pulses strictly before it in its own file; its references
then come from other acquisitions only (reference.own_file false), by one rule for both
classes, so they are never inside the run-up that the history shows.
"""

import numpy as np
import pytest

from data_preparation.pipeline import fit_scalers, prepare_samples
from data_preparation.references import SOURCE_ARCHIVE, ReferenceView
from data_preparation.trace_store import TraceStore
from parser.configs import (
    BPMDataConfig,
    Config,
    DCMDataConfig,
    HistoryConfig,
    ModelConfig,
    ReferenceConfig,
    ScalingConfig,
    TrainConfig,
)
from tests.data_preparation import builders as b
from tests.data_preparation.test_reference_pipeline import by_pid, pid_of
from training.dataset import make_dataset, model_inputs

HISTORY_MODEL = ModelConfig(name="sns_history_siamese")


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    b.small_archive(root)
    return root


def config(root, tmp_path, streaming="false", n=2, k=2):
    cached = streaming != "false"
    data = b.data_config(root, cache_dir=str(tmp_path / "cache") if cached else None)
    return Config(
        data=data, beam_settings=BPMDataConfig(use=False), train=TrainConfig(streaming=streaming),
        model=HISTORY_MODEL, history=HistoryConfig(count=n),
        reference=ReferenceConfig(count=k, own_file=False, min_age_s=0.0),
    )


# pid -> history (0 = an empty slot): the pulses before it in its own file, right-aligned.
HISTORY = {4: [0, 0], 5: [0, 4], 100: [0, 100.5], 200: [0, 200.5]}
# pid -> references: normal samples of OTHER acquisitions that began before its own. The
# whole of n1 (pids 1-3, the first acquisition) has none and is ledgered no_reference.
REFERENCES = {4: [2, 3], 5: [2, 3], 100: [2, 3], 200: [4, 5]}


def test_history_is_the_own_file_run_up_and_references_come_from_elsewhere(archive, tmp_path):
    samples = prepare_samples(config(archive, tmp_path), progress=False)
    assert by_pid(samples.traces, samples.history) == HISTORY
    assert by_pid(samples.traces, samples.references) == REFERENCES
    # in time order: 100, 4, 5, 200
    assert samples.n_history == 2 and samples.history_count.tolist() == [1, 0, 1, 1]
    stamps = samples.history_timestamp_ns
    assert np.all((stamps == -1) == (pid_of(samples.history) == 0))  # masked slots are empty
    assert np.all(stamps < samples.timestamp_ns[:, None])  # strictly earlier
    assert np.all(samples.reference_source == SOURCE_ARCHIVE)  # both classes alike
    part = samples.take([3, 1])
    assert by_pid(part.traces, part.history) == {200: [0, 200.5], 4: [0, 0]}
    assert part.history_count.tolist() == [1, 0]


def test_history_longer_than_the_file_is_masked_and_history_off_changes_nothing(
        archive, tmp_path):
    long = prepare_samples(config(archive, tmp_path, n=4), progress=False)
    assert by_pid(long.traces, long.history)[5] == [0, 0, 0, 4]
    assert long.history_count.tolist() == [1, 0, 1, 1]
    off = prepare_samples(Config(data=b.data_config(archive), beam_settings=BPMDataConfig(
        use=False), reference=ReferenceConfig(count=2)), progress=False)
    assert off.history is None and off.n_history == 0 and off.history_count is None
    assert by_pid(off.traces, off.references)[3] == [1, 2]  # in-file references as before


def test_streamed_history_equals_the_in_memory_one_scaled_alike(archive, tmp_path):
    memory = prepare_samples(config(archive, tmp_path), progress=False)
    streamed = prepare_samples(config(archive, tmp_path, streaming="true"), progress=False)
    assert isinstance(streamed.history, TraceStore)
    assert isinstance(streamed.references, ReferenceView)
    np.testing.assert_array_equal(streamed.history.read(np.arange(4)), memory.history)
    np.testing.assert_array_equal(streamed.references.read(np.arange(4)), memory.references)
    np.testing.assert_array_equal(streamed.history_timestamp_ns, memory.history_timestamp_ns)
    trace_scaler, settings_scaler = fit_scalers(memory, np.arange(4),
                                                ScalingConfig(trace_scaler="standard"))
    idx = np.array([3, 0, 1])
    names = ("trace", "reference", "history", "history_count")
    expected = model_inputs(memory, idx, trace_scaler, settings_scaler, names)
    np.testing.assert_allclose(expected["history"],
                               trace_scaler.transform(memory.history[idx])[..., None], rtol=1e-6)
    assert expected["history_count"].tolist() == [[1], [1], [0]]
    assert expected["history_count"].dtype == np.int32
    for samples in (memory, streamed):
        batches = list(make_dataset(samples, idx, trace_scaler, settings_scaler, batch_size=2,
                                    shuffle=False, seed=0, input_names=names))
        for name in names:
            np.testing.assert_allclose(
                np.concatenate([x[name].numpy() for x, _ in batches]), expected[name], rtol=1e-6)


def test_history_input_without_history_is_a_clear_error(archive, tmp_path):
    samples = prepare_samples(Config(data=b.data_config(archive), beam_settings=BPMDataConfig(
        use=False), reference=ReferenceConfig(count=2)), progress=False)
    scalers = fit_scalers(samples, np.arange(4), ScalingConfig())
    with pytest.raises(ValueError, match="history.count"):
        make_dataset(samples, np.arange(4), *scalers, batch_size=2, shuffle=False, seed=0,
                     input_names=("trace", "history"))


def test_simulated_archive_references_never_inside_a_run_up_for_either_class(
        simulated_archive, tmp_path):
    min_age_s = 60.0
    cfg = Config(
        data=DCMDataConfig(dataset_loc=str(simulated_archive / "dcm"), workers=1,
                           cache_dir=str(tmp_path / "cache"), shift=2000),
        beam_settings=BPMDataConfig(data_location=str(simulated_archive / "beam_settings")),
        train=TrainConfig(streaming="false"), model=HISTORY_MODEL, history=HistoryConfig(count=3),
        reference=ReferenceConfig(count=3, own_file=False, min_age_s=min_age_s),
    )
    samples = prepare_samples(cfg, progress=False)
    t, label, acq = samples.timestamp_ns, samples.label, samples.file_index
    assert label.sum() >= 3 and (label == 0).sum() >= 20
    start = {a: t[acq == a].min() for a in np.unique(acq)}
    began = np.array([start[a] for a in acq])
    refs = samples.reference_timestamp_ns
    # References: the same rule for both classes, outside the sample's acquisition and its
    # run-up (at least min_age_s before the acquisition began), from normal samples.
    assert np.all(samples.reference_source == SOURCE_ARCHIVE)
    assert np.all(refs <= began[:, None] - int(min_age_s * 1e9))
    # ... and their age tells the classes apart no better than chance (AUC of the mean age)
    age = (t[:, None] - refs).mean(axis=1)
    errant, normal = age[label == 1], age[label == 0]
    auc = ((errant[:, None] > normal[None, :]).mean()
           + 0.5 * (errant[:, None] == normal[None, :]).mean())
    assert 0.3 < auc < 0.7, auc
    own = {int(s): a for s, a in zip(t, acq, strict=True)}
    assert all(own.get(int(s), -1) != a for row, a in zip(refs, acq, strict=True) for s in row)
    # History: strictly earlier, masked where the file holds less, and from the sample's own
    # file: a normal file's pulses are its samples, so those stamps are samples of that file.
    hist = samples.history_timestamp_ns
    assert np.all(hist < t[:, None]) and (samples.history_count < 3).any()
    filled = np.flatnonzero((label == 0)[:, None].repeat(3, axis=1).ravel() & (hist.ravel() >= 0))
    rows = filled // 3
    found = [own.get(int(s)) for s in hist.ravel()[filled]]
    assert sum(f == acq[r] for f, r in zip(found, rows, strict=True)) >= 0.9 * len(rows)
    assert not any(f is not None and f != acq[r] for f, r in zip(found, rows, strict=True))
