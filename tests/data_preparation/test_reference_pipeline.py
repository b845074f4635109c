"""Reference pulses through loader, cache, prepare_samples and make_dataset."""

import os

import numpy as np
import pytest

from data_preparation import data_loader
from data_preparation.data_loader import load_pulses
from data_preparation.ledger import NO_REFERENCE
from data_preparation.npz_source import load_npz_pulses
from data_preparation.pipeline import fit_scalers, prepare_samples
from data_preparation.references import SOURCE_ARCHIVE, SOURCE_EMPTY, SOURCE_FILE, ReferenceView
from enterprise_tools.trace_windows import get_traces
from parser.configs import (
    BPMDataConfig,
    Config,
    DCMDataConfig,
    ReferenceConfig,
    ScalingConfig,
    TrainConfig,
)
from tests.data_preparation import builders as b
from training.dataset import make_dataset


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    b.small_archive(root)
    return root


@pytest.fixture
def counted_reads(monkeypatch):
    calls = []

    def counting(path, *args, **kwargs):
        calls.append(os.path.basename(getattr(path, "name", path)))  # a path or a named buffer
        return get_traces(path, *args, **kwargs)

    monkeypatch.setattr(data_loader, "get_traces", counting)
    return calls


def pid_of(windows):
    """The pulse id a window came from (its first sample is pid + BEGIN / 1000); 0 = empty."""
    first = np.asarray(windows)[..., 0]
    return np.round(first - b.BEGIN / 1000 * (first != 0), 1)


def by_pid(traces, refs):
    return {float(p): pid_of(r).tolist() for p, r in zip(pid_of(traces), refs, strict=True)}


# In-file references of the small archive with K=2 (0 = empty slot).
IN_FILE = {1: [0, 0], 2: [0, 1], 3: [1, 2], 4: [0, 0], 5: [0, 4], 100: [0, 100.5],
           200: [0, 200.5]}


def test_loader_passes_in_file_references_through(archive):
    pulses = load_pulses(b.data_config(archive), progress=False, references=2)
    assert pulses.references.shape == (7, 2, b.SHIFT)
    assert by_pid(pulses.traces, pulses.references) == IN_FILE
    stamps = pulses.reference_timestamp_ns
    assert stamps.dtype == np.int64 and stamps.shape == (7, 2)
    assert np.all((stamps == -1) == (pid_of(pulses.references) == 0))
    assert load_pulses(b.data_config(archive), progress=False).references is None


def test_cache_round_trip_and_a_changed_k_invalidates(archive, tmp_path, counted_reads):
    cached = b.data_config(archive, cache_dir=str(tmp_path / "cache"))
    fresh = load_pulses(cached, progress=False, references=2)
    counted_reads.clear()
    warm = load_pulses(cached, progress=False, references=2)
    assert counted_reads == []  # all from the cache
    np.testing.assert_array_equal(warm.references, fresh.references)
    np.testing.assert_array_equal(warm.reference_timestamp_ns, fresh.reference_timestamp_ns)
    streamed = load_pulses(cached, progress=False, references=2, stream=True)
    assert streamed.references.shape == (7, 2, b.SHIFT)
    np.testing.assert_array_equal(streamed.references.read(np.arange(7)), fresh.references)
    counted_reads.clear()
    three = load_pulses(cached, progress=False, references=3)
    assert len(counted_reads) == 4 and three.references.shape == (7, 3, b.SHIFT)
    assert by_pid(three.traces, three.references)[3] == [0, 1, 2]
    counted_reads.clear()
    plain = load_pulses(cached, progress=False)  # K=0: its own folder, old layout
    assert len(counted_reads) == 4 and plain.references is None
    assert len(list((tmp_path / "cache").iterdir())) == 3


def config(root, tmp_path, count=2, cache=False, streaming="false", **reference):
    data = b.data_config(root, cache_dir=str(tmp_path / "cache") if cache else None)
    return Config(
        data=data, beam_settings=BPMDataConfig(use=False), train=TrainConfig(streaming=streaming),
        reference=ReferenceConfig(count=count, **reference),
    )


