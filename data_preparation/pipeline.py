"""The data steps the train and test flows call, in order.

`prepare_samples` (pulses -> settings join -> filters -> configuration groups -> history and
reference pulses, `data_preparation.references`; the result a `sample_set.SampleSet`), then
the flow splits (`split.split_indices`), fits scalers on the training part (`fit_scalers`) and
rebalances the training part (`balance_training`); `training.dataset.make_dataset` then builds
the `tf.data` pipelines, in memory or streamed from the HDF5 cache. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from data_preparation.data_loader import load_pulses
from data_preparation.data_transformer import (
    attach_settings,
    config_groups,
    load_settings,
    settings_columns,
    settings_timestamps_ns,
    settings_verdicts,
)
from data_preparation.imbalance import class_weights, smote, undersample
from data_preparation.ledger import (
    NO_REFERENCE,
    NO_SETTINGS,
    NON_PRODUCTION,
    STALE_SETTINGS,
)
from data_preparation.npz_source import load_npz_pulses
from data_preparation.references import (
    EmptySlots,
    ReferenceView,
    plan_references,
    resolve_in_place,
    source_counts,
)
from data_preparation.sample_set import SampleSet, ledger_pulses
from data_preparation.scalers import SettingsScaler, TraceScaler
from data_preparation.trace_store import TraceStore

logger = logging.getLogger(__name__)

SYNTHETIC = -1  # file_index / group / timestamp of SMOTE's synthetic samples


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

    With `reference.count` K > 0, each sample then gets K reference pulses by the rule of
    `data_preparation.references` (in-file first, then earlier normal samples of its
    configuration group in THIS data); samples without enough are ledgered `no_reference`.
    With `history.count` N > 0 the in-file windows (`get_traces(references=N)`, the same
    extraction and cache) are the sample's history instead, and the references come from
    other acquisitions only (`reference.own_file` is false: the config refuses otherwise).
    The archive fallback sees only the pulses loaded here, so a test on another archive
    (`dataset_loc`) draws references from that archive's own past only. An npz source has
    references only when the npz holds them.
    """
    data_config = config.data
    if dataset_loc is not None:
        data_config = dataclasses.replace(data_config, dataset_loc=str(dataset_loc))
    k, n_history = config.reference.count, config.history.count
    # One in-file extraction: the history when it is on, else the in-file references.
    pulses = _pulse_reader(data_config.source)(data_config, config.train, progress,
                                               n_history or k)
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
    references = pulses.references if (k or n_history) else None
    if kept.size != n:
        traces = traces.take(kept) if isinstance(traces, TraceStore) else traces[kept]
        if isinstance(references, TraceStore):
            references = references.take(kept)
        elif references is not None:
            references = _compact_rows(references, kept)  # in place: no second full copy
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
    in_file_stamps = None if references is None else pulses.reference_timestamp_ns[kept]
    if n_history and references is not None:
        samples = _with_history(samples, references, in_file_stamps)
        references, in_file_stamps = None, np.full((len(samples), k), -1, np.int64)
    if k and in_file_stamps is not None:
        samples = _with_references(samples, references, in_file_stamps, config.reference)
    elif k:
        logger.warning("reference.count=%d but the npz %s holds no references: samples have "
                       "none (a reference model cannot be fed).", k, data_config.dataset_loc)
    logger.info(
        "%d samples (%d errant precursors), %d settings, %d configuration groups.",
        len(samples), int(samples.label.sum()), len(names),
        int(samples.group.max()) + 1 if len(samples) else 0,
    )
    return samples


def _load_dcm(data_config, train_config, progress: bool, references: int = 0):
    """Load pulses in memory or streamed, per `train.streaming` (auto: by size).

    In-file references travel like the traces: in memory, or as a lazy store over the same
    cache shards when streaming (they are K times the traces' size).
    """
    mode = str(getattr(train_config, "streaming", "false")).lower()
    cached = data_config.cache_dir is not None
    if mode == "false" or (mode == "auto" and not cached):
        return load_pulses(data_config, progress=progress, references=references)
    pulses = load_pulses(data_config, progress=progress, stream=True, references=references)
    limit = int(train_config.streaming_threshold_mb) * 2**20
    nbytes = pulses.traces.nbytes + (0 if pulses.references is None else pulses.references.nbytes)
    if mode == "auto" and nbytes <= limit:
        for name in ("traces", "references"):
            store = getattr(pulses, name)
            if store is not None:
                setattr(pulses, name, store.to_array())
                store.close()
    else:
        logger.info("Streaming %.0f MB of traces (and references) from the cache.",
                    nbytes / 2**20)
    return pulses


def _compact_rows(array: np.ndarray, kept: np.ndarray, chunk: int = 256) -> np.ndarray:
    """`array[kept]` for ascending `kept`, moved to the front in place; a view of the front.

    Chunk by chunk: each destination row `i` <= its source `kept[i]`, so no row is
    overwritten before it is read. Saves a full-size copy of the (large) references.
    """
    kept = np.asarray(kept, dtype=np.int64)
    for start in range(0, kept.size, chunk):
        part = kept[start : start + chunk]
        array[start : start + part.size] = array[part]
    return array[: kept.size]


