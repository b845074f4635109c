"""tf.data pipelines for training and scoring: scaled traces, settings, references and history
with labels.

`make_dataset` slices in-memory samples once they are scaled, or streams a `TraceStore` from the
HDF5 cache batch by batch, so memory holds only index arrays. `model_inputs` gives the same
scaled inputs as NumPy arrays, for in-memory data fed straight to `model.fit` under a Keras
backend other than TensorFlow (JAX, PyTorch). It lives with training because it is where data
meets TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from data_preparation.scalers import SettingsScaler, TraceScaler

if TYPE_CHECKING:
    from data_preparation.sample_set import SampleSet

INPUT_NAMES = ("trace", "settings", "reference", "history", "history_count")


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
    epochs: tuple[int, int] | None = None,
):
    """A `tf.data.Dataset` of `({"trace": [b, L, C], "settings": [b, k]}, label [b, 1][, w])`.

    In-memory traces are scaled once, held once and gathered per batch; a `TraceStore` is
    streamed batch by batch from the cache and scaled per batch, so memory holds only the index
    arrays (and the small settings matrix). With `shuffle`, the order changes every epoch,
    reproducibly from `seed`. `sample_weight` (optional) is aligned with `indices`.
    "reference" in `input_names` adds the reference windows, float32 [b, K, L, C], scaled by
    the trace scaler (the model then compares like with like); "history" the N in-file pulses
    before each sample, float32 [b, N, L, C], scaled alike, and "history_count" int32 [b, 1]
    their filled (last) slots. Other input names are not known.

    `epochs=(first, stop)` (with `shuffle`) makes one pass holding epochs first..stop-1 back to
    back, each in an order that depends only on `seed` and the epoch number (fit it with
    `steps_per_epoch=ceil(len(indices) / batch_size)`): a run resumed at epoch `first` then
    sees exactly the batches an uninterrupted run would have.
    """
    import tensorflow as tf

    indices = np.asarray(indices, dtype=np.int64)
    _check_request(samples, indices, input_names)
    with_references = "reference" in input_names
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
            batch_size=batch_size, shuffle=shuffle, seed=seed, epochs=epochs,
            references=samples.references if with_references else None,
            history=samples.history if "history" in input_names else None,
            history_count=(samples.history_count[indices][:, None]
                           if "history_count" in input_names else None),
        )
    else:
        inputs = model_inputs(samples, indices, trace_scaler, settings_scaler, input_names)
        parts = (inputs, labels) if weights is None else (inputs, labels, weights)
        if shuffle and epochs is not None:
            dataset = _epoch_keyed(parts, indices.size, batch_size, seed, epochs)
        elif shuffle:
            dataset = tf.data.Dataset.from_tensor_slices(parts)
            dataset = dataset.shuffle(indices.size, seed=seed, reshuffle_each_iteration=True)
            dataset = dataset.batch(batch_size)
        else:
            dataset = tf.data.Dataset.from_tensor_slices(parts).batch(batch_size)
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


def _reference_channels(references: np.ndarray) -> np.ndarray:
    """[b, K, L] -> [b, K, L, 1]; [b, K, L, C] stays."""
    return references[..., None] if references.ndim == 3 else references


def _epoch_keyed(parts, n: int, batch_size: int, seed: int, epochs: tuple[int, int]):
    """Epochs first..stop-1 back to back, epoch e shuffled by (seed, e) alone.

    The shuffle runs over row numbers, not rows: the rows are held once (as tensors) and each
    batch gathers its rows. Shuffling the rows themselves held one shuffled copy of the whole
    training part per epoch (12 epochs of a 1 GB realistic fold: 17.5 GB resident); the order,
    and so every batch, is the same (tf.data's shuffle order depends only on the seed, the
    buffer size and the count). The per-epoch seeds are Python ints: a tensor seed (e.g. from
    `Dataset.range(...).flat_map`) fails in `shuffle` once a global seed is set, as
    `keras.utils.set_random_seed` does.
    """
    import tensorflow as tf

    tensors = tf.nest.map_structure(tf.convert_to_tensor, parts)
    first, stop = (int(e) for e in epochs)
    mixed = int(seed) * 1_000_003  # distinct seeds for (seed, epoch) pairs in practice
    keyed = None
    for epoch in range(first, max(stop, first + 1)):
        one = tf.data.Dataset.range(n).shuffle(n, seed=mixed + epoch,
                                                reshuffle_each_iteration=False).batch(batch_size)
        keyed = one if keyed is None else keyed.concatenate(one)
    return keyed.map(lambda rows: tf.nest.map_structure(lambda t: tf.gather(t, rows), tensors))


def _streamed(store, indices, trace_scaler, settings, labels, weights, *, batch_size, shuffle, seed,
              epochs=None, references=None, history=None, history_count=None):
    """Batches read from the cache by a generator; a new seeded order each epoch.

    With `epochs=(first, stop)` one pass yields those epochs back to back, epoch e in the
    order of (seed, e), as the in-memory `_epoch_keyed`.
    """
    import tensorflow as tf

    epoch = [0]

    def batches():
        if epochs is not None:
            for number in range(*epochs):
                yield from one_epoch(number)
            return
        number = epoch[0]
        epoch[0] += 1
        yield from one_epoch(number)

    def one_epoch(number):
        if shuffle:
            order = np.random.default_rng([seed, number]).permutation(indices.size)
        else:
            order = np.arange(indices.size)
        for start in range(0, indices.size, batch_size):
            pos = order[start : start + batch_size]
            inputs = {"trace": _channels_last(trace_scaler.transform(store.read(indices[pos])))}
            if settings is not None:
                inputs["settings"] = settings[pos]
            if references is not None:
                inputs["reference"] = _reference_channels(
                    trace_scaler.transform(references.read(indices[pos]))
                )
            if history is not None:
                inputs["history"] = _reference_channels(
                    trace_scaler.transform(history.read(indices[pos])))
            if history_count is not None:
                inputs["history_count"] = history_count[pos]
            yield (inputs, labels[pos]) if weights is None else (inputs, labels[pos], weights[pos])

    spec = {"trace": tf.TensorSpec((None, store.shift, 1), tf.float32)}
    if settings is not None:
        spec["settings"] = tf.TensorSpec((None, settings.shape[1]), tf.float32)
    if references is not None:
        spec["reference"] = tf.TensorSpec((None, references.shape[1], store.shift, 1), tf.float32)
    if history is not None:
        spec["history"] = tf.TensorSpec((None, history.shape[1], store.shift, 1), tf.float32)
    if history_count is not None:
        spec["history_count"] = tf.TensorSpec((None, 1), tf.int32)
    signature = (spec, tf.TensorSpec((None, 1), tf.float32))
    if weights is not None:
        signature += (tf.TensorSpec((None,), tf.float32),)
    # A generator's length is unknown to tf.data; stating it lets Keras count the steps of an
    # epoch instead of warning, after the first, that the input "ran out of data".
    n_batches = -(-indices.size // batch_size) * (1 if epochs is None else len(range(*epochs)))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches))


def model_inputs(
    samples: SampleSet,
    indices,
    trace_scaler: TraceScaler,
    settings_scaler: SettingsScaler,
    input_names: Sequence[str] = ("trace", "settings"),
) -> dict[str, np.ndarray]:
    """The scaled inputs of in-memory samples `indices` as NumPy arrays, keyed by input name.

    What `make_dataset` slices; also what `model.fit` takes directly under a Keras backend
    other than TensorFlow. Traces [n, L, C]; settings [n, k]; references [n, K, L, C] and
    history [n, N, L, C], scaled by the trace scaler so the model compares like with like;
    history_count int32 [n, 1].
    """
    indices = np.asarray(indices, dtype=np.int64)
    _check_request(samples, indices, input_names)
    if samples.streaming:
        raise ValueError(
            "model_inputs: the traces are streamed from the cache; use make_dataset (TensorFlow) "
            "or set train.streaming=false."
        )
    inputs = {"trace": _channels_last(_scaled(samples.traces, indices, trace_scaler))}
    if "settings" in input_names:
        inputs["settings"] = settings_scaler.transform(samples.settings[indices])
    if "reference" in input_names:
        inputs["reference"] = _reference_channels(
            _scaled(samples.references, indices, trace_scaler)
        )
    if "history" in input_names:
        inputs["history"] = _reference_channels(_scaled(samples.history, indices, trace_scaler))
    if "history_count" in input_names:
        inputs["history_count"] = samples.history_count[indices][:, None]
    return inputs


def _check_request(samples, indices: np.ndarray, input_names: Sequence[str]) -> None:
    """One clear error for input names, missing references or an empty part."""
    unknown = sorted(set(input_names) - set(INPUT_NAMES))
    if unknown or "trace" not in input_names:
        raise ValueError(
            f"make_dataset: input_names must hold 'trace' and optionally "
            f"{', '.join(repr(n) for n in INPUT_NAMES[1:])}, got {list(input_names)}."
        )
    if "reference" in input_names and samples.references is None:
        raise ValueError(
            "make_dataset: the model takes a 'reference' input but the samples carry no "
            "references; set reference.count > 0 (DCM source), give the npz `references` and "
            "`reference_timestamp_ns` arrays, and do not use scaling.imbalance=smote "
            "(synthetic samples have no references)."
        )
    if {"history", "history_count"} & set(input_names) and samples.history is None:
        raise ValueError(
            "make_dataset: the model takes a 'history' input but the samples carry no history; "
            "set history.count > 0 (DCM source) and do not use scaling.imbalance=smote "
            "(synthetic samples have no history)."
        )
    if indices.size == 0:
        raise ValueError("make_dataset: no samples (empty indices).")
