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
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import os
import types
import typing
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import yaml

from enterprise_tools.sns_pvs import ERRANT_BEAM_PVS

__all__ = [
    "BPMDataConfig",
    "Config",
    "ConfigError",
    "DCMDataConfig",
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
    "TextConfig",
    "AugmentConfig",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "replace_section",
]


# --------------------------------------------------------------------------------------------
# Errors


class Problem(NamedTuple):
    """One config problem: the key path, what is wrong, and where the value came from."""

    key: str  # key path such as "train.learning_rate"; "" for the file as a whole
    detail: str  # what was received and what is allowed
    origin: str | None = None  # "configs/x.yaml:12", "override 'train.epochs=x'", ...

    def __str__(self) -> str:
        parts = [p for p in (self.origin, self.key, self.detail) if p]
        return ": ".join(parts)


class ConfigError(ValueError):
    """Every config problem: unknown key, wrong type, out of range, unreadable file.

    ``problems`` holds each ``Problem``; the message lists them all, one per line.
    """

    def __init__(self, problems: str | Problem | Iterable[Problem], source: str | None = None):
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.source = source
        self.problems: tuple[Problem, ...] = tuple(
            p if p.origin or source is None else p._replace(origin=source) for p in problems
        )
        super().__init__(self._message())

    def _message(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        where = f" in {self.source}" if self.source else ""
        lines = [f"{len(self.problems)} config problems{where}:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class _Invalid(Exception):
    """Internal: one value failed its check; ``detail`` says how."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


# --------------------------------------------------------------------------------------------
# Field specifications: the type comes from the annotation, the rest from field metadata.


def _option(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
    path: bool = False,
    unique: bool = False,
    mapping: bool = False,
) -> Any:
    """A dataclass field with its checks; bounds and ``unique`` apply to a tuple's items."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "path": path,
            "unique": unique, "mapping": mapping}
    return field(default=default, metadata=meta)


_NO_CHECKS: Mapping[str, Any] = {}


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _describe(hint: Any, meta: Mapping[str, Any]) -> str:
    """Human wording of what a field accepts, e.g. 'a number in (0, 1)'."""
    args = typing.get_args(hint)
    if _is_optional(hint):
        inner = next(a for a in args if a is not type(None))
        return f"{_describe(inner, meta)} or null"
    if typing.get_origin(hint) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = args[0]
            if typing.get_origin(item) is tuple:
                return "a mapping of PV name to minimum (number)"
            noun = _describe(item, meta).removeprefix("a ").removeprefix("an ")
            noun = noun.replace("integer", "integers", 1).replace("string", "strings", 1)
            return f"a list of {noun}" + (" without duplicates" if meta.get("unique") else "")
        nouns = (_describe(a, _NO_CHECKS).removeprefix("a ").removeprefix("an ") for a in args)
        return "a [" + ", ".join(nouns) + "] pair"
    if hint is bool:
        return "true or false"
    if hint is str:
        if meta.get("choices"):
            return "one of " + ", ".join(repr(c) for c in meta["choices"])
        return "a non-empty string"
    noun = "an integer" if hint is int else "a number"
    lo = meta.get("ge") if meta.get("ge") is not None else meta.get("gt")
    hi = meta.get("le") if meta.get("le") is not None else meta.get("lt")
    if lo is not None and hi is not None:
        left = "[" if meta.get("ge") is not None else "("
        right = "]" if meta.get("le") is not None else ")"
        return f"{noun} in {left}{_fmt(lo)}, {_fmt(hi)}{right}"
    if lo is not None:
        return f"{noun} {'>=' if meta.get('ge') is not None else '>'} {_fmt(lo)}"
    if hi is not None:
        return f"{noun} {'<=' if meta.get('le') is not None else '<'} {_fmt(hi)}"
    return noun


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )


def _in_range(x: float, meta: Mapping[str, Any]) -> bool:
    checks = (
        (meta.get("ge"), lambda b: x >= b),
        (meta.get("gt"), lambda b: x > b),
        (meta.get("le"), lambda b: x <= b),
        (meta.get("lt"), lambda b: x < b),
    )
    return all(bound is None or ok(bound) for bound, ok in checks)


