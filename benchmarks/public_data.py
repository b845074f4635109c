"""Real public data sets that ship inside installed wheels, written in the jobs' own layouts.

No download at run time: the UCR/UEA sets are the copies bundled in aeon's wheel
(`aeon/datasets/data/<name>/<name>_TRAIN.ts` and `_TEST.ts`, read with aeon's local
`load_from_ts_file`), the tables the CSV files bundled in scikit-learn's wheel.

* `write_sessions(name, root)`: one CSV per series (`timestamp` in seconds, one column per
  channel `c0..`), in `root/{train,test}/<class>/`, so `split.method=predefined` reproduces the
  dataset's own train/test split (`configs/sessions.yaml`). Series of unequal length keep their
  own length (the sessions source pads them).
* `write_windows(name, path)`: the same series as one .npz (`X` [n, steps, channels],
  zero-padded at the end; `y`, `class_names`, `split`) for `configs/windows.yaml`.
* `write_table(name, path)`: a bundled scikit-learn table as one CSV (feature columns, `label`)
  for `configs/features.yaml` (these tables have no predefined split).

No text set is written: no labelled text corpus ships inside a wheel installed here
(scikit-learn's 20 newsgroups, keras' IMDB and NLTK's corpora are downloads).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

UCR_SETS = ("GunPoint", "ArrowHead", "ItalyPowerDemand", "OSULeaf", "PickupGestureWiimoteZ",
            "BasicMotions")
TABLES = ("breast_cancer", "wine")


def aeon_data_dir() -> Path:
    """The folder of the data sets bundled in aeon's wheel."""
    import aeon.datasets

    return Path(aeon.datasets.__file__).parent / "data"


def load_ucr(name: str) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """`{"train", "test"}` -> (series [channels, steps] each, string labels) of bundled `name`."""
    from aeon.datasets import load_from_ts_file

    folder = aeon_data_dir() / name
    out = {}
    for part in ("train", "test"):
        path = folder / f"{name}_{part.upper()}.ts"
        if not path.is_file():
            bundled = sorted(p.name for p in aeon_data_dir().iterdir())
            raise FileNotFoundError(f"{path}: {name} is not bundled in this aeon wheel; "
                                    f"bundled: {bundled}")
        x, y = load_from_ts_file(str(path))
        out[part] = ([np.asarray(s, dtype=np.float64) for s in x], np.asarray(y).astype(str))
    return out


def write_series_sessions(parts: dict[str, tuple[list[np.ndarray], np.ndarray]],
                          root: Path, prefix: str) -> Path:
    """Series per part as `root/<part>/<class>/<prefix>_<part>_<i>.csv`; returns `root`."""
    root = Path(root)
    for part, (series, labels) in parts.items():
        for i, (x, label) in enumerate(zip(series, labels, strict=True)):
            folder = root / part / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])  # [channels, steps]
            header = ",".join(["timestamp", *[f"c{c}" for c in range(x.shape[0])]])
            rows = np.column_stack([np.arange(x.shape[1], dtype=np.float64), x.T])
            np.savetxt(folder / f"{prefix}_{part}_{i:05d}.csv", rows, delimiter=",",
                       header=header, comments="", fmt="%.10g")
    return root


def write_sessions(name: str, root: Path) -> Path:
    """Bundled UCR/UEA set `name` in the sessions layout under `root` (see the module doc)."""
    return write_series_sessions(load_ucr(name), root, name)


def write_series_windows(parts: dict[str, tuple[list[np.ndarray], np.ndarray]],
                         path: Path) -> Path:
    """Series per part as one .npz: X [n, steps, channels] zero-padded, y, class_names, split."""
    series = [np.asarray(s, dtype=np.float32) for p in parts.values() for s in p[0]]
    labels = np.concatenate([p[1] for p in parts.values()])
    split = np.concatenate([[part] * len(p[1]) for part, p in parts.items()]).astype(str)
    length = max(s.shape[-1] for s in series)
    channels = series[0].reshape(-1, series[0].shape[-1]).shape[0]
    x = np.zeros((len(series), length, channels), dtype=np.float32)
    for i, s in enumerate(series):
        s = s.reshape(channels, -1)
        x[i, : s.shape[1]] = s.T
    class_names = np.asarray(sorted(set(labels.tolist())))
    y = np.searchsorted(class_names, labels).astype(np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=x, y=y, class_names=class_names, split=split)
    return path


def write_windows(name: str, path: Path) -> Path:
    """Bundled UCR/UEA set `name` as a windows .npz at `path` (see the module doc)."""
    return write_series_windows(load_ucr(name), path)


def write_table(name: str, path: Path) -> Path:
    """scikit-learn's bundled table `name` ("breast_cancer" | "wine") as a features CSV."""
    import pandas as pd
    from sklearn import datasets

    loaders = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}
    if name not in loaders:
        raise ValueError(f"unknown table {name!r}; expected one of {sorted(loaders)}")
    bunch = loaders[name]()
    frame = pd.DataFrame(bunch.data, columns=[f"f{i:02d}" for i in range(bunch.data.shape[1])])
    frame["label"] = np.asarray(bunch.target_names)[bunch.target]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
