"""The benchmark suite: profiles (quick, standard, full), running the sections, recording them.

A run records, per section, the machine, the commit measured, the exact command, the load
average before and after, and the figures, into `benchmarks/results/<date>-<machine>.json`
(sections run on the same day and machine are merged into one file), then rewrites the
generated tables of `docs/benchmarks.md` from that file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import (
    detection,
    detection_tables,
    detection_truth,
    public_jobs,
    report,
    rolling,
    rolling_tables,
    scale,
    speed,
    stream,
)
from benchmarks.presets import preset_params

log = logging.getLogger("beamwatch.benchmarks")

SECTIONS = ("detection", "rolling", "speed", "scale", "stream")
# Sections run only when asked for with --only (not part of a profile's default run):
# public_jobs: the samples jobs on the public sets bundled in aeon's and scikit-learn's wheels,
# network beside peer; it also rewrites the table of docs/jobs.md (one seed; about 20 minutes).
ON_REQUEST = ("public_jobs",)
# Simulator presets the rolling evaluation can run on (SimulatorParams classmethods).
PRESETS = ("demo", "realistic")


@dataclasses.dataclass(frozen=True)
class Profile:
    """Everything that differs between a quick look and a full measurement."""

    name: str
    archive_hours: float
    archive_seed: int
    detection: detection.DetectionSettings
    speed: speed.SpeedSettings
    scale: scale.ScaleSettings
    rolling: rolling.RollingSettings = rolling.RollingSettings()
    rolling_presets: tuple[str, ...] = ("demo",)
    # (preset, epochs) where a preset's networks train longer than `rolling.epochs`: the demo
    # preset's folds are small (1,000-2,000 training pulses), so 12 epochs under-train them.
    rolling_epochs: tuple[tuple[str, int], ...] = ()
    scale_skipped: tuple[int, ...] = ()
    note: str = ""
    stream: stream.StreamSettings = stream.StreamSettings()

    def rolling_settings(self, preset: str) -> rolling.RollingSettings:
        """The rolling settings one preset runs with (its own epochs where the profile sets them)."""
        epochs = dict(self.rolling_epochs).get(preset, self.rolling.epochs)
        return dataclasses.replace(self.rolling, epochs=epochs)


# The quick profile's detection, speed and scale sections (the standard profile reuses them).
_QUICK_DETECTION = detection.DetectionSettings(seeds=(0,), epochs=15, prototype_epochs=1,
                                               prototype_max_train=192, n_boot=200)
_QUICK_SPEED = speed.SpeedSettings(read_repeat=5, build_workers=(1, 2), train_samples=128,
                                   train_epochs=3, eval_samples=256, latency_iterations=300,
                                   batch_repeats=3)
_QUICK_SCALE = scale.ScaleSettings(unit_hours=6.0, factors=(1, 4), epochs=2)

PROFILES = {
    # Under 10 minutes on 2 cores: one seed, the train flow's 15 epochs (early stopping), the
    # prototype on a capped training part for one epoch (it trains ~80x slower per sample on a
    # CPU), scale 1x and 4x only.
    "quick": Profile(
        name="quick",
        archive_hours=42.0,
        archive_seed=20201,
        detection=_QUICK_DETECTION,
        speed=_QUICK_SPEED,
        scale=_QUICK_SCALE,
        rolling=rolling.RollingSettings(n_blocks=5, last_folds=2, seeds=(0,), epochs=15,
                                        neural=("sns_cnn_lstm", "sns_reference_cnn_lstm"),
                                        n_boot=200),
        rolling_presets=("demo",),
        scale_skipped=(16,),
        # 10 minutes of beam (36,000 pulses), memory read at 5 and 10 minutes
        stream=stream.StreamSettings(hours=1.0 / 6.0, marks=(1.0 / 12.0, 1.0 / 6.0), epochs=4),
        note="1 seed per model, 15 epochs (early stopping); sns_prototype trained 1 epoch on "
             "192 training pulses "
             "(plus SMOTE); rolling: demo preset, the 2 newest of 5 blocks, sns_cnn_lstm and "
             "sns_reference_cnn_lstm plus every peer; scale 16x left out to stay under 10 "
             "minutes on 2 cores.",
    ),
    # About 90 minutes on 2 cores, run once and committed to benchmarks/results/: the rolling
    # evaluation on both simulator presets, 5 blocks (all 3 test blocks), 3 seeds per network,
    # each network trained on the whole training part of its fold (a 2,500-pulse subsample cost
    # the reference network ~0.08 PR AUC on a block), up to 12 epochs on the realistic preset
    # and 25 on the demo preset's small folds (at 12 its fixed threshold missed on 3 of 9 runs),
    # every peer and the leaky comparison. The two networks that decide the default; the other
    # networks are left to --full. The other sections as in quick.
    "standard": Profile(
        name="standard",
        archive_hours=42.0,
        archive_seed=20201,
        detection=_QUICK_DETECTION,
        speed=_QUICK_SPEED,
        scale=_QUICK_SCALE,
        rolling=rolling.RollingSettings(n_blocks=5, seeds=(0, 1, 2), epochs=12,
                                        neural=("sns_cnn_lstm", "sns_reference_cnn_lstm"),
                                        n_boot=1000),
        rolling_presets=PRESETS,
        rolling_epochs=(("demo", 25),),
        scale_skipped=(16,),
        note="rolling: both presets, 5 blocks (3 test blocks), 3 seeds of sns_cnn_lstm and "
             "sns_reference_cnn_lstm on the whole training part (up to 12 epochs on the "
             "realistic preset, 25 on the demo preset), every peer; the "
             "other networks are in --full; detection/speed/scale as in quick (1 seed, scale "
             "16x left out).",
    ),
    # The evidence two CPU cores can give in about half an hour: the realistic preset only, the
    # two newest of 5 blocks, 3 seeds, networks on a 2,500-pulse subsample of each fold's
    # training part (class ratio kept; the peers see all of it), every peer, the leaky comparison.
    "evidence": Profile(
        name="evidence",
        archive_hours=42.0,
        archive_seed=20201,
        detection=detection.DetectionSettings(),
        speed=speed.SpeedSettings(),
        scale=scale.ScaleSettings(),
        rolling=rolling.RollingSettings(n_blocks=5, last_folds=2, seeds=(0, 1, 2), epochs=12,
                                        neural=("sns_cnn_lstm", "sns_reference_cnn_lstm"),
                                        n_boot=500, max_train=2500),
        rolling_presets=("realistic",),
        note="rolling only: realistic preset, the 2 newest of 5 blocks, 3 seeds per network, "
             "networks on a 2,500-pulse training subsample (12 epochs), every peer on the whole "
             "training part.",
    ),
    # A workstation or GPU: five days of beam, the train flow's epochs, three seeds.
    "full": Profile(
        name="full",
        archive_hours=120.0,
        archive_seed=20201,
        detection=detection.DetectionSettings(seeds=(0, 1, 2), epochs=15, prototype_epochs=15,
                                              prototype_max_train=None, n_boot=1000),
        speed=speed.SpeedSettings(read_repeat=10, build_workers=(1, 2), train_samples=1024,
                                  train_epochs=4, eval_samples=1024, latency_iterations=2000,
                                  batch_repeats=10),
        scale=scale.ScaleSettings(unit_hours=6.0, factors=(1, 4, 16), epochs=2),
        rolling=rolling.RollingSettings(n_blocks=8, seeds=(0, 1, 2), epochs=15, n_boot=1000),
        rolling_presets=PRESETS,
        # 4 h of beam (864,000 pulses), memory read at 1 h and 4 h (must stay flat)
        stream=stream.StreamSettings(hours=4.0, marks=(1.0, 4.0), epochs=15, path_pulses=2000),
        note="3 seeds per model, 15 epochs each (early stopping on validation PR AUC); "
             "rolling: both presets, 8 blocks (6 test blocks).",
    ),
}


def detection_archive(profile: Profile, workdir: Path) -> dict:
    """The fixed simulated archive of the profile (reused when already there)."""
    params = preset_params("demo", profile.archive_seed, demo_hours=profile.archive_hours)
    name = f"archive-{profile.archive_hours:g}h-seed{profile.archive_seed}"
    return detection_truth.ensure_archive(workdir / name, params)


def preset_archive(profile: Profile, preset: str, workdir: Path) -> dict | None:
    """The profile's archive of simulator `preset` (None when this code base lacks the preset).

    The demo preset's archive is the detection section's; others get the profile's seed and
    the preset's own hours.
    """
    if preset == "demo":
        return detection_archive(profile, workdir)
    params = preset_params(preset, profile.archive_seed, demo_hours=profile.archive_hours)
    if params is None:
        return None
    name = f"archive-{preset}-{params.hours:g}h-seed{profile.archive_seed}"
    return detection_truth.ensure_archive(workdir / name, params)


def run_rolling(profile: Profile, workdir: Path) -> dict:
    """The rolling evaluation on each of the profile's presets: `{preset: result}`."""
    out = {}
    for preset in profile.rolling_presets:
        archive = preset_archive(profile, preset, workdir)
        if archive is None:
            log.info("rolling: preset %s skipped: SimulatorParams.%s() does not exist here",
                     preset, preset)
            out[preset] = {"skipped": f"SimulatorParams.{preset}() is not in this code base"}
            continue
        result = rolling.run(Path(archive["path"]), workdir, profile.rolling_settings(preset),
                             preset=preset)
        result["archive_info"] = archive
        out[preset] = result
    return out


