"""The export formats: what each writes into RUN/export/, how, what scores it, how it is checked.

`FORMATS` is the one registry of `driver.py --export --format` (and of `--watch --format`,
which picks one artefact of a format). Adding a format is one `ExportFormat` entry here; the
export (`live.export.export_run`: writers, serving.json, parity.json), `parse_formats`, the
watcher's artefact and backend (`find_artefact`, `load_backend`) and the driver's `--format` help read it.

An `ExportFormat` writes one or more `Artefact`s (LiteRT: float32 and int8 weights). Each
artefact names its file, its key in serving.json "artefacts", the `--watch --format` value that
picks it, its writer `(serving module, InputLayout, path) -> written entry` and its rows in
parity.json. A written entry is `{"path", "bytes", ...}` or `{"error"}` (a converter failure
is reported; the other formats still go on). The SavedModel is always written: it is what
`--watch` scores with by default and what the other formats are converted from.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from live.scorer import (
    LiteRTBackend,
    OnnxBackend,
    SavedModelBackend,
    score_batch,
    score_each,
    score_encoded,
)
from live.serving import InputLayout, save_module

BASE_FORMAT = "saved_model"   # always exported; --watch scores with it unless told otherwise
# parity tolerances: "score" (max |score difference| against the Keras model) for a float
# artefact, "pr_auc" (PR AUC change) for one with quantised weights
TOLERANCES = ("score", "pr_auc")


@dataclass(frozen=True)
class ParityRow:
    """One row of parity.json "formats": an artefact scoring the run's test pulses one way.

    Attributes:
        name: the row's key in parity.json "formats".
        score: `(backend, raw inputs with a batch axis) -> scores`.
        tolerance: one of `TOLERANCES`.
        encode_once_only: written only for a model the export encodes once.
        guards_watch: out of tolerance, `--watch` refuses the artefact
            (`utils.serving_files.check_artefact`); `--export` refuses any row out of it.
    """

    name: str
    score: Callable[..., np.ndarray]
    tolerance: str = "score"
    encode_once_only: bool = False
    guards_watch: bool = True

    def __post_init__(self):
        if self.tolerance not in TOLERANCES:
            raise ValueError(f"ParityRow {self.name}: tolerance {self.tolerance!r}, expected "
                             f"one of {', '.join(TOLERANCES)}")


@dataclass(frozen=True)
class Artefact:
    """One file (or folder) of an export format.

    Attributes:
        key: its key in serving.json "artefacts" (and its entry in `ExportResult.formats`).
        file: its path inside RUN/export/.
        watch_name: the `--watch --format` value that scores with it.
        write: `(serving module, InputLayout, path) -> written entry`.
        parity: its rows in parity.json, in order.
    """

    key: str
    file: str
    watch_name: str
    write: Callable[..., dict]
    parity: tuple[ParityRow, ...]


@dataclass(frozen=True)
class ExportFormat:
    """One `--export --format` value: its artefacts and the backend that scores them.

    Attributes:
        name: the `--format` value.
        artefacts: what it writes, in order.
        backend: `(path, InputLayout) -> backend` with `score_one`/`score_batch`
            (`live.scorer`).
        needs: the optional package it needs, for the `--format` help ("" when none).
        usage: how a caller loads it without this project, for serving.json "usage" ("" to
            leave it out).
    """

    name: str
    artefacts: tuple[Artefact, ...]
    backend: Callable[..., object]
    needs: str = ""
    usage: str = ""

    def opens(self, path: Path) -> bool:
        """Whether `path` looks like one of its artefacts (same suffix; a folder for a folder)."""
        for artefact in self.artefacts:
            suffix = Path(artefact.file).suffix
            if suffix == path.suffix and (suffix == "") == path.is_dir():
                return True
        return False


# ----------------------------------------------------------------------------------------------
# Writers


def _written(path: Path) -> dict:
    size = (path.stat().st_size if path.is_file()
            else sum(p.stat().st_size for p in path.rglob("*") if p.is_file()))
    return {"path": path.name, "bytes": size}


def write_saved_model(module, layout: InputLayout, path: Path) -> dict:
    """The SavedModel (`live.serving.save_module`); a failure stops the export."""
    started = time.perf_counter()
    save_module(module, path)
    return {**_written(path), "seconds": time.perf_counter() - started}


def write_litert(module, layout: InputLayout, path: Path, *, quantise: bool) -> dict:
    """A LiteRT flatbuffer (`litert_bytes`), or the converter's error."""
    try:
        path.write_bytes(litert_bytes(module, quantise))
        return _written(path)
    except Exception as exc:  # a converter failure is reported, the rest goes on
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def litert_bytes(module, quantise: bool) -> bytes:
    """LiteRT flatbuffer of the batch-1 serving function, built-in ops only.

    The Keras LSTM runs as a while loop that reads its kernels as resource variables; converted
    as they are, the TFLite interpreter fails with READ_VARIABLE inside the WHILE node, and a
    dynamic batch needs SELECT_TF_OPS (TensorList ops) that the stock interpreter cannot run.
    A fixed batch of 1 with the variables frozen into constants converts to built-in ops only.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(module.serve_one_graph.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], module)
    if quantise:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range int8 weights
    return converter.convert()


def write_onnx(module, layout: InputLayout, path: Path) -> dict:
    """ONNX through tf2onnx when it is installed, else the reason it is not written."""
    try:
        import tf2onnx  # noqa: F401
    except ImportError as exc:
        return {"error": f"not written: tf2onnx is not installed ({exc}); it is optional "
                         "(~115 MB with onnx and onnxruntime): pip install -r "
                         "requirements-export.txt"}
    try:
        import tensorflow as tf
        import tf2onnx.convert

        specs = [tf.TensorSpec(layout.raw_shape(n, 1), tf.float32, name=n) for n in layout.names]
        tf2onnx.convert.from_function(module.serve_one_graph, input_signature=specs,
                                      output_path=str(path))
        return _written(path)
    except Exception as exc:
        return {"error": f"not supported: tf2onnx failed on the serving function: "
                         f"{type(exc).__name__}: {str(exc)[:300]}"}


# ----------------------------------------------------------------------------------------------
# The registry


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("saved_model", (
        Artefact("saved_model", "saved_model", "saved_model", write_saved_model, (
            ParityRow("saved_model", score_batch),
            ParityRow("saved_model_serve_one", score_each),
            # each pulse and reference encoded alone, as live scoring does
            ParityRow("saved_model_encode_once", score_encoded, encode_once_only=True,
                      guards_watch=False))),
    ), SavedModelBackend,
        usage="m = tf.saved_model.load(DIR/saved_model); "
              "m.signatures['serve_one'](trace=tf.constant(raw[None]), ...)['score']"),
    ExportFormat("litert", (
        Artefact("litert_float32", "model_float32.tflite", "litert",
                 functools.partial(write_litert, quantise=False),
                 (ParityRow("litert_float32", score_batch),)),
        Artefact("litert_int8", "model_int8.tflite", "litert_int8",
                 functools.partial(write_litert, quantise=True),
                 (ParityRow("litert_int8", score_batch, tolerance="pr_auc"),)),
    ), LiteRTBackend,
        usage="it = tf.lite.Interpreter(FILE); "
              "it.get_signature_runner()(trace=raw[None], ...)  (single output)"),
    ExportFormat("onnx", (
        Artefact("onnx", "model.onnx", "onnx", write_onnx, (ParityRow("onnx", score_batch),)),
    ), OnnxBackend, needs="tf2onnx"),
)}


# ----------------------------------------------------------------------------------------------
# Lookups


def parse_formats(text: str) -> tuple[str, ...]:
    """`"saved_model,litert"` -> a checked tuple (saved_model is always included)."""
    asked = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [p for p in asked if p not in FORMATS]
    if unknown or not asked:
        raise ValueError(f"--format {text!r}: expected a comma-separated subset of "
                         f"{','.join(FORMATS)}")
    return tuple(dict.fromkeys((BASE_FORMAT, *asked)))


def watch_names() -> tuple[str, ...]:
    """The `--watch --format` values: one per artefact, in registry order."""
    return tuple(a.watch_name for f in FORMATS.values() for a in f.artefacts)


def find_artefact(watch_name: str) -> tuple[ExportFormat, Artefact]:
    """The format and artefact `--watch --format watch_name` scores with, or a clear error."""
    for export_format in FORMATS.values():
        for candidate in export_format.artefacts:
            if candidate.watch_name == watch_name:
                return export_format, candidate
    raise ValueError(f"artefact {watch_name!r}: expected one of {', '.join(watch_names())}")


def load_backend(path: Path, layout: InputLayout):
    """The backend for an artefact path: the registered format whose artefact it looks like
    (a SavedModel folder, a .tflite or an .onnx file)."""
    path = Path(path)
    for export_format in FORMATS.values():
        if export_format.opens(path):
            return export_format.backend(path, layout)
    kinds = ", ".join(a.file for f in FORMATS.values() for a in f.artefacts)
    raise ValueError(f"{path}: not an exported artefact (like {kinds})")


def format_help() -> str:
    """The driver's `--format` help, from the registry."""
    needs = "".join(f"; {f.name} needs {f.needs}" for f in FORMATS.values() if f.needs)
    first, *others = watch_names()
    choices = f"{first} (default)" + (f", {', '.join(others[:-1])} or {others[-1]}"
                                      if len(others) > 1 else "".join(f" or {o}" for o in others))
    return (f"--export: formats, a subset of {','.join(FORMATS)} (default all{needs}); "
            f"--watch: the artefact to score with: {choices}")
