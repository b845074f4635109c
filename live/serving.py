"""The deployable scoring function: raw analysis windows (and settings, references) in, score out.

A caller at SNS holds a DCM window straight from the file (float32 [L], archive units) and the
beam settings in force (the run's PVs, engineering units); the model wants them scaled with the
statistics fitted on the run's training part. `build_serving_module` wraps a trained Keras model
in a `tf.Module` whose functions apply that scaling in TensorFlow ops (the same arithmetic as
`TraceScaler.transform` / `SettingsScaler.transform`), so the exported artefact needs no project
code. It is generic over the model's inputs: `"trace"` always, `"settings"`, `"reference"`
([K, L, C], CONTRACT §4) and a history model's `"history"` ([N, L, C]) and `"history_count"`
when the model has them.

Functions of the module (all return {"score": float32 [b]}):
    serving_default(trace, [settings], [reference], [history, history_count])
                                                        any batch, plain graph (LiteRT source)
    serve_one(...)                                      batch 1, XLA-compiled (per-pulse latency)
    serve_one_graph(...)                                batch 1, plain graph (LiteRT, ONNX source)
A reference model (`model.encoding`) also gets the encode-once pair, so live scoring encodes
each pulse once and reuses the stored features when the pulse serves as a reference:
    encode(trace) -> {"features"} (any batch, XLA), encode_one (batch 1, XLA)
    score(pulse_features, reference_features, [settings]) -> {"score"} (any batch, XLA),
                                                        score_one (batch 1, XLA)
    encode_and_score_one(trace, reference_features, [settings]) -> {"score", "features"}
                                                        (batch 1, XLA: the live per-pulse call)
Raw shapes: trace [b, L] when the model has one channel, else [b, L, C]; settings [b, S];
reference [b, K, L] (one channel) or [b, K, L, C]; history [b, N, L] or [b, N, L, C], scaled
like the trace (empty slots zero, before the scaling, as the archive's); history_count float32
[b], the filled (last) history slots, a whole number 0..N (float so every format takes one
dtype; rounded to int32 inside).

A history model (`sns_history_siamese`) has no encode-once pair: its shared front end sees the
history after `HistoryMask` has zeroed the empty slots, so its head cannot be cut from stored
per-pulse features the way `model.split_encode_once` cuts a reference model; it is scored
whole (`serving_default` / `serve_one`), with the history the live engine keeps
(`live.engine`: the archive's rule, pulse by pulse).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

INPUT_ORDER = ("trace", "settings", "reference", "history", "history_count")


@dataclass(frozen=True)
class InputLayout:
    """What a model takes: trace length and channels, settings, reference and history
    counts (0 = none; `n_history` N > 0 adds the "history" and "history_count" inputs)."""

    trace_length: int
    n_channels: int
    n_settings: int = 0
    n_references: int = 0
    n_history: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        """The raw inputs of the serving function, in call order."""
        present = {"trace": True, "settings": self.n_settings, "reference": self.n_references,
                   "history": self.n_history, "history_count": self.n_history}
        return tuple(n for n in INPUT_ORDER if present[n])

    def raw_shape(self, name: str, batch: int | None) -> tuple:
        """The raw (unscaled) shape of input `name` with batch size `batch` (None: any)."""
        channels = () if self.n_channels == 1 else (self.n_channels,)
        if name == "trace":
            return (batch, self.trace_length, *channels)
        if name == "settings":
            return (batch, self.n_settings)
        if name == "reference":
            return (batch, self.n_references, self.trace_length, *channels)
        if name == "history":
            return (batch, self.n_history, self.trace_length, *channels)
        if name == "history_count":
            return (batch,)
        raise ValueError(f"unknown input {name!r}; expected one of {INPUT_ORDER}")

    @classmethod
    def from_dict(cls, data: dict) -> InputLayout:
        """From `to_dict()` output (serving.json "layout"; one written before history models
        were served has no "n_history": 0)."""
        return cls(int(data["trace_length"]), int(data["n_channels"]), int(data["n_settings"]),
                   int(data["n_references"]), int(data.get("n_history", 0)))

    def to_dict(self) -> dict:
        return {"trace_length": self.trace_length, "n_channels": self.n_channels,
                "n_settings": self.n_settings, "n_references": self.n_references,
                "n_history": self.n_history,
                "inputs": {n: list(self.raw_shape(n, None)) for n in self.names}}


def input_layout(model) -> InputLayout:
    """The `InputLayout` of a Keras model with inputs named "trace" [, "settings", "reference",
    "history" with "history_count"]; a window input of another length or channel count than
    the trace, or an unknown input, is a `ValueError`."""
    shapes = {t.name.split(":")[0]: tuple(t.shape) for t in model.inputs}
    unknown = sorted(set(shapes) - set(INPUT_ORDER))
    if "trace" not in shapes or unknown or ("history" in shapes) != ("history_count" in shapes):
        raise ValueError(f"model {model.name!r} has inputs {sorted(shapes)}; a servable model "
                         f"has 'trace' and optionally 'settings', 'reference', and 'history' "
                         f"with 'history_count'")
    _, length, channels = shapes["trace"]
    n_settings = shapes["settings"][1] if "settings" in shapes else 0
    slots = {}
    for name in ("reference", "history"):
        if name in shapes:
            _, slots[name], window_length, window_channels = shapes[name]
            if (window_length, window_channels) != (length, channels):
                raise ValueError(f"model {model.name!r}: {name} windows {shapes[name][2:]} "
                                 f"differ from the trace {shapes['trace'][1:]}")
    return InputLayout(int(length), int(channels), int(n_settings),
                       int(slots.get("reference", 0)), int(slots.get("history", 0)))


@dataclass(frozen=True)
class Scaling:
    """The fitted scaling to build in: trace centre/scale (scalars), settings centre/scale [S]."""

    trace_center: float
    trace_scale: float
    settings_center: tuple[float, ...] = ()
    settings_scale: tuple[float, ...] = ()

    @classmethod
    def from_scalers(cls, trace_scaler, settings_scaler) -> Scaling:
        """From fitted `TraceScaler` / `SettingsScaler` (data_preparation.scalers)."""
        return cls(float(trace_scaler.center_), float(trace_scaler.scale_),
                   tuple(float(x) for x in np.ravel(settings_scaler.center_)),
                   tuple(float(x) for x in np.ravel(settings_scaler.scale_)))

    def to_dict(self) -> dict:
        return {"trace": {"center": self.trace_center, "scale": self.trace_scale},
                "settings": {"center": list(self.settings_center),
                             "scale": list(self.settings_scale)}}


def build_serving_module(model, scaling: Scaling):
    """A `tf.Module` holding `model` with `serving_default` and `serve_one` (module docstring)."""
    import tensorflow as tf

    layout = input_layout(model)
    if layout.n_settings and len(scaling.settings_center) != layout.n_settings:
        raise ValueError(f"the model takes {layout.n_settings} settings but the scaler was fitted "
                         f"on {len(scaling.settings_center)}")
    # NumPy values, not eager tensors: they become constants of each traced graph instead of
    # captured inputs (ONNX conversion would otherwise ask the caller to feed them)
    trace_center = np.float32(scaling.trace_center)
    trace_scale = np.float32(scaling.trace_scale)
    settings_center = np.asarray(scaling.settings_center, np.float32)
    settings_scale = np.asarray(scaling.settings_scale, np.float32)
    one_channel = layout.n_channels == 1

    def score(raw: dict):
        inputs = {}
        trace = (raw["trace"] - trace_center) / trace_scale
        inputs["trace"] = trace[..., None] if one_channel else trace
        if layout.n_settings:
            inputs["settings"] = (raw["settings"] - settings_center) / settings_scale
        for name in ("reference", "history"):  # windows scaled like the trace
            if name in raw:
                windows = (raw[name] - trace_center) / trace_scale
                inputs[name] = windows[..., None] if one_channel else windows
        if layout.n_history:
            count = tf.cast(tf.round(raw["history_count"]), tf.int32)
            inputs["history_count"] = tf.reshape(count, [-1, 1])
        out = model(inputs, training=False)
        return {"score": tf.reshape(tf.cast(out, tf.float32), [-1])}

    def signature(batch):
        return [tf.TensorSpec(layout.raw_shape(n, batch), tf.float32, name=n)
                for n in layout.names]

    # One named parameter per raw input, in `layout.names` order (`__signature__`), so the
    # function takes them by name and the SavedModel signature names its inputs.
    parameters = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                    for n in layout.names])

    def make(batch, jit):
        def fn(*tensors):
            return score(dict(zip(layout.names, tensors, strict=True)))

        fn.__signature__ = parameters

        # no autograph: the function has no Python control flow, and autograph's cache of
        # converted closures mixed up the variants after a training run in-process
        return tf.function(fn, input_signature=signature(batch), jit_compile=jit, autograph=False)

    module = tf.Module(name="beamwatch_serving")
    module.model = model
    module.serving_default = make(None, False)
    module.serve_one = make(1, True)
    module.serve_one_graph = make(1, False)  # the same without XLA: LiteRT / ONNX source
    from model import split_encode_once

    split = split_encode_once(model)
    if split is not None:
        _add_encode_once(module, split, layout, trace_center, trace_scale, settings_center,
                         settings_scale)
    return module


def _add_encode_once(module, split, layout: InputLayout, trace_center, trace_scale,
                     settings_center, settings_scale) -> None:
    """`encode`/`encode_one` (raw trace -> features) and `score`/`score_one` (stored features
    of the pulse and its references [, settings] -> score): each pulse is encoded once live."""
    import tensorflow as tf

    encoder, head = split.encoder, split.head
    one_channel = layout.n_channels == 1
    features = split.feature_shape

    def encode(trace):
        trace = (trace - trace_center) / trace_scale
        out = encoder(trace[..., None] if one_channel else trace, training=False)
        return {"features": tf.cast(out, tf.float32)}

    def score_of(pulse, references, *settings):
        others = [(s - settings_center) / settings_scale for s in settings]
        out = head([pulse, references, *others], training=False)
        return {"score": tf.reshape(tf.cast(out, tf.float32), [-1])}

    def score_signature(batch):
        specs = [tf.TensorSpec((batch, *features), tf.float32, name="pulse_features"),
                 tf.TensorSpec((batch, layout.n_references, *features), tf.float32,
                               name="reference_features")]
        if layout.n_settings:
            specs.append(tf.TensorSpec((batch, layout.n_settings), tf.float32, name="settings"))
        return specs

    if layout.n_settings:
        def score(pulse_features, reference_features, settings):
            return score_of(pulse_features, reference_features, settings)

        def encode_and_score(trace, reference_features, settings):
            pulse = encode(trace)["features"]
            return {**score_of(pulse, reference_features, settings), "features": pulse}
    else:
        def score(pulse_features, reference_features):
            return score_of(pulse_features, reference_features)

        def encode_and_score(trace, reference_features):
            pulse = encode(trace)["features"]
            return {**score_of(pulse, reference_features), "features": pulse}
    trace_spec = [tf.TensorSpec(layout.raw_shape("trace", None), tf.float32, name="trace")]
    trace_one = [tf.TensorSpec(layout.raw_shape("trace", 1), tf.float32, name="trace")]
    module.encoder, module.head = encoder, head
    # XLA also for any batch: a plain graph runs the LSTM's while loop ~10x slower on a CPU.
    # XLA compiles once per batch size, so callers pad batches to a few sizes (live.scorer).
    module.encode = tf.function(encode, input_signature=trace_spec, jit_compile=True,
                                autograph=False)
    module.encode_one = tf.function(encode, input_signature=trace_one, jit_compile=True,
                                    autograph=False)
    module.score = tf.function(score, input_signature=score_signature(None), jit_compile=True,
                               autograph=False)
    module.score_one = tf.function(score, input_signature=score_signature(1), jit_compile=True,
                                   autograph=False)
    # the live per-pulse call: one XLA call encodes the new pulse, scores it against its
    # references' stored features and returns its features to keep (one call's overhead, not two)
    module.encode_and_score_one = tf.function(
        encode_and_score, input_signature=[*trace_one, *score_signature(1)[1:]],
        jit_compile=True, autograph=False)


ENCODE_ONCE_SIGNATURES = ("encode", "encode_one", "score", "score_one", "encode_and_score_one")


def save_module(module, path) -> None:
    """Write the module as a SavedModel with both signatures."""
    import tensorflow as tf

    signatures = {"serving_default": module.serving_default.get_concrete_function(),
                  "serve_one": module.serve_one.get_concrete_function()}
    if hasattr(module, "encode"):
        signatures.update({name: getattr(module, name).get_concrete_function()
                           for name in ENCODE_ONCE_SIGNATURES})
    tf.saved_model.save(module, str(path), signatures=signatures)
