"""The history rule for live scoring: the last N pulses of the current file, kept in a ring.

A history model (`sns_history_siamese`, `history.count` N > 0) sees, beside each pulse, the N
pulses just before it in its own file. The archive builds them in `get_traces(references=N)`
(`enterprise_tools.trace_windows`), and this is its live twin, slot for slot:

1. a history pulse is a well-formed pulse of the same file (every pulse `pulse_windows` gives
   is one) whose `Alarm` is 0 and whose time is strictly earlier than the pulse's; no other
   filter (settings, production filter, pulse order) applies, as in the archive, where the
   history is cut before the settings join;
2. the N nearest such pulses in file order, oldest first, right-aligned: slot N-1 is the pulse
   just before; empty slots are zeros and "history_count" is the number of filled (last)
   slots, so the model's `HistoryMask` masks the same slots;
3. the ring starts empty with each file (`reset`), as the archive's history starts at each
   file's first pulse.

The engine scores only a pulse strictly later than every pulse before it in its file, so all
pulses in the ring are earlier than it and the N most recent non-tripping ones are exactly the
archive's N. A window holding NaN or inf stays in the ring: the archive drops the sample whose
history holds one (`validation.finite_pulses` over the window and its history), and the engine
ledgers such a pulse `non_finite_trace` likewise (`History.finite`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class History:
    """The history of one pulse: windows [N, ...] (zeros in empty slots), the filled (last)
    slots `count`, and whether every filled window is finite."""

    windows: np.ndarray
    count: int
    finite: bool


class HistoryRing:
    """The last N non-tripping pulses of the current file as (timestamp_ns, window, finite)."""

    def __init__(self, count: int):
        if count < 1:
            raise ValueError(f"HistoryRing: count must be >= 1, got {count}")
        self.count = int(count)
        self._pulses: deque = deque(maxlen=self.count)

    def __len__(self) -> int:
        return len(self._pulses)

    def reset(self) -> None:
        """A new file begins: no pulse before its first."""
        self._pulses.clear()

    def add(self, timestamp_ns: int, window: np.ndarray, alarm: int, finite: bool) -> None:
        """Offer the next pulse of the file (after it was judged): kept when its Alarm is 0.
        `finite`: the window holds no NaN/inf (the engine's `finite_pulses`, not checked again)."""
        if alarm == 0:
            self._pulses.append((int(timestamp_ns), np.asarray(window, np.float32), bool(finite)))

    def history(self, timestamp_ns: int, window_shape: tuple[int, ...]) -> History:
        """The history of a pulse at `timestamp_ns` (only pulses strictly earlier count)."""
        earlier = [pulse for pulse in self._pulses if pulse[0] < timestamp_ns]
        windows = np.zeros((self.count, *window_shape), np.float32)
        for slot, (_, window, _) in enumerate(earlier, start=self.count - len(earlier)):
            windows[slot] = window
        return History(windows, len(earlier), all(pulse[2] for pulse in earlier))
