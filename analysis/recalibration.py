"""Online recalibration of the alarm threshold: hold a target false-alarm rate while beam
configurations change.

Why: a threshold chosen on the validation period for a 1 % false-alarm rate alarmed on far more
of the next period's normal pulses, because every period brings beam configurations the model
never saw. Operators need an operating point that holds, so the threshold follows the stream.

Method: adaptive conformal inference (Gibbs and Candes, 2021) in its quantile-tracking form,
i.e. online (sub)gradient descent on the pinball loss of the normal-score quantile. After each
pulse that turns out normal (the next pulse did not trip), with `alarm` = whether that pulse
was alarmed at the threshold in force when it was scored:

    q <- q + step * (alarm - target)

A false alarm raises the threshold by `step * (1 - target)`; a quiet normal pulse lowers it by
`step * target`, so it rests where a share `target` of normal pulses alarm. Errant pulses (the
next pulse tripped) give no feedback: an alarm on them is no false alarm, and letting a caught
errant pulse push the threshold down would trade recall for nothing. This rule was chosen over
a windowed empirical quantile because it needs no window length, keeps O(1) state (one number,
easy to persist for live scoring), has no warm-up, and its long-run rate is guaranteed for ANY
score sequence, shifted or not: summing the update over T normal pulses gives exactly

    false-alarm rate - target = (q_end - q_start) / (step * T),

so the achieved rate converges to the target at rate 1/T whenever q stays bounded.

Scale: `q` lives in logit space by default (`space="logit"`): the model's sigmoid scores of
normal pulses crowd against 0 or 1 where a fixed step in score units would be far too coarse
or far too fine, while their logits spread over a few units whatever the model. The threshold
in score units is sigmoid(q); scores are compared in score units (score >= threshold), the same
comparison as everywhere else. Scores that are not probabilities use `space="linear"` and a
step in score units.

Step: 0.2 logit by default. From a threshold that is too low it climbs one logit per ~5 false
alarms; from one that is too high it falls one logit per ~5 / target quiet normal pulses (~500
at 1 %); at rest it jitters by ~0.2 logit for normal logits of spread ~1.5. Measured on
simulated logit-normal scores (normal N(-4, 1.5), errant N(-0.5, 1.5), target 1 %): after the
normal scores shift up by 2 logits (a new configuration), step 0.2 is back within 0.25 logit of
the new quantile after ~330 pulses and 14 false alarms (step 0.1: ~1,240 pulses, 33 false
alarms; 0.05: ~1,300, 50), while recall at rest matched the fixed ideal threshold within the
noise (0.53 vs 0.53) for steps 0.05 to 0.5. Smaller steps jitter less but waste more false
alarms after every change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from analysis._checks import check_labels_scores
from analysis.evaluation import SECONDS_PER_HOUR

SPACES = ("logit", "linear")
DEFAULT_STEP = 0.2
# Logit space needs scores strictly inside (0, 1): float32 sigmoid outputs reach exactly 0 and 1.
# The threshold is kept within [EPS, 1 - EPS] (|logit| <= 16.1), so it can neither run away on
# a stream of identical scores nor become a number no score can reach.
EPS = 1e-7
_STATE_KEYS = ("target_false_alarm_rate", "step", "space", "position", "n_normal", "n_false_alarms",
               "n_errant")


def _check_target(target: float) -> float:
    if isinstance(target, bool) or not isinstance(target, int | float | np.floating) \
            or not 0.0 < float(target) < 1.0:
        raise ValueError(f"target_false_alarm_rate must be a number in (0, 1); got {target!r}.")
    return float(target)


def _check_step(step: float) -> float:
    if isinstance(step, bool) or not isinstance(step, int | float | np.floating) \
            or not math.isfinite(float(step)) or float(step) <= 0.0:
        raise ValueError(f"step must be a finite number > 0; got {step!r}.")
    return float(step)


def _logit(p: float) -> float:
    p = min(max(float(p), EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class OnlineThreshold:
    """The quantile tracker as a small stateful object (what live scoring keeps between pulses).

    Args:
        initial_threshold: the starting threshold in score units (usually the validation one).
        target_false_alarm_rate: in (0, 1), the share of normal pulses allowed to alarm.
        step: update size, in logit units for `space="logit"` (default 0.2), in score units
            for `space="linear"`.
        space: "logit" (scores are probabilities in [0, 1]) or "linear".

    Use: alarm on a pulse when `score >= tracker.threshold`; once its label is known (the next
    pulse came and did or did not trip), call `tracker.update(score, is_normal)` before
    scoring the next pulse. `to_dict()` / `from_dict()` save and restore the state as JSON.

    Example:
        >>> t = OnlineThreshold(0.5, 0.01)
        >>> alarm = t.update(0.7, is_normal=True)   # a false alarm: the threshold rises
        >>> alarm, t.threshold > 0.5
        (True, True)
    """

    def __init__(self, initial_threshold: float, target_false_alarm_rate: float, *,
                 step: float = DEFAULT_STEP, space: str = "logit"):
        self.target_false_alarm_rate = _check_target(target_false_alarm_rate)
        self.step = _check_step(step)
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}; got {space!r}.")
        self.space = space
        if not isinstance(initial_threshold, int | float | np.number) or isinstance(initial_threshold, bool) \
                or not math.isfinite(float(initial_threshold)):
            raise ValueError(f"initial_threshold must be a finite number; got {initial_threshold!r}.")
        self.position = _logit(initial_threshold) if space == "logit" else float(initial_threshold)
        self.n_normal = 0
        self.n_false_alarms = 0
        self.n_errant = 0

    @property
    def threshold(self) -> float:
        """The threshold in force now, in score units: alarm when score >= threshold."""
        return _sigmoid(self.position) if self.space == "logit" else self.position

    def update(self, score: float, is_normal: bool) -> bool:
        """Feed back one pulse whose label is now known; returns whether it was alarmed.

        Only normal pulses move the threshold (up on a false alarm, a little down otherwise);
        an errant pulse is counted and changes nothing else.
        """
        score = float(score)
        if not math.isfinite(score):
            raise ValueError(f"score must be finite; got {score!r}.")
        alarm = score >= self.threshold
        if not is_normal:
            self.n_errant += 1
            return alarm
        self.n_normal += 1
        self.n_false_alarms += int(alarm)
        self.position += self.step * (float(alarm) - self.target_false_alarm_rate)
        if self.space == "logit":
            bound = _logit(1.0 - EPS)
            self.position = min(max(self.position, -bound), bound)
        return alarm

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state; `from_dict` restores a tracker that continues identically."""
        return {key: getattr(self, key) for key in _STATE_KEYS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnlineThreshold:
        """Rebuild from `to_dict()` output; missing/unknown keys or bad values raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"online threshold state must be a JSON object; got {type(data).__name__}.")
        missing, unknown = set(_STATE_KEYS) - set(data), set(data) - set(_STATE_KEYS)
        if missing or unknown:
            raise ValueError(f"Bad online threshold state: missing keys {sorted(missing)}, "
                             f"unknown keys {sorted(unknown)}.")
        position = data["position"]
        if isinstance(position, bool) or not isinstance(position, int | float) or not math.isfinite(position):
            raise ValueError(f"online threshold state: position must be a finite number; got {position!r}.")
        counts = {k: data[k] for k in ("n_normal", "n_false_alarms", "n_errant")}
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"online threshold state: {key} must be an int >= 0; got {value!r}.")
        tracker = cls(0.5, data["target_false_alarm_rate"], step=data["step"], space=data["space"])
        tracker.position = float(position)
        tracker.n_normal, tracker.n_false_alarms, tracker.n_errant = (
            counts["n_normal"], counts["n_false_alarms"], counts["n_errant"])
        return tracker


@dataclass(frozen=True)
class OnlineResult:
    """The online operating point over one stream of pulses (arrays in stream order).

    Attributes:
        thresholds: float64 [n], the threshold in force BEFORE each pulse (from pulses < i).
        alarms: bool [n], score >= that threshold.
        false_alarm_rate: alarmed normal pulses / normal pulses (None without normal pulses).
        recall: alarmed errant pulses / errant pulses (None without errant pulses).
        n_normal, n_errant, false_alarms, caught: the counts behind the two rates.
        target_false_alarm_rate, step, space: how the tracker ran.
        initial_threshold, final_threshold: where it started and where it ended (after the
            last pulse's feedback).
    """

    thresholds: np.ndarray
    alarms: np.ndarray
    false_alarm_rate: float | None
    recall: float | None
    n_normal: int
    n_errant: int
    false_alarms: int
    caught: int
    target_false_alarm_rate: float
    step: float
    space: str
    initial_threshold: float
    final_threshold: float

    def summary(self, pulse_rate_hz: float = 60.0) -> dict[str, Any]:
        """Plain dict for metrics.json; false alarms per hour extrapolate the rate to every
        pulse at `pulse_rate_hz`, as `evaluation.compute_metrics` does for the fixed threshold."""
        far = self.false_alarm_rate
        return {
            "method": "adaptive conformal quantile tracking (Gibbs and Candes 2021)",
            "target_false_alarm_rate": self.target_false_alarm_rate,
            "step": self.step,
            "space": self.space,
            "false_alarm_rate": far,
            "false_alarms_per_hour": far * pulse_rate_hz * SECONDS_PER_HOUR if far is not None else None,
            "recall": self.recall,
            "false_alarms": self.false_alarms,
            "n_normal": self.n_normal,
            "caught": self.caught,
            "n_errant": self.n_errant,
            "initial_threshold": self.initial_threshold,
            "final_threshold": self.final_threshold,
            "threshold_min": float(self.thresholds.min()),
            "threshold_max": float(self.thresholds.max()),
            "pulse_rate_hz": float(pulse_rate_hz),
        }


def online_thresholds(scores, labels, initial_threshold: float, target_false_alarm_rate: float, *,
                      step: float = DEFAULT_STEP, space: str = "logit") -> OnlineResult:
    """Run the tracker over a stream in time order (0 normal, 1 errant); strictly causal.

    The threshold for pulse i depends only on the scores and labels of pulses < i; pulse i's
    label feeds back after it (see `OnlineThreshold`). Raises ValueError on lengths that
    differ, labels other than 0/1, non-finite scores, a target outside (0, 1), a step <= 0,
    or (logit space) scores outside [0, 1].

    Example:
        >>> r = online_thresholds([0.2, 0.9, 0.3], [0, 0, 1], 0.5, 0.01)
        >>> r.alarms.tolist(), r.false_alarms
        ([False, True, False], 1)
    """
    tracker = OnlineThreshold(initial_threshold, target_false_alarm_rate, step=step, space=space)
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    if space == "logit" and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError("scores must lie in [0, 1] for space='logit' (found "
                         f"{s.min():.4g}..{s.max():.4g}); use space='linear' for other scores.")
    start = tracker.threshold
    thresholds = np.empty(s.size, dtype=np.float64)
    alarms = np.empty(s.size, dtype=bool)
    for i in range(s.size):
        thresholds[i] = tracker.threshold
        alarms[i] = tracker.update(s[i], bool(y[i] == 0))
    normal, errant = y == 0, y == 1
    n_normal, n_errant = int(normal.sum()), int(errant.sum())
    false_alarms, caught = int(alarms[normal].sum()), int(alarms[errant].sum())
    return OnlineResult(
        thresholds=thresholds, alarms=alarms,
        false_alarm_rate=false_alarms / n_normal if n_normal else None,
        recall=caught / n_errant if n_errant else None,
        n_normal=n_normal, n_errant=n_errant, false_alarms=false_alarms, caught=caught,
        target_false_alarm_rate=tracker.target_false_alarm_rate, step=tracker.step, space=space,
        initial_threshold=start, final_threshold=tracker.threshold,
    )


def online_in_time_order(timestamps_ns, scores, labels, initial_threshold: float,
                         target_false_alarm_rate: float, *, step: float = DEFAULT_STEP,
                         space: str = "logit") -> OnlineResult:
    """`online_thresholds` over pulses given in any order: run in time order (stable for equal
    times), results returned in the input order. For the test flow, whose parts are index sets."""
    ts = np.asarray(timestamps_ns)
    if ts.ndim != 1 or ts.shape[0] != np.shape(scores)[0]:
        raise ValueError(f"timestamps_ns must be 1-D with one time per score; got shape {ts.shape} "
                         f"for {np.shape(scores)[0]} scores.")
    order = np.argsort(ts, kind="stable")
    ran = online_thresholds(np.asarray(scores)[order], np.asarray(labels)[order], initial_threshold,
                            target_false_alarm_rate, step=step, space=space)
    back = np.empty_like(order)
    back[order] = np.arange(order.size)
    return replace(ran, thresholds=ran.thresholds[back], alarms=ran.alarms[back])
