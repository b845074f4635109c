"""Typed, validated beamwatch configuration.

``configs/default.yaml`` is the schema: one frozen dataclass per YAML section, with exactly the
keys and defaults written there. ``load_config`` reads a (partial) YAML file with
``yaml.safe_load``, merges it and any ``section.key=value`` overrides over the defaults and
returns a ``Config``. Every dataclass validates itself in ``__post_init__``, so a config built in
Python is checked exactly like a file; every problem raises ``ConfigError``, which names the
file (and line), the key path, the value received and what is allowed.

Representation choices (all hashable, so a ``Config`` can serve as a dict or cache key):

* YAML lists become tuples (a list is accepted when constructing).
* ``beam_settings.production_filter`` is a tuple of ``(pv, minimum)`` pairs in file order;
  ``dict(config.beam_settings.production_filter)`` gives the mapping back, and a mapping is
  accepted when constructing.
* ``train.streaming`` is one of the strings ``"auto"``, ``"true"``, ``"false"``; YAML booleans
  are accepted and normalised.
* Float keys accept ints (converted). Int keys accept integral floats (``3.0``) but not ``3.5``.
  ``bool`` is never a number. Path keys accept ``os.PathLike`` (stored as ``str``).

Example:

>>> config = load_config("configs/default.yaml", overrides=["train.epochs=3"])
>>> config.train.epochs
3

The parser's public face: code outside ``parser/`` imports these names from here, and only
from here. The code lives in ``parser.validation`` (field checks, coercion, ``ConfigError``),
``parser.schema`` (the section dataclasses, ``SECTION_CLASSES``, ``Config``; a new section goes
there), ``parser.loading`` (files, overrides, ``config_to_dict`` / ``dump_config`` /
``replace_section``) and ``parser.cross_checks`` (checks across sections: the history).
"""

from __future__ import annotations

from parser.cross_checks import HISTORY_MODELS
from parser.loading import (
    MAX_YAML_NESTING,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    replace_section,
    require_source,
    run_source,
)
from parser.schema import (
    SECTION_CLASSES,
    AugmentConfig,
    BPMDataConfig,
    Config,
    DCMDataConfig,
    FeaturesConfig,
    HistoryConfig,
    LiveConfig,
    ModelConfig,
    ReferenceConfig,
    RunConfig,
    ScalingConfig,
    SessionsConfig,
    SplitConfig,
    TextConfig,
    ThresholdConfig,
    TrainConfig,
    WindowsConfig,
)
from parser.validation import ConfigError, Problem

__all__ = [
    "BPMDataConfig",
    "Config",
    "ConfigError",
    "DCMDataConfig",
    "LiveConfig",
    "ModelConfig",
    "Problem",
    "ReferenceConfig",
    "RunConfig",
    "ScalingConfig",
    "SECTION_CLASSES",
    "SplitConfig",
    "ThresholdConfig",
    "TrainConfig",
    "SessionsConfig",
    "WindowsConfig",
    "FeaturesConfig",
    "HISTORY_MODELS",
    "HistoryConfig",
    "TextConfig",
    "AugmentConfig",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "replace_section",
    "require_source",
    "run_source",
    "MAX_YAML_NESTING",
]
