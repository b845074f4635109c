"""`--export`: the artefacts score raw windows like the Keras model on scaled ones."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from live.serving import InputLayout, Scaling, build_serving_module, input_layout
from tests.live.conftest import raw_window


def _keras_score(run, trace, settings, reference):
    import keras

    import model  # noqa: F401  registers custom layers
    from data_preparation.scalers import load_scalers

    trained = keras.saving.load_model(run / "model.keras", safe_mode=True)
    trace_scaler, settings_scaler, _ = load_scalers(run / "scalers.json")
    inputs = {"trace": trace_scaler.transform(trace[None])[..., None],
              "settings": settings_scaler.transform(settings[None]),
              "reference": trace_scaler.transform(reference[None])[..., None]}
    return float(np.asarray(trained(inputs, training=False)).reshape(-1)[0])


def test_export_writes_every_format_with_parity(exported):
    parity = json.loads((exported / "parity.json").read_text())
    formats = parity["formats"]
    assert parity["n_pulses"] > 10
    # the default model also encodes once: each pulse and reference alone, then the head
    for name in ("saved_model", "saved_model_serve_one", "saved_model_encode_once",
                 "litert_float32"):
        assert formats[name]["max_abs_diff"] <= 1e-4, (name, formats[name])
        assert formats[name]["within_tolerance"] is True
        assert formats[name]["bytes"] > 0
    # int8 weights move scores a little; the PR AUC criterion (<= 0.01) needs a trained model
    # and is measured by the stream benchmark on one (this model is untrained)
    assert formats["litert_int8"]["max_abs_diff"] <= 0.05
    assert formats["litert_int8"]["delta_pr_auc"] is not None
    assert "error" in formats["onnx"] or formats["onnx"]["max_abs_diff"] <= 1e-4
    serving = json.loads((exported / "serving.json").read_text())
    # the default model: raw window, its K=3 raw reference windows and the raw settings
    assert serving["layout"]["inputs"] == {"trace": [None, 2000], "settings": [None, 22],
                                           "reference": [None, 3, 2000]}
    assert serving["threshold"] == 0.5
    assert serving["encode_once"]["signatures"] == ["encode", "encode_one", "score", "score_one",
                                                    "encode_and_score_one"]
    assert len(serving["encode_once"]["features"]) == 2  # [steps, channels]
    assert serving["unseen_configuration"]["radius"] >= 0.0


def test_fresh_python_with_only_tensorflow_scores_a_raw_window(exported, tiny_run):
    trace = raw_window(2000, seed=4)
    reference = np.stack([raw_window(2000, seed=5 + k) for k in range(3)])  # K = 3 raw windows
    settings = np.array(json.loads((exported / "serving.json").read_text())
                        ["scaling"]["settings"]["center"], dtype=np.float32) + 0.5
    np.save(exported.parent / "window.npy", trace)
    np.save(exported.parent / "reference.npy", reference)
    np.save(exported.parent / "settings.npy", settings)
    script = textwrap.dedent(f"""
        import json, sys, warnings
        import numpy as np
        import tensorflow as tf
        warnings.simplefilter("ignore")
        trace = np.load({str(exported.parent / 'window.npy')!r})[None]
        settings = np.load({str(exported.parent / 'settings.npy')!r})[None]
        reference = np.load({str(exported.parent / 'reference.npy')!r})[None]
        feed = dict(trace=trace, settings=settings, reference=reference)
        m = tf.saved_model.load({str(exported / 'saved_model')!r})
        tensors = {{k: tf.constant(v) for k, v in feed.items()}}
        out = {{"serve_one": float(m.signatures["serve_one"](**tensors)["score"][0]),
               "serving_default": float(m.signatures["serving_default"](**tensors)["score"][0])}}
        for name in ("model_float32", "model_int8"):
            it = tf.lite.Interpreter(model_path={str(exported)!r} + "/" + name + ".tflite")
            res = it.get_signature_runner()(**feed)
            out[name] = float(list(res.values())[0].reshape(-1)[0])
        ours = [m for m in sys.modules if m.split(".")[0] in
                ("live", "model", "data_preparation", "enterprise_tools", "training", "parser")]
        out["project_modules"] = ours
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=str(exported.parent.parent), env={"TF_CPP_MIN_LOG_LEVEL": "3",
                                                               "CUDA_VISIBLE_DEVICES": "-1"})
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out.pop("project_modules") == []
    expected = _keras_score(tiny_run, trace, settings, reference)
    for name in ("serve_one", "serving_default", "model_float32"):
        assert out[name] == pytest.approx(expected, abs=1e-4), name
    assert out["model_int8"] == pytest.approx(expected, abs=0.05)


