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

Modules: ``params`` (constants, ``SimulatorParams``, presets), ``schedule`` (settings
history, acquisition plan), ``physics`` (one pulse), ``archive`` (files, truth, the whole
archive), ``cli``; this package shows their public names (import them from
``enterprise_tools.simulator``). Run ``python -m enterprise_tools.sns_simulator --help``; with no arguments it
writes the demo archive (``SimulatorParams.demo()``) into ``data/demo``.
"""

from enterprise_tools.simulator.archive import (
    FileJob,
    file_events,
    file_name,
    make_file,
    simulate_archive,
)
from enterprise_tools.simulator.cli import (
    main,
)
from enterprise_tools.simulator.params import (
    ERRANT_ALARM,
    MINIPULSE_NS,
    MODES,
    N_SAMPLES,
    NOMINAL_LOSS,
    NOMINAL_PEAK,
    NS,
    PRECURSOR_KINDS,
    PRESETS,
    PV_NAMES,
    SAMPLE_NS,
    SKIP_CORRUPT,
    SKIP_LOW_BWIDTH,
    SKIP_MISLABELLED,
    SKIP_NO_TRIP,
    SKIP_SETTINGS,
    TRACE1_RANGE,
    TRACE1_STEP,
    TRACE2_RANGE,
    TRACE2_STEP,
    TRUTH_COLUMNS,
    WINDOW_BEGIN,
    SimulationSummary,
    SimulatorParams,
)
from enterprise_tools.simulator.physics import (
    Beam,
    Event,
    beam_at,
    beam_for,
    drift_at,
    pulse_traces,
)
from enterprise_tools.simulator.schedule import (
    KIND_ERRANT,
    KIND_MPS,
    KIND_NORMAL,
    Segment,
    build_schedule,
    plan_acquisitions,
    settings_rows,
)

__all__ = [
    "Beam",
    "ERRANT_ALARM",
    "Event",
    "FileJob",
    "KIND_ERRANT",
    "KIND_MPS",
    "KIND_NORMAL",
    "MINIPULSE_NS",
    "MODES",
    "NOMINAL_LOSS",
    "NOMINAL_PEAK",
    "NS",
    "N_SAMPLES",
    "PRECURSOR_KINDS",
    "PRESETS",
    "PV_NAMES",
    "SAMPLE_NS",
    "SKIP_CORRUPT",
    "SKIP_LOW_BWIDTH",
    "SKIP_MISLABELLED",
    "SKIP_NO_TRIP",
    "SKIP_SETTINGS",
    "Segment",
    "SimulationSummary",
    "SimulatorParams",
    "TRACE1_RANGE",
    "TRACE1_STEP",
    "TRACE2_RANGE",
    "TRACE2_STEP",
    "TRUTH_COLUMNS",
    "WINDOW_BEGIN",
    "beam_at",
    "beam_for",
    "build_schedule",
    "drift_at",
    "file_events",
    "file_name",
    "main",
    "make_file",
    "plan_acquisitions",
    "pulse_traces",
    "settings_rows",
    "simulate_archive",
]
