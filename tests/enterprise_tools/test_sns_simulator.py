"""Tests for the SNS archive simulator: determinism, truth vs get_traces, physics, CLI."""

import csv
import json
import re
from collections import defaultdict
from dataclasses import fields as dataclasses_fields
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from enterprise_tools.beam_settings_parser_hdf5 import BeamConfigParserHDF5
from enterprise_tools.beam_settings_prep import BeamConfigPreProcessor
from enterprise_tools.biet_format import CorruptFileError
from enterprise_tools.biet_reader import ReadStorage
from enterprise_tools.simulator import (
    PV_NAMES,
    TRUTH_COLUMNS,
    SimulatorParams,
    beam_at,
    beam_for,
    build_schedule,
    drift_at,
    main,
    plan_acquisitions,
    simulate_archive,
)
from enterprise_tools.trace_windows import QualityCut, get_traces

# seed 5 of the tiny preset has every condition: beam off, study, low rep rate, other alarms,
# mislabelled files, every precursor kind and trips without one (test_every_condition_is_present)
TINY = SimulatorParams.tiny(seed=5, corrupt_files=2)
FILE_SKIPS = {
    "corrupt_file",
    "no_production_beam",
    "mislabelled_normal_file",
    "anomaly_file_without_trip",
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "archive"
    summary = simulate_archive(out, TINY)
    return out, summary


@pytest.fixture(scope="module")
def truth(archive):
    with open(archive[0] / "truth.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == TRUTH_COLUMNS
        return list(reader)


@pytest.fixture(scope="module")
def by_file(truth):
    files = defaultdict(list)
    for row in truth:
        files[row["file"]].append(row)
    return files


def _relative_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_archive_with_any_worker_count(archive, tmp_path):
    simulate_archive(tmp_path / "again", TINY, workers=2)
    first, second = _relative_files(archive[0]), _relative_files(tmp_path / "again")
    assert sorted(first) == sorted(second)
    assert any(name.endswith(".hdf5") for name in first)
    different = [name for name in first if first[name] != second[name]]
    assert different == []


def test_different_seed_gives_a_different_archive(archive, tmp_path):
    params = SimulatorParams.tiny(seed=6, hours=0.1)
    simulate_archive(tmp_path / "other", params)
    assert (tmp_path / "other" / "truth.csv").read_bytes() != (archive[0] / "truth.csv").read_bytes()


def test_truth_matches_get_traces_for_every_file(archive, by_file):
    _check_truth_against_get_traces(archive[0], by_file)


def _check_truth_against_get_traces(root: Path, by_file: dict) -> None:
    """Every file gives exactly the samples truth.csv promises, and skips what it says."""
    for name, rows in by_file.items():
        alarm = 0 if name.startswith("dcm/normal/") else 48
        expected = sorted(
            int(r["timestamp_ns"])
            for r in rows
            if int(r["label"]) >= 0 and r["expected_skip"] in ("", "no_production_settings")
        )
        file_skips = {r["expected_skip"] for r in rows} & FILE_SKIPS
        if file_skips == {"corrupt_file"}:
            with pytest.raises(CorruptFileError):
                get_traces(root / name, alarm=alarm)
            continue
        found = get_traces(root / name, alarm=alarm)
        assert sorted(found.timestamps_ns.tolist()) == expected, name
        assert {s.reason for s in found.skipped} == file_skips, name
        if alarm == 48 and expected:
            assert {r["label"] for r in rows if int(r["timestamp_ns"]) in expected} == {"1"}


def test_summary_counts_match_truth(archive, truth):
    summary = archive[1]
    delivered = [r for r in truth if int(r["label"]) >= 0 and not r["expected_skip"]]
    assert summary.samples == {
        "normal": sum(r["label"] == "0" for r in delivered),
        "errant": sum(r["label"] == "1" for r in delivered),
    }
    assert summary.pulses == len(truth)
    assert summary.files == len({r["file"] for r in truth})


def test_every_condition_is_present(truth):
    roles = {r["role"] for r in truth}
    assert roles == {"normal", "precursor", "trip", "context", "mps_trip", "study"}
    kinds = {r["precursor_kind"] for r in truth if r["role"] == "precursor"}
    assert kinds == {"none", "ramp", "burst", "sag", "rf_jitter"}
    skips = {r["expected_skip"] for r in truth}
    assert skips == FILE_SKIPS | {"", "no_production_settings"}
    alarms = {int(r["alarm"]) for r in truth}
    assert {0, 48} < alarms and alarms - {0, 48} <= set(TINY.mps_alarm_codes)
    positives = [r for r in truth if r["label"] == "1" and not r["expected_skip"]]
    assert {r["precursor_kind"] for r in positives} >= {"none", "ramp"}


def test_study_pulses_are_short_and_low_rep_rate_pulses_full_width(archive, by_file):
    root = archive[0]
    widths = {"study": [], "low_rr": []}
    for name, rows in by_file.items():
        skip = {r["expected_skip"] for r in rows}
        kind = "study" if "no_production_beam" in skip else "low_rr" if "no_production_settings" in skip else None
        if kind is None or "corrupt_file" in skip:
            continue
        with ReadStorage(root / name) as storage:
            widths[kind] += [r["parameters"]["bWidth"] for r in storage if "bWidth" in r["parameters"]]
    assert widths["study"] and max(widths["study"]) < 900
    assert widths["low_rr"] and min(widths["low_rr"]) > 900


def test_production_pulses_pass_the_jlab_quality_cut(archive, by_file):
    root, cut, checked = archive[0], QualityCut(), 0
    for name, rows in by_file.items():
        wanted = {int(r["timestamp_ns"]) for r in rows if r["role"] in ("normal", "precursor", "context")
                  and not r["expected_skip"]}
        if not wanted:
            continue
        with ReadStorage(root / name) as storage:
            for record in storage:
                if record["name"].endswith("Trace1") and record["timestamp_ns"] in wanted:
                    assert cut.check(record["value"][3000:13000]) is None, name
                    checked += 1
    assert checked > 100


def test_file_names_follow_the_sns_convention(by_file):
    pattern = re.compile(r"dcm/(normal|anomaly)/(\d{4})/(\d\d)/(\d\d)/DCM_(\d{8})_\d{6}_\d{6}_([01]{8})\.bin\.gz")
    for name, rows in by_file.items():
        match = pattern.fullmatch(name)
        assert match, name
        folder, year, month, day, date, bits = match.groups()
        assert date == year + month + day
        first = pd.Timestamp(int(rows[0]["timestamp_ns"]), unit="ns", tz="UTC")
        assert first.strftime("%Y%m%d") == date
        alarms = {int(r["alarm"]) for r in rows} - {0}
        if folder == "normal":
            assert bits == "00000000"
        else:
            assert alarms == {int(bits, 2)}


def test_settings_files_hold_the_22_pvs_as_n_by_2_root_datasets(archive):
    files = sorted((archive[0] / "beam_settings").iterdir())
    assert [f.name for f in files] == ["2026-01-05.hdf5"]
    with h5py.File(files[0], "r") as h5:
        assert sorted(h5) == sorted(PV_NAMES)
        for pv in PV_NAMES:
            data = h5[pv][()]
            assert data.ndim == 2 and data.shape[1] == 2 and data.dtype == np.float64
            gaps = np.diff(data[:, 0]) / 1e9
            assert gaps.max() <= TINY.heartbeat_s  # heartbeat
            assert np.all(gaps > 0)


def test_production_filter_on_the_settings_matches_expected_skip(archive, truth):
    data, _ = BeamConfigParserHDF5({"data_location": str(archive[0] / "beam_settings")}).run()
    table, _ = BeamConfigPreProcessor({"features": list(PV_NAMES)}).run(data)
    rows = [r for r in truth if int(r["label"]) >= 0 and not {r["expected_skip"]} & FILE_SKIPS]
    pulses = pd.DataFrame({
        "timestamps": pd.to_datetime([int(r["timestamp_ns"]) for r in rows], unit="ns", utc=True),
        "filtered": [r["expected_skip"] == "no_production_settings" for r in rows],
    }).sort_values("timestamps")
    joined = pd.merge_asof(pulses, table, on="timestamps", direction="backward")
    production = (joined["ICS_Tim:Gate_BeamOn:RR"] >= 59.9) & (
        joined["ICS_Tim:Chop_Flavor1:BeamOn"] >= 850
    )
    assert joined["filtered"].any() and (~joined["filtered"]).any()
    assert (production == ~joined["filtered"]).all()


def test_baseline_loss_depends_on_the_configuration(archive, by_file):
    root = archive[0]
    level = defaultdict(list)
    for name, rows in by_file.items():
        if not name.startswith("dcm/normal/") or any(r["expected_skip"] for r in rows):
            continue
        found = get_traces(root / name, alarm=0)
        # mean differential current over the beam, per configuration
        level[rows[0]["config_id"]] += list(found.traces[:, 200:9000].mean(axis=1))
    means = {c: np.mean(v) for c, v in level.items() if len(v) >= 4}
    spreads = [np.std(v) / np.mean(v) for v in level.values() if len(v) >= 4]
    assert len(means) >= 3
    assert max(means.values()) / min(means.values()) > 1.5
    assert np.median(spreads) < 0.15  # within a configuration the level is steady


def test_demo_preset_plan_has_trips_in_every_part_of_a_time_split():
    params = SimulatorParams.demo()
    plan = plan_acquisitions(params, build_schedule(params))
    normal_pulses = (plan["kind"] == 0).sum() * params.pulses_per_normal_file
    errant = (plan["kind"] == 1).sum()
    assert 1500 <= normal_pulses + errant <= 3500
    assert 0.08 <= errant / (normal_pulses + errant) <= 0.2
    start, end = plan["t_ns"].min(), plan["t_ns"].max()
    edges = start + (end - start) * np.array([0.0, 0.7, 0.85, 1.0])
    counts = np.histogram(plan["t_ns"][plan["kind"] == 1], bins=edges)[0]
    assert (counts >= 20).all()


def test_invalid_params_name_the_field():
    with pytest.raises(ValueError, match="hours"):
        SimulatorParams(hours=0)
    with pytest.raises(ValueError, match="precursor_kinds"):
        SimulatorParams(precursor_kinds=("ramp", "wobble"))
    with pytest.raises(ValueError, match="mps_alarm_codes"):
        SimulatorParams(mps_alarm_codes=(48,))


def test_cli_refuses_a_non_empty_folder_without_force(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["--out", str(tmp_path), "--preset", "tiny", "--hours", "0.05", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and "--force" in err[0]
    assert (tmp_path / "keep.txt").read_text() == "mine"
    args = ["--out", str(tmp_path), "--preset", "tiny", "--hours", "0.05", "--quiet", "--force"]
    assert main(args) == 0
    assert (tmp_path / "truth.csv").exists() and (tmp_path / "keep.txt").exists()


def test_cli_bad_usage_exits_2_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--hours", "lots"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["--out", str(tmp_path / "x"), "--hours", "-1", "--quiet"]) == 2
    assert "hours" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# The realistic preset: developing precursors, drift, blips, older-style files, no position leak
# --------------------------------------------------------------------------------------

# the realistic knobs at a test's scale: 1.5 h with a high trip rate (~80 errant samples,
# ~600 normal ones), fast re-tuning and drift, a few study periods (older-style files in them)
REALISTIC = SimulatorParams.realistic(
    seed=2,
    hours=1.5,
    normal_interval_s=40.0,
    errant_trips_per_hour=60.0,
    mps_trips_per_hour=4.0,
    tuning_interval_h=0.3,
    reconfig_interval_h=0.5,
    drift_hours=0.5,
    blip_fraction=0.05,
    beam_off_per_day=0.0,
    study_per_day=16.0,
    study_hours=(0.08, 0.12),
    low_rr_per_day=0.0,
    corrupt_files=1,
)


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "realistic"
    simulate_archive(out, REALISTIC)
    truth = pd.read_csv(out / "truth.csv", keep_default_na=False)
    return out, truth


def _delivered(truth: pd.DataFrame) -> pd.DataFrame:
    """The training samples: label 0/1 that the loader delivers."""
    return truth[(truth["label"] >= 0) & (truth["expected_skip"] == "")]


def position_aucs(samples: pd.DataFrame) -> dict[str, float]:
    """ROC AUC of position-only scores: the sample's index in its file, min(index, 3), and the
    errant rate per index fitted on one half of the files and scored on the other (both ways)."""
    label = samples["label"].to_numpy()
    index = samples["pulse_in_file"].to_numpy()
    files = samples["file"].to_numpy()
    order = {name: k for k, name in enumerate(sorted(set(files)))}
    half = np.array([order[name] % 2 for name in files])
    rate_score = np.empty(len(label))
    for part in (0, 1):
        fit, score = half != part, half == part
        overall = label[fit].mean()
        for j in np.unique(index[score]):
            seen = fit & (index == j)
            # smoothed towards the overall rate: an index seen rarely says little
            rate = (label[seen].sum() + 5 * overall) / (seen.sum() + 5)
            rate_score[score & (index == j)] = rate
    return {
        "index": roc_auc_score(label, index),
        "min3": roc_auc_score(label, np.minimum(index, 3)),
        "rate": roc_auc_score(label, rate_score),
    }


def test_realistic_truth_matches_get_traces_for_every_file(realistic):
    root, truth = realistic
    by_file = {name: rows.to_dict("records") for name, rows in truth.astype(str).groupby("file")}
    _check_truth_against_get_traces(root, by_file)
    samples = _delivered(truth)
    assert (samples["label"] == 1).sum() >= 40 and (samples["label"] == 0).sum() >= 300


def test_realistic_archive_holds_readable_older_style_files(realistic):
    root, truth = realistic
    old = {"normal": 0, "anomaly": 0}
    for name, rows in truth.groupby("file"):
        if "corrupt_file" in set(rows["expected_skip"]):
            continue
        with ReadStorage(root / name) as storage:
            records = list(storage)
        if any("Alarm" in r["parameters"] for r in records):
            continue
        folder = name.split("/")[1]
        old[folder] += 1
        # the Before/During pair: four tagged traces, no status records
        assert [r["tags"] for r in records] == [["Before"]] * 2 + [["During"]] * 2, name
        assert rows["pulse_index"].tolist() == [0, 1]
        found = get_traces(root / name, alarm=0 if folder == "normal" else 48)
        before = rows[rows["pulse_index"] == 0]
        assert found.timestamps_ns.tolist() == before["timestamp_ns"].tolist(), name
        assert before["label"].tolist() == [0 if folder == "normal" else 1]
        assert rows[rows["pulse_index"] == 1]["label"].tolist() == [-1]
    assert old["normal"] >= 5 and old["anomaly"] >= 3
    # in a study period an older file has no bWidth to cut on: the settings filter drops it
    old_study = truth[(truth["role"] == "study") & (truth["expected_skip"] == "no_production_settings")]
    assert len(old_study) >= 1


def test_realistic_precursor_onset_is_consistent(realistic):
    _, truth = realistic
    assert (truth["pulse_in_file"] == truth["pulse_index"]).all()
    errant = truth[truth["file"].isin(truth.loc[truth["role"] == "trip", "file"])
                   & truth["file"].str.startswith("dcm/anomaly/")]
    onsets = []
    for name, rows in errant.groupby("file"):
        rows = rows.sort_values("pulse_index")
        onset = set(rows["precursor_onset"])
        assert len(onset) == 1, name
        onset = onset.pop()
        onsets.append(onset)
        trip = int(rows.loc[rows["role"] == "trip", "pulse_index"].iloc[0])
        before = rows[rows["pulse_index"] < trip]
        distance = trip - before["pulse_index"]
        strength = before["precursor_strength"].astype(float)
        on = distance <= onset
        assert (before.loc[on, "precursor_kind"] != "none").all(), name
        assert (strength[on] > 0).all() and (strength[~on] == 0).all(), name
        assert (before.loc[~on, "precursor_kind"] == "none").all(), name
        assert np.all(np.diff(strength.to_numpy()) >= 0), name  # grows towards the trip
        sample = rows[rows["role"] == "precursor"]
        assert (onset == 0) == (sample["precursor_kind"].iloc[0] == "none"), name
    normal = truth[truth["file"].str.startswith("dcm/normal/")]
    assert (normal["precursor_onset"] == 0).all()
    onsets = np.array(onsets)
    assert (onsets == 0).any() and (onsets == 1).any() and (onsets >= 3).any()
    # some precursors are already on the pulse before the sample, inside the file
    context_on = truth[(truth["role"] == "context") & (truth["precursor_kind"] != "none")]
    assert len(context_on) >= 5


def test_realistic_blips_fall_on_normal_samples_too(realistic):
    _, truth = realistic
    blips = truth[truth["blip"] > 0]
    assert set(blips["role"]) >= {"normal", "precursor", "context"}
    assert (blips["role"] != "trip").all()
    share = (truth.loc[truth["role"] == "normal", "blip"] > 0).mean()
    assert 0.02 < share < 0.1  # REALISTIC.blip_fraction = 0.05


def test_realistic_sample_position_carries_no_label(realistic):
    aucs = position_aucs(_delivered(realistic[1]))
    assert all(abs(auc - 0.5) <= 0.05 for auc in aucs.values()), aucs


def test_demo_sample_position_leaks_the_label(tmp_path):
    # the same test on the demo preset fails: its errant sample is always the middle pulse
    simulate_archive(tmp_path / "demo", SimulatorParams.demo(hours=2.0, seed=2))
    aucs = position_aucs(_delivered(pd.read_csv(tmp_path / "demo" / "truth.csv", keep_default_na=False)))
    assert aucs["rate"] > 0.75, aucs


def _plan_positions(params: SimulatorParams) -> pd.DataFrame:
    """Sample index and label of every production sample the plan holds (no files written)."""
    segments = build_schedule(params)
    plan = plan_acquisitions(params, segments)
    rows = []
    for k, acq in enumerate(plan):
        if segments[acq["segment"]].mode != "production" or acq["corrupt"]:
            continue
        name = f"f{k:06d}"
        if acq["kind"] == 0 and acq["bad_pulse"] < 0:
            count = 1 if acq["old_style"] else acq["n_pulses"]
            rows += [(name, acq["t_ns"], j, 0, acq["old_style"]) for j in range(count)]
        elif acq["kind"] == 1:
            rows.append((name, acq["t_ns"], acq["n_pulses"] - 2, 1, acq["old_style"]))
    return pd.DataFrame(rows, columns=["file", "t_ns", "pulse_in_file", "label", "old_style"])


def test_position_leak_over_a_whole_week_plan():
    samples = _plan_positions(SimulatorParams.realistic(seed=1))
    realistic = position_aucs(samples)
    assert all(abs(auc - 0.5) <= 0.03 for auc in realistic.values()), realistic
    # the file style is no label either: older-style files give each label the same share
    share = samples.groupby("label")["old_style"].mean()
    assert abs(share[0] - 0.1) < 0.02 and abs(share[1] - 0.1) < 0.03, share
    demo = position_aucs(_plan_positions(SimulatorParams.demo(seed=1)))
    assert demo["rate"] > 0.75, demo


@pytest.mark.parametrize("blocks", [5, 7])
def test_realistic_preset_fills_every_rolling_origin_test_block(blocks):
    params = SimulatorParams.realistic()
    samples = _plan_positions(params)
    segments = build_schedule(params)
    edges = np.linspace(segments[0].start_ns, segments[-1].end_ns, blocks + 1)
    block = np.clip(np.searchsorted(edges, samples["t_ns"], side="right") - 1, 0, blocks - 1)
    normal = np.bincount(block[samples["label"] == 0], minlength=blocks)
    errant = np.bincount(block[samples["label"] == 1], minlength=blocks)
    assert normal[1:].min() >= 1000 and errant[1:].min() >= 50, (normal, errant)
    # configurations keep changing: every test block holds settings never seen before it
    seen: set = set()
    for b in range(blocks):
        inside = [s.values for s in segments if edges[b] <= s.start_ns < edges[b + 1]
                  and s.mode == "production"]
        if b:
            assert len(set(inside) - seen) >= 3
        seen |= set(inside)


def test_realistic_same_seed_gives_byte_identical_archive_with_any_worker_count(tmp_path):
    params = SimulatorParams.realistic(seed=4, hours=0.25, errant_trips_per_hour=60.0,
                                       normal_interval_s=60.0, drift_hours=0.2)
    simulate_archive(tmp_path / "one", params)
    simulate_archive(tmp_path / "two", params, workers=2)
    first, second = _relative_files(tmp_path / "one"), _relative_files(tmp_path / "two")
    assert sorted(first) == sorted(second) and len(first) > 10
    assert [name for name in first if first[name] != second[name]] == []
    recorded = json.loads((tmp_path / "one" / "simulation.json").read_text())["params"]
    assert sorted(recorded) == sorted(f.name for f in dataclasses_fields(SimulatorParams))


def test_drift_is_slow_and_off_by_default():
    params = SimulatorParams.realistic(seed=3)
    start = int(pd.Timestamp(params.start).value)
    hours = np.arange(0, 48, 0.05)
    signal = np.array([drift_at(start + int(h * 3600e9), params) for h in hours])
    assert 0.6 < signal.std(axis=0).min() and signal.std(axis=0).max() < 1.4  # unit rms
    # smooth over minutes, wanders over hours: 3-minute steps are a small share of the spread
    assert np.diff(signal, axis=0).std(axis=0).max() < 0.2 * signal.std(axis=0).min()
    values = build_schedule(params)[0].values
    drifted = [beam_at(values, start + int(h * 3600e9), params).loss for h in (0, 2, 4, 6)]
    assert max(drifted) / min(drifted) > 1.05
    plain = SimulatorParams.tiny(seed=3)
    assert beam_at(values, start + 7200 * 10**9, plain) == beam_for(values, plain.loss_multiplier_max)


def test_invalid_realism_params_name_the_field():
    with pytest.raises(ValueError, match="pulses_per_normal_file_max"):
        SimulatorParams(pulses_per_normal_file=4, pulses_per_normal_file_max=3)
    with pytest.raises(ValueError, match="old_style_fraction"):
        SimulatorParams(old_style_fraction=1.0)
    with pytest.raises(ValueError, match="precursor_onset"):
        SimulatorParams(precursor_onset_max=0)
    with pytest.raises(ValueError, match="blip_strength"):
        SimulatorParams(blip_strength=(2.0, 1.0))