def _coerce(value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    """Check ``value`` against ``hint`` and ``meta``; return it normalised or raise _Invalid."""
    expected = _describe(hint, meta)
    if _is_optional(hint):
        if value is None:
            return None
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        try:
            return _coerce(value, inner, meta)
        except _Invalid as err:  # same detail, with "or null" added to what is allowed
            inner_expected = f"expected {_describe(inner, meta)}"
            raise _Invalid(err.detail.replace(inner_expected, f"expected {expected}", 1)) from None
    if typing.get_origin(hint) is tuple:
        return _coerce_tuple(value, hint, meta, expected)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        number = _as_int(value)
        if number is not None and _in_range(number, meta):
            return number
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number) and _in_range(number, meta):
                return number
    elif hint is str:
        if meta.get("path") and isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, str) and value.strip():
            if not meta.get("choices") or value in meta["choices"]:
                return value
        elif isinstance(value, (int, float)):
            raise _Invalid(f"received {_show(value)}; expected {expected} "
                           "(quote it to give a number as text)")
    raise _Invalid(f"received {_show(value)}; expected {expected}")


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is an integer or an integral float; never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def _coerce_tuple(value: Any, hint: Any, meta: Mapping[str, Any], expected: str) -> tuple:
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
        item_hint = args[0]
        if meta.get("mapping") and isinstance(value, Mapping):
            labels = [f"entry {k!r}" for k in value]
            value = list(value.items())
        elif isinstance(value, (list, tuple)):
            labels = [f"item {i}" for i in range(len(value))]
        else:
            raise _Invalid(f"received {_show(value)}; expected {expected}")
        items = []
        for label, item in zip(labels, value, strict=True):
            try:
                items.append(_coerce(item, item_hint, meta))
            except _Invalid as err:
                raise _Invalid(f"{label}: {err.detail}") from None
        if meta.get("unique"):
            keys = [i[0] if isinstance(i, tuple) else i for i in items]
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                raise _Invalid(f"received duplicates {dupes}; expected {expected}")
        return tuple(items)
    # fixed-length tuple such as a (pv, minimum) pair
    if not isinstance(value, (list, tuple)) or len(value) != len(args):
        raise _Invalid(f"received {_show(value)}; expected {expected}")
    return tuple(_coerce(v, a, _NO_CHECKS) for v, a in zip(value, args, strict=True))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


class _Section:
    """Mixin that validates and normalises a section dataclass after construction."""

    section: ClassVar[str]

    def __post_init__(self) -> None:
        self._prepare()
        problems = []
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            try:
                value = _coerce(getattr(self, f.name), hints[f.name], f.metadata)
            except _Invalid as err:
                problems.append(Problem(f"{self.section}.{f.name}", err.detail))
            else:
                object.__setattr__(self, f.name, value)
        if not problems:  # cross-key checks only make sense on well-typed values
            problems = [Problem(f"{self.section}.{k}", d) for k, d in self._cross_check()]
        if problems:
            raise ConfigError(problems)

    def _prepare(self) -> None:
        """Normalise accepted spellings before the type checks (override when needed)."""

    def _cross_check(self) -> list[tuple[str, str]]:
        """Checks that involve several keys: ``[(key, detail), ...]`` (override when needed)."""
        return []


# --------------------------------------------------------------------------------------------
# Sections (keys, defaults and order exactly as in configs/default.yaml)

_SCALERS = ("robust", "standard", "minmax", "none")

_SNS_FEATURES = ERRANT_BEAM_PVS

# The names of data_preparation.sources.SOURCES (the parser imports nothing from the project;
# tests/data_preparation/test_sources.py checks the two lists agree).
SOURCES = ("sns_dcm", "npz", "sessions", "features", "text")


