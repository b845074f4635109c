"""Tests of the benchmark figures helpers: intervals, mean +- spread, ratios."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.stats import (
    combine_seeds,
    format_interval,
    format_mean_spread,
    format_number,
    format_ratio,
    mean_spread,
    metric_functions,
    ratio,
    scored_figures,
)


def _separable(n_normal=60, n_errant=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_normal, int), np.ones(n_errant, int)]
    scores = np.r_[rng.uniform(0.0, 0.4, n_normal), rng.uniform(0.6, 1.0, n_errant)]
    return labels, scores


def test_scored_figures_same_seed_gives_same_intervals():
    labels, scores = _separable()
    scores = scores + np.random.default_rng(1).normal(0, 0.3, scores.size)
    a = scored_figures(labels, scores, 0.5, n_boot=50, seed=3)
    b = scored_figures(labels, scores, 0.5, n_boot=50, seed=3)
    for name in ("pr_auc", "roc_auc", "recall", "false_alarms_per_hour", "caught"):
        assert a[name] == b[name]


def test_scored_figures_perfect_separation_has_degenerate_intervals_at_one():
    labels, scores = _separable()
    figures = scored_figures(labels, scores, 0.5, n_boot=50, seed=0)
    for name in ("pr_auc", "roc_auc", "recall"):
        cell = figures[name]
        assert (cell["value"], cell["lo"], cell["hi"]) == pytest.approx((1.0, 1.0, 1.0))
    assert figures["false_alarms_per_hour"]["hi"] == 0.0
    assert figures["caught"]["value"] == 20.0


def test_scored_figures_interval_covers_value_on_noisy_scores():
    labels, scores = _separable(200, 50)
    scores = scores + np.random.default_rng(2).normal(0, 0.25, scores.size)
    figures = scored_figures(labels, scores, 0.5, n_boot=200, seed=0)
    for name in ("pr_auc", "roc_auc", "recall", "false_alarms_per_hour", "caught"):
        cell = figures[name]
        assert cell["lo"] <= cell["value"] <= cell["hi"]
        assert cell["lo"] < cell["hi"]


def test_metric_functions_false_alarms_per_hour_extrapolates_at_60_hz():
    fns = metric_functions(0.5, pulse_rate_hz=60.0)
    labels = np.array([0, 0, 0, 0, 1])
    scores = np.array([0.1, 0.6, 0.2, 0.3, 0.9])
    assert fns["false_alarms_per_hour"](labels, scores) == pytest.approx(0.25 * 60 * 3600)
    assert fns["recall"](labels, scores) == 1.0
    assert fns["caught"](labels, scores) == 1.0


def test_mean_spread_uses_sample_standard_deviation():
    summary = mean_spread([1.0, 2.0, 3.0])
    assert summary == {"mean": 2.0, "spread": 1.0, "n": 3}


def test_mean_spread_of_one_value_has_no_spread_and_ignores_none():
    assert mean_spread([0.5, None]) == {"mean": 0.5, "spread": None, "n": 1}
    assert mean_spread([]) == {"mean": None, "spread": None, "n": 0}


def test_combine_seeds_averages_values_and_interval_ends():
    labels, scores = _separable()
    noisy = scores + np.random.default_rng(4).normal(0, 0.3, scores.size)
    seeds = [scored_figures(labels, s, 0.5, n_boot=30, seed=0) for s in (scores, noisy)]
    combined = combine_seeds(seeds)
    assert combined["seeds"] == 2
    expected = (seeds[0]["pr_auc"]["value"] + seeds[1]["pr_auc"]["value"]) / 2
    assert combined["pr_auc"]["mean"] == pytest.approx(expected)
    assert combined["pr_auc"]["lo"] == pytest.approx((seeds[0]["pr_auc"]["lo"]
                                                      + seeds[1]["pr_auc"]["lo"]) / 2)
    assert combined["pr_auc"]["spread"] > 0


def test_ratio_and_its_formatting():
    assert ratio(6.0, 2.0) == 3.0
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 2.0) is None
    assert format_ratio(3.0) == "3.00x"
    assert format_ratio(None) == "n/a"


def test_number_interval_and_spread_formatting():
    assert format_number(12345.6) == "12,346"
    assert format_number(0.12345) == "0.123"
    assert format_number(None) == "n/a"
    assert format_interval(0.1, 0.25) == "[0.100, 0.250]"
    assert format_interval(None, 0.2) == ""
    assert format_mean_spread({"mean": 0.5, "spread": 0.02}) == "0.500 ± 0.020"
    assert format_mean_spread({"mean": 0.5, "spread": None}) == "0.500"
