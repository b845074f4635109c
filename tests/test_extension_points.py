"""Each extension point takes a new thing through its registry alone (issue 20, item 4).

A toy model, a toy report page, a toy data source and a toy export format are added here the
way docs/internals.md ("Where a new thing goes") says - one entry in one registry, no other
module edited - and the code that uses each registry finds them. `monkeypatch` adds each one,
so the project's registries are as they were after every test.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

# ----------------------------------------------------------------------------------------------
# A model: one builder decorated @register_model


def toy_mean_model(model_config, input_spec):
    """The mean of the trace through a sigmoid: the smallest model with a "score" output."""
    import keras

    trace = keras.Input((input_spec.trace_length, input_spec.n_channels), name="trace")
    pooled = keras.layers.GlobalAveragePooling1D()(trace)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(pooled)
    return keras.Model({"trace": trace}, score)


def test_toy_model_is_found_by_name(monkeypatch):
    from model import InputSpec, build_model, list_models, register_model, registry
    from parser.configs import config_from_dict
    from training.train import check_train_request

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # restored afterwards
    register_model(toy_mean_model)
    config = config_from_dict({"model": {"name": "toy_mean_model"}})
    check_train_request(config, None)  # the driver's model-name check accepts it
    assert "toy_mean_model" in list_models("toy_*")
    model = build_model(config.model, InputSpec(trace_length=8))
    assert model.output_names == ["score"]
    assert model({"trace": np.ones((2, 8, 1), np.float32)}).shape == (2, 1)


# ----------------------------------------------------------------------------------------------
# A report page: one function (content, styles) -> flowables in analysis.report.PAGES


def toy_page(content, styles) -> list:
    from reportlab.platypus import Paragraph

    return [Paragraph(f"Toy page of {content.run_id}: {len(content.labels)} pulses",
                      styles["body"])]


def test_toy_page_is_rendered_into_the_report(monkeypatch, tmp_path):
    from pypdf import PdfReader

    from analysis import report

    # the title page and the toy one: the figure pages would cost seconds and prove nothing here
    monkeypatch.setattr(report, "PAGES", (report.PAGES[0], toy_page))
    labels = np.array([0, 0, 0, 1])
    content = report.ReportContent(
        title="toy report", run_id="20260101-000000-toy", created=datetime(2026, 1, 1),
        data_period=("a", "b"), split_sizes={}, seeds={}, metrics={},
        threshold={"threshold": 0.5, "method": "best_f1"}, labels=labels,
        scores=np.array([0.1, 0.2, 0.3, 0.9]))
    path = tmp_path / "report.pdf"
    report.write_report(path, content)
    last = PdfReader(path).pages[-1].extract_text()
    assert "Toy page of 20260101-000000-toy: 4 pulses" in " ".join(last.split())


# ----------------------------------------------------------------------------------------------
# A data source: one loader and its line in data_preparation.sources.SOURCES


def load_toy(config, location=None, layout=None, files=None):
    """Three two-step sequences from `location` (its name is the sample ids' prefix)."""
    from data_preparation.sources.contract import Samples

    where = location or config.data.dataset_loc
    return Samples(inputs={"trace": np.arange(6, dtype=np.float32).reshape(3, 2, 1)},
                   label=np.array([0, 1, 0]), class_names=("calm", "storm"),
                   group=np.arange(3), ids=np.array([f"{where}#{i}" for i in range(3)]))


def test_toy_source_is_loaded_by_load_samples(monkeypatch):
    from data_preparation import sources
    from parser.configs import config_from_dict

    monkeypatch.setitem(sources.SOURCES, "toy", sources.Source(load_toy, "samples"))
    # the parser keeps no list of source names: a config may name the toy source
    config = config_from_dict({"data": {"source": "toy", "dataset_loc": "toy_data"}})
    samples = sources.load_samples(config)
    assert samples.class_names == ("calm", "storm")
    assert samples.ids.tolist() == ["toy_data#0", "toy_data#1", "toy_data#2"]
    assert sources.get_source("toy").flow == "samples"


# ----------------------------------------------------------------------------------------------
# An export format: one ExportFormat entry in live.formats.FORMATS


class ToyBackend:
    """Scores with the mean of the trace times the factor stored in the artefact."""

    def __init__(self, path: Path, layout):
        self.layout, self.factor = layout, float(Path(path).read_text())
        self.name, self.encodes = "toy", False

    def score_one(self, raw: dict) -> float:
        return float(np.mean(raw["trace"]) * self.factor)

    def score_batch(self, raw: dict, batch_size: int = 0) -> np.ndarray:
        return np.asarray(raw["trace"], np.float64).mean(axis=1) * self.factor


def write_toy(module, layout, path: Path) -> dict:
    path.write_text("1.0")
    return {"path": path.name, "bytes": path.stat().st_size}


def test_toy_format_is_parsed_written_parity_checked_and_loaded(monkeypatch, tmp_path):
    from live import formats
    from live.export import RunData, parity_report, write_artefacts
    from live.scorer import score_batch
    from live.serving import InputLayout

    toy = formats.ExportFormat("toy", (formats.Artefact(
        "toy", "model.toy", "toy_file", write_toy,
        (formats.ParityRow("toy", score_batch),)),), ToyBackend, needs="nothing")
    monkeypatch.setitem(formats.FORMATS, "toy", toy)

    assert formats.parse_formats("toy") == ("saved_model", "toy")  # --export --format toy
    assert "saved_model,litert,onnx,toy" in formats.format_help()   # the driver's help
    assert formats.find_artefact("toy_file") == (toy, toy.artefacts[0])  # --watch --format

    layout = InputLayout(trace_length=4, n_channels=1)
    written = write_artefacts(None, layout, tmp_path, ("toy",))  # the export's writer loop
    assert written["toy"]["path"] == "model.toy" and written["toy"]["sha256"]
    assert isinstance(formats.load_backend(tmp_path / "model.toy", layout), ToyBackend)

    traces = np.array([[0.5] * 4, [0.1] * 4], np.float32)
    data = RunData(raw={"trace": traces}, labels=np.array([1, 0]),
                   keras_scores=np.array([0.5, 0.1]), source="toy pulses",
                   train_settings=None, val_settings=None)
    parity = parity_report(tmp_path, written, layout, data, threshold=0.3, encode_once=False)
    assert list(parity["formats"]) == ["toy"]
    assert parity["formats"]["toy"]["within_tolerance"] is True
    assert parity["formats"]["toy"]["max_abs_diff"] == pytest.approx(0.0, abs=1e-7)