@dataclass(frozen=True)
class RunConfig(_Section):
    """``run``: naming, output folders and seeding of a run."""

    section: ClassVar[str] = "run"

    name: str = "demo"  # run folder suffix: runs/<YYYYmmdd-HHMMSS>-<name>/
    output_dir: str = _option("runs", path=True)
    log_dir: str = _option("logs", path=True)
    seed: int = _option(42, ge=0, le=2**32 - 1)  # NumPy seeds must fit in 32 bits
    deterministic: bool = False
    demo_archive: bool = True

    def _cross_check(self) -> list[tuple[str, str]]:
        if any(c in self.name for c in "/\\") or self.name in (".", ".."):
            return [("name", f"received {self.name!r}; expected a folder-name suffix "
                             "without '/' or '\\'")]
        return []


@dataclass(frozen=True)
class DCMDataConfig(_Section):
    """``data``: where the DCM waveform files are and how pulses are cut from them."""

    section: ClassVar[str] = "data"

    source: str = _option("sns_dcm", choices=SOURCES)
    dataset_loc: str = _option("data/demo/dcm", path=True)
    var_id: str = "Trace2"
    begin: int = _option(3000, ge=0)
    shift: int = _option(10000, gt=0)
    alarm: int = _option(48, ge=-1, le=2**32 - 1)  # -1: any non-zero alarm
    bwidth_cut: float = _option(900.0, ge=0)  # microseconds
    quality_cut: bool = False
    quality_min_peaks: int = _option(100, ge=0)
    quality_min_median: float = 0.02
    quality_max_q1: float = 0.0075
    workers: int = _option(0, ge=0)  # 0: all cores
    cache_dir: str | None = _option(".cache/beamwatch", path=True)
    max_files: int | None = _option(None, ge=1)
    max_file_mb: int = _option(512, ge=1)  # larger DCM files (on disk or gunzipped) are ledgered

    def _cross_check(self) -> list[tuple[str, str]]:
        if self.alarm == 0:
            return [("alarm", "received 0 (int); expected -1 (any alarm) or a positive "
                              "alarm code such as 48 (0 marks normal pulses)")]
        return []


@dataclass(frozen=True)
class BPMDataConfig(_Section):
    """``beam_settings``: the beam-settings PV archive, the PVs fed to the model, the filter.

    ``production_filter`` is a tuple of ``(pv, minimum)`` pairs; ``dict()`` of it is the mapping.
    """

    section: ClassVar[str] = "beam_settings"

    use: bool = True
    data_location: str = _option("data/demo/beam_settings", path=True)
    features: tuple[str, ...] = _option(_SNS_FEATURES, unique=True)
    production_filter: tuple[tuple[str, float], ...] = _option(
        (("ICS_Tim:Gate_BeamOn:RR", 59.9), ("ICS_Tim:Chop_Flavor1:BeamOn", 850.0)),
        unique=True,
        mapping=True,
    )
    group_tolerance: float = _option(1.0e-6, ge=0)
    max_settings_age_s: float | None = _option(86400.0, gt=0)  # None: no limit

    def _cross_check(self) -> list[tuple[str, str]]:
        if self.use and not self.features:
            return [("features", "received an empty list; expected at least one PV while "
                                 "beam_settings.use is true (set use: false for trace-only)")]
        return []


@dataclass(frozen=True)
class SplitConfig(_Section):
    """``split``: how pulses are divided into training, validation and test parts."""

    section: ClassVar[str] = "split"

    method: str = _option(
        "time", choices=("time", "config_group", "stratified_random", "group", "predefined")
    )
    train_fraction: float = _option(0.70, gt=0, lt=1)
    val_fraction: float = _option(0.15, gt=0, lt=1)
    gap_seconds: float = _option(0.0, ge=0)

    def _cross_check(self) -> list[tuple[str, str]]:
        total = self.train_fraction + self.val_fraction
        if total >= 1:
            return [("val_fraction", f"train_fraction + val_fraction is {total:g}; expected "
                                     "below 1 so that a test part remains")]
        return []


@dataclass(frozen=True)
class ScalingConfig(_Section):
    """``scaling``: scalers fitted on the training part, and class-imbalance handling."""

    section: ClassVar[str] = "scaling"

    trace_scaler: str = _option("robust", choices=_SCALERS)
    settings_scaler: str = _option("minmax", choices=_SCALERS)
    imbalance: str = _option(
        "class_weight", choices=("class_weight", "smote", "undersample", "none")
    )
    smote_ratio: float = _option(0.6, gt=0, le=1)
    undersample_ratio: float = _option(0.5, gt=0, le=1)


