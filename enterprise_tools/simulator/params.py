"""Machine constants, the truth.csv layout, ``SimulatorParams`` and its presets."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from enterprise_tools.sns_pvs import ERRANT_BEAM_PVS

# --------------------------------------------------------------------------------------
# Constants of the recorder and the machine
# --------------------------------------------------------------------------------------

N_SAMPLES = 16000  # samples per DCM record
SAMPLE_NS = 100.0  # 10 MS/s
WINDOW_BEGIN = 3000  # the analysis window starts here; the beam starts a few us later
MINIPULSE_NS = 945.0  # SNS ring revolution period: one chopper mini-pulse per turn
TRACE1_STEP = 2.0**-18  # 14-bit ADC over a 2**-4 full scale
TRACE1_RANGE = (-(2.0**-7), 2.0**-4 - 2.0**-7)
TRACE2_STEP = 2.0**-20  # 14-bit ADC over a 2**-6 full scale (differential channel)
TRACE2_RANGE = (-(2.0**-7), 2.0**-7 - TRACE2_STEP)
NOMINAL_PEAK = 0.035  # Trace1 peak current at nominal source settings (archive units)
NOMINAL_LOSS = 0.008  # baseline lost fraction at the best LEBT settings
ERRANT_ALARM = 48
NS = 1_000_000_000

PV_NAMES = ERRANT_BEAM_PVS
PV_INDEX = {name: i for i, name in enumerate(PV_NAMES)}

# Production ranges (units: kV, sccm, W, kW, us, ns, Hz); a re-configuration draws uniformly.
PRODUCTION_RANGES = {
    "FE_IS:Match:TunerPos": (40.0, 60.0),
    "LEBT:Chop_N:V_Set": (-2.9, -2.2),
    "LEBT:Chop_P:V_Set": (2.2, 2.9),
    "LEBT:Focus_1:V_Set": (36.0, 44.0),
    "LEBT:Focus_2:V_Set": (32.0, 40.0),
    "LEBT:Steer_A:V_Set": (-0.6, 0.6),
    "LEBT:Steer_B:V_Set": (-0.6, 0.6),
    "LEBT:Steer_C:V_Set": (-0.6, 0.6),
    "LEBT:Steer_D:V_Set": (-0.6, 0.6),
    "Src:Accel:V_Set": (63.0, 67.0),
    "Src:H2:Flw_Set": (24.0, 32.0),
    "Src:Ign:Pwr_Set": (250.0, 350.0),
    "Src:RF_Gnd:Pwr_Set": (50.0, 61.0),
    "ICS_Chop:RampDown:PW": (10.0, 30.0),
    "ICS_Chop:RampUp:PWChange": (20.0, 60.0),
    "ICS_MPS:Gate_Source:Offset": (2.0, 6.0),
    "ICS_Tim:Chop_Flavor1:BeamOn": (930.0, 990.0),
    "ICS_Tim:Chop_Flavor1:OnPulseWidth": (560.0, 640.0),
    "ICS_Tim:Chop_Flavor1:RampUp": (20.0, 100.0),
    "ICS_Tim:Chop_Flavor1:StartPulseWidth": (350.0, 500.0),
}
# PVs a tuning step nudges (operators trim the source and the LEBT), and by how much (range share)
TUNABLE = (
    "FE_IS:Match:TunerPos",
    "LEBT:Focus_1:V_Set",
    "LEBT:Focus_2:V_Set",
    "LEBT:Steer_A:V_Set",
    "LEBT:Steer_B:V_Set",
    "LEBT:Steer_C:V_Set",
    "LEBT:Steer_D:V_Set",
    "Src:H2:Flw_Set",
    "Src:RF_Gnd:Pwr_Set",
)
TUNING_STEP = 0.08

PRECURSOR_KINDS = ("ramp", "burst", "sag", "rf_jitter")
MODES = ("production", "off", "study", "low_rr")
TRUTH_COLUMNS = (
    "file",
    "pulse_index",
    "timestamp_ns",
    "alarm",
    "label",
    "role",
    "precursor_kind",
    "precursor_strength",
    "config_id",
    "expected_skip",
    "precursor_onset",
    "pulse_in_file",
    "blip",
)
# expected_skip codes (the get_traces codes of sample_rules, and the two the loader adds)
SKIP_CORRUPT = "corrupt_file"
SKIP_SETTINGS = "no_production_settings"
SKIP_MISLABELLED = "mislabelled_normal_file"
SKIP_LOW_BWIDTH = "no_production_beam"
SKIP_NO_TRIP = "anomaly_file_without_trip"


# --------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatorParams:
    """Every knob of the simulated archive. Defaults: one realistic day at SNS-like rates.

    Archive:
        seed: root of every random stream (same seed and params: byte-identical archive).
        start: ISO time (UTC) of the first settings row; acquisitions follow.
        hours: length of the simulated period.
        compresslevel: gzip level of the DCM files (1 = fast, 9 = small).
    Acquisitions:
        normal_interval_s: mean time between normal acquisitions (Poisson) while beam is on.
        pulses_per_normal_file: pulses in a normal file.
        context_pulses: pulses before the precursor in an anomaly file (the file holds
            context + precursor + trip pulses); errant files ignore it when
            ``match_sample_index`` is on.
    Faults:
        errant_trips_per_hour: rate of errant-beam trips (Alarm 48) while beam is on.
        mps_trips_per_hour: rate of other machine-protection trips.
        mps_alarm_codes: Alarm codes those trips carry.
        mislabelled_fraction: share of normal files that hold an alarm pulse anyway.
        corrupt_files: number of files truncated or garbled after writing.
        no_precursor_fraction: share of errant trips whose previous pulse shows nothing.
        precursor_kinds: precursor shapes drawn uniformly for the others.
        precursor_strength: (min, max) of the log-uniform precursor strength, in units of the
            configuration's own baseline loss.
    Settings evolution:
        tuning_interval_h: mean time between small tuning steps.
        reconfig_interval_h: mean time between full re-configurations.
        beam_off_per_day, beam_off_hours: rate and (min, max) length of beam-off periods.
        study_per_day, study_hours: short-pulse study periods (bWidth < 900, 30 or 1 Hz).
        low_rr_per_day, low_rr_hours: full-width periods at 30 or 10 Hz.
        heartbeat_s: the archiver records every PV at least this often.
    Physics:
        loss_multiplier_max: the worst LEBT configuration loses this many times the best.
        trace1_noise, trace2_noise: white-noise rms (archive units).
        flicker_noise: 1/f noise rms as a share of the white-noise rms.
        glitches_per_trace: mean number of single-sample ADC glitches per trace.
        pulse_jitter: pulse-to-pulse relative jitter of current and loss level.
    Realism (every default below is inactive: the demo, tiny and standard archives are the
    same as before these knobs existed; ``realistic()`` turns them on):
        pulses_per_normal_file_max: 0 = every normal file holds ``pulses_per_normal_file``
            pulses; otherwise a normal file's length is uniform in
            ``pulses_per_normal_file..pulses_per_normal_file_max``.
        match_sample_index: draw the number i of pulses before the sample pulse in an errant
            file (the file holds i + sample + trip pulses) from the distribution of a normal
            sample's index in its file, so the index (what a causal model knows, and what decides
            how many in-file reference pulses it has) carries no label. That distribution is
            P(index = j) = P(L > j) / E[L] for normal-file length L (a file of L pulses gives L
            samples). False: i = ``context_pulses``.
        old_style_fraction: share of the samples of each label that come from older-style files
            holding only a ``Before``/``During`` tagged pulse pair and no status records (the
            ``Before`` pulse is the sample). Errant files are older-style at this rate; normal
            files at the rate that gives the same share of normal samples (they hold one sample
            where a new file holds L), so the file style carries no label either.
        precursor_onset_mean, precursor_onset_max: the precursor begins ``onset`` pulses before
            the trip (1 = only the pulse before it), onset geometric with this mean (before
            truncation) on 1..max. So some precursors start inside the pulses a reference
            would use (the pulses before the sample in its file).
        precursor_growth: precursor strength d pulses before the trip (1 <= d <= onset) is
            ``strength * ((onset - d + 1) / onset) ** precursor_growth``: full on the sample
            pulse, weaker the earlier.
        drift_loss: relative rms of the slow wander of the baseline loss (machine drift,
            independent of the settings); 0 = none.
        drift_shape: rms of the slow wander of the loss shape: the slope along the pulse
            (additive), the bump height (relative) and the bump place (0.2 x this, pulse share).
        drift_hours: typical period of that wander (a sum of sinusoids of 0.5-2x this period).
        blip_fraction: share of non-trip pulses carrying a benign loss blip (1-2 short bursts
            like a ``burst`` precursor) that leads to no trip; the pulse keeps its label.
        blip_strength: (min, max) of the log-uniform blip height, in baseline-loss units.
    """

    seed: int = 0
    start: str = "2026-01-05T00:00:00+00:00"
    hours: float = 24.0
    compresslevel: int = 1
    normal_interval_s: float = 60.0
    pulses_per_normal_file: int = 4
    context_pulses: int = 2
    errant_trips_per_hour: float = 3.0
    mps_trips_per_hour: float = 0.5
    mps_alarm_codes: tuple[int, ...] = (16, 64)
    mislabelled_fraction: float = 0.01
    corrupt_files: int = 0
    no_precursor_fraction: float = 0.15
    precursor_kinds: tuple[str, ...] = PRECURSOR_KINDS
    precursor_strength: tuple[float, float] = (0.1, 4.0)
    tuning_interval_h: float = 3.0
    reconfig_interval_h: float = 30.0
    beam_off_per_day: float = 1.0
    beam_off_hours: tuple[float, float] = (0.5, 3.0)
    study_per_day: float = 0.5
    study_hours: tuple[float, float] = (1.0, 3.0)
    low_rr_per_day: float = 0.5
    low_rr_hours: tuple[float, float] = (0.5, 2.0)
    heartbeat_s: float = 600.0
    loss_multiplier_max: float = 4.0
    trace1_noise: float = 2.0e-5
    trace2_noise: float = 4.0e-5
    flicker_noise: float = 0.5
    glitches_per_trace: float = 0.3
    pulse_jitter: float = 0.03
    pulses_per_normal_file_max: int = 0
    match_sample_index: bool = False
    old_style_fraction: float = 0.0
    precursor_onset_mean: float = 1.0
    precursor_onset_max: int = 1
    precursor_growth: float = 1.0
    drift_loss: float = 0.0
    drift_shape: float = 0.0
    drift_hours: float = 3.0
    blip_fraction: float = 0.0
    blip_strength: tuple[float, float] = (0.3, 3.0)

    def __post_init__(self):
        positive = ("hours", "normal_interval_s", "heartbeat_s", "tuning_interval_h",
                    "reconfig_interval_h", "loss_multiplier_max", "drift_hours")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"SimulatorParams.{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = ("errant_trips_per_hour", "mps_trips_per_hour", "corrupt_files",
                        "beam_off_per_day", "study_per_day", "low_rr_per_day", "trace1_noise",
                        "trace2_noise", "flicker_noise", "glitches_per_trace", "pulse_jitter",
                        "context_pulses", "precursor_growth", "drift_loss", "drift_shape")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"SimulatorParams.{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("mislabelled_fraction", "no_precursor_fraction", "blip_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SimulatorParams.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.pulses_per_normal_file < 1:
            raise ValueError(
                f"SimulatorParams.pulses_per_normal_file must be >= 1, got {self.pulses_per_normal_file}"
            )
        if self.pulses_per_normal_file_max and self.pulses_per_normal_file_max < self.pulses_per_normal_file:
            raise ValueError(
                "SimulatorParams.pulses_per_normal_file_max must be 0 or >= pulses_per_normal_file "
                f"({self.pulses_per_normal_file}), got {self.pulses_per_normal_file_max}"
            )
        if not 0 <= self.old_style_fraction < 1:
            raise ValueError(f"SimulatorParams.old_style_fraction must be in [0, 1), got {self.old_style_fraction!r}")
        if self.precursor_onset_max < 1 or self.precursor_onset_mean < 1:
            raise ValueError(
                "SimulatorParams.precursor_onset_mean and precursor_onset_max must be >= 1, got "
                f"{self.precursor_onset_mean!r} and {self.precursor_onset_max!r}"
            )
        if not 0 <= self.compresslevel <= 9:
            raise ValueError(f"SimulatorParams.compresslevel must be 0-9, got {self.compresslevel}")
        unknown = sorted(set(self.precursor_kinds) - set(PRECURSOR_KINDS))
        if unknown or not self.precursor_kinds:
            raise ValueError(
                f"SimulatorParams.precursor_kinds must be a non-empty subset of {PRECURSOR_KINDS}, "
                f"got {self.precursor_kinds!r}"
            )
        if any(code == ERRANT_ALARM or not 0 < code < 2**8 for code in self.mps_alarm_codes):
            raise ValueError(
                "SimulatorParams.mps_alarm_codes must be codes in 1..255 other than 48, got "
                f"{self.mps_alarm_codes!r}"
            )
        for name in ("precursor_strength", "beam_off_hours", "study_hours", "low_rr_hours",
                     "blip_strength"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"SimulatorParams.{name} must be (min, max) with 0 < min <= max, got {(lo, hi)!r}")
        parse_start(self.start)

    @classmethod
    def demo(cls, **overrides: Any) -> SimulatorParams:
        """The built-in demo: 42 h (1.75 days), compressed so a small archive teaches something.

        Elevated trip rate (9/h), sparse normal acquisitions (every ~170 s) and a fast settings
        history (tuning every ~30 min, re-configuration every ~2 h, so training sees many
        configurations): about 2300 normal samples and 350 errant ones (~13 %), spread over
        the whole period so a 70/15/15 time split has trips in every part. About 220 MB,
        under a minute on 2 cores.
        """
        values = dict(
            hours=42.0,
            normal_interval_s=170.0,
            pulses_per_normal_file=3,
            context_pulses=1,
            errant_trips_per_hour=9.0,
            mps_trips_per_hour=0.6,
            mislabelled_fraction=0.01,
            tuning_interval_h=0.5,
            reconfig_interval_h=2.0,
            beam_off_per_day=1.0,
            beam_off_hours=(0.5, 2.0),
            study_per_day=1.5,
            study_hours=(0.5, 1.0),
            low_rr_per_day=1.5,
            low_rr_hours=(0.5, 1.0),
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def tiny(cls, **overrides: Any) -> SimulatorParams:
        """A few hundred pulses over ~1.3 h with every condition present (tests, quick looks)."""
        values = dict(
            hours=1.3,
            normal_interval_s=50.0,
            pulses_per_normal_file=2,
            context_pulses=2,
            errant_trips_per_hour=40.0,
            mps_trips_per_hour=6.0,
            mislabelled_fraction=0.06,
            no_precursor_fraction=0.2,
            tuning_interval_h=0.3,
            reconfig_interval_h=0.4,
            beam_off_per_day=30.0,
            beam_off_hours=(0.02, 0.05),
            study_per_day=30.0,
            study_hours=(0.04, 0.08),
            low_rr_per_day=30.0,
            low_rr_hours=(0.05, 0.1),
            heartbeat_s=300.0,
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def realistic(cls, **overrides: Any) -> SimulatorParams:
        """A week (168 h) sized for the rolling-origin benchmark, with every realism knob on.

        Sizing: the benchmark cuts the archive into >= 5 equal time blocks and tests on blocks
        2..; each must hold >= 1000 normal and >= 50 errant usable samples. Normal files every
        ~180 s (2-8 pulses) and 4 errant trips per hour of beam give, for seed 0, 10820 normal
        and 604 errant samples (3875 files, 15510 pulses, 955 MB at gzip level 1). The
        smallest time block holds 1988 normal / 98 errant samples with 5 blocks, 1695 / 91 with
        6 and 1270 / 60 with 7 (seeds 1-3: >= 1301 / 68 with 7 blocks). Generation costs ~85
        CPU-seconds, under a minute with ``--workers 2`` on two free cores (4 min wall measured
        on the shared, loaded 2-core development machine).
        SNS re-tunes: a tuning step every ~1 h and a full re-configuration every ~6 h, so every
        test block holds configurations never seen before it, and the machine drifts (15 % rms
        over ~3 h). Precursors: 20 % of trips show none; the others are log-uniform 0.1-3
        baseline losses (the weak ones hide in the 7 % jitter, the drift and the blips on 2 %
        of pulses) and begin 1-8 pulses before the trip (geometric, mean 2.5): over half are
        already on the pulse before the sample. 10 % of the samples of each label come from
        older-style files.
        """
        values = dict(
            hours=168.0,
            normal_interval_s=180.0,
            pulses_per_normal_file=2,
            pulses_per_normal_file_max=8,
            match_sample_index=True,
            old_style_fraction=0.1,
            errant_trips_per_hour=4.0,
            mps_trips_per_hour=0.5,
            mislabelled_fraction=0.01,
            no_precursor_fraction=0.2,
            precursor_strength=(0.1, 3.0),
            precursor_onset_mean=2.5,
            precursor_onset_max=8,
            precursor_growth=1.5,
            pulse_jitter=0.07,
            drift_loss=0.15,
            drift_shape=0.15,
            drift_hours=3.0,
            blip_fraction=0.02,
            blip_strength=(0.3, 3.0),
            tuning_interval_h=1.0,
            reconfig_interval_h=6.0,
            beam_off_per_day=1.0,
            beam_off_hours=(0.5, 3.0),
            study_per_day=0.5,
            study_hours=(1.0, 3.0),
            low_rr_per_day=0.5,
            low_rr_hours=(0.5, 2.0),
        )
        values.update(overrides)
        return cls(**values)

    def normal_file_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """(lengths, probabilities) of a new-style normal file's pulse count."""
        lo = self.pulses_per_normal_file
        hi = max(lo, self.pulses_per_normal_file_max)
        lengths = np.arange(lo, hi + 1)
        return lengths, np.full(len(lengths), 1.0 / len(lengths))

    def sample_index_pmf(self) -> np.ndarray:
        """P(a normal sample of a new-style file has j earlier pulses in its file), j = 0, 1, ...

        A file of L pulses gives the indices 0..L-1 once each, so P(j) = P(L > j) / E[L].
        """
        lengths, probs = self.normal_file_lengths()
        longer = np.array([probs[lengths > j].sum() for j in range(int(lengths.max()))])
        return longer / longer.sum()

    def precursor_onset_pmf(self) -> np.ndarray:
        """P(onset = 1..precursor_onset_max): geometric with the given mean, truncated."""
        stop = 1.0 / self.precursor_onset_mean
        onsets = np.arange(1, self.precursor_onset_max + 1)
        pmf = stop * (1.0 - stop) ** (onsets - 1)
        return pmf / pmf.sum()

    def old_style_normal_file_fraction(self) -> float:
        """Share of normal files written older-style so that ``old_style_fraction`` of the
        normal samples come from them (an older file gives one sample, a new one L, fewer
        when mislabelled files are dropped)."""
        f = self.old_style_fraction
        lengths, probs = self.normal_file_lengths()
        new_samples = float((lengths * probs).sum()) * (1.0 - self.mislabelled_fraction)
        return f * new_samples / (1.0 - f + f * new_samples)


PRESETS = {
    "demo": SimulatorParams.demo,
    "realistic": SimulatorParams.realistic,
    "standard": SimulatorParams,
    "tiny": SimulatorParams.tiny,
}


@dataclass(frozen=True)
class SimulationSummary:
    """What ``simulate_archive`` wrote: where, how many files and pulses, and the sample counts."""

    out_dir: str
    files: int
    normal_files: int
    anomaly_files: int
    corrupt_files: int
    pulses: int
    samples: dict[str, int]  # expected training samples: {"normal": n, "errant": n}
    counts: dict[str, Any] = field(default_factory=dict)


def parse_start(text: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"SimulatorParams.start must be an ISO time, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(round(moment.timestamp())) * NS
