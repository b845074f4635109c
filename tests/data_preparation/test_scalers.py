"""data_preparation.scalers: the scikit-learn contract, statistics, fit errors and the scalers.json
format earlier runs wrote."""

import json
import re

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import check_is_fitted

from data_preparation.scalers import SettingsScaler, TraceScaler, load_scalers, save_scalers

# A scalers.json as the first versions of the train flow wrote it (format 1: indent 2, key
# order kept, scaler parameters sorted by name). Run folders hold files like this one.
OLD_SCALERS_JSON = """{
  "format": 1,
  "trace_scaler": {
    "class": "TraceScaler",
    "params": {
      "chunk_size": 512,
      "kind": "robust",
      "max_fit_traces": 64,
      "random_state": 3
    },
    "center_": 3.5,
    "scale_": 3.5,
    "n_traces_seen_": 2
  },
  "settings_scaler": {
    "class": "SettingsScaler",
    "params": {
      "kind": "minmax"
    },
    "center_": [
      1.0,
      5.0,
      0.0
    ],
    "scale_": [
      4.0,
      1.0,
      20.0
    ],
    "n_features_in_": 3
  },
  "extra": {
    "settings_names": [
      "a",
      "b",
      "c"
    ]
  }
}
"""


def _fitted():
    rng = np.random.default_rng(0)
    return (TraceScaler("standard").fit(rng.normal(size=(6, 8))),
            SettingsScaler("standard").fit(rng.normal(size=(6, 2))))


@pytest.mark.parametrize("scaler", [TraceScaler(), SettingsScaler()], ids=["trace", "settings"])
def test_unfitted_scaler_fails_check_is_fitted_and_every_fitted_method(scaler):
    with pytest.raises(NotFittedError):
        check_is_fitted(scaler)
    for method in (scaler.transform, scaler.inverse_transform):
        with pytest.raises(NotFittedError, match=f"This {type(scaler).__name__} is not fitted"):
            method(np.zeros((2, 2)))
    with pytest.raises(NotFittedError):
        scaler.to_dict()


def test_fitted_and_loaded_scalers_pass_check_is_fitted():
    for scaler in _fitted():
        check_is_fitted(scaler)
        check_is_fitted(type(scaler).from_dict(scaler.to_dict()))


def test_scalers_are_sklearn_transformers_that_clone_unfitted():
    trace = TraceScaler("minmax", max_fit_traces=7, random_state=3, chunk_size=5)
    for scaler in (trace, SettingsScaler("standard")):
        assert isinstance(scaler, TransformerMixin) and isinstance(scaler, BaseEstimator)
        twin = clone(scaler)
        assert twin is not scaler and twin.get_params() == scaler.get_params()
    fitted_twin = clone(trace.fit(np.arange(12.0).reshape(3, 4)))
    assert trace.center_ == 0.0 and not hasattr(fitted_twin, "center_")
    assert clone(trace).set_params(kind="none").fit(np.ones((1, 2))).scale_ == 1.0


def test_fit_transform_and_pipeline_match_fit_then_transform():
    x = np.random.default_rng(1).normal(size=(10, 3))
    np.testing.assert_array_equal(SettingsScaler("robust").fit_transform(x),
                                  SettingsScaler("robust").fit(x).transform(x))
    np.testing.assert_array_equal(make_pipeline(SettingsScaler("minmax")).fit(x).transform(x),
                                  SettingsScaler("minmax").fit(x).transform(x))
    traces = x.reshape(5, 6)
    np.testing.assert_array_equal(TraceScaler("standard").fit_transform(traces),
                                  TraceScaler("standard").fit(traces).transform(traces))