@dataclass(frozen=True)
class ModelConfig(_Section):
    """``model``: which registered architecture to build and its sizes.

    ``name`` is not checked against the model registry here (the parser imports nothing from
    the project); ``model.build_model`` reports an unknown name, and ``model.compile_model``
    refuses ``loss: contrastive`` for a model whose score is not a distance.
    """

    section: ClassVar[str] = "model"

    # The default compares each pulse with its reference pulses (docs/benchmarks.md, "Choosing
    # the default model").
    name: str = "sns_reference_cnn_lstm"
    per_trace: bool = False
    input_pool: int = _option(10, ge=1)
    conv_filters: tuple[int, ...] = _option((16, 32, 32), ge=1)
    conv_kernels: tuple[int, ...] = _option((7, 5, 5), ge=1)
    conv_strides: tuple[int, ...] = _option((2, 2, 2), ge=1)
    lstm_units: int = _option(32, ge=1)
    bidirectional: bool = True
    attention: bool = True
    global_pooling: bool = True
    settings_units: tuple[int, ...] = _option((32,), ge=1)
    head_units: tuple[int, ...] = _option((32,), ge=1)
    dropout: float = _option(0.2, ge=0, lt=1)
    loss: str = _option("bce", choices=("bce", "focal", "contrastive"))
    focal_alpha: float = _option(0.25, gt=0, lt=1)
    focal_gamma: float = _option(2.0, ge=0)
    # The reference models (sns_reference_cnn_lstm, sns_conditional_siamese):
    use_settings: bool = True
    reference_reduce: str = _option("median", choices=("median", "mean"))
    raw_difference: bool = False
    siamese_filters: tuple[int, ...] = _option((16, 32, 64, 128), ge=1)
    siamese_kernel: int = _option(5, ge=1)
    embedding_units: int = _option(32, ge=1)
    # Unit-length embeddings are at most 2 apart, so a larger margin could never be met.
    contrastive_margin: float = _option(1.0, gt=0, le=2)
    # model/zoo.py (sessions, windows, features, text jobs)
    lstm_layers: int = _option(2, ge=1)
    pool_size: int = _option(2, ge=1)
    embedding_dim: int = _option(128, ge=1)

    def _cross_check(self) -> list[tuple[str, str]]:
        lengths = (len(self.conv_filters), len(self.conv_kernels), len(self.conv_strides))
        if len(set(lengths)) > 1:
            return [("conv_kernels", "conv_filters, conv_kernels and conv_strides have "
                                     f"{lengths[0]}, {lengths[1]} and {lengths[2]} items; "
                                     "expected one item per Conv1D block in each")]
        return []


@dataclass(frozen=True)
class TrainConfig(_Section):
    """``train``: optimiser, callbacks, data streaming and distribution strategy.

    ``streaming`` is normalised to ``"auto"``, ``"true"`` or ``"false"``.
    """

    section: ClassVar[str] = "train"

    epochs: int = _option(15, ge=1)
    batch_size: int = _option(32, ge=1)  # per replica
    optimizer: str = _option("adam", choices=("adam", "sgd"))
    learning_rate: float = _option(0.001, gt=0)
    momentum: float = _option(0.9, ge=0, lt=1)
    early_stopping_patience: int = _option(5, ge=0)
    reduce_lr_patience: int = _option(2, ge=0)
    reduce_lr_factor: float = _option(0.5, gt=0, lt=1)
    min_learning_rate: float = _option(1.0e-5, ge=0)
    tensorboard: bool = True
    streaming: str = _option("auto", choices=("auto", "true", "false"))
    streaming_threshold_mb: int = _option(2048, ge=0)
    distribute: str = _option("none", choices=("none", "auto", "mirrored", "multi_worker"))
    mixed_precision: bool = False
    port_base: int = _option(8888, ge=1024, le=65535)
    gpus_per_node: int | None = _option(None, ge=1)
    gpus_per_task: int | None = _option(None, ge=1)

    def _prepare(self) -> None:
        if isinstance(self.streaming, bool):  # YAML reads `streaming: true` as a bool
            object.__setattr__(self, "streaming", "true" if self.streaming else "false")

    def _cross_check(self) -> list[tuple[str, str]]:
        if self.min_learning_rate > self.learning_rate:
            return [("min_learning_rate", f"received {self.min_learning_rate:g}; expected at "
                                          f"most learning_rate ({self.learning_rate:g})")]
        return []