def test_prepare_samples_fills_from_the_archive_and_ledgers_the_rest(archive, tmp_path):
    samples = prepare_samples(config(archive, tmp_path), progress=False)
    # pid 1 is the first pulse of all: nothing earlier anywhere -> no_reference.
    assert by_pid(samples.traces, samples.references) == {
        2: [1, 1],  # in-file pid 1, padded
        3: [1, 2],
        100: [3, 100.5],  # the archive's latest normal sample before the context pulse
        4: [2, 3],  # archive; pid 100 is errant and never a reference
        5: [3, 4],
        200: [5, 200.5],
    }
    assert samples.reference_source[pid_of(samples.traces) == 100].tolist() == [
        [SOURCE_ARCHIVE, SOURCE_FILE]
    ]
    summary = {row["reason"]: row["pulses"] for row in samples.ledger.summary()}
    assert summary == {NO_REFERENCE: 1}
    assert samples.n_references == 2 and samples.reference_timestamp_ns.shape == (6, 2)
    part = samples.take([1, 0])
    assert by_pid(part.traces, part.references) == {3: [1, 2], 2: [1, 1]}


def test_window_and_missing_self(archive, tmp_path):
    narrow = config(archive, tmp_path, window_s=5 * b.PERIOD / 1e9)  # five pulse periods
    kept = pid_of(prepare_samples(narrow, progress=False).traces).tolist()
    assert 4 not in kept and 1 not in kept  # pid 4's archive references are 8 periods back
    alone = prepare_samples(config(archive, tmp_path, missing="self"), progress=False)
    first = pid_of(alone.traces) == 1
    assert by_pid(alone.traces[first], alone.references[first]) == {1: [1, 1]}
    assert alone.reference_source[first].tolist() == [[3, 3]] and len(alone.ledger) == 0


def test_make_dataset_feeds_scaled_references_in_memory_and_streamed(archive, tmp_path):
    memory = prepare_samples(config(archive, tmp_path, cache=True), progress=False)
    streamed = prepare_samples(config(archive, tmp_path, cache=True, streaming="true"),
                               progress=False)
    assert isinstance(streamed.references, ReferenceView) and not memory.streaming
    scaling = ScalingConfig(trace_scaler="standard")
    trace_scaler, settings_scaler = fit_scalers(memory, np.arange(4), scaling)
    idx = np.array([5, 0, 3])
    kwargs = dict(batch_size=2, shuffle=False, seed=0, input_names=("trace", "reference"))
    batches = {}
    for name, samples in (("memory", memory), ("streamed", streamed)):
        dataset = make_dataset(samples, idx, trace_scaler, settings_scaler, **kwargs)
        batches[name] = np.concatenate([x["reference"].numpy() for x, _ in dataset])
    expected = trace_scaler.transform(memory.references[idx])[..., None]
    assert batches["memory"].shape == (3, 2, b.SHIFT, 1) and batches["memory"].dtype == np.float32
    np.testing.assert_allclose(batches["memory"], expected, rtol=1e-6)
    np.testing.assert_allclose(batches["streamed"], expected, rtol=1e-6)
    assert not np.allclose(expected, memory.references[idx][..., None])  # really scaled


def test_reference_input_without_references_is_a_clear_error(archive, tmp_path):
    samples = prepare_samples(config(archive, tmp_path, count=0), progress=False)
    assert samples.references is None and samples.n_references == 0
    scalers = fit_scalers(samples, np.arange(4), ScalingConfig())
    with pytest.raises(ValueError, match="reference.count"):
        make_dataset(samples, np.arange(4), *scalers, batch_size=2, shuffle=False, seed=0,
                     input_names=("trace", "reference"))


def test_npz_references_are_read_and_checked(tmp_path):
    path = tmp_path / "w.npz"
    stamps = np.array([[-1, -1], [-1, 0], [0, 10]])
    np.savez(path, traces=np.ones((3, 4)), label=np.zeros(3, int), timestamp_ns=[0, 10, 20],
             references=np.ones((3, 2, 4)), reference_timestamp_ns=stamps)
    pulses = load_npz_pulses(path)
    assert pulses.references.shape == (3, 2, 4) and pulses.reference_timestamp_ns.tolist() == [
        [-1, -1], [-1, 0], [0, 10]]
    np.savez(path, traces=np.ones((3, 4)), label=np.zeros(3, int), timestamp_ns=[0, 10, 20],
             references=np.ones((3, 2, 5)), reference_timestamp_ns=stamps)
    with pytest.raises(ValueError, match="references must be numeric"):
        load_npz_pulses(path)


