"""Score raw pulses with an exported artefact (SavedModel, LiteRT or ONNX), one API for all.

A backend takes raw inputs by name ("trace" [L] or [L, C], "settings" [S], "reference"
[K, L(, C)], no batch axis) and returns the score; `score_batch` takes the same with a batch axis.
The live flow (`live.watch`, the stream benchmark) and the export's parity check go through
these classes, so what is measured is what a caller deploys.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from live.serving import InputLayout


class SavedModelBackend:
    """The exported SavedModel: `serve_one` (XLA, batch 1) per pulse, `serving_default` (plain
    graph, any batch) for a file's pulses at once."""

    def __init__(self, path: Path, layout: InputLayout):
        import tensorflow as tf

        self._tf = tf
        self.layout = layout
        self.name = "saved_model"
        loaded = tf.saved_model.load(str(path))
        self._loaded = loaded  # keeps the variables alive
        self._one = loaded.signatures["serve_one"]
        self._many = loaded.signatures["serving_default"]

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


def score_each(backend, raw: dict) -> np.ndarray:
    """Scores of a batch of raw inputs, one pulse at a time through `backend.score_one`."""
    n = len(raw["trace"])
    return np.array([backend.score_one({k: raw[k][i] for k in backend.layout.names})
                     for i in range(n)], dtype=np.float64)


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
        self.name = "onnx"

    def score_one(self, raw: dict) -> float:
        feed = {self._inputs[n]: np.asarray(raw[n], dtype=np.float32)[None]
                for n in self.layout.names}
        return float(np.asarray(self._session.run(None, feed)[0]).reshape(-1)[0])

    def score_batch(self, raw: dict, batch_size: int = 0) -> np.ndarray:
        return score_each(self, raw)  # the artefact has batch 1


def load_backend(path: Path, layout: InputLayout):
    """The backend for an artefact path: a SavedModel folder, a .tflite or an .onnx file."""
    path = Path(path)
    if path.is_dir():
        return SavedModelBackend(path, layout)
    if path.suffix == ".tflite":
        return LiteRTBackend(path, layout)
    if path.suffix == ".onnx":
        return OnnxBackend(path, layout)
    raise ValueError(f"{path}: not an exported artefact (a SavedModel folder, .tflite or .onnx)")