@dataclass(frozen=True)
class ThresholdConfig(_Section):
    """``threshold``: the operating point chosen on the validation part."""

    section: ClassVar[str] = "threshold"

    operating_point: str = _option(
        "target_false_alarm_rate", choices=("target_false_alarm_rate", "best_f1")
    )
    target_false_alarm_rate: float = _option(0.01, gt=0, lt=1)
    pulse_rate_hz: float = _option(60.0, gt=0)
    # Test flow: also run the online recalibration (analysis.recalibration) from the validation
    # threshold over the evaluated pulses in time order; reported beside the fixed threshold.
    online: bool = True
    online_step: float = _option(0.2, gt=0, le=5)  # logit units per update


@dataclass(frozen=True)
class ReferenceConfig(_Section):
    """``reference``: earlier pulses of the same configuration a pulse is judged against.

    ``count`` 0 turns references off. A sample first takes the pulses just before it in its
    own file, then the most recent earlier normal samples of its configuration group within
    ``window_s``; with fewer than ``min_count`` it is ledgered ``no_reference`` (``missing:
    skip``) or stands in as its own reference (``missing: self``).
    """

    section: ClassVar[str] = "reference"

    count: int = _option(3, ge=0)
    window_s: float = _option(3600.0, gt=0)
    min_count: int = _option(1, ge=1)
    missing: str = _option("skip", choices=("skip", "self"))

    def _cross_check(self) -> list[tuple[str, str]]:
        if self.count and self.min_count > self.count:
            return [("min_count", f"received {self.min_count}; expected at most count "
                                  f"({self.count})")]
        return []


@dataclass(frozen=True)
class SessionsConfig(_Section):
    """``sessions``: one .csv/.xlsx file per session (data.source = sessions).

    ``norms`` items read ``"A=acc_x,acc_y,acc_z"``: a channel A = sqrt(x^2 + y^2 + z^2).
    """

    section: ClassVar[str] = "sessions"

    time_column: str = "timestamp"
    channels: tuple[str, ...] = _option((), unique=True)
    norms: tuple[str, ...] = _option((), unique=True)
    keep_norm_components: bool = False
    expected_columns: tuple[str, ...] = _option((), unique=True)
    max_missing_columns: int = _option(3, ge=0)
    length: int | None = _option(None, ge=2)
    labels_file: str = _option("labels.csv", path=True)

    def _cross_check(self) -> list[tuple[str, str]]:
        for item in self.norms:
            name, sep, parts = item.partition("=")
            if not sep or not name.strip() or len([p for p in parts.split(",") if p.strip()]) < 2:
                return [("norms", f"received {item!r}; expected 'NAME=col_x,col_y,col_z' "
                                  "(two or more columns)")]
        return []


@dataclass(frozen=True)
class WindowsConfig(_Section):
    """``windows``: windowed arrays in one .npz (data.source = npz)."""

    section: ClassVar[str] = "windows"

    x_key: str = "X"
    y_key: str = "y"


@dataclass(frozen=True)
class FeaturesConfig(_Section):
    """``features``: one row per sample in a .csv/.parquet table (data.source = features)."""

    section: ClassVar[str] = "features"

    label_column: str = "label"
    feature_columns: tuple[str, ...] = _option((), unique=True)
    split_column: str = "split"
    group_column: str | None = None


