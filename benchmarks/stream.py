"""Stream: every pulse of hours of simulated beam, scored through the `--watch` path.

A run is trained on the profile's archive (train flow) and exported (`live.export`); then a child
process pinned to ONE CPU core (`taskset -c 0`, TensorFlow intra/inter-op threads 1) streams
`enterprise_tools.sns_stream` (60 Hz, every production pulse, trips with their precursors) through
`live.engine.LiveScorer` with the exported SavedModel (`serve_one`, XLA), exactly the code
`--watch` runs per file; the chunks are one continuous stream (`continues=True`), so a history
run's history carries on across them. It reports sustained pulses per second against the 60 needed, per-pulse
latency p50/p99 (a fixed histogram, so measuring does not grow memory), resident memory at each
mark (it must stay flat), the MEASURED false alarms per hour of beam and errant pulses caught at
the run's threshold, next to the figure the test flow extrapolates from sampled pulses
(false-alarm rate x 60 Hz x 3600). Then the same pulses one by one through each deployable path
side by side: SavedModel serve_one (XLA) and serving_default, LiteRT float32 and int8.

The child is `python -m benchmarks.stream --child OUT.json --run RUN --hours H [--marks ...]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from benchmarks import operating, stats
from benchmarks.children import resident_mb, run_cpu_child
from benchmarks.report import render_table

log = logging.getLogger("beamwatch.benchmarks.stream")

REAL_TIME_HZ = 60.0
TARGET_RATIO = 10.0          # sustained pulses/s >= 10x real time (600/s) on one core
LATENCY_TARGET_P99_MS = 2.0  # the deployed path, per pulse, one core
_BIN_US = 10                 # latency histogram: 10 us bins up to 1 s
_BINS = 100_000


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """How much beam to stream and where to read memory (hours of production beam)."""

    hours: float = 1.0 / 6.0
    marks: tuple[float, ...] = (1.0 / 12.0, 1.0 / 6.0)
    epochs: int = 4
    path_pulses: int = 500   # pulses per deployable path in the side-by-side latency table
    stream_seed: int = 0
    # True: replay the run's own simulated machine (its archive's parameters) on every pulse
    # from the start of the run's test period; False: a demo machine of another seed
    replay_test_period: bool = True


def _percentile(hist: np.ndarray, q: float) -> float:
    """Percentile (ms) of a 10-us histogram."""
    total = hist.sum()
    if not total:
        return float("nan")
    index = int(np.searchsorted(np.cumsum(hist), q / 100.0 * total))
    return (index + 0.5) * _BIN_US / 1000.0


def child(out_json: Path, run_dir: Path, settings: StreamSettings) -> None:
    """Body of the pinned child: the stream through LiveScorer, then each path side by side."""
    if not shutil.which("taskset") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from enterprise_tools.simulator import SimulatorParams
    from enterprise_tools.sns_stream import StreamSpec, pulse_stream
    from live.engine import LiveScorer
    from live.scorer import LiteRTBackend, SavedModelBackend
    from live.serving import InputLayout
    from utils.serving_files import EXPORT_DIR, read_serving

    export = run_dir / EXPORT_DIR
    meta = read_serving(export)
    layout = InputLayout.from_dict(meta["layout"])
    scorer = LiveScorer(SavedModelBackend(export / "saved_model", layout), meta)
    window = meta["window"]
    if settings.replay_test_period:
        params, start_ns = test_period_machine(run_dir)
    else:
        params, start_ns = SimulatorParams.demo(seed=settings.stream_seed + 101), None
    spec = StreamSpec(params, settings.hours, begin=window["begin"], shift=window["shift"],
                      pvs=tuple(scorer.filter_columns), start_ns=start_ns)
    hist = np.zeros(_BINS, np.int64)
    truth: dict[str, list] = {k: [] for k in ("labels", "scores", "alarms", "precursor", "onset",
                                                 "strength")}
    counts = dict(pulses=0, scored=0, alarms=0, false_alarms=0, normal=0, errant=0, caught=0,
                  unseen=0, skipped=0, unseen_normal=0, unseen_false_alarms=0, unseen_errant=0,
                  unseen_caught=0)
    marks = sorted(settings.marks)
    memory, sample = [], None
    score_s = gen_s = score_cpu_s = 0.0
    started = time.perf_counter()
    stream = iter(pulse_stream(spec, seed=settings.stream_seed))
    chunk_no = 0
    while True:
        t0 = time.perf_counter()
        chunk = next(stream, None)
        gen_s += time.perf_counter() - t0
        if chunk is None:
            break
        t0, c0 = time.perf_counter(), time.process_time()
        rows, skipped = scorer.score_file(f"stream/{chunk_no}", chunk.traces, chunk.timestamps_ns,
                                          chunk.alarms, chunk.settings, continues=True)
        score_s += time.perf_counter() - t0
        score_cpu_s += time.process_time() - c0
        chunk_no += 1
        if sample is None:
            sample = (chunk.traces[:], chunk.settings[:, : layout.n_settings])
        counts["pulses"] += len(chunk.timestamps_ns)
        counts["skipped"] += sum(n for _, n, _ in skipped)
        at = np.fromiter((row.pulse_in_file for row in rows), np.int64, len(rows))
        truth["labels"].append(chunk.labels[at])
        truth["scores"].append(np.fromiter((row.score for row in rows), np.float64, len(rows)))
        truth["alarms"].append(np.fromiter((row.alarm for row in rows), bool, len(rows)))
        for name in ("precursor", "onset", "strength"):
            truth[name].append(getattr(chunk, name)[at])
        for row in rows:
            counts["scored"] += 1
            hist[min(_BINS - 1, row.latency_ns // (_BIN_US * 1000))] += 1
            counts["alarms"] += row.alarm
            counts["unseen"] += bool(row.unseen_configuration)
            unseen = bool(row.unseen_configuration)
            if row.label == 0:
                counts["normal"] += 1
                counts["false_alarms"] += row.alarm
                counts["unseen_normal"] += unseen
                counts["unseen_false_alarms"] += row.alarm and unseen
            elif row.label == 1:
                counts["errant"] += 1
                counts["caught"] += row.alarm
                counts["unseen_errant"] += unseen
                counts["unseen_caught"] += row.alarm and unseen
        hours = counts["pulses"] / REAL_TIME_HZ / 3600.0
        while marks and hours >= marks[0] - 1e-9:
            rss, peak = resident_mb()
            memory.append({"hours": marks.pop(0), "rss_mb": rss, "peak_rss_mb": peak,
                           "pulses": counts["pulses"]})
    hours = counts["pulses"] / REAL_TIME_HZ / 3600.0
    result = {
        "hours_of_beam": hours, **counts, "generate_seconds": gen_s, "score_seconds": score_s,
        "wall_seconds": time.perf_counter() - started,
        "pulses_per_second": counts["scored"] / score_s if score_s else None,
        # CPU time of this process (all its threads): what a dedicated core would sustain, also
        # when other processes share the core (wall-clock figures then understate it)
        "score_cpu_seconds": score_cpu_s,
        "pulses_per_cpu_second": counts["scored"] / score_cpu_s if score_cpu_s else None,
        "real_time_ratio": counts["scored"] / score_s / REAL_TIME_HZ if score_s else None,
        "latency_p50_ms": _percentile(hist, 50), "latency_p99_ms": _percentile(hist, 99),
        "memory": memory,
        "false_alarms_per_hour": counts["false_alarms"] / hours if hours else None,
        "errant_caught": counts["caught"], "errant_pulses": counts["errant"],
        "recall": counts["caught"] / counts["errant"] if counts["errant"] else None,
        "threshold": scorer.threshold,
        "backend": f"{scorer.backend.name}"
                   f"{' (encode once)' if scorer.encode_once else ''}, one batched call per "
                   f"{spec.chunk_pulses}-pulse chunk",
        "machine": ("the run's own simulated machine, replayed on every pulse from the start of "
                    "its test period" if settings.replay_test_period
                    else "a demo machine of another seed"),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "online_recalibration": ("on: the live engine follows the run's threshold with "
                                 "analysis.recalibration.OnlineThreshold" if scorer.online
                                 else "off (threshold.online: false)"),
    }
    _require_scored(counts, hours, scorer.skipped)
    joined = {k: np.concatenate(v) for k, v in truth.items()}
    online = meta.get("online") or {}
    result["operating"] = operating.stream_figures(
        joined["labels"], joined["scores"], joined["alarms"] if scorer.online else None,
        scorer.threshold, precursor=joined["precursor"], onset=joined["onset"],
        strength=joined["strength"], target_per_hour=online.get("false_alarms_per_hour"))
    paths = {"saved_model serve_one (XLA)": lambda: SavedModelBackend(export / "saved_model",
                                                                      layout),
             **({"saved_model encode_and_score_one (XLA, references' features stored)":
                 lambda: SavedModelBackend(export / "saved_model", layout)}
                if scorer.encode_once else {}),
             "saved_model serving_default": lambda: _DefaultOne(export / "saved_model", layout),
             "litert float32": lambda: LiteRTBackend(export / "model_float32.tflite", layout),
             "litert int8": lambda: LiteRTBackend(export / "model_int8.tflite", layout)}
    result["paths"] = {}
    traces, settings_rows = sample
    n = settings.path_pulses  # the first chunk's pulses, cycled
    # the engine itself (settings, references, the model calls), both ways on the same pulses
    result["engine"] = {
        name: _engine_figures(lambda per_pulse=per_pulse, once=once: LiveScorer(
            SavedModelBackend(export / "saved_model", layout), meta, per_pulse=per_pulse,
            encode_once=once), spec, settings.stream_seed, n)
        for name, per_pulse, once in _ENGINE_VARIANTS
        if once is False or scorer.encode_once}
    for name, make in paths.items():
        try:
            backend = make()
        except Exception as exc:  # a missing artefact is reported, the others still run
            result["paths"][name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            continue
        raws = [_raw_inputs(traces, settings_rows, i, layout) for i in range(n)]
        score_one = backend.score_one
        if name.startswith("saved_model encode_and_score_one"):
            score_one = _encode_once_call(backend, traces, layout.n_references)
        for i in range(20):
            score_one(raws[i] | {"i": i})
        times, cpu = [], []
        for i, raw in enumerate(raws):
            raw = raw | {"i": i}
            t0, c0 = time.perf_counter_ns(), time.process_time_ns()
            score_one(raw)
            times.append(time.perf_counter_ns() - t0)
            cpu.append(time.process_time_ns() - c0)
        ms, cpu_ms = np.asarray(times) / 1e6, np.asarray(cpu) / 1e6
        result["paths"][name] = {"p50_ms": float(np.percentile(ms, 50)),
                                 "p99_ms": float(np.percentile(ms, 99)),
                                 "cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
                                 "cpu_p99_ms": float(np.percentile(cpu_ms, 99)), "n": n}
    out_json.write_text(json.dumps(result, indent=2))


def _require_scored(counts: dict, hours: float, skipped: Mapping[str, int]) -> None:
    """Stop with one line when the stream scored no pulse: there is then no rate, no threshold
    and no recall to report (a stream shorter than the first references take to arrive)."""
    if counts["scored"]:
        return
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(skipped.items())) or "none"
    raise SystemExit(f"benchmarks.stream: none of the {counts['pulses']} pulses of {hours:.4g} h "
                     f"was scored ({counts['skipped']} skipped: {reasons}); stream longer, past "
                     "the time the first references and settings take to arrive")


def test_period_machine(run_dir: Path):
    """(SimulatorParams of the run's simulated archive, start of its test period in ns): the
    stream then replays the same machine over the period the run was tested on."""
    import datetime as dt

    from enterprise_tools.simulator import SimulatorParams
    from parser.configs import load_config

    config = load_config(run_dir / "config.yaml")
    archive = Path(config.data.dataset_loc).parent
    stored = json.loads((archive / "simulation.json").read_text())["params"]
    params = SimulatorParams(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in stored.items()})
    start = json.loads((run_dir / "metrics.json").read_text())["splits"]["test"]["start"]
    moment = dt.datetime.strptime(start, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    return params, int(moment.timestamp()) * 1_000_000_000


_ENGINE_VARIANTS = (("per pulse, encode once", True, True),
                    ("per pulse, all-in-one serve_one", True, False),
                    ("per 60-pulse chunk, encode once", False, True),
                    ("per 60-pulse chunk, all-in-one serving_default", False, False))
ENGINE_P99_TARGET_MS = 0.5          # per pulse, one core, one TF thread (issue 21)
ENGINE_RATE_TARGET = 6000.0         # pulses per CPU second, 100x real time


def _engine_figures(make_scorer, spec, seed: int, n: int) -> dict:
    """`n` pulses of the stream through a fresh LiveScorer: per-pulse model latency (p50/p99,
    for a per-pulse engine: the pulse's own encode and score calls) and pulses per CPU second
    of the whole engine call (settings, references and model; the stream's generation not)."""
    from enterprise_tools.sns_stream import pulse_stream

    scorer = make_scorer()
    latencies: list[int] = []
    cpu_ns = scored = 0
    warm = False
    for chunk in pulse_stream(spec, seed=seed):
        c0 = time.process_time_ns()
        rows, _ = scorer.score_file("engine", chunk.traces, chunk.timestamps_ns, chunk.alarms,
                                    chunk.settings, continues=True)
        if warm:  # the first chunk with scores warms the functions up (XLA compiles)
            cpu_ns += time.process_time_ns() - c0
            latencies += [row.latency_ns for row in rows]
            scored += len(rows)
        warm = warm or bool(rows)
        if len(latencies) >= n:
            break
    ms = np.asarray(latencies or [0]) / 1e6
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "pulses_per_cpu_second": scored / (cpu_ns / 1e9) if cpu_ns else None,
            "n": len(latencies), "encode_once": scorer.encode_once,
            "per_pulse": scorer.per_pulse}


def _encode_once_call(backend, traces, n_references: int):
    """The deployed encode-once call for pulse `raw["i"]` (`encode_and_score_one`): encode it
    and score it with the stored features of the K pulses before it (the live buffer's,
    computed here beforehand)."""
    stored = backend.encode_batch(traces)
    m = len(traces)

    def call(raw: dict) -> float:
        i = raw["i"]
        references = np.stack([stored[(i - k) % m] for k in range(n_references, 0, -1)])
        return backend.encode_and_score_one(raw["trace"], references, raw["settings"])[0]
    return call


def _raw_inputs(traces, settings_rows, i: int, layout) -> dict:
    """Raw inputs of pulse `i` (cycled); a reference model also gets the K pulses before it,
    what the live ring buffer would hold for a steady configuration, and a history model the
    N pulses before it as its full history (a stream is one long file: `continues`)."""
    m = len(traces)
    raw = {"trace": traces[i % m], "settings": settings_rows[i % m]}
    if layout.n_references:
        raw["reference"] = np.stack([traces[(i - k) % m]  # oldest first, as the live rule
                                     for k in range(layout.n_references, 0, -1)])
    if layout.n_history:
        raw["history"] = np.stack([traces[(i - k) % m] for k in range(layout.n_history, 0, -1)])
        raw["history_count"] = np.float32(layout.n_history)
    return raw


class _DefaultOne:
    """SavedModel `serving_default` (no XLA) called with one pulse: the plain-graph path."""

    def __init__(self, path: Path, layout):
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))
        self._fn = self._loaded.signatures["serving_default"]
        self.layout = layout

    def score_one(self, raw: dict) -> float:
        tf = self._tf
        args = {n: tf.constant(np.asarray(raw[n], np.float32)[None]) for n in self.layout.names}
        return float(self._fn(**args)["score"].numpy()[0])


