"""Tests for analysis.plots: each figure builds from small inputs and renders."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from analysis import plots
from analysis.evaluation import compute_metrics

LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
SCORES = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.35, 0.65, 0.8, 0.9])


def _renders(fig):
    assert isinstance(fig, Figure)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_figure_renders():
    metrics = compute_metrics(LABELS, SCORES, 0.5)
    history = {"loss": [0.9, 0.5], "val_loss": [1.0, 0.6], "auc_pr": [0.3, 0.6],
               "val_auc_pr": [0.2, 0.5], "learning_rate": [1e-3, 5e-4]}
    traces = np.random.default_rng(0).normal(size=(10, 50))
    for fig in (
        plots.plot_training_curves(history),
        plots.plot_roc_curve(LABELS, SCORES, 0.5),
        plots.plot_pr_curve(LABELS, SCORES, 0.5),
        plots.plot_confusion_matrix(metrics["confusion_matrix"]),
        plots.plot_score_histograms(LABELS, SCORES, 0.5),
        plots.plot_reliability_diagram(metrics["reliability"]),
        plots.plot_example_traces(plots.pick_examples(traces, LABELS, SCORES, 0.5)),
    ):
        _renders(fig)


def test_training_curves_have_one_panel_per_metric_plus_learning_rate():
    fig = plots.plot_training_curves({"loss": [1, 0.5], "val_loss": [1, 0.7], "auc_pr": [0.1, 0.2],
                                      "lr": [0.1, 0.1]})
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["loss", "auc_pr", "learning rate"]


def test_operating_point_is_marked_on_roc():
    fig = plots.plot_roc_curve(LABELS, SCORES, 0.5)
    point = [line for line in fig.axes[0].lines if line.get_marker() == "o"][0]
    assert point.get_xdata()[0] == pytest.approx(2 / 6)
    assert point.get_ydata()[0] == pytest.approx(3 / 4)


def test_curves_refuse_one_class_and_histograms_accept_it():
    with pytest.raises(ValueError, match="no errant"):
        plots.plot_pr_curve([0, 0, 0], [0.1, 0.2, 0.3], 0.5)
    _renders(plots.plot_score_histograms([0, 0, 0], [0.1, 0.2, 0.3], 0.5))


def test_pick_examples_orders_categories_by_clarity():
    traces = np.arange(10)[:, None] * np.ones((10, 3))
    examples = plots.pick_examples(traces, LABELS, SCORES, 0.5, per_category=2)
    firsts = {name: [int(trace[0]) for trace, _ in items] for name, items in examples.items()}
    assert firsts == {"caught": [9, 8], "missed": [6], "false alarms": [5, 4]}
    assert examples["caught"][0][1] == "#9 score 0.900"