@dataclass(frozen=True)
class TextConfig(_Section):
    """``text``: a .csv of texts and labels (data.source = text)."""

    section: ClassVar[str] = "text"

    text_column: str = "text"
    label_column: str = "label"
    split_column: str = "split"
    max_tokens: int = _option(20000, ge=3)
    max_length: int = _option(200, ge=1)
    standardize: str = _option(
        "lower_and_strip_punctuation",
        choices=("lower_and_strip_punctuation", "lower", "strip_punctuation"),
    )


@dataclass(frozen=True)
class AugmentConfig(_Section):
    """``augment``: random changes to training sequences, drawn afresh each epoch."""

    section: ClassVar[str] = "augment"

    enabled: bool = False
    time_warp: float = _option(0.1, ge=0, lt=1)
    noise_std: float = _option(0.05, ge=0)
    feature_dropout: float = _option(0.1, ge=0, lt=1)


SECTION_CLASSES: Mapping[str, type] = types.MappingProxyType({
    "run": RunConfig,
    "data": DCMDataConfig,
    "beam_settings": BPMDataConfig,
    "split": SplitConfig,
    "scaling": ScalingConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "threshold": ThresholdConfig,
    "reference": ReferenceConfig,
    "sessions": SessionsConfig,
    "windows": WindowsConfig,
    "features": FeaturesConfig,
    "text": TextConfig,
    "augment": AugmentConfig,
})


