"""The online-recalibrated operating point of a test: what a threshold that follows each pulse
found normal would have achieved on the evaluated pulses, reported beside the fixed one.

Kept apart from `testing.test` so the flow only calls it; the tracker itself is
`analysis.recalibration` (arrays only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.recalibration import online_in_time_order
from analysis.thresholds import ThresholdChoice
from parser.configs import ThresholdConfig


@dataclass(frozen=True)
class OnlineFigures:
    """`summary` for metrics.json and the report; per-pulse `alarms` and `thresholds` in the
    order of the evaluated pulses. All None when `threshold.online` is off."""

    summary: dict | None = None
    alarms: np.ndarray | None = None
    thresholds: np.ndarray | None = None


def online_figures(timestamps_ns, labels, scores, threshold: ThresholdChoice,
                   threshold_config: ThresholdConfig) -> OnlineFigures:
    """Run the tracker from the validation threshold over the pulses in time order.

    The target is the validation choice's target false-alarm rate, or the configured one when
    the threshold was chosen by best F1 (which has none). Only the causal feedback of each
    pulse's own label reaches later thresholds; nothing else is tuned on these labels.
    Scores outside [0, 1] are tracked in score units instead of logits.
    """
    if not threshold_config.online:
        return OnlineFigures()
    s = np.asarray(scores, dtype=np.float64)
    target = threshold.target_false_alarm_rate or threshold_config.target_false_alarm_rate
    space = "logit" if s.size and s.min() >= 0.0 and s.max() <= 1.0 else "linear"
    result = online_in_time_order(timestamps_ns, s, labels, threshold.threshold, target,
                                  step=threshold_config.online_step, space=space)
    return OnlineFigures(result.summary(threshold_config.pulse_rate_hz), result.alarms,
                         result.thresholds)
