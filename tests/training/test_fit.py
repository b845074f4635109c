"""training/fit.py helpers that need no training (the fit itself is guarded by the train-flow
tests and used by the benchmarks)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from training.fit import TrainingPart, class_sample_weight, fit_and_threshold


def test_class_sample_weight_maps_each_row_to_its_class_weight():
    weights = class_sample_weight(np.array([0, 1, 1, 0], np.int8), {0: 0.5, 1: 4.0})
    assert weights.dtype == np.float32 and weights.tolist() == [0.5, 4.0, 4.0, 0.5]
    assert class_sample_weight(np.array([0, 1]), None) is None


def test_fit_needs_a_validation_part_before_building_anything(tmp_path):
    with pytest.raises(ValueError, match="'val' part"):
        fit_and_threshold(SimpleNamespace(), None, train=TrainingPart(None, np.arange(2)),
                          samples=None, score_parts={"test": np.arange(2)},
                          trace_scaler=None, settings_scaler=None, work_dir=tmp_path,
                          logger=logging.getLogger("test"))
