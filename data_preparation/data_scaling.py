"""Split, scale, rebalance: the former one-module home of these steps, kept as a stable import path.

The code lives in one module per job; this module re-exports their public names so every
`from data_preparation.data_scaling import ...` (flows, benchmarks, tests, users' scripts) keeps
working unchanged. New code imports from the module that does the job:

* `data_preparation.split`: `split_indices`, `PARTS` (train / val / test, before any fit);
* `data_preparation.scalers`: `TraceScaler`, `SettingsScaler`, `save_scalers`, `load_scalers`,
  `SCALER_KINDS` (scikit-learn-style transformers, saved as JSON);
* `data_preparation.imbalance`: `class_weights`, `smote`, `undersample` (training part only).

Order matters and is enforced by the callers' flow: split first, then fit everything (scalers,
SMOTE, undersampling, class weights) on the training part only, so no statistic sees a pulse
from the validation or test period.
"""

from __future__ import annotations

from data_preparation.imbalance import class_weights, smote, undersample
from data_preparation.scalers import (
    SCALER_KINDS,
    SettingsScaler,
    TraceScaler,
    load_scalers,
    save_scalers,
)
from data_preparation.split import PARTS, split_indices

__all__ = [
    "PARTS",
    "SCALER_KINDS",
    "SettingsScaler",
    "TraceScaler",
    "class_weights",
    "load_scalers",
    "save_scalers",
    "smote",
    "split_indices",
    "undersample",
]
