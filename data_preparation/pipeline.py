"""The data steps the train and test flows call, in order.

`prepare_samples` (pulses -> settings join -> filters -> configuration groups), then the flow
splits (`data_scaling.split_indices`), fits scalers on the training part (`fit_scalers`),
rebalances the training part (`balance_training`) and builds `tf.data` pipelines
(`make_dataset`), in memory or streamed from the HDF5 cache.

TensorFlow is imported inside `make_dataset` only, so the rest of the package stays light.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from data_preparation.data_loader import TraceStore, load_npz_pulses, load_pulses
from data_preparation.data_scaling import (
    SettingsScaler,
    TraceScaler,
    class_weights,
    smote,
    undersample,
)
from data_preparation.data_transformer import (
    attach_settings,
    config_groups,
    load_settings,
    production_mask,
    settings_columns,
)
from data_preparation.ledger import NO_SETTINGS, NON_PRODUCTION, DataLedger

logger = logging.getLogger(__name__)

SYNTHETIC = -1  # file_index / group / timestamp of SMOTE's synthetic samples


@dataclass
class SampleSet:
    """Model-ready samples in time order, with where they came from and what was dropped.

    Attributes:
        traces: float32 [n, L] (or [n, L, C] from npz) array, or a `TraceStore` (streaming).
        settings: float32 [n, k] beam settings in force at each pulse ([n, 0] without settings).
        settings_names: the k PV names.
        label: int8 [n]; timestamp_ns: int64 [n]; group: int64 [n] configuration group.
        file_index: int32 [n] into `files`; ledger: every skipped file and pulse.
    """

    traces: np.ndarray | TraceStore
    settings: np.ndarray
    settings_names: tuple[str, ...]
    label: np.ndarray
    timestamp_ns: np.ndarray
    group: np.ndarray
    file_index: np.ndarray
    files: list[str]
    ledger: DataLedger = field(default_factory=DataLedger)
    one_file_per_acquisition: bool = True  # DCM: a file is one acquisition; npz: windows apart

    @property
    def acquisition(self) -> np.ndarray | None:
        """An id per sample that a time split must not cut through (None: every sample apart)."""
        return self.file_index if self.one_file_per_acquisition else None

    def __len__(self) -> int:
        return int(self.label.size)

    @property
    def streaming(self) -> bool:
        """True when the traces are read lazily from the cache."""
        return isinstance(self.traces, TraceStore)

    @property
    def trace_shape(self) -> tuple[int, int]:
        """(length, channels) of one trace."""
        shape = tuple(self.traces.shape[1:])
        return (shape[0], shape[1] if len(shape) > 1 else 1)

    def take(self, indices) -> SampleSet:
        """The samples at `indices` (same file table and ledger)."""
        indices = np.asarray(indices, dtype=np.int64)
        traces = (
            self.traces.take(indices) if self.streaming else self.traces[indices]
        )
        return dataclasses.replace(
            self,
            traces=traces,
            settings=self.settings[indices],
            label=self.label[indices],
            timestamp_ns=self.timestamp_ns[indices],
            group=self.group[indices],
            file_index=self.file_index[indices],
        )

    def ledger_pulses(self, indices, reason: str, detail: str = "") -> None:
        """Ledger the pulses at `indices` as skipped for `reason`, one entry per file."""
        ledger_pulses(self.ledger, self.files, self.file_index[np.asarray(indices)], reason, detail)


def ledger_pulses(ledger: DataLedger, files, file_index, reason: str, detail: str = "") -> None:
    """Add one ledger entry per file with the number of its pulses in `file_index`."""
    file_index = np.asarray(file_index, dtype=np.int64)
    counts = np.bincount(file_index[file_index >= 0], minlength=len(files))
    for i in np.flatnonzero(counts):
        ledger.add(files[i], reason, int(counts[i]), detail)


# ----------------------------------------------------------------------------------------------
# Pulses + settings -> samples


def prepare_samples(
    config, *, dataset_loc=None, settings_location=None, progress: bool = True
) -> SampleSet:
    """Load pulses, attach beam settings, drop what cannot be used, label config groups.

    Args:
        config: the whole `Config`.
        dataset_loc, settings_location: override `data.dataset_loc` and
            `beam_settings.data_location` (the test flow's `--data DIR`).
        progress: show the file-reading progress bar.

    Pulses before the first settings row are ledgered `no_settings`, pulses failing the
    production filter `non_production`. An npz source carries its own settings (the
    `beam_settings` section is not used for it).
    """
    data_config = config.data
    if dataset_loc is not None:
        data_config = dataclasses.replace(data_config, dataset_loc=str(dataset_loc))
    pulses = _pulse_reader(data_config.source)(data_config, config.train, progress)
    n = len(pulses)
    keep = np.ones(n, dtype=bool)
    if pulses.settings is not None:
        settings, names = pulses.settings, tuple(pulses.settings_names)
    elif config.beam_settings.use:
        bpm = config.beam_settings
        if settings_location is not None:
            bpm = dataclasses.replace(bpm, data_location=str(settings_location))
        settings, names, keep = _join_settings(pulses, bpm)
    else:
        settings, names = np.zeros((n, 0)), ()
    kept = np.flatnonzero(keep)
    settings = np.asarray(settings[kept], dtype=np.float32)
    traces = pulses.traces
    if kept.size != n:
        traces = traces.take(kept) if isinstance(traces, TraceStore) else traces[kept]
    samples = SampleSet(
        traces=traces,
        settings=settings,
        settings_names=names,
        label=pulses.label[kept],
        timestamp_ns=pulses.timestamp_ns[kept],
        group=config_groups(settings, config.beam_settings.group_tolerance),
        file_index=pulses.file_index[kept],
        files=pulses.files,
        ledger=pulses.ledger,
        one_file_per_acquisition=data_config.source != "npz",
    )
    logger.info(
        "%d samples (%d errant precursors), %d settings, %d configuration groups.",
        len(samples), int(samples.label.sum()), len(names),
        int(samples.group.max()) + 1 if len(samples) else 0,
    )
    return samples


def _load_dcm(data_config, train_config, progress: bool):
    """Load pulses in memory or streamed, per `train.streaming` (auto: by size)."""
    mode = str(getattr(train_config, "streaming", "false")).lower()
    cached = data_config.cache_dir is not None
    if mode == "false" or (mode == "auto" and not cached):
        return load_pulses(data_config, progress=progress)
    pulses = load_pulses(data_config, progress=progress, stream=True)
    limit = int(train_config.streaming_threshold_mb) * 2**20
    if mode == "auto" and pulses.traces.nbytes <= limit:
        store = pulses.traces
        pulses.traces = store.to_array()
        store.close()
    else:
        logger.info("Streaming %.0f MB of traces from the cache.", pulses.traces.nbytes / 2**20)
    return pulses


def _load_npz(data_config, train_config, progress: bool):
    return load_npz_pulses(data_config.dataset_loc)


def _pulse_reader(source: str):
    """The pulse reader of `data.source` for the SNS flows (other sources: data_preparation.sources)."""
    readers = {"sns_dcm": _load_dcm, "npz": _load_npz}
    if source not in readers:
        raise ValueError(f"prepare_samples reads SNS pulses (sns_dcm, npz), not data.source="
                         f"{source!r}; use data_preparation.sources.load_samples for it.")
    return readers[source]


def _join_settings(pulses, bpm):
    """Settings at each pulse, and the mask of pulses that have them and pass the filter."""
    columns = settings_columns(bpm)
    values = attach_settings(pulses.timestamp_ns, load_settings(bpm), columns)
    has_settings = ~np.isnan(values).any(axis=1)
    ledger_pulses(
        pulses.ledger, pulses.files, pulses.file_index[~has_settings], NO_SETTINGS,
        "pulse precedes the first beam-settings row",
    )
    rules = dict(bpm.production_filter)
    production = production_mask(values, columns, rules)
    failed = has_settings & ~production
    ledger_pulses(
        pulses.ledger, pulses.files, pulses.file_index[failed], NON_PRODUCTION,
        "settings fail the production filter " + ", ".join(f"{k} >= {v:g}" for k, v in rules.items()),
    )
    features = [columns.index(pv) for pv in bpm.features]
    return values[:, features], tuple(bpm.features), has_settings & production


# ----------------------------------------------------------------------------------------------
# Scalers and balancing on the training part


class _Rows:
    """Rows `indices` of an array, read on demand (lets a scaler fit without a copy)."""

    def __init__(self, array, indices):
        self.array, self.indices = array, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.array[self.indices[key]])


def fit_scalers(samples: SampleSet, train_idx, scaling_config, seed: int = 0):
    """Fit `(TraceScaler, SettingsScaler)` on the training pulses `train_idx` only."""
    train_idx = np.asarray(train_idx, dtype=np.int64)
    trace_scaler = TraceScaler(scaling_config.trace_scaler, random_state=seed)
    trace_scaler.fit(_Rows(samples.traces, train_idx))
    settings_scaler = SettingsScaler(scaling_config.settings_scaler)
    settings_scaler.fit(samples.settings[train_idx])
    return trace_scaler, settings_scaler


def balance_training(
    samples: SampleSet,
    train_idx,
    scaling_config,
    trace_scaler: TraceScaler,
    settings_scaler: SettingsScaler,
    seed: int = 0,
) -> tuple[SampleSet, np.ndarray, dict[int, float] | None]:
    """Apply `scaling.imbalance` to the training part: `(samples, train indices, class weights)`.

    * `class_weight`: samples unchanged, balanced class weights for `fit`.
    * `undersample`: fewer majority indices.
    * `smote`: a new in-memory `SampleSet` of the training rows plus synthetic minority rows,
      interpolated in scaled `[trace | settings]` space between training rows only (synthetic
      rows have file_index, group and timestamp -1). Needs in-memory traces.
    * `none`: unchanged.
    """
    train_idx = np.asarray(train_idx, dtype=np.int64)
    kind = scaling_config.imbalance
    labels = samples.label[train_idx]
    if kind == "class_weight":
        return samples, train_idx, class_weights(labels)
    if kind == "undersample":
        kept = undersample(train_idx, labels, scaling_config.undersample_ratio, seed)
        return samples, kept, None
    if kind == "none":
        return samples, train_idx, None
    if kind != "smote":
        raise ValueError(
            f"scaling.imbalance={kind!r} is not known; use class_weight, smote, undersample or none."
        )
    if samples.streaming:
        raise ValueError(
            "scaling.imbalance=smote needs the training traces in memory, but they are streamed "
            "from the cache; set train.streaming=false or use class_weight / undersample."
        )
    return _smote_samples(samples, train_idx, scaling_config, trace_scaler, settings_scaler, seed)


def _smote_samples(samples, train_idx, scaling_config, trace_scaler, settings_scaler, seed):
    traces = trace_scaler.transform(samples.traces[train_idx])
    settings = settings_scaler.transform(samples.settings[train_idx])
    trace_shape = traces.shape[1:]
    flat = np.concatenate([traces.reshape(len(train_idx), -1), settings], axis=1)
    x, y = smote(flat, samples.label[train_idx], scaling_config.smote_ratio, seed)
    n_real, n_all = len(train_idx), len(y)
    width = int(np.prod(trace_shape))
    new_traces = trace_scaler.inverse_transform(x[:, :width]).reshape((n_all, *trace_shape))
    new_settings = settings_scaler.inverse_transform(x[:, width:])
    synthetic = np.full(n_all - n_real, SYNTHETIC)
    resampled = SampleSet(
        traces=new_traces,
        settings=new_settings.astype(np.float32),
        settings_names=samples.settings_names,
        label=np.asarray(y, dtype=np.int8),
        timestamp_ns=np.concatenate([samples.timestamp_ns[train_idx], synthetic]),
        group=np.concatenate([samples.group[train_idx], synthetic]),
        file_index=np.concatenate([samples.file_index[train_idx], synthetic]).astype(np.int32),
        files=samples.files,
        ledger=samples.ledger,
    )
    logger.info("SMOTE: %d training samples -> %d (%d synthetic).", n_real, n_all, n_all - n_real)
    return resampled, np.arange(n_all), None


# ----------------------------------------------------------------------------------------------
# tf.data


def make_dataset(
    samples: SampleSet,
    indices,
    trace_scaler: TraceScaler,
    settings_scaler: SettingsScaler,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    input_names: Sequence[str] = ("trace", "settings"),
    sample_weight=None,
    repeat: bool = False,
):
    """A `tf.data.Dataset` of `({"trace": [b, L, C], "settings": [b, k]}, label [b, 1][, w])`.

    In-memory traces are scaled once and sliced; a `TraceStore` is streamed batch by batch
    from the cache and scaled per batch, so memory holds only the index arrays (and the small
    settings matrix). With `shuffle`, the order changes every epoch, reproducibly from `seed`.
    `sample_weight` (optional) is aligned with `indices`. Input names other than "trace" and
    "settings" are not known.
    """
    import tensorflow as tf

    indices = np.asarray(indices, dtype=np.int64)
    unknown = sorted(set(input_names) - {"trace", "settings"})
    if unknown or "trace" not in input_names:
        raise ValueError(
            f"make_dataset: input_names must hold 'trace' and optionally 'settings', got "
            f"{list(input_names)}."
        )
    if indices.size == 0:
        raise ValueError("make_dataset: no samples (empty indices).")
    labels = samples.label[indices].astype(np.float32)[:, None]
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
    if weights is not None and weights.shape != indices.shape:
        raise ValueError(
            f"make_dataset: sample_weight has shape {weights.shape}, expected {indices.shape}."
        )
    with_settings = "settings" in input_names
    settings = settings_scaler.transform(samples.settings[indices]) if with_settings else None
    if samples.streaming:
        dataset = _streamed(
            samples.traces, indices, trace_scaler, settings, labels, weights,
            batch_size=batch_size, shuffle=shuffle, seed=seed,
        )
    else:
        inputs = {"trace": _channels_last(_scaled(samples.traces, indices, trace_scaler))}
        if with_settings:
            inputs["settings"] = settings
        parts = (inputs, labels) if weights is None else (inputs, labels, weights)
        dataset = tf.data.Dataset.from_tensor_slices(parts)
        if shuffle:
            dataset = dataset.shuffle(indices.size, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size)
    if repeat:
        dataset = dataset.repeat()
    return dataset.prefetch(tf.data.AUTOTUNE)


def _scaled(traces: np.ndarray, indices: np.ndarray, scaler, chunk: int = 1024) -> np.ndarray:
    """`scaler.transform(traces[indices])` built chunk by chunk: one copy of the part, not two."""
    out = np.empty((indices.size, *traces.shape[1:]), dtype=np.float32)
    for start in range(0, indices.size, chunk):
        out[start : start + chunk] = scaler.transform(traces[indices[start : start + chunk]])
    return out


def _channels_last(traces: np.ndarray) -> np.ndarray:
    return traces[..., None] if traces.ndim == 2 else traces


def _streamed(store, indices, trace_scaler, settings, labels, weights, *, batch_size, shuffle, seed):
    """Batches read from the cache by a generator; a new seeded order each epoch."""
    import tensorflow as tf

    epoch = [0]

    def batches():
        if shuffle:
            order = np.random.default_rng([seed, epoch[0]]).permutation(indices.size)
        else:
            order = np.arange(indices.size)
        epoch[0] += 1
        for start in range(0, indices.size, batch_size):
            pos = order[start : start + batch_size]
            inputs = {"trace": _channels_last(trace_scaler.transform(store.read(indices[pos])))}
            if settings is not None:
                inputs["settings"] = settings[pos]
            yield (inputs, labels[pos]) if weights is None else (inputs, labels[pos], weights[pos])

    spec = {"trace": tf.TensorSpec((None, store.shift, 1), tf.float32)}
    if settings is not None:
        spec["settings"] = tf.TensorSpec((None, settings.shape[1]), tf.float32)
    signature = (spec, tf.TensorSpec((None, 1), tf.float32))
    if weights is not None:
        signature += (tf.TensorSpec((None,), tf.float32),)
    return tf.data.Dataset.from_generator(batches, output_signature=signature)
