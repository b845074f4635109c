"""Synthetic data in the layouts of the four non-SNS jobs, for tests and accuracy checks.

Each writer makes a small, seeded, learnable-but-not-trivial dataset:

* `write_sessions`: one .csv/.xlsx per session, accelerometer/gyroscope x/y/z at 50 Hz whose
  dominant frequency and amplitude depend on the activity class (with overlap and noise).
* `write_windows`: an .npz of zero-padded multichannel windows, `X` [n, steps, features] and
  `y`, class-dependent frequency and phase coupling between channels, random lengths.
* `write_feature_table`: a .csv of Gaussian class clusters in a few informative dimensions
  among noisy ones (scikit-learn's `make_classification`).
* `write_text`: a .csv of short sentences mixing topic words with shared filler words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ACTIVITIES = {"sit": (0.3, 0.05), "walk": (1.8, 1.0), "run": (2.8, 1.4)}  # Hz, amplitude (g)


def write_sessions(root: Path, per_class: int = 12, *, seed: int = 0, length: int = 200,
                   xlsx_every: int = 4, rate_hz: float = 50.0) -> Path:
    """`root/<class>/<session>.csv|.xlsx` with timestamp, acc_x/y/z, gyr_x/y/z, temp."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    start = 1_700_000_000.0
    k = 0
    for name, (freq, amp) in ACTIVITIES.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            n = int(length * rng.uniform(0.85, 1.15))
            t = start + k * 3600 + np.arange(n) / rate_hz
            f = freq * rng.uniform(0.8, 1.25)
            a = amp * rng.uniform(0.6, 1.4)
            phase = rng.uniform(0, 2 * np.pi, 6)
            w = 2 * np.pi * f * (t - t[0])
            cols = {"timestamp": t}
            for j, axis in enumerate("xyz"):
                cols[f"acc_{axis}"] = (a * np.sin(w + phase[j]) + (1.0 if axis == "z" else 0.0)
                                       + rng.normal(0, 0.35, n))
                cols[f"gyr_{axis}"] = 0.5 * a * np.cos(w + phase[3 + j]) + rng.normal(0, 0.3, n)
            cols["temp"] = 30 + rng.normal(0, 0.5) + rng.normal(0, 0.05, n)
            frame = pd.DataFrame(cols)
            stem = root / name / f"s{k:03d}"
            if xlsx_every and i % xlsx_every == 0:
                frame.to_excel(stem.with_suffix(".xlsx"), index=False)
            else:
                frame.to_csv(stem.with_suffix(".csv"), index=False)
            k += 1
    return root


def write_windows(path: Path, n: int = 400, *, seed: int = 0, steps: int = 64,
                  features: int = 3, n_classes: int = 4) -> Path:
    """`X` [n, steps, features] zero-padded after each window's length, integer `y`."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    x = np.zeros((n, steps, features), dtype=np.float32)
    for i in range(n):
        m = int(rng.integers(steps // 2, steps + 1))
        t = np.arange(m)
        f = (0.05 + 0.025 * y[i]) * rng.uniform(0.85, 1.15)  # neighbouring classes overlap
        lag = (y[i] % 2) * np.pi / 2
        for c in range(features):
            x[i, :m, c] = np.sin(2 * np.pi * f * t + c * lag + rng.uniform(0, 0.5))
        x[i, :m] += rng.normal(0, 1.0, (m, features))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=x, y=y, class_names=np.array([f"gesture{c}" for c in range(n_classes)]))
    return path


def write_feature_table(path: Path, n: int = 600, *, seed: int = 0, n_features: int = 40,
                        n_classes: int = 5, ordered: bool = False) -> Path:
    """A .csv with `label` (names) and `f0..` numeric features.

    `ordered=False`: scikit-learn's `make_classification` (feature order means nothing).
    `ordered=True`: descriptor-like rows (band energies): two class-dependent spectral bumps,
    jittered per sample, plus noise, so neighbouring features are related as in audio tables.
    """
    if ordered:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, n_classes, n)
        bins = np.arange(n_features)
        centers = rng.uniform(0.15, 0.75, (n_classes, 2)) * n_features
        x = np.stack([np.exp(-(bins - centers[c, 0] - rng.normal(0, 1.5)) ** 2 / 8)
                      + 0.7 * np.exp(-(bins - centers[c, 1] - rng.normal(0, 1.5)) ** 2 / 12)
                      for c in y]) + rng.normal(0, 0.35, (n, n_features))
    else:
        from sklearn.datasets import make_classification

        x, y = make_classification(n_samples=n, n_features=n_features, n_informative=10,
                                   n_redundant=6, n_classes=n_classes, n_clusters_per_class=2,
                                   class_sep=1.2, flip_y=0.02, random_state=seed)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(n_features)])
    frame.insert(0, "label", [f"genre{c}" for c in y])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


TOPICS = {
    "sports": "match goal team coach season league striker referee score stadium win",
    "weather": "rain storm forecast wind cloud sunny temperature snow humid cold",
    "tech": "software chip laptop network code startup cloud data device update",
}
FILLER = ("the a of today we it was new big some very and in on for with this report says "
          "people after before more than about").split()


def write_text(path: Path, per_class: int = 60, *, seed: int = 0, words: int = 14) -> Path:
    """A .csv of `text,label`; each sentence has 1-2 topic words among filler words, and one
    in three borrows 1-2 words of another topic (some sentences are ambiguous)."""
    rng = np.random.default_rng(seed)
    rows = []
    names = list(TOPICS)
    for name in names:
        vocab = TOPICS[name].split()
        for _ in range(per_class):
            tokens = list(rng.choice(FILLER, words))
            for _ in range(int(rng.integers(1, 3))):
                tokens[int(rng.integers(0, words))] = str(rng.choice(vocab))
            if rng.random() < 1 / 3:
                other = TOPICS[str(rng.choice([n for n in names if n != name]))].split()
                for _ in range(int(rng.integers(1, 3))):
                    tokens[int(rng.integers(0, words))] = str(rng.choice(other))
            rows.append((" ".join(tokens).capitalize() + ".", name))
    order = rng.permutation(len(rows))
    frame = pd.DataFrame([rows[i] for i in order], columns=["text", "label"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
