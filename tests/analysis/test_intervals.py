"""Poisson and Wilson intervals: known values, edges, coverage, bad input."""

import numpy as np
import pytest

from analysis.intervals import poisson_interval, wilson_interval


def test_poisson_interval_matches_the_tabulated_garwood_limits():
    # Garwood's 95 % limits for 0, 1 and 10 events (standard tables)
    assert poisson_interval(0) == pytest.approx((0.0, 3.689), abs=1e-3)
    assert poisson_interval(1) == pytest.approx((0.0253, 5.572), abs=1e-3)
    assert poisson_interval(10) == pytest.approx((4.795, 18.39), abs=1e-2)


def test_poisson_interval_scales_with_exposure():
    lo, hi = poisson_interval(4, exposure=2.0)
    lo1, hi1 = poisson_interval(4)
    assert (lo, hi) == pytest.approx((lo1 / 2, hi1 / 2))


def test_poisson_interval_covers_the_true_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.5, size=4000)
    covered = [lo <= 2.5 <= hi for lo, hi in map(poisson_interval, counts)]
    assert np.mean(covered) >= 0.95  # exact intervals are conservative


def test_wilson_interval_stays_in_the_unit_range_at_the_edges():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(1, 8) == pytest.approx((0.0224, 0.4709), abs=1e-4)
    assert wilson_interval(0, 0) is None


@pytest.mark.parametrize("args", [(-1, 1.0), (1.5, 1.0), (1, 0.0), (1, float("inf"))])
def test_poisson_interval_refuses_bad_input(args):
    with pytest.raises(ValueError):
        poisson_interval(*args)


@pytest.mark.parametrize("args", [(3, 2), (-1, 2), (1, 2, 1.5)])
def test_wilson_interval_refuses_bad_input(args):
    with pytest.raises(ValueError):
        wilson_interval(*args)
