"""tf.data pipelines for training and scoring: scaled traces (and settings) with labels.

`make_dataset` slices in-memory samples once they are scaled, or streams a `TraceStore` from the
HDF5 cache batch by batch, so memory holds only index arrays. It lives with training because
it is where data meets TensorFlow; `data_preparation.pipeline.make_dataset` stays importable
for existing callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from data_preparation.data_scaling import SettingsScaler, TraceScaler

if TYPE_CHECKING:
    from data_preparation.pipeline import SampleSet


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
