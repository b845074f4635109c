"""Simulate an SNS errant-beam archive: DCM waveform files, beam-settings HDF5 and the truth.

Real SNS data is not public, so the framework trains, tests and demonstrates on this archive.
It is written in the real formats (``shared/specs/sns-data-formats.md``) and carries the
physics a model has to cope with, so the pipeline meets the same conditions it would at SNS::

    DIR/dcm/normal/YYYY/MM/DD/DCM_<YYYYmmdd_HHMMSS_micro>_00000000.bin.gz   one acquisition each
    DIR/dcm/anomaly/YYYY/MM/DD/DCM_<...>_00110000.bin.gz                   (48 = errant beam)
    DIR/beam_settings/YYYY-MM-DD.hdf5   the 22 SNS PVs, (N, 2) [timestamp_ns, value] datasets
    DIR/truth.csv                       one row per pulse: what the loader must find
    DIR/simulation.json                 the parameters and the counts

The same ``SimulatorParams`` (seed included) give a byte-identical archive, whatever the number
of workers: every random stream is derived from the seed (one stream for the schedule, one per
file), gzip headers carry mtime 0 and HDF5 datasets no times. Files are generated and written
one at a time and truth rows streamed, so memory stays bounded for archives of any length.

Physics (archive units: Trace1 spans ~0..0.04; all numbers below are defaults or ranges):

* Machine: 60 Hz macropulses; the DCM records 16000 samples at 10 MS/s (1.6 ms). The ~1 ms
  macropulse starts ``Gate_Source:Offset`` (2-6 us) after sample 3000 and lasts
  ``Chop_Flavor1:BeamOn`` (930-990 us), so it lies inside the analysis window [3000, 13000).
  Each pulse is three records sharing one timestamp: ``SNS:DCM:Trace1`` (upstream current),
  ``SNS:DCM:Trace2`` (differential current: upstream minus downstream, i.e. beam lost between
  the two DCMs) and ``SNS:DCM:Status`` (``Alarm`` u32, ``bWidth`` f64 in us).
* Ion source: peak current ~0.034 scaled by ``Src:RF_Gnd:Pwr_Set`` (48-62 kW) and
  ``Src:Ign:Pwr_Set`` (250-350 W), a ~8 us rise, a droop of 2-15 % across the pulse set by the
  RF power and ``Src:H2:Flw_Set``, and RF ripple (6-14 kHz, 0.2-1.2 %, larger when
  ``FE_IS:Match:TunerPos`` is far from 50).
* LEBT chopper: mini-pulses every 945 ns (the ring revolution, ~9.45 samples), on for
  ``OnPulseWidth`` (560-640 ns, ~63 % duty), ramping up from ``StartPulseWidth`` over
  ``Chop_Flavor1:RampUp`` us and down by ``RampUp:PWChange`` over the last ``RampDown:PW`` us.
  A lower chopper voltage (``LEBT:Chop_N/P:V_Set``) leaks more beam into the gaps and softens
  the edges. The gaps give Trace1 its low first quartile (the JLab quality cut).
* Loss (Trace2): a fraction of the beam: 0.8 % times a configuration multiplier of 1 to
  ``loss_multiplier_max`` (4) that grows with ``LEBT:Focus_1`` and ``LEBT:Steer_A`` across
  their production ranges (over-focusing and off-axis steering scrape beam; a mis-tuned source
  adds a little), a slope along the pulse set by ``Steer_B`` (-30 % to +120 %), and a loss
  bump whose place, width and height follow ``Focus_2``, ``Steer_C`` and ``Steer_D``. The same
  trace can thus be normal in one configuration and a precursor in another: a model that sees
  the settings can tell.
* Noise: white and 1/f (FFT-shaped) noise on both traces, single-sample ADC glitches, 14-bit
  quantisation (Trace1 full scale 2**-4, Trace2 2**-6, both power-of-two steps).
* Errant trips (``Alarm=48``): the trip pulse shows a loss surge (8-40x the baseline) and the
  beam aborts part way (10-90 % of the pulse). The pulse before it carries a precursor: ``ramp``
  (loss growing towards the pulse end), ``burst`` (1-4 short loss bursts), ``sag`` (a current
  sag with mismatch loss), ``rf_jitter`` (a stretch of jittery RF modulation) or, for
  ``no_precursor_fraction`` of trips, nothing (``none``). Strengths are log-uniform, in units of
  the configuration's own baseline loss, from invisible (0.1) to obvious (4).
* Other machine-protection trips (Alarm 16 or 64: the beam aborts without a loss surge) go to
  ``anomaly/`` and hold no 48 trip. A few normal files hold an alarm pulse (mislabelled).
  ``corrupt_files`` files are truncated or garbled after writing.
* Settings evolve: small tuning steps (a few PVs nudged) every few hours, full
  re-configurations every day or so, beam-off periods (``Gate_BeamOn:RR`` = 0, no
  acquisitions), short-pulse study periods (``BeamOn`` 100-600 us, 30 or 1 Hz; bWidth < 900 so
  ``get_traces`` skips the files) and low-rep-rate periods (30 or 10 Hz at full pulse width;
  only the production filter ``RR >= 59.9 and BeamOn >= 850`` removes them). Settings are
  recorded at every change and as a heartbeat every ``heartbeat_s``; changes happen on whole
  seconds and never during an acquisition.

Realism (``SimulatorParams.realistic()``, ``--preset realistic``; off in demo, tiny, standard):

* Precursors develop: they begin ``precursor_onset`` pulses before the trip (geometric, mean
  ~2.5, up to 8) and grow towards it, so the pulses just before the sample, the ones an
  in-file reference would use, often carry the precursor already.
* Slow drift of the baseline loss and loss shape over hours (no set point records it), 7 %
  pulse-to-pulse jitter, and benign loss blips on ~2 % of pulses that lead to no trip.
* Files of variable length: normal files of 2-8 pulses; errant files of i earlier pulses, the
  sample and the trip, with i drawn so that the sample's index in its file (what decides how
  many in-file references a causal model has) has the same distribution for both labels.
  Older-style files (a ``Before``/``During`` tagged pair, no status records) give 10 % of
  the samples of each label.

``truth.csv`` (one row per pulse written): ``label`` is the sample a pulse would give (1: the
pulse before a 48 trip, 0: a pulse of a normal file without alarms, or the ``Before`` pulse of an
older-style normal file, -1: never a sample: context, trip, other-alarm pulses, pulses of
mislabelled files and of anomaly files without a 48 trip).
``expected_skip`` is empty when the loader must deliver it, else why not: a ``get_traces`` skip
code, ``corrupt_file``, or ``no_production_settings`` (the production filter). So the rows with
``label >= 0`` and an empty ``expected_skip`` are exactly the training samples.
``precursor_onset``: for the pulses of an errant file, how many pulses before the trip its
precursor began (0: no precursor; 1: only the sample pulse); 0 elsewhere. ``pulse_in_file``:
the number of earlier pulses in the same file (equal to ``pulse_index``; named for the
in-file reference work). ``blip``: height of a benign loss blip on the pulse (0: none).

Run ``python -m enterprise_tools.sns_simulator --help``; with no arguments it writes the demo
archive (``SimulatorParams.demo()``) into ``data/demo``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import gzip
import json
import logging
import os
import shutil
import sys
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from enterprise_tools.atomic import atomic_path
from enterprise_tools.beam_settings_parser_hdf5 import write_pv_file
from enterprise_tools.data_utils import write_storage
from enterprise_tools.sns_pvs import ERRANT_BEAM_PVS

logger = logging.getLogger("beamwatch.simulator")

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
_PV = {name: i for i, name in enumerate(PV_NAMES)}

# Production ranges (units: kV, sccm, W, kW, us, ns, Hz); a re-configuration draws uniformly.
_PRODUCTION_RANGES = {
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
_TUNABLE = (
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
_TUNING_STEP = 0.08

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
# expected_skip codes (the get_traces codes of data_utils, and the two the loader adds)
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
        _parse_start(self.start)

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


def _parse_start(text: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"SimulatorParams.start must be an ISO time, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(round(moment.timestamp())) * NS


# --------------------------------------------------------------------------------------
# Settings schedule: segments of constant settings
# --------------------------------------------------------------------------------------


class Segment(NamedTuple):
    start_ns: int
    end_ns: int
    mode: str  # production | off | study | low_rr
    values: tuple[float, ...]  # one per PV_NAMES


def _draw_configuration(rng: np.random.Generator) -> dict[str, float]:
    values = {pv: float(rng.uniform(lo, hi)) for pv, (lo, hi) in _PRODUCTION_RANGES.items()}
    values["ICS_Tim:Gate_BeamRef:GateWidth"] = values["ICS_Tim:Chop_Flavor1:BeamOn"] + float(
        rng.uniform(20.0, 60.0)
    )
    values["ICS_Tim:Gate_BeamOn:RR"] = 60.0
    return _rounded(values)


def _tune(values: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
    tuned = dict(values)
    for pv in rng.choice(_TUNABLE, size=int(rng.integers(1, 4)), replace=False):
        lo, hi = _PRODUCTION_RANGES[pv]
        step = rng.normal(0.0, _TUNING_STEP * (hi - lo))
        tuned[pv] = float(np.clip(tuned[pv] + step, lo, hi))
    return _rounded(tuned)


def _rounded(values: dict[str, float]) -> dict[str, float]:
    # set points as an operator types them: 4 significant decimals
    return {pv: round(v, 4) for pv, v in values.items()}


def _mode_values(base: dict[str, float], mode: str, rng: np.random.Generator) -> dict[str, float]:
    values = dict(base)
    if mode == "off":
        values["ICS_Tim:Gate_BeamOn:RR"] = 0.0
    elif mode == "study":
        values["ICS_Tim:Gate_BeamOn:RR"] = float(rng.choice([30.0, 1.0]))
        values["ICS_Tim:Chop_Flavor1:BeamOn"] = round(float(rng.uniform(100.0, 600.0)), 1)
        values["ICS_Tim:Gate_BeamRef:GateWidth"] = values["ICS_Tim:Chop_Flavor1:BeamOn"] + 40.0
    elif mode == "low_rr":
        values["ICS_Tim:Gate_BeamOn:RR"] = float(rng.choice([30.0, 10.0]))
    return values


def build_schedule(params: SimulatorParams) -> list[Segment]:
    """Cut the simulated period into segments of constant settings (changes on whole seconds).

    Production runs with competing random events: tuning steps, re-configurations, and
    excursions (beam off, study, low rep rate) after which production resumes.
    """
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(0,)))
    start = _parse_start(params.start)
    end = start + int(round(params.hours * 3600)) * NS
    rates = {  # per hour
        "tune": 1.0 / params.tuning_interval_h,
        "reconfig": 1.0 / params.reconfig_interval_h,
        "off": params.beam_off_per_day / 24.0,
        "study": params.study_per_day / 24.0,
        "low_rr": params.low_rr_per_day / 24.0,
    }
    lengths = {"off": params.beam_off_hours, "study": params.study_hours,
               "low_rr": params.low_rr_hours}
    names = list(rates)
    total = sum(rates.values())
    weights = np.array([rates[n] for n in names]) / total
    production = _draw_configuration(rng)
    segments: list[Segment] = []
    t = start

    def add(mode: str, values: dict[str, float], hours: float) -> int:
        stop = min(end, t + max(1, int(round(hours * 3600))) * NS)
        segments.append(Segment(t, stop, mode, tuple(values[pv] for pv in PV_NAMES)))
        return stop

    while t < end:
        t = add("production", production, rng.exponential(1.0 / total))
        if t >= end:
            break
        event = names[int(rng.choice(len(names), p=weights))]
        if event == "tune":
            production = _tune(production, rng)
        elif event == "reconfig":
            production = _draw_configuration(rng)
        else:
            hours = rng.uniform(*lengths[event])
            t = add(event, _mode_values(production, event, rng), hours)
    return segments


def settings_rows(
    segments: Sequence[Segment], day_start: int, day_end: int, heartbeat_s: float
) -> dict[str, np.ndarray]:
    """The archiver's rows for one day: every change, plus a heartbeat of every PV."""
    starts = np.array([s.start_ns for s in segments], dtype=np.int64)
    table = np.array([s.values for s in segments], dtype=np.float64)
    step = int(round(heartbeat_s)) * NS
    first = segments[0].start_ns
    k0 = -(-(max(first, day_start) - first) // step)  # first heartbeat of the day
    beats = first + step * np.arange(k0, max(k0, -(-(day_end - first) // step)), dtype=np.int64)
    rows = {}
    for k, pv in enumerate(PV_NAMES):
        column = table[:, k]
        changed = np.r_[True, column[1:] != column[:-1]]
        change_times = starts[changed]
        change_times = change_times[(change_times >= day_start) & (change_times < day_end)]
        times = np.union1d(change_times, beats)
        times = times[times >= first]
        if not len(times):
            continue
        seg = np.searchsorted(starts, times, side="right") - 1
        rows[pv] = np.column_stack([times.astype(np.float64), column[seg]])
    return rows


# --------------------------------------------------------------------------------------
# Acquisitions: which files exist, when, and what happens in them
# --------------------------------------------------------------------------------------

KIND_NORMAL, KIND_ERRANT, KIND_MPS = 0, 1, 2
_ACQ_DTYPE = np.dtype(
    [("t_ns", "i8"), ("kind", "i1"), ("segment", "i4"), ("alarm", "i2"), ("bad_pulse", "i2"),
     ("corrupt", "i1"), ("n_pulses", "i2"), ("old_style", "i1")]
)


def _pulse_period_ns(rep_rate: float) -> int:
    return int(round(NS / rep_rate))


def _length_drawer(params: SimulatorParams, rng: np.random.Generator):
    """``kind -> (n_pulses, old_style)`` for one acquisition (module docstring: no position leak).

    Errant files hold i earlier pulses + the sample + the trip; with ``match_sample_index``
    i follows a normal sample's index distribution. Older-style files hold the
    ``Before``/``During`` pair only. Draws from ``rng`` only for the knobs that are on.
    """
    lengths, length_p = params.normal_file_lengths()
    index_pmf = params.sample_index_pmf()
    old_normal = params.old_style_normal_file_fraction()

    def draw(kind: int) -> tuple[int, int]:
        if kind == KIND_MPS:
            return params.context_pulses + 2, 0
        if kind == KIND_NORMAL:
            if old_normal > 0 and rng.random() < old_normal:
                return 2, 1
            if len(lengths) == 1:
                return int(lengths[0]), 0
            return int(rng.choice(lengths, p=length_p)), 0
        if params.old_style_fraction > 0 and rng.random() < params.old_style_fraction:
            return 2, 1
        if not params.match_sample_index:
            return params.context_pulses + 2, 0
        return int(rng.choice(len(index_pmf), p=index_pmf)) + 2, 0

    return draw


def plan_acquisitions(params: SimulatorParams, segments: Sequence[Segment]) -> np.ndarray:
    """Every acquisition (structured array, time order): start time, kind, segment, alarm,
    number of pulses and style (1 = older-style ``Before``/``During`` pair).

    An acquisition lies wholly inside one segment (1 s clear of its edges) and 1 s clear of the
    previous one, so all its pulses see one set of settings.
    """
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(1,)))
    # lengths and styles of the realism knobs come from their own stream, drawn only when a
    # knob is on, so archives without them keep every earlier random draw (and their bytes)
    shape_rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(3,)))
    draw_length = _length_drawer(params, shape_rng)
    longest = {KIND_NORMAL: int(params.normal_file_lengths()[0].max()),
               KIND_ERRANT: (len(params.sample_index_pmf()) + 1 if params.match_sample_index
                             else params.context_pulses + 2),
               KIND_MPS: params.context_pulses + 2}
    planned = []
    for index, seg in enumerate(segments):
        if seg.mode == "off":
            continue
        period = _pulse_period_ns(seg.values[_PV["ICS_Tim:Gate_BeamOn:RR"]])
        hours = (seg.end_ns - seg.start_ns) / NS / 3600.0
        draws = [
            (KIND_NORMAL, rng.poisson(hours * 3600.0 / params.normal_interval_s)),
            (KIND_ERRANT, rng.poisson(hours * params.errant_trips_per_hour)),
            (KIND_MPS, rng.poisson(hours * params.mps_trips_per_hour)),
        ]
        items = []
        for kind, count in draws:
            length = (longest[kind] - 1) * period  # room for the longest file of this kind
            lo, hi = seg.start_ns + NS, seg.end_ns - NS - length
            if hi <= lo:
                continue
            # times on whole microseconds, like the timing system's stamps
            times = rng.integers(lo // 1000, hi // 1000, size=count) * 1000
            for t in times:
                n_pulses, old_style = draw_length(kind)
                items.append((int(t), kind, (n_pulses - 1) * period, n_pulses, old_style))
        items.sort()
        last_end = -np.inf
        for t, kind, length, n_pulses, old_style in items:
            if t < last_end + NS:
                continue
            last_end = t + length
            alarm, bad_pulse = 0, -1
            if kind == KIND_ERRANT:
                alarm = ERRANT_ALARM
            elif kind == KIND_MPS:
                alarm = int(rng.choice(params.mps_alarm_codes))
            elif not old_style and rng.random() < params.mislabelled_fraction:
                alarm = int(rng.choice((ERRANT_ALARM, *params.mps_alarm_codes)))
                bad_pulse = int(rng.integers(0, n_pulses))
            planned.append((t, kind, index, alarm, bad_pulse, 0, n_pulses, old_style))
    plan = np.array(planned, dtype=_ACQ_DTYPE)
    if params.corrupt_files and len(plan):
        chosen = rng.choice(len(plan), size=min(params.corrupt_files, len(plan)), replace=False)
        plan["corrupt"][np.sort(chosen)] = 1 + (np.arange(len(chosen)) % 2)  # 1 cut, 2 garbled
    return plan


# --------------------------------------------------------------------------------------
# Physics of one pulse
# --------------------------------------------------------------------------------------


class Beam(NamedTuple):
    """What a pulse looks like under one set of settings (derived, deterministic)."""

    peak: float  # Trace1 peak current
    droop: float  # relative current loss from pulse start to end
    ripple: float  # relative RF ripple amplitude
    ripple_khz: float
    start: int  # first beam sample
    length: int  # beam samples
    bwidth: float  # us, as the status record reports it
    on_ns: float  # mini-pulse on width at flat top
    start_ns: float  # on width at the start of the ramp-up
    ramp_up_us: float
    ramp_down_us: float
    pw_change_ns: float
    leak: float  # beam fraction leaking through the chopper gaps
    edge: float  # chopper edge softness (share spilled into the neighbouring samples)
    loss: float  # baseline lost fraction
    slope: float  # relative change of the loss across the pulse
    bump_at: float  # loss bump centre (pulse fraction), width and height (lost fraction)
    bump_width: float
    bump: float


def beam_for(values: Sequence[float], loss_multiplier_max: float = 4.0) -> Beam:
    """Map the settings to the beam they produce (see the module docstring)."""
    v = {pv: values[i] for i, pv in enumerate(PV_NAMES)}
    rf, ign, h2 = v["Src:RF_Gnd:Pwr_Set"], v["Src:Ign:Pwr_Set"], v["Src:H2:Flw_Set"]
    peak = NOMINAL_PEAK * (rf / 55.0) ** 0.8 * (1.0 + 0.04 * (ign - 300.0) / 50.0)
    peak *= 1.0 + 0.01 * (v["Src:Accel:V_Set"] - 65.0)
    droop = float(np.clip(0.06 + 0.006 * (rf - 55.0) + 0.012 * (28.0 - h2), 0.02, 0.15))
    tuner = (v["FE_IS:Match:TunerPos"] - 50.0) / 10.0
    chop_kv = (v["LEBT:Chop_P:V_Set"] - v["LEBT:Chop_N:V_Set"]) / 2.0

    def share(pv):  # where a PV sits in its production range, 0..1
        lo, hi = _PRODUCTION_RANGES[pv]
        return float(np.clip((v[pv] - lo) / (hi - lo), 0.0, 1.0))

    # LEBT transport: over-focusing and steering off axis scrape beam (monotone in the range
    # used), the source tuner adds a little; 0 = best, 1 = worst configuration
    mismatch = np.clip(
        0.45 * share("LEBT:Focus_1:V_Set") + 0.45 * share("LEBT:Steer_A:V_Set") + 0.1 * tuner**2,
        0.0,
        1.0,
    )
    loss = NOMINAL_LOSS * (1.0 + (loss_multiplier_max - 1.0) * mismatch)
    beam_on = v["ICS_Tim:Chop_Flavor1:BeamOn"]
    return Beam(
        peak=float(peak),
        droop=droop,
        ripple=0.005 + 0.008 * min(1.0, tuner * tuner),
        ripple_khz=8.0 + 8.0 * (v["Src:Ign:Pwr_Set"] - 250.0) / 100.0,
        start=WINDOW_BEGIN + int(round(v["ICS_MPS:Gate_Source:Offset"] * 10)),
        length=int(round(beam_on * 10)),
        bwidth=beam_on,
        on_ns=v["ICS_Tim:Chop_Flavor1:OnPulseWidth"],
        start_ns=v["ICS_Tim:Chop_Flavor1:StartPulseWidth"],
        ramp_up_us=v["ICS_Tim:Chop_Flavor1:RampUp"],
        ramp_down_us=v["ICS_Chop:RampDown:PW"],
        pw_change_ns=v["ICS_Chop:RampUp:PWChange"],
        leak=0.01 * (2.5 / chop_kv) ** 3,
        edge=float(np.clip(0.12 * (2.5 / chop_kv) ** 2 - 0.05, 0.02, 0.12)),
        loss=float(loss),
        # the loss grows along the pulse as the source droops and the LEBT lens follows
        slope=-0.3 + 1.5 * share("LEBT:Steer_B:V_Set"),
        bump_at=0.15 + 0.7 * share("LEBT:Focus_2:V_Set"),
        bump_width=0.02 + 0.2 * share("LEBT:Steer_C:V_Set"),
        bump=float(loss * 1.5 * share("LEBT:Steer_D:V_Set")),
    )


_DRIFT_CHANNELS = 4  # baseline loss, slope, bump height, bump place
_DRIFT_TERMS = 4


def _drift_terms(params: SimulatorParams) -> np.ndarray:
    """[channel, term, (period_h, phase)] of the slow machine drift, fixed by the seed."""
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(4,)))
    shape = (_DRIFT_CHANNELS, _DRIFT_TERMS)
    periods = params.drift_hours * np.exp(rng.uniform(np.log(0.5), np.log(2.0), shape))
    phases = rng.uniform(0.0, 2 * np.pi, shape)
    return np.stack([periods, phases], axis=-1)


