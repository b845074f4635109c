"""The reference rule for live scoring (CONTRACT §3), kept in a bounded buffer.

A pulse is judged against earlier pulses of its own configuration. For each pulse, in order:

1. the K well-formed, non-tripping pulses just before it in the same file (oldest first,
   right-aligned: slot K-1 is the pulse immediately before);
2. empty slots are filled, newest first, from the most recent earlier *normal* pulses of the same
   configuration group within `window_s`, strictly earlier in time. Live, a normal pulse is a
   pulse of a file that holds no alarm (the training rule: such a file's pulses are label 0),
   and a configuration group ends when any setting moves by more than the group tolerance
   between consecutive pulses (`data_transformer.config_groups`), so the buffer is cleared on a
   change and holds at most K windows;
3. fewer than `min_count` references: `missing="skip"` -> no score (ledgered `no_reference`),
   `missing="self"` -> the pulse stands in for all slots (judged alone);
4. remaining empty slots repeat the oldest filled one.

With `own_file=False` (the archive rule's twin: no reference from a run-up) step 1 is skipped
and step 2 takes only normal pulses at least `min_age_s` older than the pulse: a clean pulse
waits in a small decimated queue (one kept per `min_age_s / 32`, so memory stays ~32 windows)
until it is old enough, then joins the K references.

Each kept pulse carries its window and, when the scorer encodes once (`model.encoding`), its
front-end features, so a reference is never encoded again. A pulse is `(timestamp_ns, window,
features or None)` throughout.

This is the live twin of the archive rule in data_preparation; `ReferenceRule` mirrors its
`ReferenceConfig` fields.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

NO_REFERENCE = "no_reference"
SOURCE_EMPTY, SOURCE_FILE, SOURCE_ARCHIVE, SOURCE_SELF = 0, 1, 2, 3
_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class ReferenceRule:
    """count K, look-back `window_s`, `min_count` and what to do when too few (skip | self)."""

    count: int
    window_s: float = 3600.0
    min_count: int = 1
    missing: str = "skip"
    own_file: bool = True
    min_age_s: float = 0.0

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.min_count <= self.count or self.window_s <= 0:
            raise ValueError(f"ReferenceRule: need count >= 1, 0 <= min_count <= count and "
                             f"window_s > 0; got {self}")
        if self.missing not in ("skip", "self"):
            raise ValueError(f"ReferenceRule.missing must be 'skip' or 'self', got {self.missing!r}")

    @classmethod
    def from_dict(cls, data: dict) -> ReferenceRule:
        return cls(int(data["count"]), float(data["window_s"]), int(data["min_count"]),
                   str(data["missing"]), bool(data.get("own_file", True)),
                   float(data.get("min_age_s", 0.0)))


@dataclass
class References:
    """The references of one pulse: windows [K, ...], timestamps [K] (-1 empty), sources [K],
    and their stored features [K, ...] (None when any of them was kept without)."""

    windows: np.ndarray
    timestamp_ns: np.ndarray
    source: np.ndarray
    count: int  # slots filled before the oldest was repeated
    features: np.ndarray | None = None


class ReferenceBuffer:
    """Live references by `ReferenceRule`; memory: K archive windows plus the current file."""

    def __init__(self, rule: ReferenceRule, group_tolerance: float):
        self.rule = rule
        self.tolerance = float(group_tolerance)
        self._archive: deque = deque(maxlen=rule.count)  # pulses, oldest first
        self._young: deque = deque()  # own_file=False: clean pulses not yet min_age_s old
        self._min_age_ns = 0 if rule.own_file else int(rule.min_age_s * _NS_PER_S)
        self._last_settings: np.ndarray | None = None

    def see_settings(self, settings) -> None:
        """Follow the configuration group: a change larger than the tolerance clears the buffer."""
        settings = np.asarray(settings, dtype=np.float64)
        last = self._last_settings
        if last is not None and (last.shape != settings.shape or np.any(
                np.abs(settings - last) > self.tolerance) or np.any(np.isnan(settings) != np.isnan(last))):
            self._archive.clear()
            self._young.clear()
        self._last_settings = settings

    def lookup(self, timestamp_ns: int, window: np.ndarray, in_file: list,
               features: np.ndarray | None = None) -> References | None:
        """References of a pulse at `timestamp_ns` (its `window` and `features` stand in when
        it is judged alone); `in_file` holds the file's earlier well-formed non-tripping pulses
        as (timestamp_ns, window, features or None), oldest first. None: skip."""
        k = self.rule.count
        self._mature(timestamp_ns)
        chosen: list[tuple[tuple, int]] = [
            (pulse, SOURCE_FILE) for pulse in in_file[-k:] if pulse[0] < timestamp_ns
        ] if self.rule.own_file else []
        oldest_allowed = timestamp_ns - int(self.rule.window_s * _NS_PER_S)
        for pulse in reversed(self._archive):  # newest first
            if len(chosen) >= k:
                break
            if oldest_allowed <= pulse[0] < timestamp_ns:
                chosen.insert(0, (pulse, SOURCE_ARCHIVE))
        filled = len(chosen)
        if filled < self.rule.min_count and self.rule.missing == "skip":
            return None
        if filled < self.rule.min_count or filled == 0:  # judged alone: itself in every slot
            chosen, filled = [((timestamp_ns, window, features), SOURCE_SELF)], 0
        while len(chosen) < k:  # empty slots repeat the oldest filled one
            chosen.insert(0, chosen[0])
        stored = [pulse[2] for pulse, _ in chosen]
        return References(np.stack([pulse[1] for pulse, _ in chosen]).astype(np.float32),
                          np.array([pulse[0] for pulse, _ in chosen], np.int64),
                          np.array([source for _, source in chosen], np.int8), filled,
                          None if any(f is None for f in stored) else np.stack(stored))

    def add_normal(self, timestamp_ns: int, window: np.ndarray,
                   features: np.ndarray | None = None) -> None:
        """Remember a normal pulse of the current configuration group (with its features when
        the scorer encodes once)."""
        pulse = (int(timestamp_ns), np.asarray(window, np.float32), features)
        if not self._min_age_ns:
            self._archive.append(pulse)
        elif not self._young or pulse[0] - self._young[-1][0] >= self._min_age_ns // 32:
            self._young.append(pulse)

    def _mature(self, now_ns: int) -> None:
        """Move the clean pulses that are now at least min_age_s old into the references."""
        while self._young and now_ns - self._young[0][0] >= self._min_age_ns:
            self._archive.append(self._young.popleft())

    # -- persistence (the watch state): plain arrays, no pickle ------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        stamps = np.array([pulse[0] for pulse in self._archive], np.int64)
        windows = (np.stack([pulse[1] for pulse in self._archive]) if self._archive
                   else np.zeros((0,), np.float32))
        stored = [pulse[2] for pulse in self._archive]
        features = (np.stack(stored) if stored and all(f is not None for f in stored)
                    else np.zeros((0,), np.float32))
        last = self._last_settings if self._last_settings is not None else np.zeros(0)
        return {"timestamp_ns": stamps, "windows": windows, "features": features,
                "last_settings": last, "has_last": np.array(self._last_settings is not None)}

    def load_arrays(self, arrays) -> None:
        self._archive.clear()
        # a state written before encode-once, or by a scorer that does not, has no features
        features = arrays["features"] if "features" in arrays else np.zeros((0,), np.float32)
        if len(features) != len(arrays["timestamp_ns"]):
            features = [None] * len(arrays["timestamp_ns"])
        for ts, w, f in zip(arrays["timestamp_ns"], arrays["windows"], features, strict=False):
            self._archive.append((int(ts), np.asarray(w, np.float32), f))
        self._last_settings = (np.asarray(arrays["last_settings"], np.float64)
                               if bool(arrays["has_last"]) else None)