@dataclass(frozen=True)
class Config:
    """The whole configuration: one section dataclass per ``configs/default.yaml`` section."""

    run: RunConfig = field(default_factory=RunConfig)
    data: DCMDataConfig = field(default_factory=DCMDataConfig)
    beam_settings: BPMDataConfig = field(default_factory=BPMDataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    text: TextConfig = field(default_factory=TextConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        problems = [
            Problem(name, f"received {_show(getattr(self, name))}; expected a {cls.__name__}")
            for name, cls in SECTION_CLASSES.items()
            if not isinstance(getattr(self, name), cls)
        ]
        if problems:
            raise ConfigError(problems)


# --------------------------------------------------------------------------------------------
# Building from mappings, files and overrides


def _unknown_key(section: str, key: Any) -> str:
    """Detail for an unknown key, with the closest valid key path when there is one."""
    cls = SECTION_CLASSES[section]
    valid = _field_names(cls)
    key = str(key)
    elsewhere = [s for s, c in SECTION_CLASSES.items() if key in _field_names(c)]
    if elsewhere:
        return f"unknown key in section '{section}'; did you mean '{elsewhere[0]}.{key}'?"
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return f"unknown key; did you mean '{section}.{close[0]}'?"
    all_paths = {f"{s}.{k}": k for s, c in SECTION_CLASSES.items() for k in _field_names(c)}
    close = difflib.get_close_matches(key, list(all_paths.values()), n=1)
    if close:
        path = next(p for p, k in all_paths.items() if k == close[0])
        return f"unknown key; did you mean '{path}'?"
    return f"unknown key; valid keys of '{section}': {', '.join(valid)}"


def _unknown_section(name: Any) -> str:
    close = difflib.get_close_matches(str(name), list(SECTION_CLASSES), n=1)
    if close:
        return f"unknown section; did you mean '{close[0]}'?"
    return f"unknown section; valid sections: {', '.join(SECTION_CLASSES)}"


# Keys that moved: old (section, key) -> new (section, key). Old configs and saved run folders
# still load; each use warns once with the new place.
_MOVED_KEYS: Mapping[tuple[str, str], tuple[str, str]] = types.MappingProxyType({
    ("scaling", "per_trace"): ("model", "per_trace"),
})


def _move_key(kwargs: dict[str, dict[str, Any]], old: tuple[str, str], value: Any,
              source: str) -> Problem | None:
    """Put a value given under a moved key at its new place, with a FutureWarning."""
    new = _MOVED_KEYS[old]
    old_path, new_path = ".".join(old), ".".join(new)
    if new[1] in kwargs[new[0]] and kwargs[new[0]][new[1]] != value:
        return Problem(old_path, f"received {_show(value)}, but {new_path} is "
                                 f"{_show(kwargs[new[0]][new[1]])}; {old_path} is the old name "
                                 f"of {new_path}: give only {new_path}")
    warnings.warn(f"{source}: {old_path} is deprecated; it is now {new_path}.",
                  FutureWarning, stacklevel=4)
    kwargs[new[0]][new[1]] = value
    return None


def _build(data: Any, source: str, origins: Mapping[str, str]) -> Config:
    """Check the sections and keys of ``data``, then construct every section over its defaults."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            Problem("", f"received {_show(data)} at the top level; expected a mapping of "
                        f"sections ({', '.join(SECTION_CLASSES)})"),
            source,
        )
    problems: list[Problem] = []
    kwargs: dict[str, dict[str, Any]] = {name: {} for name in SECTION_CLASSES}
    moved: dict[tuple[str, str], Any] = {}
    for name, body in data.items():
        if name not in SECTION_CLASSES:
            problems.append(Problem(str(name), _unknown_section(name)))
        elif body is not None and not isinstance(body, Mapping):
            problems.append(Problem(name, f"received {_show(body)}; expected a mapping of "
                                          f"keys such as '{_field_names(SECTION_CLASSES[name])[0]}'"))
        else:
            valid = _field_names(SECTION_CLASSES[name])
            for key, value in (body or {}).items():
                if key in valid:
                    kwargs[name][key] = value
                elif (name, key) in _MOVED_KEYS:
                    moved[(name, key)] = value
                else:
                    problems.append(Problem(f"{name}.{key}", _unknown_key(name, key)))
    for old, value in moved.items():  # after the loop: the new key wins wherever it stands
        problem = _move_key(kwargs, old, value, source)
        if problem is not None:
            problems.append(problem)
    sections = {}
    for name, cls in SECTION_CLASSES.items():
        try:
            sections[name] = cls(**kwargs[name])
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        located = [p._replace(origin=p.origin or origins.get(p.key) or origins.get(
            p.key.split(".")[0]) or source) for p in problems]
        raise ConfigError(located, source)
    return Config(**sections)


def config_from_dict(data: Mapping[str, Any] | None, source: str = "<dict>") -> Config:
    """Build a ``Config`` from a plain mapping (e.g. a run's saved ``config.yaml``).

    Missing sections and keys take their defaults; ``source`` names the origin in errors.
    """
    return _build(data, source, {})


def _read_yaml(path: str | os.PathLike) -> tuple[Any, dict[str, str], list[Problem]]:
    """Parse a YAML file: ``(data, origin of each key path, duplicate-key problems)``."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError(Problem("", f"cannot read the config file ({reason})"), source) from err
    nesting = _flow_nesting(text)
    if nesting > MAX_YAML_NESTING:
        raise ConfigError(Problem("", f"YAML nested {nesting} levels deep; a config needs at most "
                                      f"{MAX_YAML_NESTING}"), source)
    try:
        data = yaml.safe_load(text)
        tree = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only, to find key lines
    except RecursionError as err:  # deep block nesting the bracket count does not see
        raise ConfigError(Problem("", f"YAML nested too deeply (more than {MAX_YAML_NESTING} "
                                      "levels are never needed)"), source) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        what = getattr(err, "problem", None) or str(err)
        column = f" (column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(Problem("", f"invalid YAML: {what}{column}", where), source) from err
    origins: dict[str, str] = {}
    duplicates: list[Problem] = []
    _walk_keys(tree, "", source, origins, duplicates, depth=3)
    return data, origins, duplicates


MAX_YAML_NESTING = 32  # configs nest 3 levels; deeper input is hostile or a mistake


def _flow_nesting(text: str) -> int:
    """The deepest [ / { bracket nesting in `text` (ignoring quotes: an upper bound, cheap)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def _walk_keys(node: Any, prefix: str, source: str, origins: dict[str, str],
               duplicates: list[Problem], depth: int) -> None:
    """Record the line of each mapping key; flag keys given twice (YAML keeps the last)."""
    if not isinstance(node, yaml.MappingNode) or depth == 0:
        return
    first_line: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        path = f"{prefix}{key_node.value}"
        line = key_node.start_mark.line + 1
        if path in first_line:
            duplicates.append(Problem(path, f"given twice (first at line {first_line[path]}); "
                                            "YAML would silently keep the last",
                                      f"{source}:{line}"))
        else:
            first_line[path] = line
            origins[path] = f"{source}:{line}"
        _walk_keys(value_node, f"{path}.", source, origins, duplicates, depth - 1)


def _apply_overrides(data: Any, overrides: Sequence[str], origins: dict[str, str]
                     ) -> tuple[Any, list[Problem]]:
    """Merge ``section.key=value`` strings (values parsed as YAML) into a copy of ``data``."""
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a sequence of 'section.key=value' strings, "
                        f"not a single string {overrides!r}; wrap it in a list")
    if not overrides:
        return data, []
    if not isinstance(data, Mapping):  # top-level problem; _build reports it
        return data, []
    merged = {name: (dict(body) if isinstance(body, Mapping) else body)
              for name, body in data.items()}
    problems = []
    for text in overrides:
        origin = f"override {text!r}"
        target, sep, raw = str(text).partition("=")
        names = target.strip().split(".")
        if not sep or len(names) != 2 or not all(names):
            problems.append(Problem("", "expected the form section.key=value, e.g. "
                                        "train.epochs=3", origin))
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            detail = getattr(err, "problem", None) or str(err)
            problems.append(Problem(target.strip(), f"cannot parse {raw!r} as YAML: {detail}",
                                    origin))
            continue
        section, key = names
        body = merged.get(section)
        if body is None:
            body = merged[section] = {}
        if isinstance(body, dict):
            body[key] = value
            origins[f"{section}.{key}"] = origin
            origins.setdefault(section, origin)
    return merged, problems


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML config over the defaults and apply ``section.key=value`` overrides.

    Args:
        path: a YAML file holding any subset of the sections and keys of
            ``configs/default.yaml``; ``None`` uses the defaults only.
        overrides: strings such as ``"train.epochs=3"``, ``"model.conv_filters=[8, 16]"`` or
            ``"data.cache_dir=null"``; the value is read as YAML. Applied after the file.

    Returns:
        The validated, frozen ``Config``.

    Raises:
        ConfigError: listing every problem with its file and line (or override), key path,
            the value received and what is allowed.
    """
    if path is None:
        source, data, origins, problems = "<defaults>", {}, {}, []
    else:
        source = os.fspath(path)
        data, origins, problems = _read_yaml(path)
    data, override_problems = _apply_overrides(data, overrides, origins)
    problems += override_problems
    try:
        config = _build(data, source, origins)
    except ConfigError as err:
        problems += list(err.problems)
    if problems:
        raise ConfigError(problems, source)
    return config


# --------------------------------------------------------------------------------------------
# Back to plain data


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Plain, YAML-ready mapping: tuples become lists, production_filter a {pv: minimum} map."""
    out: dict[str, dict[str, Any]] = {}
    for name in SECTION_CLASSES:
        section = getattr(config, name)
        body = {}
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if f.metadata.get("mapping"):
                value = {pv: minimum for pv, minimum in value}
            elif isinstance(value, tuple):
                value = list(value)
            body[f.name] = value
        out[name] = body
    return out


def dump_config(config: Config) -> str:
    """YAML text of ``config``, sections in ``configs/default.yaml`` order; loads back equal."""
    header = "# beamwatch resolved config (parser.configs.dump_config)\n"
    return header + yaml.safe_dump(
        config_to_dict(config), sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def replace_section(config: Config, section: str, **changes: Any) -> Config:
    """A copy of ``config`` with some keys of one section changed (and validated).

    >>> replace_section(Config(), "train", epochs=3).train.epochs
    3
    """
    if section not in SECTION_CLASSES:
        raise ConfigError(Problem(str(section), _unknown_section(section)))
    unknown = [k for k in changes if k not in _field_names(SECTION_CLASSES[section])]
    if unknown:
        raise ConfigError([Problem(f"{section}.{k}", _unknown_key(section, k)) for k in unknown])
    updated = dataclasses.replace(getattr(config, section), **changes)
    return dataclasses.replace(config, **{section: updated})
