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
    firsts = {name: [int(item.trace[0]) for item in items] for name, items in examples.items()}
    assert firsts == {"caught": [9, 8], "missed": [6], "false alarms": [5, 4]}
    assert examples["caught"][0].caption == "#9\nscore 0.900"
    assert examples["caught"][0].references is None


def test_envelope_is_the_mean_per_bin_and_keeps_a_short_last_bin():
    trace = np.arange(25, dtype=float)
    np.testing.assert_allclose(plots.envelope(trace, 10), [4.5, 14.5, 22.0])
    stack = np.stack([trace, 2 * trace])
    np.testing.assert_allclose(plots.envelope(stack, 10)[1], [9.0, 29.0, 44.0])
    chopped = np.tile([1.0] * 6 + [0.0] * 4, 100)  # a 1 us chopper period at 10 MS/s
    np.testing.assert_allclose(plots.envelope(chopped), 0.6)
    with pytest.raises(ValueError, match="bin_samples"):
        plots.envelope(trace, 0)


def test_examples_draw_the_pulse_over_its_references_band():
    rng = np.random.default_rng(1)
    traces = rng.normal(size=(10, 100))
    refs = rng.normal(size=(10, 3, 100))
    refs[:, 0] = 0.0  # an empty slot (zeros) is left out of the band
    examples = plots.pick_examples(traces, LABELS, SCORES, 0.5, per_category=2, references=refs)
    assert examples["caught"][0].references.shape == (3, 100)
    fig = plots.plot_example_traces(examples)
    _renders(fig)
    ax = fig.axes[0]
    pulse = ax.lines[-1]
    np.testing.assert_allclose(pulse.get_ydata(), plots.envelope(traces[9]))
    median = np.median(plots.envelope(refs[9, 1:]), axis=0)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), median)
    assert len(ax.collections) == 1  # the min-max band
    assert "references (K=2) min-max" in [t.get_text() for t in fig.legends[0].get_texts()]
    with pytest.raises(ValueError, match="references has 2 rows"):
        plots.pick_examples(traces, LABELS, SCORES, 0.5, references=refs[:2])


def test_old_two_item_examples_still_plot():
    fig = plots.plot_example_traces({"caught": [(np.ones(40), "a")], "missed": []})
    assert len(fig.axes[0].lines) == 1 and not fig.axes[0].collections
    _renders(fig)


def test_rates_by_block_plot_marks_target_band_and_online_series():
    from analysis.evaluation import rates_by_block

    table = rates_by_block(LABELS, SCORES, 0.5, [0, 0, 0, 1, 1, 1, 0, 1, 0, 1],
                           online_alarms=SCORES >= 0.75)
    fig = plots.plot_rates_by_block(table, 0.1, xlabel="time block")
    _renders(fig)
    top = fig.axes[0]
    labels = top.get_legend_handles_labels()[1]
    assert "online threshold" in labels and "target 0.1" in labels
    # every rate carries its 95 % interval: one error-bar container per series
    assert len(top.containers) >= 2
    band = top.patches[0]
    assert band.get_y() == pytest.approx(0.05) and band.get_y() + band.get_height() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="empty"):
        plots.plot_rates_by_block([], 0.1)
