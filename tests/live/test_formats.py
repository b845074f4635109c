"""live.formats: the export-format registry and the lookups the driver, export and watcher use."""

from __future__ import annotations

import pytest

from live.formats import FORMATS, find_artefact, format_help, load_backend, parse_formats


def test_format_list_is_checked():
    assert parse_formats("litert") == ("saved_model", "litert")
    assert parse_formats("onnx, saved_model,onnx") == ("saved_model", "onnx")
    with pytest.raises(ValueError, match="tflite.*expected a comma-separated subset"):
        parse_formats("tflite")


def test_registry_writes_the_files_the_export_always_wrote():
    files = {a.key: a.file for f in FORMATS.values() for a in f.artefacts}
    assert list(FORMATS) == ["saved_model", "litert", "onnx"]
    assert files == {"saved_model": "saved_model", "litert_float32": "model_float32.tflite",
                     "litert_int8": "model_int8.tflite", "onnx": "model.onnx"}
    rows = [r.name for f in FORMATS.values() for a in f.artefacts for r in a.parity]
    assert rows == ["saved_model", "saved_model_serve_one", "saved_model_encode_once",
                    "litert_float32", "litert_int8", "onnx"]


def test_watch_format_names_one_artefact_each():
    export_format, artefact = find_artefact("litert_int8")
    assert (export_format.name, artefact.file) == ("litert", "model_int8.tflite")
    # the encode-once row fails --export, but does not make --watch refuse the SavedModel
    assert [r.name for r in find_artefact("saved_model")[1].parity if r.guards_watch] == [
        "saved_model", "saved_model_serve_one"]
    with pytest.raises(ValueError, match="'tflite': expected one of saved_model, litert, "
                                         "litert_int8, onnx"):
        find_artefact("tflite")


def test_backend_is_chosen_by_what_the_path_looks_like(tmp_path):
    (tmp_path / "scores.csv").write_text("")
    with pytest.raises(ValueError, match="scores.csv: not an exported artefact"):
        load_backend(tmp_path / "scores.csv", None)
    assert FORMATS["saved_model"].opens(tmp_path)
    assert not FORMATS["litert"].opens(tmp_path)
    assert FORMATS["onnx"].opens(tmp_path / "model.onnx")


def test_format_help_reads_the_registry():
    assert format_help() == (
        "--export: formats, a subset of saved_model,litert,onnx (default all; onnx needs "
        "tf2onnx); --watch: the artefact to score with: saved_model (default), litert, "
        "litert_int8 or onnx")