def test_settings_scaler_rejects_a_wrong_feature_count_both_ways():
    _, settings = _fitted()
    for method in (settings.transform, settings.inverse_transform):
        with pytest.raises(ValueError, match="fitted on 2 features, got 3"):
            method(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"SettingsScaler.transform: expected a 2-D array \[n, k\]"):
        settings.transform(np.ones(2))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused_naming_its_position(bad):
    trace, settings = _fitted()
    traces = np.zeros((3, 8), dtype=np.float32)
    traces[2, 5] = bad
    for method in ("transform", "inverse_transform"):
        with pytest.raises(ValueError, match=rf"TraceScaler.{method}: expected finite trace values; "
                                             rf"found -?(nan|inf) at index \(2, 5\), 1 of 24"):
            getattr(trace, method)(traces)
    rows = np.zeros((4, 2))
    rows[1, 0] = bad
    with pytest.raises(ValueError, match=r"expected finite settings; found .* \(1, 0\).*without settings"):
        settings.transform(rows)
    with pytest.raises(ValueError, match=r"SettingsScaler.fit: expected finite settings"):
        SettingsScaler().fit(rows)
    for kind in ("robust", "standard", "minmax"):  # NaN / inf would become the saved centre
        with pytest.raises(ValueError, match="TraceScaler.fit: expected finite trace values"):
            TraceScaler(kind).fit(traces)


def test_trace_scaler_takes_traces_and_reference_windows_only():
    trace, _ = _fitted()
    windows = np.random.default_rng(2).normal(size=(2, 3, 8, 1)).astype(np.float32)  # [n,K,L,C]
    np.testing.assert_array_equal(trace.transform(windows).reshape(6, 8),
                                  trace.transform(windows.reshape(6, 8)))
    for shape in [(8,), (1, 1, 1, 1, 8)]:
        with pytest.raises(ValueError, match=r"expected traces \[n, L\].*got shape " + re.escape(
                str(shape))):
            trace.transform(np.zeros(shape))
    with pytest.raises(ValueError, match="numeric array"):
        trace.transform([["a", "b"]])
    with pytest.raises(ValueError, match="real-valued"):
        trace.transform(np.ones((1, 2), dtype=complex))


def test_scalers_json_of_earlier_versions_loads_and_saves_byte_for_byte(tmp_path):
    path = tmp_path / "scalers.json"
    path.write_text(OLD_SCALERS_JSON, encoding="utf-8")
    trace, settings, extra = load_scalers(path)
    assert trace.get_params() == {"kind": "robust", "max_fit_traces": 64, "random_state": 3,
                                  "chunk_size": 512}
    assert (trace.center_, trace.scale_, trace.n_traces_seen_) == (3.5, 3.5, 2)
    np.testing.assert_array_equal(trace.transform(np.array([[3.5, 7.0]])), [[0.0, 1.0]])
    np.testing.assert_array_equal(settings.transform(np.array([[5.0, 5.0, 10.0]])),
                                  [[1.0, 0.0, 0.5]])
    assert settings.n_features_in_ == 3 and extra == {"settings_names": ["a", "b", "c"]}
    again = tmp_path / "again.json"
    save_scalers(again, trace, settings, extra)
    assert again.read_bytes() == path.read_bytes()
    # The same fit today writes the same bytes.
    fresh = tmp_path / "fresh.json"
    save_scalers(fresh,
                 TraceScaler("robust", max_fit_traces=64, random_state=3).fit(
                     np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 100.0]])),
                 SettingsScaler("minmax").fit(
                     np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 10.0], [5.0, 5.0, 20.0]])),
                 {"settings_names": ["a", "b", "c"]})
    assert fresh.read_bytes() == path.read_bytes()


def test_minimal_scaler_dicts_keep_loading_with_defaults():
    trace = TraceScaler.from_dict({"class": "TraceScaler", "center_": 1, "scale_": 2})
    assert trace.get_params() == TraceScaler().get_params() and trace.n_traces_seen_ == 0
    settings = SettingsScaler.from_dict({"class": "SettingsScaler", "center_": [], "scale_": []})
    assert settings.transform(np.zeros((3, 0))).shape == (3, 0)


# Statistics, fit errors and the JSON file