def drift_at(t_ns: int, params: SimulatorParams) -> np.ndarray:
    """The four drift signals (unit rms, smooth over ``drift_hours``) at time ``t_ns``.

    A sum of sinusoids with random periods and phases: slow wander of the machine (vacuum,
    temperatures, source ageing) that no set point records, continuous across settings changes.
    """
    terms = _drift_terms(params)
    hours = (t_ns - _parse_start(params.start)) / (3600.0 * NS)
    waves = np.sin(2 * np.pi * hours / terms[..., 0] + terms[..., 1])
    return waves.sum(axis=1) * np.sqrt(2.0 / _DRIFT_TERMS)


def beam_at(values: Sequence[float], t_ns: int, params: SimulatorParams) -> Beam:
    """``beam_for`` the settings, moved by the slow drift at ``t_ns`` (none when the drift knobs
    are 0: then exactly ``beam_for``)."""
    beam = beam_for(values, params.loss_multiplier_max)
    if params.drift_loss == 0 and params.drift_shape == 0:
        return beam
    d = drift_at(t_ns, params)
    return beam._replace(
        loss=beam.loss * max(0.3, 1.0 + params.drift_loss * d[0]),
        slope=beam.slope + params.drift_shape * d[1],
        bump=beam.bump * max(0.0, 1.0 + params.drift_shape * d[2]),
        bump_at=float(np.clip(beam.bump_at + 0.2 * params.drift_shape * d[3], 0.1, 0.9)),
    )