def test_simulated_archive_every_reference_is_earlier_and_of_the_same_group(
    simulated_archive, tmp_path
):
    cfg = Config(
        data=DCMDataConfig(dataset_loc=str(simulated_archive / "dcm"), workers=1,
                           cache_dir=str(tmp_path / "cache")),
        beam_settings=BPMDataConfig(data_location=str(simulated_archive / "beam_settings")),
        train=TrainConfig(streaming="false"),
        reference=ReferenceConfig(count=3),
    )
    samples = prepare_samples(cfg, progress=False)
    t, source, stamps = samples.timestamp_ns, samples.reference_source, samples.reference_timestamp_ns
    assert len(samples) > 50 and samples.references.shape == (len(samples), 3, 10_000)
    assert np.all(source != SOURCE_EMPTY)  # min_count=1 and padding: every slot is filled
    assert np.all(stamps < t[:, None])  # strictly causal
    assert (source == SOURCE_FILE).any() and (source == SOURCE_ARCHIVE).any()
    # Archive references are normal samples of the same configuration group, and the
    # window fed is that sample's own trace.
    position = {int(ts): i for i, ts in enumerate(t)}
    rows, slots = np.nonzero(source == SOURCE_ARCHIVE)
    for i, s in zip(rows, slots, strict=True):
        j = position.get(int(stamps[i, s]))
        if j is None:  # the referenced sample was itself dropped for lack of references
            continue
        assert samples.group[j] == samples.group[i] and samples.label[j] == 0
        np.testing.assert_array_equal(samples.references[i, s], samples.traces[j])
    # The streamed view reads the same windows.
    streamed = prepare_samples(
        Config(**{**cfg.__dict__, "train": TrainConfig(streaming="true")}), progress=False)
    np.testing.assert_array_equal(streamed.reference_timestamp_ns, stamps)
    some = np.linspace(0, len(samples) - 1, 7).astype(int)
    np.testing.assert_array_equal(streamed.references.read(some), samples.references[some])


def test_compacted_shards_keep_the_references(archive, tmp_path, counted_reads):
    cached = b.data_config(archive, cache_dir=str(tmp_path / "cache"))
    load_pulses(cached, progress=False, references=2)
    for round_ in range(3):  # rewrite the biggest file: its old rows become dead
        b.normal_file(archive / "normal" / "2024" / "n1.bin.gz", 0, [10 + round_, 20, 30, 40, 50])
        fresh = load_pulses(cached, progress=False, references=2)
    (folder,) = (tmp_path / "cache").iterdir()
    assert len(list(folder.glob("shard-*.h5"))) < 4  # compacted
    counted_reads.clear()
    warm = load_pulses(cached, progress=False, references=2)
    assert counted_reads == []
    np.testing.assert_array_equal(warm.references, fresh.references)
    np.testing.assert_array_equal(warm.reference_timestamp_ns, fresh.reference_timestamp_ns)
    assert by_pid(warm.traces, warm.references)[40] == [20, 30]


def test_model_inputs_off_tensorflow_equal_the_streamed_batches(archive, tmp_path):
    """What `model.fit` gets as NumPy arrays under JAX/PyTorch (training.fit._fit_arrays) is
    what the TensorFlow path streams from the cache, input by input."""
    from training.dataset import model_inputs

    memory = prepare_samples(config(archive, tmp_path, cache=True), progress=False)
    streamed = prepare_samples(config(archive, tmp_path, cache=True, streaming="true"),
                               progress=False)
    trace_scaler, settings_scaler = fit_scalers(memory, np.arange(4),
                                                ScalingConfig(trace_scaler="standard"))
    idx = np.array([5, 0, 3])
    names = ("trace", "settings", "reference")
    arrays = model_inputs(memory, idx, trace_scaler, settings_scaler, names)
    dataset = make_dataset(streamed, idx, trace_scaler, settings_scaler, batch_size=2,
                           shuffle=False, seed=0, input_names=names)
    batches = list(dataset)
    assert sorted(arrays) == sorted(names)
    for name in names:
        np.testing.assert_allclose(arrays[name], np.concatenate([x[name].numpy()
                                                                 for x, _ in batches]), rtol=1e-6)
    with pytest.raises(ValueError, match="streamed"):
        model_inputs(streamed, idx, trace_scaler, settings_scaler, names)
