"""Tests for the SNS archive simulator: determinism, truth vs get_traces, physics, CLI."""

import csv
import re
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from enterprise_tools.beam_settings_parser_hdf5 import BeamConfigParserHDF5
from enterprise_tools.beam_settings_prep import BeamConfigPreProcessor
from enterprise_tools.data_utils import CorruptFileError, QualityCut, ReadStorage, get_traces
from enterprise_tools.sns_simulator import (
    PV_NAMES,
    TRUTH_COLUMNS,
    SimulatorParams,
    build_schedule,
    main,
    plan_acquisitions,
    simulate_archive,
)

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
    root = archive[0]
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