class Event(NamedTuple):
    """What happens on one pulse beyond normal operation."""

    precursor: str = "none"  # none | ramp | burst | sag | rf_jitter
    strength: float = 0.0  # in units of the configuration's baseline loss
    abort_at: float | None = None  # pulse fraction where the beam is cut (a trip)
    surge: float = 0.0  # loss surge before the abort, in units of the baseline loss
    blip: float = 0.0  # benign loss blip height (baseline-loss units); 0 = none


def _flicker(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    """1/f noise of the given rms, shaped in the frequency domain."""
    if rms <= 0:
        return np.zeros(n)
    half = n // 2 + 1
    spectrum = rng.standard_normal(half) + 1j * rng.standard_normal(half)
    spectrum /= np.sqrt(np.maximum(np.arange(half), 1.0))
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return noise * (rms / (noise.std() or 1.0))


def _window(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Smooth 0..1..0 window over pulse fractions [lo, hi] (raised cosine)."""
    inside = (u >= lo) & (u <= hi)
    out = np.zeros_like(u)
    out[inside] = 0.5 - 0.5 * np.cos(2 * np.pi * (u[inside] - lo) / (hi - lo))
    return out


def _chopper(beam: Beam, t_ns: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Share of each 100 ns sample during which the chopper lets beam through."""
    t_us = t_ns / 1000.0
    width = beam.start_ns + (beam.on_ns - beam.start_ns) * np.clip(t_us / beam.ramp_up_us, 0, 1)
    tail = (t_us - (beam.bwidth - beam.ramp_down_us)) / beam.ramp_down_us
    width = width - beam.pw_change_ns * np.clip(tail, 0, 1)
    phase = t_ns + rng.uniform(0.0, MINIPULSE_NS)

    def on_time(a):  # beam-on time accumulated from phase 0 up to a
        turns, rest = np.divmod(a, MINIPULSE_NS)
        return turns * width + np.minimum(rest, width)

    share = (on_time(phase + SAMPLE_NS) - on_time(phase)) / SAMPLE_NS
    edge = beam.edge
    share = np.convolve(share, [edge, 1.0 - 2.0 * edge, edge], mode="same")
    return beam.leak + (1.0 - beam.leak) * share


def _precursor_loss(
    event: Event, u: np.ndarray, loss: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Extra lost fraction and relative current change of a precursor pulse."""
    extra = np.zeros_like(u)
    current = np.ones_like(u)
    size = event.strength * loss
    if event.precursor == "ramp":
        onset = rng.uniform(0.2, 0.8)
        power = rng.uniform(1.0, 2.5)
        extra = size * np.clip((u - onset) / (1.0 - onset), 0.0, 1.0) ** power
    elif event.precursor == "burst":
        for _ in range(int(rng.integers(1, 5))):
            centre, width = rng.uniform(0.1, 0.95), rng.uniform(0.005, 0.04)
            extra += 2.0 * size * np.exp(-0.5 * ((u - centre) / width) ** 2)
    elif event.precursor == "sag":
        lo = rng.uniform(0.05, 0.6)
        shape = _window(u, lo, min(1.0, lo + rng.uniform(0.15, 0.5)))
        current = 1.0 - min(0.5, 0.04 * event.strength) * shape
        extra = 0.7 * size * shape
    elif event.precursor == "rf_jitter":
        lo = rng.uniform(0.05, 0.7)
        shape = _window(u, lo, min(1.0, lo + rng.uniform(0.2, 0.5)))
        cycles = rng.uniform(20.0, 80.0)  # kHz-scale modulation, phase wandering
        phase = np.cumsum(rng.normal(0.0, 0.15, len(u)))
        wobble = 0.5 + 0.5 * np.sin(2 * np.pi * cycles * u + phase)
        extra = size * shape * wobble
        current = 1.0 + 0.02 * min(1.0, event.strength / 2.0) * shape * np.sin(
            2 * np.pi * cycles * u + phase
        )
    return extra, current


def pulse_traces(
    beam: Beam, event: Event, rng: np.random.Generator, params: SimulatorParams
) -> tuple[np.ndarray, np.ndarray]:
    """Trace1 (upstream current) and Trace2 (differential current) of one pulse, float32."""
    i = np.arange(N_SAMPLES)
    t_ns = (i - beam.start) * SAMPLE_NS
    u = np.clip((i - beam.start) / beam.length, 0.0, 1.0)
    inside = (i >= beam.start) & (i < beam.start + beam.length)
    jitter = params.pulse_jitter
    peak = beam.peak * (1.0 + 0.3 * jitter * rng.standard_normal())
    rise = 1.0 - np.exp(-np.maximum(t_ns, 0.0) / 8000.0)  # ~8 us source rise
    ripple = beam.ripple * np.sin(2 * np.pi * beam.ripple_khz * t_ns / 1e6 + rng.uniform(0, 6.3))
    current = peak * (1.0 - beam.droop * u) * rise * (1.0 + ripple) * inside
    loss = beam.loss * (1.0 + jitter * rng.standard_normal())
    lost = loss * (1.0 + beam.slope * (u - 0.5))
    lost = lost + beam.bump * (1.0 + jitter * rng.standard_normal()) * np.exp(
        -0.5 * ((u - beam.bump_at) / beam.bump_width) ** 2
    )
    extra, change = _precursor_loss(event, u, loss, rng)
    lost = lost + extra
    if event.blip > 0:
        # a benign disturbance: one or two short loss bursts that do not grow into a trip
        for _ in range(int(rng.integers(1, 3))):
            centre, width = rng.uniform(0.05, 0.95), rng.uniform(0.003, 0.02)
            lost = lost + 2.0 * event.blip * loss * np.exp(-0.5 * ((u - centre) / width) ** 2)
    current = current * change
    if event.abort_at is not None:
        # the loss surges and the machine-protection system cuts the beam ~2 us later
        tau = rng.uniform(0.005, 0.05)
        before = np.exp(-np.clip(event.abort_at - u, 0.0, None) / tau) * (u <= event.abort_at)
        lost = lost + event.surge * loss * before
        cut = np.exp(-np.clip(u - event.abort_at, 0.0, None) * beam.length / 20.0)
        current = current * cut
    beam_current = current * _chopper(beam, t_ns, rng)
    trace1 = beam_current + _noise(rng, params.trace1_noise, params)
    trace2 = beam_current * np.clip(lost, 0.0, 0.9) + _noise(rng, params.trace2_noise, params)
    return (
        _digitise(trace1, TRACE1_STEP, TRACE1_RANGE),
        _digitise(trace2, TRACE2_STEP, TRACE2_RANGE),
    )


def _noise(rng: np.random.Generator, rms: float, params: SimulatorParams) -> np.ndarray:
    noise = rng.normal(0.0, rms, N_SAMPLES) + _flicker(rng, N_SAMPLES, rms * params.flicker_noise)
    for _ in range(rng.poisson(params.glitches_per_trace)):  # single-sample ADC glitches
        noise[rng.integers(0, N_SAMPLES)] += rng.choice([-1.0, 1.0]) * rng.uniform(5.0, 30.0) * rms
    return noise


def _digitise(x: np.ndarray, step: float, bounds: tuple[float, float]) -> np.ndarray:
    return (np.round(np.clip(x, *bounds) / step) * step).astype(np.float32)


# --------------------------------------------------------------------------------------
# One file: pulses, records, truth rows
# --------------------------------------------------------------------------------------


class FileJob(NamedTuple):
    index: int  # acquisition number (seeds its random stream)
    t_ns: int
    kind: int
    alarm: int
    bad_pulse: int
    corrupt: int
    mode: str
    values: tuple[float, ...]
    config_id: int
    n_pulses: int = 0  # pulses in the file (0: the kind's fixed length, as before)
    old_style: int = 0  # 1: older-style Before/During pair without status records


def file_name(job: FileJob) -> str:
    """``dcm/<normal|anomaly>/YYYY/MM/DD/DCM_<YYYYmmdd_HHMMSS_micro>_<alarm bits>.bin.gz``."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=job.t_ns // 1000)
    folder = "normal" if job.kind == KIND_NORMAL else "anomaly"
    named_alarm = 0 if job.kind == KIND_NORMAL else job.alarm  # mislabelled files look normal
    stamp = moment.strftime("%Y%m%d_%H%M%S_%f")
    return f"dcm/{folder}/{moment:%Y/%m/%d}/DCM_{stamp}_{named_alarm:08b}.bin.gz"


def _n_pulses(job: FileJob, params: SimulatorParams) -> int:
    if job.n_pulses:
        return job.n_pulses
    return params.pulses_per_normal_file if job.kind == KIND_NORMAL else params.context_pulses + 2


def file_events(
    job: FileJob, params: SimulatorParams, rng: np.random.Generator
) -> tuple[list[tuple[int, str, Event]], int]:
    """Per pulse (alarm, role, Event), and the precursor onset (0: none or not an errant file).

    Errant files: the precursor grows over the last ``onset`` pulses before the trip (full on
    the sample pulse); earlier pulses of the file are ``context`` (never samples) even when
    the precursor is already on them. Benign blips fall on any non-trip pulse.
    """
    n = _n_pulses(job, params)
    onset = 0
    if job.kind == KIND_NORMAL:
        role = "study" if job.mode == "study" else "normal"
        out = [(0, role, Event()) for _ in range(n)]
        if job.old_style:  # the Before pulse is the sample, the During pulse only context
            out[1] = (0, "context", Event())
        if job.bad_pulse >= 0:
            trip = job.alarm == ERRANT_ALARM
            out[job.bad_pulse] = (
                job.alarm,
                "trip" if trip else "mps_trip",
                Event(abort_at=rng.uniform(0.1, 0.9), surge=rng.uniform(8, 40) if trip else 0.0),
            )
    elif job.kind == KIND_MPS:
        out = [(0, "context", Event()) for _ in range(n - 1)]
        out.append((job.alarm, "mps_trip", Event(abort_at=rng.uniform(0.1, 0.9))))
    else:
        if rng.random() < params.no_precursor_fraction:
            kind, strength = "none", 0.0
        else:
            kind = str(rng.choice(params.precursor_kinds))
            lo, hi = params.precursor_strength
            strength = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            onset = 1
            if params.precursor_onset_max > 1:
                pmf = params.precursor_onset_pmf()
                onset = int(rng.choice(len(pmf), p=pmf)) + 1
        out = []
        for k in range(n - 2):
            distance = n - 1 - k  # pulses before the trip
            if distance <= onset:
                grown = strength * ((onset - distance + 1) / onset) ** params.precursor_growth
                out.append((0, "context", Event(kind, grown)))
            else:
                out.append((0, "context", Event()))
        out.append((0, "precursor", Event(kind, strength)))
        trip = Event(kind, strength, abort_at=rng.uniform(0.1, 0.9), surge=rng.uniform(8.0, 40.0))
        out.append((ERRANT_ALARM, "trip", trip))
    if params.blip_fraction > 0:
        lo, hi = params.blip_strength
        for k, (alarm, role, event) in enumerate(out):
            if event.abort_at is None and rng.random() < params.blip_fraction:
                blip = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
                out[k] = (alarm, role, event._replace(blip=blip))
    return out, onset


def _expected(job: FileJob, role: str) -> tuple[int, str]:
    """(label, expected_skip) of one pulse (module docstring: truth.csv)."""
    if job.kind == KIND_NORMAL:
        label = -1 if job.bad_pulse >= 0 or role == "context" else 0
    else:
        label = 1 if role == "precursor" else -1
    file_skip = ""
    if job.corrupt:
        file_skip = SKIP_CORRUPT
    elif job.mode == "study" and not job.old_style:  # older files carry no bWidth to cut on
        file_skip = SKIP_LOW_BWIDTH
    elif job.kind == KIND_NORMAL and job.bad_pulse >= 0:
        file_skip = SKIP_MISLABELLED
    elif job.kind == KIND_MPS:
        file_skip = SKIP_NO_TRIP
    if file_skip:
        return label, file_skip
    if label >= 0 and job.mode != "production":
        return label, SKIP_SETTINGS
    return label, ""


def make_file(job: FileJob, params: SimulatorParams, out_dir: str) -> list[tuple]:
    """Generate, write (and maybe corrupt) one DCM file; return its truth rows."""
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(2, job.index)))
    beam = beam_at(job.values, job.t_ns, params)
    period = _pulse_period_ns(job.values[_PV["ICS_Tim:Gate_BeamOn:RR"]])
    name = file_name(job)
    records, rows = [], []
    events, onset = file_events(job, params, rng)
    for k, (alarm, role, event) in enumerate(events):
        stamp = job.t_ns + k * period
        trace1, trace2 = pulse_traces(beam, event, rng, params)
        bwidth = round(beam.bwidth + float(rng.normal(0.0, 0.3)), 2)
        if job.old_style:
            # older acquisitions: no status record; each trace is tagged Before (the pulse
            # before the trip, or before the second pulse of a normal pair) or During
            tags = ["Before" if k == 0 else "During"]
            records += [
                {"name": "SNS:DCM:Trace1", "timestamp_ns": stamp, "tags": tags, "value": trace1},
                {"name": "SNS:DCM:Trace2", "timestamp_ns": stamp, "tags": tags, "value": trace2},
            ]
        else:
            records += [
                {"name": "SNS:DCM:Trace1", "timestamp_ns": stamp, "value": trace1},
                {"name": "SNS:DCM:Trace2", "timestamp_ns": stamp, "value": trace2},
                {
                    "name": "SNS:DCM:Status",
                    "timestamp_ns": stamp,
                    "parameters": {"Alarm": np.uint32(alarm), "bWidth": float(bwidth)},
                },
            ]
        label, skip = _expected(job, role)
        rows.append((name, k, stamp, alarm, label, role, event.precursor,
                     f"{event.strength:.4f}", job.config_id, skip, onset, k, f"{event.blip:.4f}"))
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_storage(path, records, compresslevel=params.compresslevel)
    if job.corrupt:
        _corrupt(path, job.corrupt, params.compresslevel)
    return rows


def _corrupt(path: Path, how: int, compresslevel: int) -> None:
    """Damage a written file the way disks and transfers do: cut it short, or garble a byte."""
    raw = path.read_bytes()
    if how == 1:
        damaged = raw[: len(raw) * 3 // 5]
    else:  # an unknown field code in the first record: the stream cannot be resynchronised
        data = bytearray(gzip.decompress(raw))
        data[12 + 4] = 0x63
        damaged = gzip.compress(bytes(data), compresslevel=compresslevel, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(damaged)


# --------------------------------------------------------------------------------------
# The archive
# --------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(params: SimulatorParams, out_dir: str) -> None:
    _WORKER["params"], _WORKER["out_dir"] = params, out_dir


def _run_job(job: FileJob) -> list[tuple]:
    return make_file(job, _WORKER["params"], _WORKER["out_dir"])


def _jobs(plan: np.ndarray, segments: Sequence[Segment]) -> Iterator[FileJob]:
    for index, row in enumerate(plan):
        seg = segments[int(row["segment"])]
        yield FileJob(index, int(row["t_ns"]), int(row["kind"]), int(row["alarm"]),
                      int(row["bad_pulse"]), int(row["corrupt"]), seg.mode, seg.values,
                      int(row["segment"]), int(row["n_pulses"]), int(row["old_style"]))


def _ordered_results(jobs: Iterator[FileJob], workers: int, params, out_dir) -> Iterator[list]:
    """Results in job order; at most a few jobs in flight per worker (bounded memory)."""
    if workers <= 1:
        for job in jobs:
            yield make_file(job, params, out_dir)
        return
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(params, out_dir)) as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(_run_job, job))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"output path {str(out_dir)!r} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise FileExistsError(
                f"output folder {str(out_dir)!r} is not empty; choose another or pass --force"
            )
        if (out_dir / "simulation.json").exists():  # an earlier archive: replace it wholly
            for sub in ("dcm", "beam_settings"):
                shutil.rmtree(out_dir / sub, ignore_errors=True)


