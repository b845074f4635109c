"""The deployable scoring function: raw analysis windows (and settings, references) in, score out.

A caller at SNS holds a DCM window straight from the file (float32 [L], archive units) and the
beam settings in force (the run's PVs, engineering units); the model wants them scaled with the
statistics fitted on the run's training part. `build_serving_module` wraps a trained Keras model
in a `tf.Module` whose functions apply that scaling in TensorFlow ops (the same arithmetic as
`TraceScaler.transform` / `SettingsScaler.transform`), so the exported artefact needs no project
code. It is generic over the model's inputs: `"trace"` always, `"settings"` and `"reference"`
([K, L, C], CONTRACT §4) when the model has them.

Functions of the module (all return {"score": float32 [b]}):
    serving_default(trace, [settings], [reference])   any batch, plain graph (LiteRT source)
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
reference [b, K, L] (one channel) or [b, K, L, C].

A history model (inputs "history" and "history_count", `history.count` > 0) is not served:
the live engine does not fill a history from the pulses before each one yet, so
`input_layout` refuses it with `NotServableError`, and `--export`/`--watch` refuse such a run
before loading anything (`live.cli`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.errors import UsageError

INPUT_ORDER = ("trace", "settings", "reference")


class NotServableError(UsageError, ValueError):
    """A model the export and the live engine cannot serve (a history model)."""


@dataclass(frozen=True)
class InputLayout:
    """What a model takes: trace length and channels, settings and reference counts (0 = none)."""

    trace_length: int
    n_channels: int
    n_settings: int = 0
    n_references: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        """The raw inputs of the serving function, in call order."""
        return tuple(n for n in INPUT_ORDER
                     if n == "trace" or (n == "settings" and self.n_settings)
                     or (n == "reference" and self.n_references))

    def raw_shape(self, name: str, batch: int | None) -> tuple:
        """The raw (unscaled) shape of input `name` with batch size `batch` (None: any)."""
        channels = () if self.n_channels == 1 else (self.n_channels,)
        if name == "trace":
            return (batch, self.trace_length, *channels)
        if name == "settings":
            return (batch, self.n_settings)
        if name == "reference":
            return (batch, self.n_references, self.trace_length, *channels)
        raise ValueError(f"unknown input {name!r}; expected one of {INPUT_ORDER}")

    @classmethod
    def from_dict(cls, data: dict) -> InputLayout:
        """From `to_dict()` output (serving.json "layout")."""
        return cls(int(data["trace_length"]), int(data["n_channels"]), int(data["n_settings"]),
                   int(data["n_references"]))

    def to_dict(self) -> dict:
        return {"trace_length": self.trace_length, "n_channels": self.n_channels,
                "n_settings": self.n_settings, "n_references": self.n_references,
                "inputs": {n: list(self.raw_shape(n, None)) for n in self.names}}


def input_layout(model) -> InputLayout:
    """The `InputLayout` of a Keras model with inputs named "trace" [, "settings", "reference"]."""
    shapes = {t.name.split(":")[0]: tuple(t.shape) for t in model.inputs}
    if "history" in shapes:
        raise NotServableError(
            f"model {model.name!r} reads a history of {shapes['history'][1]} pulses "
            "(history.count); the export and the live engine do not serve history models yet")
    unknown = sorted(set(shapes) - set(INPUT_ORDER))
    if "trace" not in shapes or unknown:
        raise ValueError(f"model {model.name!r} has inputs {sorted(shapes)}; a servable model "
                         f"has 'trace' and optionally 'settings' and 'reference'")
    _, length, channels = shapes["trace"]
    n_settings = shapes["settings"][1] if "settings" in shapes else 0
    n_references = 0
    if "reference" in shapes:
        _, n_references, ref_length, ref_channels = shapes["reference"]
        if (ref_length, ref_channels) != (length, channels):
            raise ValueError(f"model {model.name!r}: reference windows {shapes['reference'][2:]} "
                             f"differ from the trace {shapes['trace'][1:]}")
    return InputLayout(int(length), int(channels), int(n_settings), int(n_references))


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
        if layout.n_references:
            reference = (raw["reference"] - trace_center) / trace_scale
            inputs["reference"] = reference[..., None] if one_channel else reference
        out = model(inputs, training=False)
        return {"score": tf.reshape(tf.cast(out, tf.float32), [-1])}

    def signature(batch):
        return [tf.TensorSpec(layout.raw_shape(n, batch), tf.float32, name=n)
                for n in layout.names]

    # Explicit parameters (not *args), so the SavedModel signature names its inputs.
    def make(batch, jit):
        names = layout.names
        if names == ("trace",):
            def fn(trace):
                return score({"trace": trace})
        elif names == ("trace", "settings"):
            def fn(trace, settings):
                return score({"trace": trace, "settings": settings})
        elif names == ("trace", "reference"):
            def fn(trace, reference):
                return score({"trace": trace, "reference": reference})
        else:
            def fn(trace, settings, reference):
                return score({"trace": trace, "settings": settings, "reference": reference})
        # no autograph: the function has no Python control flow, and autograph's cache of
        # converted closures mixed up the four `fn` variants after a training run in-process
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
