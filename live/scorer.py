"""Score raw pulses with an exported artefact (SavedModel, LiteRT or ONNX), one API for all.

A backend takes raw inputs by name ("trace" [L] or [L, C], "settings" [S], "reference"
[K, L(, C)], a history model's "history" [N, L(, C)] and "history_count" [], no batch axis) and
returns the score; `score_batch` takes the same with a batch axis.
The live flow (`live.watch`, the stream benchmark) and the export's parity check go through
these classes, so what is measured is what a caller deploys. Which class scores which artefact
is said by the export-format registry (`live.formats`: `load_backend`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from live.serving import ENCODE_ONCE_SIGNATURES, InputLayout


class SavedModelBackend:
    """The exported SavedModel: `serve_one` (XLA, batch 1) per pulse, `serving_default` (plain
    graph, any batch) for a file's pulses at once. A reference model's export also encodes once
    (`encodes`): `encode_*` turns raw traces into features, `score_encoded_*` scores a pulse from
    its own and its references' stored features."""

    def __init__(self, path: Path, layout: InputLayout):
        import tensorflow as tf

        self._tf = tf
        self.layout = layout
        self.name = "saved_model"
        loaded = tf.saved_model.load(str(path))
        self._loaded = loaded  # keeps the variables alive
        self._one = loaded.signatures["serve_one"]
        self._many = loaded.signatures["serving_default"]
        self.encodes = all(n in loaded.signatures for n in ENCODE_ONCE_SIGNATURES)
        self._signatures = loaded.signatures

    def encode_one(self, trace) -> np.ndarray:
        """Features of one raw trace ([L] or [L, C])."""
        tf = self._tf
        out = self._signatures["encode_one"](trace=tf.constant(np.asarray(trace, np.float32)[None]))
        return out["features"].numpy()[0]

    def encode_batch(self, traces, batch_size: int = 256) -> np.ndarray:
        """Features of raw traces [n, L(, C)]."""
        tf = self._tf
        parts = []
        for start in range(0, len(traces), batch_size):
            part = np.asarray(traces[start:start + batch_size], np.float32)
            out = self._signatures["encode"](trace=tf.constant(_padded(part)))["features"]
            parts.append(out.numpy()[:len(part)])
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def _feature_args(self, pulse, references, settings) -> dict:
        tf = self._tf
        args = {"pulse_features": tf.constant(np.asarray(pulse, np.float32)),
                "reference_features": tf.constant(np.asarray(references, np.float32))}
        if self.layout.n_settings:
            args["settings"] = tf.constant(np.asarray(settings, np.float32))
        return args

    def encode_and_score_one(self, trace, references, settings=None) -> tuple[float, np.ndarray]:
        """(score, features) of one new pulse from its raw trace and its references' stored
        features [K, ...]: one call, the live per-pulse path."""
        tf = self._tf
        args = {"trace": tf.constant(np.asarray(trace, np.float32)[None]),
                "reference_features": tf.constant(np.asarray(references, np.float32)[None])}
        if self.layout.n_settings:
            args["settings"] = tf.constant(np.asarray(settings, np.float32)[None])
        out = self._signatures["encode_and_score_one"](**args)
        return float(out["score"].numpy()[0]), out["features"].numpy()[0]

    def score_encoded_batch(self, pulse, references, settings=None,
                            batch_size: int = 256) -> np.ndarray:
        """Scores from features [n, ...], reference features [n, K, ...], settings [n, S]."""
        out = []
        for start in range(0, len(pulse), batch_size):
            part = slice(start, start + batch_size)
            rows = len(pulse[part])
            args = self._feature_args(
                _padded(pulse[part]), _padded(references[part]),
                None if settings is None else _padded(np.asarray(settings[part], np.float32)))
            out.append(self._signatures["score"](**args)["score"].numpy()[:rows])
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def score_one(self, raw: dict) -> float:
        tf = self._tf
        args = {n: tf.constant(np.asarray(raw[n], dtype=np.float32)[None]) for n in self.layout.names}
        return float(self._one(**args)["score"].numpy()[0])

    def score_batch(self, raw: dict, batch_size: int = 256) -> np.ndarray:
        n = len(raw["trace"])
        tf = self._tf
        out = []
        for start in range(0, n, batch_size):
            args = {k: tf.constant(np.asarray(raw[k][start:start + batch_size], np.float32))
                    for k in self.layout.names}
            out.append(self._many(**args)["score"].numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def _padded(batch: np.ndarray) -> np.ndarray:
    """The batch padded (repeating its last row) to the next power of two: the XLA-compiled
    encode-once signatures compile once per batch size, so a stream of varying file sizes
    compiles a handful of times, not once per size."""
    n = len(batch)
    size = 1 << max(0, (n - 1).bit_length())
    if size == n or n == 0:
        return batch
    return np.concatenate([batch, np.repeat(batch[-1:], size - n, axis=0)])


def score_each(backend, raw: dict) -> np.ndarray:
    """Scores of a batch of raw inputs, one pulse at a time through `backend.score_one`."""
    n = len(raw["trace"])
    return np.array([backend.score_one({k: raw[k][i] for k in backend.layout.names})
                     for i in range(n)], dtype=np.float64)


def score_batch(backend, raw: dict) -> np.ndarray:
    """Scores of a batch of raw inputs through the backend's own batch call."""
    return backend.score_batch(raw)


def score_encoded(backend, raw: dict) -> np.ndarray:
    """Scores of a batch of raw inputs through a SavedModel's encode-once signatures, each
    pulse and each reference encoded alone (as live scoring does)."""
    references = raw["reference"]
    pulse = backend.encode_batch(raw["trace"])
    stored = backend.encode_batch(references.reshape(-1, *references.shape[2:]))
    stored = stored.reshape(len(references), references.shape[1], *stored.shape[1:])
    return backend.score_encoded_batch(pulse, stored, raw.get("settings"))


class LiteRTBackend:
    """A batch-1 LiteRT model, run by `ai_edge_litert` when installed, else `tf.lite`."""

    def __init__(self, path: Path, layout: InputLayout, num_threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated
            warnings.simplefilter("ignore")
            self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._runner = self._interpreter.get_signature_runner()
        self.layout = layout
        self.encodes = False
        self.name = f"litert:{Path(path).name}"

    def score_one(self, raw: dict) -> float:
        out = self._runner(**{n: np.asarray(raw[n], dtype=np.float32)[None]
                              for n in self.layout.names})
        return float(next(iter(out.values())).reshape(-1)[0])

    def score_batch(self, raw: dict, batch_size: int = 0) -> np.ndarray:
        return score_each(self, raw)  # the artefact has batch 1


class OnnxBackend:
    """A batch-1 ONNX model run by onnxruntime (single thread)."""

    def __init__(self, path: Path, layout: InputLayout):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(path), options,
                                                     providers=["CPUExecutionProvider"])
        self._inputs = {i.name.split(":")[0]: i.name for i in self._session.get_inputs()}
        self.layout = layout
        self.encodes = False
        self.name = "onnx"

    def score_one(self, raw: dict) -> float:
        feed = {self._inputs[n]: np.asarray(raw[n], dtype=np.float32)[None]
                for n in self.layout.names}
        return float(np.asarray(self._session.run(None, feed)[0]).reshape(-1)[0])

    def score_batch(self, raw: dict, batch_size: int = 0) -> np.ndarray:
        return score_each(self, raw)  # the artefact has batch 1