def simulate_archive(
    out_dir: str | os.PathLike,
    params: SimulatorParams,
    *,
    workers: int = 1,
    progress: bool = False,
    force: bool = False,
) -> SimulationSummary:
    """Write a simulated SNS archive into ``out_dir`` (layout in the module docstring).

    Args:
        out_dir: destination folder; created if missing, must be empty unless ``force``.
        params: every knob, seed included.
        workers: processes generating files; the output is identical for any number.
        progress: log a line every ~10 % of the files.
        force: write into a non-empty folder (an earlier archive there is replaced).
    """
    out = Path(out_dir)
    _check_out_dir(out, force)
    out.mkdir(parents=True, exist_ok=True)
    segments = build_schedule(params)
    _write_settings(out, segments, params)
    plan = plan_acquisitions(params, segments)
    counts: Counter = Counter()
    tally = Counter()
    pulses = 0
    with atomic_path(out / "truth.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRUTH_COLUMNS)
        results = _ordered_results(_jobs(plan, segments), workers, params, str(out))
        for done, rows in enumerate(results, 1):
            writer.writerows(rows)
            pulses += len(rows)
            _tally(rows, tally)
            if progress and done % max(1, len(plan) // 10) == 0:
                logger.info("simulated %d / %d files", done, len(plan))
    counts.update(
        files=len(plan),
        normal_files=int((plan["kind"] == KIND_NORMAL).sum()),
        anomaly_files=int((plan["kind"] != KIND_NORMAL).sum()),
        corrupt_files=int((plan["corrupt"] > 0).sum()),
        old_style_files=int(plan["old_style"].sum()),
        pulses=pulses,
        settings_segments=len(segments),
    )
    summary = SimulationSummary(
        out_dir=str(out),
        files=counts["files"],
        normal_files=counts["normal_files"],
        anomaly_files=counts["anomaly_files"],
        corrupt_files=counts["corrupt_files"],
        pulses=pulses,
        samples={"normal": tally["sample:0"], "errant": tally["sample:1"]},
        counts={**dict(counts), **{k: v for k, v in sorted(tally.items())}},
    )
    _write_json(out / "simulation.json", {
        "params": dataclasses.asdict(params),
        "summary": dataclasses.asdict(summary) | {"out_dir": None},
        "segments": [
            {"start_ns": s.start_ns, "end_ns": s.end_ns, "mode": s.mode, "config_id": i}
            for i, s in enumerate(segments)
        ],
    })
    logger.info("simulated archive in %s: %d files, %d pulses, samples %s",
                out, summary.files, summary.pulses, summary.samples)
    return summary


def _tally(rows: list[tuple], tally: Counter) -> None:
    for row in rows:
        label, role, kind, skip = row[4], row[5], row[6], row[9]
        tally[f"role:{role}"] += 1
        if role == "precursor":
            tally[f"precursor:{kind}"] += 1
        if skip:
            tally[f"skip:{skip}"] += 1
        elif label >= 0:
            tally[f"sample:{label}"] += 1


def _write_settings(out: Path, segments: Sequence[Segment], params: SimulatorParams) -> None:
    folder = out / "beam_settings"
    folder.mkdir(parents=True, exist_ok=True)
    first, last = segments[0].start_ns, segments[-1].end_ns
    day = first - first % (86400 * NS)
    while day < last:
        rows = settings_rows(segments, max(day, first), day + 86400 * NS, params.heartbeat_s)
        moment = dt.datetime.fromtimestamp(day // NS, tz=dt.UTC)
        write_pv_file(folder / f"{moment:%Y-%m-%d}.hdf5", rows)
        day += 86400 * NS


def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, exit status 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m enterprise_tools.sns_simulator",
        description="Write a simulated SNS errant-beam archive: DCM waveform files "
        "(SNS-BIET2020, gzip), beam-settings HDF5 files, truth.csv and simulation.json. "
        "With no arguments, writes the demo archive into data/demo.",
    )
    parser.add_argument("--out", default="data/demo", metavar="DIR", help="output folder (default: data/demo)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                        help="starting parameters: demo (42 h, ~2600 samples, <1 min), "
                        "realistic (a week for the rolling-origin benchmark: developing precursors, "
                        "drift, blips, older-style files, no position leak), "
                        "standard (SNS-like rates, 24 h), tiny (1.3 h, for tests). Default: demo")
    parser.add_argument("--hours", type=float, metavar="H", help="simulated hours (overrides the preset)")
    parser.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    parser.add_argument("--start", metavar="ISO", help="ISO start time, UTC (default 2026-01-05T00:00Z)")
    parser.add_argument("--trip-rate", type=float, dest="errant_trips_per_hour", metavar="PER_HOUR",
                        help="errant-beam trips per hour of beam")
    parser.add_argument("--normal-interval", type=float, dest="normal_interval_s", metavar="SECONDS",
                        help="mean seconds between normal acquisitions")
    parser.add_argument("--pulses-per-file", type=int, dest="pulses_per_normal_file", metavar="N",
                        help="pulses in a normal file")
    parser.add_argument("--context-pulses", type=int, metavar="N",
                        help="pulses before the precursor in an anomaly file "
                        "(errant files of the realistic preset draw it instead)")
    parser.add_argument("--no-precursor-fraction", type=float, metavar="F",
                        help="share of errant trips with no visible precursor")
    parser.add_argument("--old-style-fraction", type=float, metavar="F",
                        help="share of samples from older-style Before/During files")
    parser.add_argument("--pulse-jitter", type=float, metavar="F",
                        help="pulse-to-pulse relative jitter of current and loss")
    parser.add_argument("--corrupt-files", type=int, metavar="N", help="number of files to damage")
    parser.add_argument("--compresslevel", type=int, metavar="L", help="gzip level 0-9 (default 1)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="generator processes (output identical for any number; default 1)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty folder (replaces an earlier archive there)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for bad usage)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    knobs = ("hours", "seed", "start", "errant_trips_per_hour", "normal_interval_s",
             "pulses_per_normal_file", "context_pulses", "no_precursor_fraction",
             "old_style_fraction", "pulse_jitter", "corrupt_files", "compresslevel")
    overrides = {k: getattr(args, k) for k in knobs if getattr(args, k) is not None}
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        params = PRESETS[args.preset](**overrides)
        summary = simulate_archive(args.out, params, workers=args.workers,
                                   progress=not args.quiet, force=args.force)
    except (ValueError, FileExistsError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {summary.files} files ({summary.pulses} pulses; samples: "
          f"{summary.samples['normal']} normal, {summary.samples['errant']} errant) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