def test_trace_scaler_statistics_per_kind():
    x = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 100.0]])
    robust = TraceScaler("robust").fit(x)
    assert (robust.center_, robust.scale_) == (3.5, 3.5)
    standard = TraceScaler("standard", chunk_size=1).fit(x)  # chunked == exact
    assert standard.center_ == pytest.approx(x.mean()) and standard.scale_ == pytest.approx(x.std())
    minmax = TraceScaler("minmax").fit(x)
    assert (minmax.center_, minmax.scale_) == (0.0, 100.0)
    np.testing.assert_allclose(minmax.transform(x), x / 100.0)
    none = TraceScaler("none").fit(x)
    np.testing.assert_array_equal(none.transform(x), x.astype(np.float32))


def test_trace_scaler_zero_spread_scales_by_one_and_inverts():
    x = np.full((3, 5), 7.0)
    scaler = TraceScaler("robust").fit(x)
    assert scaler.scale_ == 1.0
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(x)), x)


def test_trace_scaler_robust_subsample_is_seeded_and_bounded():
    x = np.random.default_rng(0).normal(size=(300, 10))
    a = TraceScaler("robust", max_fit_traces=50, random_state=1).fit(x)
    b = TraceScaler("robust", max_fit_traces=50, random_state=1).fit(x)
    c = TraceScaler("robust", max_fit_traces=50, random_state=2).fit(x)
    assert a.center_ == b.center_ and a.center_ != c.center_


def test_settings_scaler_per_feature_with_constant_feature():
    x = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 10.0], [5.0, 5.0, 20.0]])
    scaler = SettingsScaler("standard").fit(x)
    assert scaler.scale_[1] == 1.0 and scaler.center_[1] == 5.0
    out = scaler.transform(x)
    assert out.dtype == np.float32 and np.allclose(out[:, 1], 0.0)
    assert np.allclose(out[:, [0, 2]].std(axis=0), 1.0)
    assert SettingsScaler("robust").fit(x).center_.tolist() == [3.0, 5.0, 10.0]
    assert SettingsScaler("minmax").fit(x).scale_.tolist() == [4.0, 1.0, 20.0]
    empty = SettingsScaler().fit(np.zeros((4, 0)))
    assert empty.transform(np.zeros((2, 0))).shape == (2, 0)


def test_scalers_refuse_to_transform_before_fit_and_bad_input():
    with pytest.raises(NotFittedError):
        TraceScaler().transform(np.zeros((1, 3)))
    with pytest.raises(NotFittedError):
        SettingsScaler().to_dict()
    with pytest.raises(ValueError, match="kind"):
        TraceScaler("log").fit(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        SettingsScaler().fit(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="fitted on 2 features"):
        SettingsScaler().fit(np.ones((3, 2))).transform(np.ones((3, 1)))


def test_scalers_round_trip_through_json_file(tmp_path):
    rng = np.random.default_rng(0)
    traces, settings = rng.normal(size=(20, 8)), rng.normal(size=(20, 3))
    trace_scaler = TraceScaler("standard").fit(traces)
    settings_scaler = SettingsScaler("robust").fit(settings)
    path = tmp_path / "scalers.json"
    save_scalers(path, trace_scaler, settings_scaler, {"features": ["a", "b", "c"]})
    json.loads(path.read_text())  # plain JSON
    t2, s2, extra = load_scalers(path)
    np.testing.assert_array_equal(t2.transform(traces), trace_scaler.transform(traces))
    np.testing.assert_array_equal(s2.transform(settings), settings_scaler.transform(settings))
    assert extra == {"features": ["a", "b", "c"]} and t2.kind == "standard"
    path.write_text('{"format": 99}')
    with pytest.raises(ValueError, match="not a beamwatch scalers file"):
        load_scalers(path)
    with pytest.raises(ValueError, match="expected class"):
        TraceScaler.from_dict(settings_scaler.to_dict())