def test_serving_function_feeds_scaled_references_to_a_reference_model():
    import keras
    import tensorflow as tf

    trace = keras.Input((50, 1), name="trace")
    reference = keras.Input((3, 50, 1), name="reference")
    settings = keras.Input((2,), name="settings")
    gap = keras.layers.Flatten()(trace) - keras.layers.Flatten()(
        keras.layers.Lambda(lambda r: r[:, -1])(reference))
    joined = keras.layers.Concatenate()([gap, settings])
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(joined)
    tiny = keras.Model({"trace": trace, "reference": reference, "settings": settings}, score)
    layout = input_layout(tiny)
    assert layout == InputLayout(50, 1, n_settings=2, n_references=3)
    assert layout.names == ("trace", "settings", "reference")
    scaling = Scaling(2.0, 4.0, (1.0, -1.0), (2.0, 0.5))
    module = build_serving_module(tiny, scaling)
    rng = np.random.default_rng(0)
    raw = {"trace": rng.normal(size=(2, 50)).astype(np.float32),
           "settings": rng.normal(size=(2, 2)).astype(np.float32),
           "reference": rng.normal(size=(2, 3, 50)).astype(np.float32)}
    got = module.serving_default(**{k: tf.constant(v) for k, v in raw.items()})["score"].numpy()
    want = tiny({"trace": ((raw["trace"] - 2) / 4)[..., None],
                 "reference": ((raw["reference"] - 2) / 4)[..., None],
                 "settings": (raw["settings"] - np.array([1.0, -1.0])) / np.array([2.0, 0.5])},
                training=False)
    np.testing.assert_allclose(got, np.asarray(want).reshape(-1), atol=1e-6)
    one = module.serve_one(**{k: tf.constant(v[:1]) for k, v in raw.items()})["score"].numpy()
    np.testing.assert_allclose(one, got[:1], atol=1e-5)


def test_serving_function_feeds_scaled_history_and_its_count_to_a_history_model():
    import keras
    import tensorflow as tf

    from model import HistoryMask

    trace = keras.Input((8, 1), name="trace")
    history = keras.Input((2, 8, 1), name="history")
    count = keras.Input((1,), dtype="int32", name="history_count")
    zeroed, _ = HistoryMask()([history, count])
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(trace),
                                         keras.layers.Flatten()(zeroed)])
    tiny = keras.Model({"trace": trace, "history": history, "history_count": count},
                       keras.layers.Dense(1, activation="sigmoid", name="score")(joined))
    layout = input_layout(tiny)
    assert layout == InputLayout(8, 1, n_history=2)
    assert layout.names == ("trace", "history", "history_count")
    assert layout.raw_shape("history", None) == (None, 2, 8)
    assert layout.raw_shape("history_count", 1) == (1,)
    module = build_serving_module(tiny, Scaling(2.0, 4.0))
    rng = np.random.default_rng(0)
    raw = {"trace": rng.normal(size=(3, 8)).astype(np.float32),
           "history": rng.normal(size=(3, 2, 8)).astype(np.float32),
           "history_count": np.array([0, 1, 2], np.float32)}
    got = module.serving_default(**{k: tf.constant(v) for k, v in raw.items()})["score"].numpy()
    want = tiny({"trace": ((raw["trace"] - 2) / 4)[..., None],
                 "history": ((raw["history"] - 2) / 4)[..., None],
                 "history_count": np.array([[0], [1], [2]], np.int32)}, training=False)
    np.testing.assert_allclose(got, np.asarray(want).reshape(-1), atol=1e-6)
    assert len(set(np.round(got, 6))) == 3  # the count masks: each pulse scores differently
    one = module.serve_one(**{k: tf.constant(v[2:]) for k, v in raw.items()})["score"].numpy()
    np.testing.assert_allclose(one, got[2:], atol=1e-5)


def test_layout_round_trips_its_history_and_an_old_layout_has_none():
    layout = InputLayout(8, 1, n_settings=2, n_references=3, n_history=4)
    data = layout.to_dict()
    assert InputLayout.from_dict(data) == layout
    assert data["inputs"]["history"] == [None, 4, 8] and data["inputs"]["history_count"] == [None]
    old = {k: v for k, v in data.items() if k != "n_history"}  # a serving.json from before
    assert InputLayout.from_dict(old) == InputLayout(8, 1, n_settings=2, n_references=3)
    assert "history" not in InputLayout.from_dict(old).names


def test_a_history_input_without_its_count_is_not_servable():
    import keras

    trace = keras.Input((8, 1), name="trace")
    history = keras.Input((2, 8, 1), name="history")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(trace),
                                         keras.layers.Flatten()(history)])
    tiny = keras.Model({"trace": trace, "history": history}, keras.layers.Dense(1)(joined))
    with pytest.raises(ValueError, match="'history' with 'history_count'"):
        input_layout(tiny)


def test_export_folder_has_the_users_umask_permissions(exported):
    """Not mkdtemp's 0700: the account that deploys the artefact must be able to read it."""
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    expected = 0o777 & ~umask
    assert stat.S_IMODE(exported.stat().st_mode) == expected
    assert stat.S_IMODE((exported / "saved_model").stat().st_mode) == expected
    serving = stat.S_IMODE((exported / "serving.json").stat().st_mode)
    assert serving & 0o444 & ~umask == 0o444 & ~umask  # readable as far as the umask allows