def _with_history(samples: SampleSet, history, stamps: np.ndarray) -> SampleSet:
    """Attach the in-file windows as each sample's history (nothing else to decide: they are
    the N pulses strictly before it in its own file, right-aligned, -1 stamps where empty)."""
    if np.any(stamps >= samples.timestamp_ns[:, None]):
        raise ValueError("a history pulse is not earlier than its sample")  # get_traces' rule
    count = (stamps >= 0).sum(axis=1)
    logger.info("History (N=%d): %d samples with all %d slots, %d with fewer, %d with none.",
                stamps.shape[1], int((count == stamps.shape[1]).sum()), stamps.shape[1],
                int(((count > 0) & (count < stamps.shape[1])).sum()), int((count == 0).sum()))
    return dataclasses.replace(samples, history=history, history_timestamp_ns=stamps)


def _with_references(samples: SampleSet, references, in_file_stamps, reference_config
                     ) -> SampleSet:
    """Apply the reference rule; ledger and drop the samples left without enough references.

    `references` None: no in-file references (a history holds the in-file windows); every
    reference then comes from the archive (`reference.own_file` false).
    """
    if references is None:
        shape = (len(samples), in_file_stamps.shape[1], *samples.traces.shape[1:])
        references = (EmptySlots(shape[0], shape[1], shape[2:]) if samples.streaming
                      else np.zeros(shape, dtype=np.float32))
    plan = plan_references(
        in_file_stamps, samples.timestamp_ns, samples.label, samples.group,
        window_s=reference_config.window_s, min_count=reference_config.min_count,
        missing=reference_config.missing, own_file=reference_config.own_file,
        acquisition=(samples.acquisition if samples.acquisition is not None  # npz: windows apart
                     else np.arange(samples.timestamp_ns.size)),
        min_age_s=reference_config.min_age_s,
    )
    if isinstance(references, TraceStore | EmptySlots) or samples.streaming:
        resolved = ReferenceView(references, samples.traces, plan)
    else:
        resolved = resolve_in_place(plan, references, samples.traces)
    counts = source_counts(plan.source[~plan.missing])
    samples = dataclasses.replace(
        samples, references=resolved, reference_timestamp_ns=plan.timestamp_ns,
        reference_source=plan.source,
    )
    dropped = np.flatnonzero(plan.missing)
    if dropped.size:
        samples.ledger_pulses(
            dropped, NO_REFERENCE,
            f"fewer than {reference_config.min_count} reference pulses (none earlier in its "
            f"file or among the normal samples of its configuration group in the "
            f"{reference_config.window_s:g} s before it)",
        )
        samples = _drop(samples, np.flatnonzero(~plan.missing))
    logger.info(
        "References (K=%d): %d samples from the same file only, %d completed from the "
        "archive, %d judged against themselves, %d without (ledgered no_reference).",
        plan.source.shape[1], counts["same_file"], counts["archive"], counts["self"],
        dropped.size,
    )
    return samples


def _drop(samples: SampleSet, keep: np.ndarray) -> SampleSet:
    """`samples.take(keep)`, compacting in-memory traces, references and history in place."""
    if samples.streaming or not isinstance(samples.references, np.ndarray):
        return samples.take(keep)
    traces = _compact_rows(samples.traces, keep)
    references = _compact_rows(samples.references, keep)
    history = samples.history
    if isinstance(history, np.ndarray):
        history = _compact_rows(history, keep)
    empty = np.empty((len(samples), 0), dtype=np.float32)  # take() the small arrays only
    taken = dataclasses.replace(samples, traces=empty, references=empty,
                                history=None if history is None else empty).take(keep)
    return dataclasses.replace(taken, traces=traces, references=references, history=history)


def _load_npz(data_config, train_config, progress: bool, references: int = 0):
    """npz windows (their own references, if the file holds them)."""
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
    table = load_settings(bpm)
    values = attach_settings(pulses.timestamp_ns, table, columns)
    row_ns = settings_timestamps_ns(table)
    rules = dict(bpm.production_filter)
    verdicts = settings_verdicts(pulses.timestamp_ns, values, columns, rules,
                                 int(row_ns.max()) if row_ns.size else None,
                                 bpm.max_settings_age_s)
    details = {
        NO_SETTINGS: "pulse precedes the first beam-settings row",
        STALE_SETTINGS: f"pulse later than the last beam-settings row of {bpm.data_location} + "
                        f"beam_settings.max_settings_age_s={bpm.max_settings_age_s or 0:g} s",
        NON_PRODUCTION: "settings fail the production filter "
                        + ", ".join(f"{k} >= {v:g}" for k, v in rules.items()),
    }
    for reason, mask in verdicts.items():
        ledger_pulses(pulses.ledger, pulses.files, pulses.file_index[mask], reason,
                      details[reason])
    stale = verdicts[STALE_SETTINGS]
    if stale.any():
        logger.warning("%d pulse(s) lie past the beam-settings history of %s (+%g s): ledgered "
                       "stale_settings", int(stale.sum()), bpm.data_location,
                       bpm.max_settings_age_s)
    usable = ~np.logical_or.reduce(list(verdicts.values()))
    features = [columns.index(pv) for pv in bpm.features]
    return values[:, features], tuple(bpm.features), usable


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
    if not (np.isfinite(trace_scaler.center_) and np.isfinite(trace_scaler.scale_)):
        raise ValueError(
            f"the trace scaler fitted on the training part is not finite (centre "
            f"{trace_scaler.center_}, scale {trace_scaler.scale_}): the training traces hold "
            "NaN or inf samples")
    bad = np.flatnonzero(~np.isfinite(settings_scaler.center_))
    if bad.size:
        raise ValueError(
            f"the settings scaler fitted on the training part is not finite for "
            f"{samples.settings_names[int(bad[0])]!r}: its settings hold inf values")
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
