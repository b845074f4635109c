"""Registry of named model architectures: a dict and a decorator.

A builder is a function `builder(model_config, input_spec) -> keras.Model`; decorating it with
`@register_model` makes it available to `build_model` under the function's name, which is what
`model.name` in the config selects. Adding an architecture touches one module.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

import keras

_MODELS: dict[str, Callable[..., keras.Model]] = {}


@dataclass(frozen=True)
class InputSpec:
    """Shapes of a model's inputs, without the batch axis.

    Attributes:
        trace_length: samples per trace (the `"trace"` input is `[trace_length, n_channels]`).
        n_channels: channels per sample (1 for a DCM `Trace2` window).
        n_settings: length of the `"settings"` input; 0 means no settings.
        n_references: reference pulses per sample (the `"reference"` input is
            `[n_references, trace_length, n_channels]`); 0 means no references.
        n_classes: classes the output tells apart (the data's; 2: one sigmoid "score").
        vocab_size: token ids the `"tokens"` input may hold (text jobs: the vectorizer fitted
            on the training part); 0 for inputs that are not tokens.
        n_history: pulses before each sample in its own file (the `"history"` input is
            `[n_history, trace_length, n_channels]`, beside `"history_count"`); 0 means none.
    """

    trace_length: int
    n_channels: int = 1
    n_settings: int = 0
    n_references: int = 0
    n_classes: int = 2
    vocab_size: int = 0
    n_history: int = 0

    def __post_init__(self):
        for field, minimum in (
            ("trace_length", 1),
            ("n_channels", 1),
            ("n_settings", 0),
            ("n_references", 0),
            ("n_classes", 2),
            ("vocab_size", 0),
            ("n_history", 0),
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(
                    f"InputSpec: {field} must be an integer >= {minimum}, received {value!r}."
                )


def register_model(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    """Registers `fn` as a model builder under `fn.__name__` and returns it unchanged."""
    name = fn.__name__
    existing = _MODELS.get(name)
    # Re-registering the same function (a module reload) is fine; a different one is a clash.
    if existing is not None and (existing.__module__, existing.__qualname__) != (
        fn.__module__,
        fn.__qualname__,
    ):
        raise ValueError(
            f"register_model: the name {name!r} is already taken by "
            f"{existing.__module__}.{existing.__qualname__}; rename the new builder."
        )
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Returns the registered model names, sorted, optionally filtered by an fnmatch pattern."""
    names = sorted(_MODELS)
    if pattern is not None:
        names = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
    return names


def build_model(model_config, input_spec: InputSpec) -> keras.Model:
    """Builds the (uncompiled) model named by `model_config.name` for inputs of `input_spec`."""
    name = model_config.name
    builder = _MODELS.get(name)
    if builder is None:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"model.name: unknown model {name!r}. Registered models: {list_models()}.{hint}"
        )
    return builder(model_config, input_spec)
