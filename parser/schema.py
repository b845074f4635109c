"""The config schema: one frozen dataclass per `configs/default.yaml` section, and `Config`.

Keys, defaults and order are exactly those of `configs/default.yaml`; the checks live in
`parser.validation` (each section validates itself when constructed).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from enterprise_tools.sns_pvs import ERRANT_BEAM_PVS
from parser.cross_checks import history_problems
from parser.validation import ConfigError, Problem, Section, option, show_value

__all__ = [
    "AugmentConfig",
    "BPMDataConfig",
    "Config",
    "DCMDataConfig",
    "FeaturesConfig",
    "HistoryConfig",
    "LiveConfig",
    "ModelConfig",
    "ReferenceConfig",
    "RunConfig",
    "ScalingConfig",
    "SECTION_CLASSES",
    "SessionsConfig",
    "SplitConfig",
    "TextConfig",
    "ThresholdConfig",
    "TrainConfig",
    "WindowsConfig",
]


# --------------------------------------------------------------------------------------------
# Sections (keys, defaults and order exactly as in configs/default.yaml)

_SCALERS = ("robust", "standard", "minmax", "none")

_SNS_FEATURES = ERRANT_BEAM_PVS

@dataclass(frozen=True)
class RunConfig(Section):
    """``run``: naming, output folders and seeding of a run."""

    section: ClassVar[str] = "run"

    name: str = "demo"  # run folder suffix: runs/<YYYYmmdd-HHMMSS>-<name>/
    output_dir: str = option("runs", path=True)
    log_dir: str = option("logs", path=True)
    seed: int = option(42, ge=0, le=2**32 - 1)  # NumPy seeds must fit in 32 bits
    deterministic: bool = False
    demo_archive: bool = True

    def _cross_check(self) -> list[tuple[str, str]]:
        if any(c in self.name for c in "/\\") or self.name in (".", ".."):
            return [("name", f"received {self.name!r}; expected a folder-name suffix "
                             "without '/' or '\\'")]
        return []


@dataclass(frozen=True)
class DCMDataConfig(Section):
    """``data``: where the DCM waveform files are and how pulses are cut from them."""

    section: ClassVar[str] = "data"

    # a name in data_preparation.sources.SOURCES: the parser imports nothing from the project,
    # so the driver checks it (data_preparation.sources.get_source) before any verb runs
    source: str = "sns_dcm"
    dataset_loc: str = option("data/demo/dcm", path=True)
    var_id: str = "Trace2"
    begin: int = option(3000, ge=0)
    shift: int = option(10000, gt=0)
    alarm: int = option(48, ge=-1, le=2**32 - 1)  # -1: any non-zero alarm
    bwidth_cut: float = option(900.0, ge=0)  # microseconds
    quality_cut: bool = False
    quality_min_peaks: int = option(100, ge=0)
    quality_min_median: float = 0.02
    quality_max_q1: float = 0.0075
    workers: int = option(0, ge=0)  # 0: all cores
    cache_dir: str | None = option(".cache/beamwatch", path=True)
    max_files: int | None = option(None, ge=1)
    max_file_mb: int = option(512, ge=1)  # larger DCM files (on disk or gunzipped) are ledgered
    max_table_mb: int = option(256, ge=1)  # larger tables/.npz (on disk or unzipped) refused
    max_line_kb: int = option(1024, ge=1)  # a longer line in a .csv table is refused

    def _cross_check(self) -> list[tuple[str, str]]:
        if self.alarm == 0:
            return [("alarm", "received 0 (int); expected -1 (any alarm) or a positive "
                              "alarm code such as 48 (0 marks normal pulses)")]
        return []


@dataclass(frozen=True)
class BPMDataConfig(Section):
    """``beam_settings``: the beam-settings PV archive, the PVs fed to the model, the filter.

    ``production_filter`` is a tuple of ``(pv, minimum)`` pairs; ``dict()`` of it is the mapping.
    """

    section: ClassVar[str] = "beam_settings"

    use: bool = True
    data_location: str = option("data/demo/beam_settings", path=True)
    features: tuple[str, ...] = option(_SNS_FEATURES, unique=True)
    production_filter: tuple[tuple[str, float], ...] = option(
        (("ICS_Tim:Gate_BeamOn:RR", 59.9), ("ICS_Tim:Chop_Flavor1:BeamOn", 850.0)),
        unique=True,
        mapping=True,
    )
    group_tolerance: float = option(1.0e-6, ge=0)
    max_settings_age_s: float | None = option(86400.0, gt=0)  # None: no limit

    def _cross_check(self) -> list[tuple[str, str]]:
        if self.use and not self.features:
            return [("features", "received an empty list; expected at least one PV while "
                                 "beam_settings.use is true (set use: false for trace-only)")]
        return []


@dataclass(frozen=True)
class SplitConfig(Section):
    """``split``: how pulses are divided into training, validation and test parts."""

    section: ClassVar[str] = "split"

    method: str = option(
        "time", choices=("time", "config_group", "stratified_random", "group", "predefined")
    )
    train_fraction: float = option(0.70, gt=0, lt=1)
    val_fraction: float = option(0.15, gt=0, lt=1)
    gap_seconds: float = option(0.0, ge=0)

    def _cross_check(self) -> list[tuple[str, str]]:
        total = self.train_fraction + self.val_fraction
        if total >= 1:
            return [("val_fraction", f"train_fraction + val_fraction is {total:g}; expected "
                                     "below 1 so that a test part remains")]
        return []


@dataclass(frozen=True)
class ScalingConfig(Section):
    """``scaling``: scalers fitted on the training part, and class-imbalance handling."""

    section: ClassVar[str] = "scaling"

    trace_scaler: str = option("robust", choices=_SCALERS)
    settings_scaler: str = option("minmax", choices=_SCALERS)
    imbalance: str = option(
        "class_weight", choices=("class_weight", "smote", "undersample", "none")
    )
    smote_ratio: float = option(0.6, gt=0, le=1)
    undersample_ratio: float = option(0.5, gt=0, le=1)


@dataclass(frozen=True)
class ModelConfig(Section):
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
    input_pool: int = option(10, ge=1)
    conv_filters: tuple[int, ...] = option((16, 32, 32), ge=1)
    conv_kernels: tuple[int, ...] = option((7, 5, 5), ge=1)
    conv_strides: tuple[int, ...] = option((2, 2, 2), ge=1)
    lstm_units: int = option(32, ge=1)
    bidirectional: bool = True
    attention: bool = True
    global_pooling: bool = True
    settings_units: tuple[int, ...] = option((32,), ge=1)
    head_units: tuple[int, ...] = option((32,), ge=1)
    dropout: float = option(0.2, ge=0, lt=1)
    loss: str = option("bce", choices=("bce", "focal", "contrastive"))
    focal_alpha: float = option(0.25, gt=0, lt=1)
    focal_gamma: float = option(2.0, ge=0)
    # The reference models (sns_reference_cnn_lstm, sns_conditional_siamese):
    use_settings: bool = True
    reference_reduce: str = option("median", choices=("median", "mean"))
    siamese_filters: tuple[int, ...] = option((16, 32, 64, 128), ge=1)
    siamese_kernel: int = option(5, ge=1)
    embedding_units: int = option(32, ge=1)
    # Unit-length embeddings are at most 2 apart, so a larger margin could never be met.
    contrastive_margin: float = option(1.0, gt=0, le=2)
    # model/zoo.py (sessions, windows, features, text jobs)
    lstm_layers: int = option(2, ge=1)
    pool_size: int = option(2, ge=1)
    embedding_dim: int = option(128, ge=1)

    def _cross_check(self) -> list[tuple[str, str]]:
        lengths = (len(self.conv_filters), len(self.conv_kernels), len(self.conv_strides))
        if len(set(lengths)) > 1:
            return [("conv_kernels", "conv_filters, conv_kernels and conv_strides have "
                                     f"{lengths[0]}, {lengths[1]} and {lengths[2]} items; "
                                     "expected one item per Conv1D block in each")]
        return []


@dataclass(frozen=True)
class TrainConfig(Section):
    """``train``: optimiser, callbacks, data streaming and distribution strategy.

    ``streaming`` is normalised to ``"auto"``, ``"true"`` or ``"false"``.
    """

    section: ClassVar[str] = "train"

    epochs: int = option(15, ge=1)
    batch_size: int = option(32, ge=1)  # per replica
    optimizer: str = option("adam", choices=("adam", "sgd"))
    learning_rate: float = option(0.001, gt=0)
    momentum: float = option(0.9, ge=0, lt=1)
    early_stopping_patience: int = option(5, ge=0)
    reduce_lr_patience: int = option(2, ge=0)
    reduce_lr_factor: float = option(0.5, gt=0, lt=1)
    min_learning_rate: float = option(1.0e-5, ge=0)
    tensorboard: bool = True
    streaming: str = option("auto", choices=("auto", "true", "false"))
    streaming_threshold_mb: int = option(2048, ge=0)
    distribute: str = option("none", choices=("none", "auto", "mirrored", "multi_worker"))
    mixed_precision: bool = False
    port_base: int = option(8888, ge=1024, le=65535)
    gpus_per_node: int | None = option(None, ge=1)
    gpus_per_task: int | None = option(None, ge=1)
    # The sessions / npz / features / text jobs only (training.samples_flow):
    peer: bool = True  # fit the job's simple peer on the same split (training.peers)
    epoch_choice: str = option("auto", choices=("auto", "validation", "cv", "fixed"))
    min_val_per_class: int = option(10, ge=1)  # auto: fewer in a class -> cv
    cv_folds: int = option(3, ge=2)
    # plateau: ReduceLROnPlateau (reduce_lr_*); cosine: from learning_rate down to
    # min_learning_rate over `epochs`, the same per-epoch rate for cv folds and the final fit
    lr_schedule: str = option("plateau", choices=("plateau", "cosine"))

    def _prepare(self) -> None:
        if isinstance(self.streaming, bool):  # YAML reads `streaming: true` as a bool
            object.__setattr__(self, "streaming", "true" if self.streaming else "false")

    def _cross_check(self) -> list[tuple[str, str]]:
        if self.min_learning_rate > self.learning_rate:
            return [("min_learning_rate", f"received {self.min_learning_rate:g}; expected at "
                                          f"most learning_rate ({self.learning_rate:g})")]
        return []


@dataclass(frozen=True)
class ThresholdConfig(Section):
    """``threshold``: the operating point, chosen on data the model never trained on.

    ``operating_point: false_alarms_per_hour`` (the default) places the threshold so the normal
    pulses it is chosen on would give at most ``false_alarms_per_hour`` false alarms per hour of
    beam at ``pulse_rate_hz``; ``target_false_alarm_rate`` is a share of normal pulses, and
    ``best_f1`` maximises F1. A validation part of a few hundred sampled pulses stands for
    seconds of beam, too short to place a rate of a few per hour: the threshold then sits just
    above every validation normal pulse (threshold.json says ``resolved: false``) and the online
    recalibration, tracking the same rate per pulse, lowers it on the every-pulse stream.
    """

    section: ClassVar[str] = "threshold"

    operating_point: str = option(
        "false_alarms_per_hour",
        choices=("false_alarms_per_hour", "target_false_alarm_rate", "best_f1"),
    )
    false_alarms_per_hour: float = option(10.0, gt=0)
    target_false_alarm_rate: float = option(0.01, gt=0, lt=1)
    pulse_rate_hz: float = option(60.0, gt=0)
    # Test flow: also run the online recalibration (analysis.recalibration) from the validation
    # threshold over the evaluated pulses in time order; reported beside the fixed threshold.
    online: bool = True
    online_step: float = option(0.2, gt=0, le=5)  # logit units per update

    def choice(self) -> dict:
        """The keyword arguments of `analysis.thresholds.choose_threshold` for this section."""
        return dict(method=self.operating_point,
                    target_false_alarm_rate=self.target_false_alarm_rate,
                    false_alarms_per_hour=self.false_alarms_per_hour,
                    pulse_rate_hz=self.pulse_rate_hz)


@dataclass(frozen=True)
class ReferenceConfig(Section):
    """``reference``: earlier pulses of the same configuration a pulse is judged against.

    ``count`` 0 turns references off. A sample first takes the pulses just before it in its
    own file, then the most recent earlier normal samples of its configuration group within
    ``window_s``; with fewer than ``min_count`` it is ledgered ``no_reference`` (``missing:
    skip``) or stands in as its own reference (``missing: self``). ``own_file: false`` keeps
    references out of a run-up: none from the sample's own file, only normal samples of other
    acquisitions ending at least ``min_age_s`` before its acquisition (live: clean pulses at
    least ``min_age_s`` old), alike for both classes.
    """

    section: ClassVar[str] = "reference"

    count: int = option(3, ge=0)
    window_s: float = option(3600.0, gt=0)
    min_count: int = option(1, ge=1)
    missing: str = option("skip", choices=("skip", "self"))
    own_file: bool = True
    min_age_s: float = option(60.0, ge=0)

    def _cross_check(self) -> list[tuple[str, str]]:
        if self.count and self.min_count > self.count:
            return [("min_count", f"received {self.min_count}; expected at most count "
                                  f"({self.count})")]
        return []


@dataclass(frozen=True)
class HistoryConfig(Section):
    """``history``: ``count`` N (0: off) well-formed, non-tripping pulses strictly before a
    sample in its own file, right-aligned, empty slots masked, given to the model as a sequence
    (a precursor growing over several pulses is a trend). Checked across sections by
    ``parser.cross_checks``: a history model and ``reference.own_file: false``."""

    section: ClassVar[str] = "history"

    count: int = option(0, ge=0)


@dataclass(frozen=True)
class SessionsConfig(Section):
    """``sessions``: one .csv/.xlsx file per session (data.source = sessions).

    ``norms`` items read ``"A=acc_x,acc_y,acc_z"``: a channel A = sqrt(x^2 + y^2 + z^2).
    """

    section: ClassVar[str] = "sessions"

    time_column: str = "timestamp"
    channels: tuple[str, ...] = option((), unique=True)
    norms: tuple[str, ...] = option((), unique=True)
    keep_norm_components: bool = False
    expected_columns: tuple[str, ...] = option((), unique=True)
    max_missing_columns: int = option(3, ge=0)
    length: int | None = option(None, ge=2)
    labels_file: str = option("labels.csv", path=True)

    def _cross_check(self) -> list[tuple[str, str]]:
        for item in self.norms:
            name, sep, parts = item.partition("=")
            if not sep or not name.strip() or len([p for p in parts.split(",") if p.strip()]) < 2:
                return [("norms", f"received {item!r}; expected 'NAME=col_x,col_y,col_z' "
                                  "(two or more columns)")]
        return []


@dataclass(frozen=True)
class WindowsConfig(Section):
    """``windows``: windowed arrays in one .npz (data.source = npz)."""

    section: ClassVar[str] = "windows"

    x_key: str = "X"
    y_key: str = "y"


@dataclass(frozen=True)
class FeaturesConfig(Section):
    """``features``: one row per sample in a .csv/.parquet table (data.source = features)."""

    section: ClassVar[str] = "features"

    label_column: str = "label"
    feature_columns: tuple[str, ...] = option((), unique=True)
    split_column: str = "split"
    group_column: str | None = None


@dataclass(frozen=True)
class TextConfig(Section):
    """``text``: a .csv of texts and labels (data.source = text)."""

    section: ClassVar[str] = "text"

    text_column: str = "text"
    label_column: str = "label"
    split_column: str = "split"
    max_tokens: int = option(20000, ge=3)
    max_length: int = option(200, ge=1)
    standardize: str = option(
        "lower_and_strip_punctuation",
        choices=("lower_and_strip_punctuation", "lower", "strip_punctuation"),
    )


@dataclass(frozen=True)
class AugmentConfig(Section):
    """``augment``: random changes to training sequences, drawn afresh each epoch."""

    section: ClassVar[str] = "augment"

    enabled: bool = False
    time_warp: float = option(0.1, ge=0, lt=1)
    noise_std: float = option(0.05, ge=0)
    feature_dropout: float = option(0.1, ge=0, lt=1)


@dataclass(frozen=True)
class LiveConfig(Section):
    """``live``: live scoring beside the machine - the EPICS score server and the EPICS input.

    The server (``--epics PREFIX``) listens on ``epics_interfaces`` only (default 127.0.0.1:
    serving the network is an operator's choice) and refuses to start when a search for
    PREFIX:SCORE finds another server within ``epics_duplicate_search_s``. The input
    (``--epics-input``) subscribes to ``waveform_pv`` and the run's settings PVs (named as in
    serving.json, after ``settings_pv_prefix``) over ``input_protocol``; see docs/live.md.
    """

    section: ClassVar[str] = "live"

    epics_interfaces: tuple[str, ...] = option(("127.0.0.1",), unique=True)
    epics_duplicate_search_s: float = option(1.0, ge=0)
    input_protocol: str = option("ca", choices=("ca", "pva"))
    waveform_pv: str | None = None
    waveform_offset: int = option(0, ge=0)
    counter_pv: str | None = None
    alarm_pv: str | None = None
    settings_pv_prefix: str | None = None
    pulse_wait_s: float = option(0.2, gt=0)
    connect_timeout_s: float = option(10.0, gt=0)

    def _cross_check(self) -> list[tuple[str, str]]:
        if not self.epics_interfaces:
            return [("epics_interfaces", "received an empty list; expected at least one address "
                                         "(127.0.0.1, or 0.0.0.0 for every interface)")]
        return []


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
    "history": HistoryConfig,
    "sessions": SessionsConfig,
    "windows": WindowsConfig,
    "features": FeaturesConfig,
    "text": TextConfig,
    "augment": AugmentConfig,
    "live": LiveConfig,
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
    history: HistoryConfig = field(default_factory=HistoryConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    text: TextConfig = field(default_factory=TextConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    live: LiveConfig = field(default_factory=LiveConfig)

    def __post_init__(self) -> None:
        problems = [
            Problem(name, f"received {show_value(getattr(self, name))}; expected a {cls.__name__}")
            for name, cls in SECTION_CLASSES.items()
            if not isinstance(getattr(self, name), cls)
        ]
        if problems:
            raise ConfigError(problems)
        problems = [Problem(key, detail) for key, detail in history_problems(self)]
        if problems:
            raise ConfigError(problems)