def run_sections(profile: Profile, sections: tuple[str, ...], workdir: Path,
                 previous: dict | None = None) -> dict:
    """Runs the sections asked for; returns `{name: {"result", "wall_seconds", ...}}`."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = {}
    archive = None
    if "detection" in sections or "speed" in sections or "stream" in sections:
        archive = detection_archive(profile, workdir)
    detection_result = None
    if previous and "detection" in previous:
        detection_result = previous["detection"].get("result")
    for name in sections:
        load_before = list(os.getloadavg())
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        log.info("benchmark section %s (%s profile)", name, profile.name)
        if name == "detection":
            result = detection.run(Path(archive["path"]), workdir, profile.detection)
            result["archive_info"] = archive
            detection_result = result
        elif name == "rolling":
            result = run_rolling(profile, workdir)
        elif name == "speed":
            result = speed.run(profile.speed, Path(archive["path"]), workdir, detection_result)
        elif name == "scale":
            result = scale.run(profile.scale, workdir, skipped=profile.scale_skipped)
        elif name == "stream":
            result = stream.run(profile.stream, Path(archive["path"]), workdir)
        elif name == "public_jobs":
            result = public_jobs.run(public_jobs.PublicJobsSettings(), workdir)
            public_jobs.update_doc(public_jobs.DOC, result)
        else:
            raise ValueError(f"unknown section {name!r}; expected one of "
                             f"{SECTIONS + ON_REQUEST}")
        out[name] = {"result": result, "wall_seconds": time.perf_counter() - started,
                     "cpu_seconds": _cpu_seconds() - cpu_started,
                     "load_average_before": load_before,
                     "load_average_after": list(os.getloadavg()),
                     "profile": profile.name, "profile_note": profile.note}
    return out


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (reader pools, child builds).

    On a shared machine the wall time says how long a section waited for the CPUs; the CPU
    time says how much work it was.
    """
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def record(sections: dict, *, command: str, commit: str, machine: dict, results_dir: Path,
           previous: dict | None, now: datetime, total_seconds: float) -> dict:
    """The results document: earlier sections of the same day and machine kept, new ones added."""
    results = dict(previous or {"sections": {}})
    results.setdefault("sections", {})
    results["machine"] = machine
    results["updated"] = now.isoformat(timespec="seconds")
    for name, section in sections.items():
        results["sections"][name] = {**section, "command": command, "commit": commit,
                                     "finished": now.isoformat(timespec="seconds")}
    results.setdefault("runs", []).append({"command": command, "commit": commit,
                                           "finished": now.isoformat(timespec="seconds"),
                                           "sections": list(sections),
                                           "total_seconds": total_seconds,
                                           "load_average_end": list(os.getloadavg())})
    return results


