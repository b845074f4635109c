"""analysis.groups: configuration groups described by the settings that set them apart."""

import numpy as np
import pytest

from analysis.groups import describe_groups

NAMES = ("Src:RF_Gnd:Pwr_Set", "LEBT:Chop_N:V_Set", "LEBT:Focus_1:V_Set")


def test_groups_are_described_by_what_moved_against_the_largest_group():
    groups = np.array([0, 0, 0, 1, 1, 2])
    settings = np.array([[40.0, 2.0, 5.0]] * 3 + [[41.2, 2.0, 5.0]] * 2 + [[40.0, 2.0, 5.0]])
    described = describe_groups(groups, settings, NAMES)
    assert described["0"] == "largest group (the reference for the others)"
    assert described["1"] == "Src:RF_Gnd:Pwr_Set 41.2 (largest group: 40)"
    assert described["2"] == "same settings as the largest group (the beam came back to them)"


def test_the_largest_changes_are_named_and_the_rest_counted():
    groups = np.array([0, 0, 1])
    settings = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.5, 3.0, 2.0]])
    described = describe_groups(groups, settings, NAMES, shown=["1"])
    assert list(described) == ["1"]
    assert described["1"].startswith("Src:RF_Gnd:Pwr_Set 1.5 (largest group: 1); LEBT:Chop_N")
    assert described["1"].endswith("; +1 more setting")


def test_no_settings_no_descriptions_and_shapes_are_checked():
    assert describe_groups([0, 1], np.zeros((2, 0)), ()) == {}
    with pytest.raises(ValueError, match="one row per group id"):
        describe_groups([0, 1, 2], np.zeros((2, 3)), NAMES)