# ----------------------------------------------------------------------------------------------
# The section


def ensure_run(archive: Path, workdir: Path, epochs: int) -> Path:
    """A trained and exported run on `archive` under workdir/stream (reused when complete)."""
    from benchmarks.detection_models import bench_config
    from live.export import export_run
    from training.train import train
    from utils.run_folder import NoRunFoundError, newest_run

    root = workdir / "stream"
    config = bench_config(archive, root, [f"train.epochs={epochs}", "run.name=stream",
                                          f"data.cache_dir={workdir / 'cache'}"])
    try:
        run = newest_run(Path(config.run.output_dir))
        if not (run / "metrics.json").exists():  # not a finished run
            raise NoRunFoundError(str(run))
    except FileNotFoundError:  # NoRunFoundError included
        run = train(config, env={}, progress=False).run_dir
    if not (run / "export" / "serving.json").exists():
        export_run(run, ("saved_model", "litert"), progress=False)
    return run


def run(settings: StreamSettings, archive: Path, workdir: Path) -> dict:
    """Train/export (or reuse), then the pinned child; returns its figures and the run's."""
    started = time.perf_counter()
    run_dir = ensure_run(archive, workdir, settings.epochs)
    prepare_s = time.perf_counter() - started
    out_json = workdir / "stream.json"
    command = [sys.executable, "-m", "benchmarks.stream", "--child", str(out_json),
               "--run", str(run_dir), "--hours", str(settings.hours),
               "--marks", *[str(m) for m in settings.marks],
               "--path-pulses", str(settings.path_pulses)]
    if not settings.replay_test_period:
        command.append("--other-machine")
    pinned = run_cpu_child(command, "stream child", pin=True)
    result = json.loads(out_json.read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics.get("test") or {}
    far = test.get("false_alarm_rate")
    result["extrapolated"] = {
        "false_alarm_rate": far,
        "false_alarms_per_hour": test.get("false_alarms_per_hour"),
        "n_normal": test.get("n_normal"), "recall": test.get("recall"),
        "source": "the run's test part (sampled pulses), test flow: rate x 60 Hz x 3600",
    }
    result["parity"] = json.loads((run_dir / "export" / "parity.json").read_text())
    result["run"] = run_dir.name
    result["prepare_seconds"] = prepare_s
    result["pinned_with"] = "taskset -c 0" if pinned else "os.sched_setaffinity({0})"
    return result


def render(result: dict) -> str:
    """The stream section of docs/benchmarks.md."""
    r = result
    f = stats.format_number
    lines = [f"**Stream: {r['hours_of_beam']:.2f} h of 60 Hz beam, every pulse, through the "
             f"`--watch` path** ({r.get('machine', 'a demo machine of another seed')}; "
             f"{r['pinned_with']}, TF threads 1; backend {r['backend']}; "
             f"run {r['run']}):", ""]
    rows = [["pulses streamed / scored", f"{r['pulses']:,} / {r['scored']:,}"],
            ["sustained pulses / s (scoring only, wall clock)", f(r["pulses_per_second"], 0)
             + f" ({f(r['real_time_ratio'], 1)}x real time; target {TARGET_RATIO:g}x)"],
            ["pulses per CPU second (a dedicated core)", f(r.get("pulses_per_cpu_second"), 0)
             + f" ({f(stats.ratio(r.get('pulses_per_cpu_second'), REAL_TIME_HZ), 1)}x real time)"],
            ["chunk arrival to its scores, p50 / p99 ms (pulse-weighted)",
             f"{f(r['latency_p50_ms'], 1)} / {f(r['latency_p99_ms'], 1)} (a 60-pulse chunk = "
             "1 s of beam, scored in one call)"],
            ["generating the stream, s (not scoring)", f(r["generate_seconds"], 0)]]
    for m in r["memory"]:
        rows.append([f"resident memory at {m['hours']:.3g} h, MB (peak)",
                     f"{m['rss_mb']:.0f} ({m['peak_rss_mb']:.0f})"])
    ex = r["extrapolated"]
    rows += [["false alarms / hour, MEASURED on the stream",
              f"{f(r['false_alarms_per_hour'], 1)} ({r['false_alarms']} on {r['normal']:,} "
              "normal pulses)"],
             ["false alarms / hour, extrapolated by the test flow",
              f"{f(ex.get('false_alarms_per_hour'), 1)} (rate {f(ex.get('false_alarm_rate'), 4)} "
              f"on {ex.get('n_normal')} sampled normal pulses)"],
             ["errant pulses caught (stream)", f"{r['errant_caught']} / {r['errant_pulses']}"],
             ["pulses on unseen configurations", f"{r['unseen']:,}"],
             ["false-alarm rate on unseen / seen configurations",
              f"{f(stats.ratio(r.get('unseen_false_alarms'), r.get('unseen_normal')), 3)} / "
              f"{f(stats.ratio(r['false_alarms'] - r.get('unseen_false_alarms', 0), r['normal'] - r.get('unseen_normal', 0)), 3)}"],
             ["online recalibration", r["online_recalibration"]]]
    lines += [render_table(["stream", "value"], rows), ""]
    if "operating" in r:
        lines += [operating.render(r["operating"])]
    path_rows = []
    for name, p in r["paths"].items():
        if "error" in p:
            path_rows.append([name, "", "", p["error"], "", ""])
            continue
        path_rows.append([name, f(p["p50_ms"], 3), f(p["p99_ms"], 3),
                          stats.format_ratio(stats.ratio(p["p99_ms"], LATENCY_TARGET_P99_MS)),
                          f(p.get("cpu_p50_ms"), 3), f(p.get("cpu_p99_ms"), 3)])
    if "engine" in r:
        lines += [render_engine(r["engine"]), ""]
    parity = r["parity"]["formats"]
    lines += ["**Deployable paths, one pulse at a time on one core** "
              f"({r['paths'][next(iter(r['paths']))].get('n', '?')} pulses each):", "",
              render_table(["path", "p50 ms", "p99 ms", "p99 / 2 ms target", "CPU p50 ms",
                            "CPU p99 ms"], path_rows), "",
              "**Export parity on the run's test part** (`export/parity.json`):", "",
              render_table(["format", "max abs score diff", "PR AUC change", "bytes"],
                           [[k, v.get("error") or f"{v['max_abs_diff']:.2e}",
                             "" if v.get("delta_pr_auc") is None else f"{v['delta_pr_auc']:+.4f}",
                             f"{v.get('bytes', 0):,}"] for k, v in parity.items()]), ""]
    return "\n".join(lines)


def render_engine(engine: dict) -> str:
    """The live engine's cost each way, measured on the same pulses in one child."""
    f = stats.format_number
    rows = []
    for name, e in engine.items():
        rows.append([name, f(e["p50_ms"], 3) if e["per_pulse"] else "",
                     f(e["p99_ms"], 3) if e["per_pulse"] else "",
                     stats.format_ratio(stats.ratio(e["p99_ms"], ENGINE_P99_TARGET_MS))
                     if e["per_pulse"] else "",
                     f(e["pulses_per_cpu_second"], 0),
                     stats.format_ratio(stats.ratio(e["pulses_per_cpu_second"],
                                                    ENGINE_RATE_TARGET)), f"{e['n']:,}"])
    return "\n".join([
        "**The live engine, encode once against all-in-one** (same pulses, same child; "
        "p50/p99: the pulse's model calls; pulses per CPU second: the whole engine call, "
        f"settings and references included; targets p99 < {ENGINE_P99_TARGET_MS:g} ms, "
        f">= {ENGINE_RATE_TARGET:,.0f} pulses per CPU second):", "",
        render_table(["engine", "p50 ms", "p99 ms", "p99 / target", "pulses / CPU s",
                      "rate / target", "pulses"], rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pinned child of the stream benchmark")
    parser.add_argument("--child", type=Path, required=True, metavar="OUT_JSON")
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--hours", type=float, required=True)
    parser.add_argument("--marks", type=float, nargs="+", default=())
    parser.add_argument("--path-pulses", type=int, default=500)
    parser.add_argument("--other-machine", action="store_true",
                        help="stream a demo machine of another seed, not the run's test period")
    args = parser.parse_args(argv)
    child(args.child, args.run, StreamSettings(hours=args.hours, marks=tuple(args.marks),
                                               path_pulses=args.path_pulses,
                                               replay_test_period=not args.other_machine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
