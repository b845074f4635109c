"""Score the pulses of one file (or one chunk of a stream) live: the one path of --watch and the
stream benchmark.

For each pulse in time order: order check (a pulse not later than the one before it in its file
is ledgered `out_of_order_pulse`), the training side's own data rules (`data_transformer.
settings_verdicts`: settings present, not stale, production filter; `validation.finite_pulses`:
no NaN/inf in the window), configuration group
and references (`live.references`), a history model's history (`live.history`: the last N
non-tripping pulses of the file, the archive's rule), score through the exported artefact (`live.scorer`), alarm
at the threshold in force (`score >= threshold`, as the evaluation counts it): the run's
threshold, followed by the online recalibration where serving.json asks for it (each pulse whose
label became known moves it: `analysis.recalibration.OnlineThreshold`, so at low targets such
as 10 false alarms per hour it places the rate on every pulse that the validation part could
not), the unseen-configuration flag (`analysis.unseen`) and the pulse's label as far as it is known live (1 when
the next pulse of the file trips, 0 when it does not or the file holds no alarm, -1 unknown).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from datetime import UTC, datetime

import numpy as np

from analysis.recalibration import OnlineThreshold
from analysis.unseen import UnseenDetector
from data_preparation.data_transformer import settings_verdicts
from data_preparation.ledger import (
    NO_SETTINGS,
    NON_FINITE_TRACE,
    NON_PRODUCTION,
    OUT_OF_ORDER_PULSE,
    STALE_SETTINGS,
)
from data_preparation.validation import finite_pulses
from live.history import HistoryRing
from live.references import NO_REFERENCE, ReferenceBuffer, ReferenceRule
from live.serving import InputLayout


@dataclasses.dataclass
class PulseRow:
    """What live scoring says about one pulse (one row of alarms.csv)."""

    file: str
    pulse_in_file: int
    timestamp_ns: int
    score: float
    threshold: float  # in force when the pulse was scored
    alarm: bool
    label: int
    unseen_configuration: bool | None
    config_distance: float | None
    references: int
    latency_ns: int


CSV_COLUMNS = ("file", "pulse_in_file", "timestamp_ns", "time_utc", "score", "threshold", "alarm",
               "label", "unseen_configuration", "config_distance", "references")


class LiveScorer:
    """Scores files of pulses with a backend and an export's serving.json (`meta`).

    A file arrives whole, and every reference a pulse may take is earlier than it, so by default
    all pulses of a file are prepared first and scored in one batched call (`per_pulse=False`,
    `latency_ns` = the file's time); `per_pulse=True` scores them one by one (`serve_one`), the
    path of a system fed pulse by pulse.

    With a backend that encodes once (a reference model's SavedModel) and `encode_once=True`,
    each pulse's front end runs once: its features are kept with it in the file and the
    reference buffer, and a pulse is scored from its own and its references' stored features
    (per file `encode` + `score`, per pulse one `encode_and_score_one` call, instead of
    `serving_default` / `serve_one` over the pulse and its K references).

    A history model's export (`layout.n_history` N > 0) gets each pulse's history from a ring
    of the file's last N non-tripping pulses (`live.history`), emptied when a file begins: a
    call holds a file from its first pulse unless it says it `continues` the previous one.
    """

    def __init__(self, backend, meta: dict, *, per_pulse: bool = False,
                 max_settings_age_s: float | None = None, encode_once: bool = True):
        self.backend = backend
        self.max_settings_age_s = max_settings_age_s  # beam_settings.max_settings_age_s
        self.per_pulse = per_pulse  # True: serve_one per pulse; False: one call per file
        self.layout = InputLayout.from_dict(meta["layout"])
        self.threshold = float(meta["threshold"])
        online = meta.get("online")
        self.online = None if not online else OnlineThreshold(
            self.threshold, float(online["target_false_alarm_rate"]), step=float(online["step"]))
        self.alarm_code = int(meta["window"]["alarm"])
        settings = meta["settings"]
        self.features = list(settings["features"])
        self.production = dict(settings["production_filter"])
        self.filter_columns = list(dict.fromkeys([*self.features, *self.production]))
        scale = meta["scaling"]["settings"]
        self._center = np.asarray(scale["center"], np.float64)
        self._scale = np.asarray(scale["scale"], np.float64)
        unseen = meta.get("unseen_configuration")
        self.unseen = UnseenDetector.from_dict(unseen) if unseen else None
        self.buffer = None
        if self.layout.n_references:
            self.buffer = ReferenceBuffer(ReferenceRule.from_dict(meta["reference"]),
                                          float(settings["group_tolerance"]))
        self.encode_once = bool(encode_once and self.buffer is not None and backend.encodes)
        self.history = HistoryRing(self.layout.n_history) if self.layout.n_history else None
        self._unseen_cache: tuple[bytes, float] | None = None
        self.skipped: Counter = Counter()

    @property
    def threshold_now(self) -> float:
        """The threshold the next pulse is judged at (the online one where it runs)."""
        return self.threshold if self.online is None else self.online.threshold

    def _trips(self, alarm: int) -> bool:
        return alarm != 0 and (self.alarm_code == -1 or alarm == self.alarm_code)

    def _distance(self, settings: np.ndarray) -> float | None:
        if self.unseen is None:
            return None
        key = settings.tobytes()
        if self._unseen_cache is None or self._unseen_cache[0] != key:
            # float32 first, as the training pipeline holds settings
            values = settings[: len(self._center)].astype(np.float32).astype(np.float64)
            scaled = (values - self._center) / self._scale
            self._unseen_cache = (key, float(self.unseen.distances(scaled[None])[0]))
        return self._unseen_cache[1]

    def score_file(self, name: str, traces, timestamps_ns, alarms, settings=None, *,
                   settings_until_ns: int | None = None, already_scored=None,
                   continues: bool = False
                   ) -> tuple[list[PulseRow], list[tuple[str, int, str]]]:
        """Rows of the scored pulses and (reason, count, detail) of the skipped ones.

        `settings` [n, len(filter_columns)]: the model's features then any production-filter
        PV not among them, NaN where no settings row precedes the pulse (None: no settings);
        `settings_until_ns`: the time of the settings history's last row (pulses later than it
        plus `max_settings_age_s` are `stale_settings`). `already_scored` [n] bool: pulses
        scored before (a file read again); they are neither scored nor ledgered again, but
        still serve later pulses of the file as references and history.

        `continues`: the pulses follow those of the previous call in the same file or stream
        (a stream fed pulse by pulse or in chunks: `--epics-input`, the stream benchmark), so a
        history model's history carries on from them; False (the default), the call holds the
        file from its first pulse (`--watch` reads a file whole, again whole when it grew) and
        the history starts empty, as the archive's does at a file's first pulse.
        """
        n = len(timestamps_ns)
        timestamps_ns = np.asarray(timestamps_ns, np.int64)
        alarms = np.asarray(alarms, np.int64)
        clean_file = not np.any(alarms)
        skipped: list[tuple[str, int, str]] = []
        later = np.ones(n, bool)  # strictly later than every pulse before it in the file
        if n > 1:
            later[1:] = timestamps_ns[1:] > np.maximum.accumulate(timestamps_ns)[:-1]
        fresh = np.ones(n, bool) if already_scored is None else ~np.asarray(already_scored, bool)
        ok = later & fresh
        if (~later & fresh).any():
            skipped.append((OUT_OF_ORDER_PULSE, int((~later & fresh).sum()),
                            "pulse not later than the one before it in the file"))
        if settings is not None and self.filter_columns:
            settings = np.asarray(settings, np.float64)
            verdicts = settings_verdicts(timestamps_ns, settings, self.filter_columns,
                                         self.production, settings_until_ns,
                                         self.max_settings_age_s)
            details = {NO_SETTINGS: "pulse precedes every settings row",
                       STALE_SETTINGS: f"pulse later than the last settings row + "
                                       f"beam_settings.max_settings_age_s="
                                       f"{self.max_settings_age_s or 0:g} s",
                       NON_PRODUCTION: "settings fail the production filter"}
            for reason, mask in verdicts.items():
                if (mask & ok).any():
                    skipped.append((reason, int((mask & ok).sum()), details[reason]))
                ok &= ~mask
        elif self.layout.n_settings:
            skipped.append((NO_SETTINGS, int(ok.sum()), "no beam settings available"))
            ok[:] = False
        finite = finite_pulses(traces) if n else np.ones(0, bool)
        if (ok & ~finite).any():
            skipped.append((NON_FINITE_TRACE, int((ok & ~finite).sum()),
                            "NaN or inf in the window"))
        ok &= finite
        # a pulse is encoded when it is scored or may serve later pulses as a reference
        started = time.perf_counter_ns()
        keep = (alarms == 0) & later & finite
        # encode-once per file: the file's pulses in one batched call; per pulse: each pulse's
        # own call below encodes it while it scores it
        batched = self.encode_once and not self.per_pulse
        features = self._encode_batch(traces, ok | keep) if batched else [None] * n
        inline: dict[int, tuple[float, int]] = {}  # encode-once per pulse: (score, latency)
        prepared: list[tuple[int, dict, int, int]] = []  # (pulse, raw inputs, references, label)
        in_file: list = []
        no_reference = non_finite_history = 0
        if self.history is not None and not continues:
            self.history.reset()
        for i in range(n):
            ts, window = int(timestamps_ns[i]), traces[i]
            if i + 1 < n:
                label = 1 if self._trips(int(alarms[i + 1])) else (0 if alarms[i] == 0 else -1)
            else:
                label = 0 if clean_file else -1
            usable = bool(ok[i])
            raw = {"trace": window}
            used = 0
            if usable and self.history is not None:
                past = self.history.history(ts, np.shape(window))
                if past.finite:
                    raw["history"], raw["history_count"] = past.windows, np.float32(past.count)
                else:  # the archive drops a sample whose history holds NaN/inf alike
                    non_finite_history += 1
                    usable = False
            if usable:
                if settings is not None and self.buffer is not None:
                    self.buffer.see_settings(settings[i])
                if self.layout.n_settings:
                    raw["settings"] = settings[i, : self.layout.n_settings].astype(np.float32)
                if self.buffer is not None:
                    refs = self.buffer.lookup(ts, window, in_file, features[i])
                    if refs is None:
                        no_reference += 1
                        usable = False
                    else:
                        raw["reference"], used = refs.windows, refs.count
                        if batched:
                            raw["pulse_features"] = features[i]
                            raw["reference_features"] = self._stored(refs)
                        elif self.encode_once:
                            t0 = time.perf_counter_ns()
                            score, features[i] = self.backend.encode_and_score_one(
                                window, self._stored(refs), raw.get("settings"))
                            inline[i] = (score, time.perf_counter_ns() - t0)
            if usable:
                prepared.append((i, raw, used, label))
            if self.history is not None:  # after the pulse was judged: a history for later ones
                self.history.add(ts, window, int(alarms[i]), bool(finite[i]))
            if keep[i]:  # a reference for later pulses
                if self.encode_once and features[i] is None:  # not scored: encoded for that
                    features[i] = self.backend.encode_one(window)
                in_file.append((ts, window, features[i]))
        rows: list[PulseRow] = []
        if prepared:
            if batched:
                scores, latencies = self._score_encoded(prepared, started)
            elif self.encode_once:
                scores = [inline[i][0] for i, _, _, _ in prepared]
                latencies = [inline[i][1] for i, _, _, _ in prepared]
            elif self.per_pulse:
                scores, latencies = [], []
                for _, raw, _, _ in prepared:
                    t0 = time.perf_counter_ns()
                    scores.append(self.backend.score_one(raw))
                    latencies.append(time.perf_counter_ns() - t0)
            else:
                batch = {name: np.stack([raw[name] for _, raw, _, _ in prepared])
                         for name in self.layout.names}
                scores = self.backend.score_batch(batch)
                # the whole file is scored at once: each pulse waited for all of it
                latencies = [time.perf_counter_ns() - started] * len(prepared)
            for (i, _, used, label), score, latency in zip(prepared, scores, latencies,
                                                            strict=True):
                distance = self._distance(settings[i]) if settings is not None else None
                unseen = None if distance is None else bool(distance > self.unseen.radius)
                threshold = self.threshold_now
                rows.append(PulseRow(name, i, int(timestamps_ns[i]), float(score), threshold,
                                     bool(score >= threshold), label, unseen, distance, used,
                                     int(latency)))
                if self.online is not None and label != -1:
                    # its label is known once the next pulse came: feed it back before the
                    # next pulse is judged (causal)
                    self.online.update(float(score), is_normal=label == 0)
        if no_reference:
            skipped.append((NO_REFERENCE, no_reference, "fewer references than reference.min_count"))
        if non_finite_history:
            skipped.append((NON_FINITE_TRACE, non_finite_history,
                            "NaN or inf in the window of a history pulse"))
        if self.buffer is not None and clean_file:
            for i in range(n):
                if ok[i]:
                    self.buffer.add_normal(int(timestamps_ns[i]), traces[i], features[i])
        for reason, count, _ in skipped:
            self.skipped[reason] += count
        return rows, skipped

    def _encode_batch(self, traces, wanted: np.ndarray) -> list:
        """Features of the `wanted` pulses in one batched call (None for the others)."""
        features: list = [None] * len(wanted)
        at = np.flatnonzero(wanted)
        if len(at):
            for i, f in zip(at, self.backend.encode_batch(traces[at]), strict=True):
                features[i] = f
        return features

    def _stored(self, refs) -> np.ndarray:
        """The references' stored features. A reference kept without them (a watch state from
        before encode-once) or the pulse judged alone (`missing: self`) is encoded now."""
        if refs.features is not None:
            return refs.features
        return self.backend.encode_batch(refs.windows)

    def _score_encoded(self, prepared: list, started: int) -> tuple[list, list]:
        """A file's scores from stored features in one batched call."""
        settings = self.layout.n_settings
        scores = self.backend.score_encoded_batch(
            np.stack([raw["pulse_features"] for _, raw, _, _ in prepared]),
            np.stack([raw["reference_features"] for _, raw, _, _ in prepared]),
            np.stack([raw["settings"] for _, raw, _, _ in prepared]) if settings else None)
        # the whole file is scored at once: each pulse waited for all of it
        return scores, [time.perf_counter_ns() - started] * len(prepared)


def iso_time(timestamp_ns: int) -> str:
    """UTC time of a pulse to the microsecond (pulses are 16.7 ms apart)."""
    moment = datetime.fromtimestamp(int(timestamp_ns) // 1000 / 1e6, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def csv_row(row: PulseRow) -> list:
    """One alarms.csv row (CSV_COLUMNS)."""
    return [row.file, row.pulse_in_file, row.timestamp_ns, iso_time(row.timestamp_ns),
            f"{row.score:.6g}", f"{row.threshold:.6g}", int(row.alarm), row.label,
            "" if row.unseen_configuration is None else int(row.unseen_configuration),
            "" if row.config_distance is None else f"{row.config_distance:.4g}", row.references]
