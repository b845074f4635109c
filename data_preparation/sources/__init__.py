"""The data-source registry: one module per source, one dict from `data.source` to its loader.

Every loader is `load(config, location=None, layout=None, files=None) -> Samples`:
`location` overrides `data.dataset_loc`, `layout` is what a trained run saved (channels,
lengths, feature columns, class names) so new data is read exactly as the training data was,
and `files` lists unlabelled files to score (`driver.py --predict`).

`flow` says which train/test flow serves the source: `"pulses"` (the SNS flows, with beam
settings, cache, streaming and an operator threshold) or `"samples"` (training/samples_flow.py,
binary or multiclass on the sample contract). Adding a source: one module with `load` and one
line here, plus, for its settings, one config dataclass in parser/schema.py (see
docs/internals.md). The parser does not list the names: the driver checks `data.source` with
`get_source` before any verb runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import NamedTuple

from data_preparation.sources import sessions, sns_dcm, tables, windows
from data_preparation.sources.contract import Samples
from parser.configs import ConfigError
from utils.text import listing


class Source(NamedTuple):
    load: Callable[..., Samples]
    flow: str  # "pulses" | "samples"


SOURCES: dict[str, Source] = {
    "sns_dcm": Source(sns_dcm.load, "pulses"),
    "npz": Source(windows.load, "samples"),
    "sessions": Source(sessions.load, "samples"),
    "features": Source(tables.load_features, "samples"),
    "text": Source(tables.load_text, "samples"),
}


def get_source(name: str) -> Source:
    """The registered source `name`, or a `ConfigError` (a usage error: the driver exits 2)
    listing the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(SOURCES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"data.source: unknown source {name!r}; registered sources: "
                          f"{listing(sorted(SOURCES))}.{hint}") from None


def load_samples(config, location: str | None = None, layout: dict | None = None,
                 files: list[str] | None = None) -> Samples:
    """The samples of `config.data.source` (see the module docstring for the arguments)."""
    return get_source(config.data.source).load(config, location=location, layout=layout,
                                               files=files)


__all__ = ["SOURCES", "Samples", "Source", "get_source", "load_samples"]