def render_document(results: dict, results_file: str) -> str:
    """The generated part of docs/benchmarks.md."""
    m = results["machine"]
    v = m["versions"]
    lines = [
        f"_Generated from `{results_file}` (updated {results['updated']}). Do not edit between "
        "the markers: `python -m benchmarks` rewrites this part._",
        "",
        "Machine: " + f"{m['cpu']}, {m['cores']} cores, "
        + (f"{m['ram_gib']:.0f} GiB RAM, " if m.get("ram_gib") else "")
        + f"{m['os']}; Python {v['python']}, TensorFlow {v.get('tensorflow')}, "
        f"Keras {v.get('keras')}, scikit-learn {v.get('sklearn')}, NumPy {v.get('numpy')}.",
        "",
    ]
    rows = []
    for name in SECTIONS + ON_REQUEST:
        s = results["sections"].get(name)
        if s is None:
            continue
        rows.append([name, f"`{s['command']}`", f"`{s['commit'][:12]}{'+dirty' if s['commit'].endswith('+dirty') else ''}`",
                     s["finished"], f"{s['wall_seconds']:.0f}",
                     f"{s['cpu_seconds']:.0f}" if "cpu_seconds" in s else "",
                     " / ".join(f"{x:.2f}" for x in s["load_average_before"]),
                     s.get("profile_note", "")])
    lines += [report.render_table(["section", "command", "commit", "finished (UTC)", "wall s",
                                   "CPU s", "load avg before (1/5/15 min)", "profile"], rows,
                                  align="llllrrrl"), ""]
    renderers = {"detection": detection_tables.render, "rolling": rolling_tables.render,
                 "speed": speed.render, "scale": scale.render, "stream": stream.render,
                 "public_jobs": public_jobs.render}
    for name in SECTIONS + ON_REQUEST:
        s = results["sections"].get(name)
        if s is not None:
            lines += [renderers[name](s["result"]), ""]
    return "\n".join(lines)


def now_utc() -> datetime:
    return datetime.now(UTC)
