"""Random changes to training sequences, drawn afresh for every batch (training part only).

Time warp stretches or squeezes a sample's real (non-padded) steps by a factor in
[1 - w, 1 + w] by linear interpolation, then trims or zero-pads back to the length; Gaussian
noise is added to real steps only; feature dropout zeroes whole channels of a sample. Padding
(all-zero steps) stays zero so masking models keep working.
"""

from __future__ import annotations

import numpy as np


def augment_sequences(x: np.ndarray, rng: np.random.Generator, *, time_warp: float,
                      noise_std: float, feature_dropout: float) -> np.ndarray:
    """A randomly changed copy of `x` [b, L, C]."""
    x = np.array(x, dtype=np.float32, copy=True)
    b, length, channels = x.shape
    real = ~np.all(x == 0, axis=-1)  # [b, L]
    for i in range(b):
        steps = np.flatnonzero(real[i])
        n = int(steps[-1]) + 1 if steps.size else 0
        if time_warp > 0 and n >= 2:
            new_n = int(np.clip(round(n * rng.uniform(1 - time_warp, 1 + time_warp)), 2, length))
            old_t, new_t = np.linspace(0, 1, n), np.linspace(0, 1, new_n)
            warped = np.stack([np.interp(new_t, old_t, x[i, :n, c]) for c in range(channels)],
                              axis=1)
            x[i] = 0.0
            x[i, :new_n] = warped
            real[i] = False
            real[i, :new_n] = True
    if noise_std > 0:
        x += (rng.normal(0.0, noise_std, x.shape) * real[..., None]).astype(np.float32)
    if feature_dropout > 0 and channels > 1:
        keep = rng.random((b, 1, channels)) >= feature_dropout
        x *= keep
    # A real step that came out exactly zero would read as padding: nudge it.
    x[real & np.all(x == 0, axis=-1)] = 1e-6
    return x
