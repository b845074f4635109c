"""The SNS archive simulator's historical import path and command line.

The code lives in the ``enterprise_tools.simulator`` package (its docstring describes the
archive, the physics and the realism knobs); this module re-exports every name it used to
define, so ``from enterprise_tools.sns_simulator import ...`` and
``python -m enterprise_tools.sns_simulator`` keep working unchanged.
"""

from __future__ import annotations

import logging
import sys

from enterprise_tools.simulator.archive import (  # noqa: F401
    _WORKER,
    FileJob,
    _check_out_dir,
    _corrupt,
    _expected,
    _init_worker,
    _jobs,
    _n_pulses,
    _ordered_results,
    _run_job,
    _tally,
    _write_json,
    _write_settings,
    file_events,
    file_name,
    make_file,
    simulate_archive,
)
from enterprise_tools.simulator.cli import (  # noqa: F401
    _build_parser,
    _Parser,
    main,
)
from enterprise_tools.simulator.params import (  # noqa: F401
    _PRODUCTION_RANGES,
    _PV,
    _TUNABLE,
    _TUNING_STEP,
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
    _parse_start,
)
from enterprise_tools.simulator.physics import (  # noqa: F401
    _DRIFT_CHANNELS,
    _DRIFT_TERMS,
    Beam,
    Event,
    _chopper,
    _digitise,
    _drift_terms,
    _flicker,
    _noise,
    _precursor_loss,
    _window,
    beam_at,
    beam_for,
    drift_at,
    pulse_traces,
)
from enterprise_tools.simulator.schedule import (  # noqa: F401
    _ACQ_DTYPE,
    KIND_ERRANT,
    KIND_MPS,
    KIND_NORMAL,
    Segment,
    _draw_configuration,
    _length_drawer,
    _mode_values,
    _pulse_period_ns,
    _rounded,
    _tune,
    build_schedule,
    plan_acquisitions,
    settings_rows,
)

logger = logging.getLogger("beamwatch.simulator")

if __name__ == "__main__":
    sys.exit(main())
