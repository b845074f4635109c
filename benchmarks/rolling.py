"""Rolling-origin evaluation: can the figures choose a model, and does the threshold transfer?

One test period of a few hundred pulses cannot choose between models (PR AUC intervals of about
+-0.1). Here the archive's samples are cut into `B` contiguous time blocks of about equal sample
counts, never splitting one acquisition (DCM file); for each block `k >= 2` (0-based) every
model trains on the blocks before it - the newest `val_fraction` of that past validates (early
stopping and the threshold) - and is tested on block `k`, the next period it would run on.

Per block and model: PR AUC and ROC AUC with bootstrap intervals, recall and the achieved
false-alarm rate at the validation threshold against the target, and the same with the online
recalibration of `analysis.recalibration` where that module exists. Across blocks: a paired
bootstrap of the default model against every other model on identical test pulses (the
difference of PR AUC averaged over blocks, pulses resampled jointly within each block), and
recall at the target by precursor kind, strength and onset (truth.csv joined by timestamp).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import detection, leaky, peers, stats
from benchmarks.report import render_table
from parser.configs import ModelConfig

log = logging.getLogger("beamwatch.benchmarks.rolling")

DEFAULT_MODEL = ModelConfig().name  # the shipped default (configs/default.yaml)
NEURAL_MODELS = ("sns_cnn_lstm", "sns_cnn_lstm_trace_only", "sns_reference_cnn_lstm",
                 "sns_conditional_siamese")
REFERENCE_MODELS = ("sns_reference_cnn_lstm", "sns_conditional_siamese")
FIRST_TEST_BLOCK = 2  # 0-based: every fold trains on at least two blocks of the past


@dataclasses.dataclass(frozen=True)
class RollingSettings:
    """How much work the rolling evaluation does (see `suite.PROFILES`)."""

    n_blocks: int = 5
    last_folds: int | None = None  # evaluate only the newest this many test blocks (None: all)
    blocks: tuple[int, ...] | None = None  # evaluate only these test blocks (None: all)
    val_fraction: float = 0.25     # newest share of each fold's past that validates
    seeds: tuple[int, ...] = (0,)  # neural models; the peers are deterministic (seed 0)
    epochs: int = 15
    neural: tuple[str, ...] = NEURAL_MODELS
    peers: tuple[str, ...] = peers.PEERS
    minirocket_kernels: int = 10_000
    n_boot: int = 200
    recalibration_step: float = 0.05  # online_thresholds step, used only when it has no default
    leaky: bool = True
    max_train: int | None = None  # networks: at most this many training pulses (class ratio kept)


# ----------------------------------------------------------------------------------------------
# Blocks and folds


def _acquisition_order(timestamp_ns, acquisition) -> tuple[np.ndarray, np.ndarray]:
    """Acquisitions in order of their first pulse, and each one's sample indices (time order).

    Without `acquisition` (npz windows) every sample is its own acquisition.
    """
    ts = np.asarray(timestamp_ns, dtype=np.int64)
    acq = np.arange(ts.size) if acquisition is None else np.asarray(acquisition)
    ids, inverse = np.unique(acq, return_inverse=True)
    first = np.full(ids.size, np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, ts)
    rank = np.empty(ids.size, dtype=np.int64)
    rank[np.lexsort((ids, first))] = np.arange(ids.size)
    return rank[inverse], np.lexsort((ts, rank[inverse]))


def cut_blocks(timestamp_ns, acquisition, n_blocks: int) -> list[np.ndarray]:
    """`n_blocks` contiguous time blocks of about equal sample counts, acquisitions kept whole.

    Acquisitions are ordered by their first pulse; block `b` ends at the acquisition boundary
    closest to `n * (b + 1) / n_blocks` samples. Each block's indices are in
    time order. ValueError when a block would be empty (too few acquisitions).
    """
    if n_blocks < 1:
        raise ValueError(f"cut_blocks: n_blocks must be >= 1, got {n_blocks}")
    rank, order = _acquisition_order(timestamp_ns, acquisition)
    n = order.size
    sorted_rank = rank[order]
    # Positions where a new acquisition starts in `order`; a cut may only fall there.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_rank) != 0) + 1, n]
    cuts = [0]
    for b in range(1, n_blocks + 1):
        target = n * b / n_blocks
        cut = n if b == n_blocks else _nearest(starts, target)
        cuts.append(max(cut, cuts[-1]))
    blocks = [np.sort(order[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    empty = [i for i, block in enumerate(blocks) if block.size == 0]
    if empty:
        raise ValueError(
            f"cut_blocks: blocks {empty} of {n_blocks} are empty: {n} samples in "
            f"{int(sorted_rank.max()) + 1 if n else 0} acquisitions; use fewer blocks or a "
            "longer archive")
    return [block[np.argsort(np.asarray(timestamp_ns)[block], kind="stable")] for block in blocks]


def split_newest(indices, timestamp_ns, acquisition, fraction: float) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """(older, newest): the newest `fraction` of `indices` by count, acquisitions kept whole."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split_newest: fraction must be in (0, 1), got {fraction}")
    indices = np.asarray(indices, dtype=np.int64)
    acq = None if acquisition is None else np.asarray(acquisition)[indices]
    rank, order = _acquisition_order(np.asarray(timestamp_ns)[indices], acq)
    n = order.size
    sorted_rank = rank[order]
    starts = np.r_[np.flatnonzero(np.diff(sorted_rank) != 0) + 1, n]
    interior = starts[(starts > 0) & (starts < n)]
    if interior.size == 0:
        raise ValueError(f"split_newest: cannot cut {n} samples in "
                         f"{int(sorted_rank.max()) + 1 if n else 0} acquisitions at "
                         f"fraction {fraction}: one side would be empty")
    cut = _nearest(interior, n * (1.0 - fraction))
    return np.sort(indices[order[:cut]]), np.sort(indices[order[cut:]])


def _nearest(boundaries: np.ndarray, target: float) -> int:
    """The acquisition boundary closest to `target` (the earlier one on a tie)."""
    return int(boundaries[np.argmin(np.abs(boundaries - target))])


def make_folds(blocks: Sequence[np.ndarray], timestamp_ns, acquisition, *, val_fraction: float,
               last_folds: int | None = None) -> list[dict]:
    """One fold per test block `k >= FIRST_TEST_BLOCK`: train/val from blocks `< k`, test `k`.

    `last_folds` keeps only the newest folds (the quick profile). Index arrays are sorted by
    position; "test" is in time order (online recalibration walks it in order).
    """
    folds = []
    for k in range(FIRST_TEST_BLOCK, len(blocks)):
        past = np.concatenate(blocks[:k])
        train, val = split_newest(past, timestamp_ns, acquisition, val_fraction)
        folds.append({"block": k, "train": train, "val": val, "test": blocks[k]})
    if last_folds is not None:
        folds = folds[-last_folds:] if last_folds > 0 else []
    if not folds:
        raise ValueError(f"make_folds: no fold: {len(blocks)} blocks (a fold needs a test "
                         f"block at index >= {FIRST_TEST_BLOCK}), last_folds={last_folds}")
    return folds


# ----------------------------------------------------------------------------------------------
# Paired bootstrap


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (PR AUC) as scikit-learn computes it (ties share a threshold), fast.

    sum over distinct score thresholds of (recall step) x precision; NaN without errant pulses.
    """
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted)[last].astype(np.float64)
    if y.size == 0 or tps[-1] == 0:
        return float("nan")
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def paired_bootstrap(labels: Sequence[np.ndarray], scores_a: Sequence[Sequence[np.ndarray]],
                     scores_b: Sequence[Sequence[np.ndarray]], *, n_boot: int = 1000,
                     seed: int = 0, alpha: float = 0.05) -> dict:
    """PR AUC of A minus B, averaged over blocks, with a paired bootstrap interval.

    `labels[f]` are block f's test labels; `scores_a[f]` / `scores_b[f]` the scores of each
    seed of A / B on those same pulses (a model's PR AUC in a block is its mean over seeds).
    Each replicate resamples the pulses of every block with replacement, stratified by class
    (class counts kept), and scores both models on the same resampled pulses, so what the two
    share (hard and easy pulses) cancels. Returns `{"difference", "lo", "hi",
    "share_a_better", "n_boot", "blocks"}`.
    """
    if not (len(labels) == len(scores_a) == len(scores_b)) or not labels:
        raise ValueError("paired_bootstrap: labels, scores_a and scores_b need one entry per "
                         f"block, got {len(labels)}, {len(scores_a)}, {len(scores_b)}")
    ys = [np.asarray(y, dtype=np.int64) for y in labels]
    for f, (y, a, b) in enumerate(zip(ys, scores_a, scores_b, strict=True)):
        for name, runs in (("A", a), ("B", b)):
            if not runs or any(np.shape(r) != y.shape for r in runs):
                raise ValueError(f"paired_bootstrap: block {f}: model {name} needs >= 1 score "
                                 f"array of shape {y.shape}")

    def difference(rows: Sequence[np.ndarray]) -> float:
        per_block = []
        for y, a, b, idx in zip(ys, scores_a, scores_b, rows, strict=True):
            ap_a = np.mean([average_precision(y[idx], np.asarray(r)[idx]) for r in a])
            ap_b = np.mean([average_precision(y[idx], np.asarray(r)[idx]) for r in b])
            per_block.append(ap_a - ap_b)
        return float(np.mean(per_block))

    point = difference([np.arange(y.size) for y in ys])
    rng = np.random.default_rng(seed)
    groups = [[np.flatnonzero(y == c) for c in (0, 1) if np.any(y == c)] for y in ys]
    values = np.empty(int(n_boot))
    for i in range(int(n_boot)):
        rows = [np.concatenate([rng.choice(g, size=g.size, replace=True) for g in block])
                for block in groups]
        values[i] = difference(rows)
    values = values[np.isfinite(values)]
    lo, hi = (np.quantile(values, [alpha / 2, 1 - alpha / 2]) if values.size
              else (float("nan"), float("nan")))
    return {"difference": point, "lo": float(lo), "hi": float(hi),
            "share_a_better": float(np.mean(values > 0)) if values.size else None,
            "n_boot": int(n_boot), "blocks": len(ys)}


# ----------------------------------------------------------------------------------------------
# One archive


def _recalibration():
    """`analysis.recalibration.online_thresholds`, or None before that module is merged."""
    try:
        from analysis.recalibration import online_thresholds
    except ImportError:
        return None
    return online_thresholds


def _step_argument(recalibrate, step: float) -> dict:
    """`{"step": step}` unless `online_thresholds` has its own default step (then use that)."""
    import inspect

    parameter = inspect.signature(recalibrate).parameters.get("step")
    if parameter is not None and parameter.default is not inspect.Parameter.empty:
        return {}
    return {"step": step}


def fold_figures(labels, scores, threshold: float, *, target: float, n_boot: int, seed: int,
                 pulse_rate_hz: float, recalibrate=None, step: float = 0.05) -> dict:
    """Test figures of one model in one block: PR/ROC AUC (intervals), recall and achieved
    false-alarm rate at the validation threshold, and with online recalibration if given."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    figures = stats.scored_figures(y, s, threshold, pulse_rate_hz=pulse_rate_hz, n_boot=n_boot,
                                   seed=seed)
    figures.pop("metrics")
    normal = s[y == 0]
    figures["false_alarm_rate"] = float(np.mean(normal >= threshold)) if normal.size else None
    figures["target_false_alarm_rate"] = float(target)
    if recalibrate is not None:
        try:
            online = recalibrate(s, y, float(threshold), float(target), **_step_argument(
                recalibrate, step))
            alarms = np.asarray(online.alarms, dtype=bool)
            figures["online"] = {
                "recall": float(np.mean(alarms[y == 1])) if np.any(y == 1) else None,
                "false_alarm_rate": float(np.mean(alarms[y == 0])) if np.any(y == 0) else None,
                "final_threshold": float(np.asarray(online.thresholds)[-1]),
                **_step_argument(recalibrate, step)}
        except (TypeError, ValueError) as error:  # a contract mismatch is reported, not fatal
            figures["online"] = {"error": f"{type(error).__name__}: {error}"}
    return figures


def available_models(settings: RollingSettings, data: peers.PeerData) -> tuple[list, dict]:
    """(models to run, {model: why skipped}) for this archive and this code base."""
    from model import list_models

    registered = set(list_models())
    run, skipped = [], {}
    has_refs = data.has_references
    for name in settings.neural:
        if name not in registered:
            skipped[name] = "not a registered model in this code base"
        elif name in REFERENCE_MODELS and not has_refs:
            skipped[name] = "needs reference pulses; SampleSet.references absent or K = 0"
        else:
            run.append(name)
    for name in settings.peers:
        why = peers.unavailable(name, data)
        if why:
            skipped[name] = why
        else:
            run.append(name)
    for name, why in skipped.items():
        log.info("rolling: %s skipped: %s", name, why)
    return run, skipped


def run(archive: Path, workdir: Path, settings: RollingSettings, *, preset: str) -> dict:
    """Every available model on every fold of `archive`; the JSON-able result of one preset."""
    from analysis.thresholds import choose_threshold
    from data_preparation.pipeline import prepare_samples

    config = detection.bench_config(archive, workdir)
    started = time.perf_counter()
    samples = prepare_samples(config, progress=False)
    blocks = cut_blocks(samples.timestamp_ns, samples.acquisition, settings.n_blocks)
    folds = make_folds(blocks, samples.timestamp_ns, samples.acquisition,
                       val_fraction=settings.val_fraction, last_folds=settings.last_folds)
    if settings.blocks is not None:  # one slice of the work (benchmarks.device_rolling)
        folds = [f for f in folds if f["block"] in settings.blocks]
    truth = detection.load_truth(archive)
    edges = detection.strength_edges(truth)
    data = peers.PeerData(samples, config.model.input_pool)
    models, skipped = available_models(settings, data)
    recalibrate = _recalibration()
    target = config.threshold.target_false_alarm_rate
    rate = config.threshold.pulse_rate_hz
    out = {
        "preset": preset, "archive": str(archive), "samples": int(len(samples)),
        "prepare_seconds": time.perf_counter() - started,
        "n_blocks": settings.n_blocks, "val_fraction": settings.val_fraction,
        "blocks": [_part_summary(samples, b) for b in blocks],
        "folds": [{"block": f["block"], **{p: _part_summary(samples, f[p])
                                           for p in ("train", "val", "test")}} for f in folds],
        "target_false_alarm_rate": target, "pulse_rate_hz": rate, "n_boot": settings.n_boot,
        "seeds": list(settings.seeds), "epochs": settings.epochs,
        "strength_edges": edges, "skipped": skipped,
        "recalibration": ("analysis.recalibration.online_thresholds" if recalibrate
                          else "not available (analysis/recalibration.py absent)"),
        "models": {},
    }
    test_scores: dict[str, list[list[np.ndarray]]] = {}
    score_rows = []

    def evaluate(name: str) -> tuple[dict, list]:
        """One model on every fold: its record and its test scores per fold and seed."""
        neural = name in settings.neural
        seeds = settings.seeds if neural else (0,)
        per_fold, runs = [], []
        model_scores = []
        for fold in folds:
            parts = {p: fold[p] for p in ("train", "val", "test")}
            seed_figures, seed_scores = [], []
            for seed in seeds:
                log.info("rolling %s: %s block %d seed %d", preset, name, fold["block"], seed)
                fitted = _fit(name, neural, samples, data, parts, archive, workdir, settings,
                              seed, preset, fold["block"])
                val_idx, test_idx = fitted["indices"]["val"], fitted["indices"]["test"]
                choice = choose_threshold(samples.label[val_idx], fitted["scores"]["val"],
                                          method=config.threshold.operating_point,
                                          target_false_alarm_rate=target)
                y_test = samples.label[test_idx]
                figures = fold_figures(y_test, fitted["scores"]["test"], choice.threshold,
                                       target=target, n_boot=settings.n_boot, seed=seed,
                                       pulse_rate_hz=rate, recalibrate=recalibrate,
                                       step=settings.recalibration_step)
                joined = detection.join_truth(samples.timestamp_ns[test_idx], y_test, truth,
                                              edges)
                figures["breakdown"] = detection.recall_breakdown(
                    joined, fitted["scores"]["test"], choice.threshold)
                figures["validation"] = choice.to_dict()
                figures["seed"] = seed
                seed_figures.append(figures)
                seed_scores.append(np.asarray(fitted["scores"]["test"], dtype=np.float64))
                runs.append({k: v for k, v in fitted.items()
                             if k not in ("scores", "indices")}
                            | {"seed": seed, "block": fold["block"]})
                score_rows.append(pd.DataFrame({
                    "model": name, "block": fold["block"], "seed": seed,
                    "timestamp_ns": samples.timestamp_ns[test_idx], "label": y_test,
                    "score": fitted["scores"]["test"],
                    "alarm": (fitted["scores"]["test"] >= choice.threshold).astype(int)}))
            per_fold.append({"block": fold["block"], "seeds": seed_figures,
                             "summary": stats.combine_seeds(seed_figures)
                             | {"false_alarm_rate": stats.mean_spread(
                                 [f["false_alarm_rate"] for f in seed_figures])}})
            model_scores.append(seed_scores)
        return ({"kind": "neural" if neural else "peer", "folds": per_fold, "runs": runs,
                 "summary": summarize_model(per_fold, target)}, model_scores)

    for name in models:
        try:
            out["models"][name], test_scores[name] = evaluate(name)
        except Exception as error:  # noqa: BLE001  one broken model must not end a long run
            log.exception("rolling %s: %s failed", preset, name)
            skipped[name] = f"failed: {type(error).__name__}: {error}"
    out["paired"] = paired_comparisons(out, test_scores, [samples.label[f["test"]]
                                                          for f in folds], settings)
    if settings.leaky:
        out["leaky"] = leaky.compare(data.features("pulse"), data.labels, folds,
                                     smote_ratio=config.scaling.smote_ratio, seed=0)
    out["peer_data_seconds"] = dict(data.seconds)
    score_rows = [rows for rows in score_rows if rows["model"].iloc[0] in out["models"]]
    if score_rows:
        _save_scores(workdir / "scores" / f"rolling-{preset}.csv", pd.concat(score_rows))
    return out


def _fit(name, neural, samples, data, parts, archive, workdir, settings, seed, preset, block):
    if neural:
        cfg = detection.bench_config(archive, workdir, [*detection.model_overrides(
            name, settings.epochs), f"run.seed={seed}"])
        return detection.fit_neural(samples, parts, cfg,
                                    workdir / "runs" / f"rolling-{preset}-{name}-b{block}-s{seed}",
                                    max_train=settings.max_train)
    return peers.fit_score(name, data, parts, seed, n_kernels=settings.minirocket_kernels)


def _part_summary(samples, idx) -> dict:
    idx = np.asarray(idx)
    return {"n": int(idx.size), "n_errant": int(np.sum(samples.label[idx] == 1)),
            "start_ns": int(samples.timestamp_ns[idx].min()) if idx.size else None,
            "end_ns": int(samples.timestamp_ns[idx].max()) if idx.size else None}


def summarize_model(per_fold: list[dict], target: float) -> dict:
    """Across blocks: mean and spread of the per-block figures (each a mean over seeds)."""
    def values(key):
        return [f["summary"][key]["mean"] for f in per_fold]

    fars = values("false_alarm_rate")
    out = {key: stats.mean_spread(values(key)) for key in ("pr_auc", "roc_auc", "recall",
                                                            "false_alarm_rate")}
    out["blocks"] = len(per_fold)
    out["blocks_far_over_2x_target"] = int(sum(v is not None and v > 2 * target for v in fars))
    online = [s.get("online", {}) for f in per_fold for s in f["seeds"]]
    if online and all("recall" in o for o in online):
        out["online_recall"] = stats.mean_spread([o["recall"] for o in online])
        out["online_false_alarm_rate"] = stats.mean_spread([o["false_alarm_rate"]
                                                            for o in online])
    return out


def paired_comparisons(result: dict, test_scores: dict, labels: list[np.ndarray],
                       settings: RollingSettings) -> dict:
    """The default model against every other model (paired bootstrap), and which peer is best."""
    if DEFAULT_MODEL not in test_scores:
        return {"note": f"{DEFAULT_MODEL} did not run; no paired comparison"}
    others = {name: result["models"][name]["summary"]["pr_auc"]["mean"]
              for name in test_scores if name != DEFAULT_MODEL}
    if not others:
        return {"note": "no other model ran"}
    best = max(others, key=lambda n: -1.0 if others[n] is None else others[n])
    comparisons = {name: paired_bootstrap(labels, test_scores[DEFAULT_MODEL], test_scores[name],
                                          n_boot=settings.n_boot, seed=0)
                   for name in others}
    out = {"default": DEFAULT_MODEL, "best_peer": best, "against": comparisons}
    # Each other network against the best peer too (which network a new default should be).
    peer_scores = {n: v for n, v in others.items() if result["models"][n]["kind"] == "peer"}
    if peer_scores:
        best_peer = max(peer_scores, key=lambda n: -1.0 if peer_scores[n] is None else peer_scores[n])
        out["networks_vs_best_peer"] = {
            name: {"peer": best_peer, **paired_bootstrap(labels, test_scores[name],
                                                         test_scores[best_peer],
                                                         n_boot=settings.n_boot, seed=0)}
            for name in test_scores
            if result["models"][name]["kind"] == "neural" and name != DEFAULT_MODEL}
    return out


def _save_scores(path: Path, frame: pd.DataFrame) -> None:
    from utils.run_folder import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, frame.to_csv(index=False))


# ----------------------------------------------------------------------------------------------
# Tables


def _num(value, digits: int = 3) -> str:
    return stats.format_number(value, digits)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _interval(cell: dict, digits: int = 3) -> str:
    return f"{_num(cell.get('mean'), digits)} {stats.format_interval(cell.get('lo'), cell.get('hi'), digits)}".strip()


def render(results: dict) -> str:
    """Markdown for the rolling section: `results` maps preset -> `run` result."""
    lines = ["### Rolling-origin evaluation", ""]
    ran = {}
    for preset, result in results.items():
        if "skipped" in result and "models" not in result:
            lines += [f"#### Preset `{preset}`: not run ({result['skipped']})", ""]
            continue
        ran[preset] = result
        lines += render_preset(preset, result) + [""]
    lines += render_choice(ran)
    return "\n".join(lines)


def render_preset(preset: str, result: dict) -> list[str]:
    target = result["target_false_alarm_rate"]
    folds = result["folds"]
    lines = [
        f"#### Preset `{preset}`: archive `{Path(result['archive']).name}`",
        "",
        f"{result['samples']} samples cut into {result['n_blocks']} time blocks ("
        + ", ".join(f"{b['n']} / {b['n_errant']} errant" for b in result["blocks"])
        + f"); {len(folds)} test blocks, each trained on the blocks before it (newest "
        f"{result['val_fraction']:.0%} of that past validates). Threshold chosen on validation "
        f"at false-alarm rate {target}; intervals: bootstrap 95 % over the block's test pulses "
        f"({result['n_boot']} resamples), the mean of the seeds' intervals. Neural models: seeds "
        f"{', '.join(map(str, result['seeds']))}, up to {result['epochs']} epochs. Online "
        f"recalibration: {result['recalibration']}.",
        "",
    ]
    if result["skipped"]:
        lines += ["Not run: " + "; ".join(f"`{k}` ({v})" for k, v in result["skipped"].items())
                  + ".", ""]
    hour = result["pulse_rate_hz"] * 3600.0  # false alarms per hour -> rate
    headers = ["model", "block", "PR AUC", "ROC AUC", "recall", "false-alarm rate (target "
               f"{_pct(target)})", "online recall", "online FAR"]
    rows = []
    for name, model in result["models"].items():
        for fold in model["folds"]:
            s = fold["summary"]
            online = [x.get("online", {}) for x in fold["seeds"]]
            rec = [o.get("recall") for o in online if "recall" in o]
            far = [o.get("false_alarm_rate") for o in online if "false_alarm_rate" in o]
            per_hour = s["false_alarms_per_hour"]
            far_ci = stats.format_interval(*(None if v is None else 100 * v / hour
                                             for v in (per_hour["lo"], per_hour["hi"])), 1)
            rows.append([name, str(fold["block"]), _interval(s["pr_auc"]), _interval(s["roc_auc"]),
                         _interval(s["recall"]),
                         f"{_pct(s['false_alarm_rate']['mean'])} {far_ci}".strip(),
                         _pct(float(np.mean(rec))) if rec else "",
                         _pct(float(np.mean(far))) if far else ""])
    lines += [render_table(headers, rows, align="lrrrrrrr"), ""]
    headers = ["model", "blocks", "PR AUC mean ± s.d. over blocks", "ROC AUC", "recall",
               "false-alarm rate", f"blocks with FAR > {_pct(2 * target)}", "train s (mean)"]
    rows = []
    for name, model in sorted(result["models"].items(),
                              key=lambda kv: -(kv[1]["summary"]["pr_auc"]["mean"] or -1)):
        s = model["summary"]
        rows.append([name, str(s["blocks"]), stats.format_mean_spread(s["pr_auc"]),
                     stats.format_mean_spread(s["roc_auc"]), stats.format_mean_spread(s["recall"]),
                     _pct(s["false_alarm_rate"]["mean"]),
                     f"{s['blocks_far_over_2x_target']} of {s['blocks']}",
                     _num(np.mean([r["train_seconds"] for r in model["runs"]]), 1)])
    lines += [render_table(headers, rows, align="lrrrrrrr"), ""]
    lines += _render_paired(result) + [""]
    lines += _render_breakdown(result) + [""]
    if "leaky" in result:
        lines += leaky.render(result["leaky"]) + [""]
    return lines


def _render_paired(result: dict) -> list[str]:
    paired = result.get("paired", {})
    if "against" not in paired:
        return [f"Paired bootstrap: {paired.get('note', 'not run')}."]
    rows = []
    for name, c in sorted(paired["against"].items(), key=lambda kv: kv[1]["difference"]):
        verdict = ("default better" if c["lo"] > 0 else "other better" if c["hi"] < 0
                   else "not distinguishable")
        rows.append([name + (" (best peer)" if name == paired["best_peer"] else ""),
                     f"{c['difference']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}]",
                     _num(c["share_a_better"], 2), verdict])
    return [f"Paired bootstrap, `{paired['default']}` minus each other model: PR AUC averaged "
            "over the test blocks, pulses resampled jointly (stratified) within each block:", "",
            render_table(["other model", "PR AUC difference [95 %]", "share of replicates "
                          "default better", "reading"], rows, align="lrrl")]


def _render_breakdown(result: dict) -> list[str]:
    groups = {"by_kind": "kind", "by_strength": "strength", "by_onset": "onset"}
    keys = {g: set() for g in groups}
    for model in result["models"].values():
        for fold in model["folds"]:
            for s in fold["seeds"]:
                for g in groups:
                    keys[g] |= set(s["breakdown"].get(g, {}))
    order = {"by_kind": sorted(keys["by_kind"]),
             "by_strength": [b for b in detection.STRENGTH_BINS if b in keys["by_strength"]],
             "by_onset": sorted(keys["by_onset"], key=lambda k: int(k.lstrip(">=")))}
    headers = ["model"] + [f"{groups[g]} {k}" for g in groups for k in order[g]]
    rows = []
    for name, model in result["models"].items():
        row = [name]
        for g in groups:
            for key in order[g]:
                cells = [s["breakdown"].get(g, {}).get(key) for f in model["folds"]
                         for s in f["seeds"]]
                caught = sum(c["caught"] for c in cells if c)
                total = sum(c["total"] for c in cells if c)
                row.append(f"{caught}/{total} ({_num(stats.ratio(caught, total), 2)})"
                           if total else "")
        rows.append(row)
    onset_note = ("" if keys["by_onset"] else " (truth.csv has no `precursor_onset`: no onset "
                  "columns)")
    return ["Recall at the validation threshold by precursor kind, strength tertile and onset "
            f"(pulses before the trip), test trips summed over blocks and seeds{onset_note}:", "",
            render_table(headers, rows)]


def render_choice(results: dict) -> list[str]:
    """"Choosing the default model": the comparison the figures support, stated per preset."""
    lines = ["### Choosing the default model", ""]
    for preset, result in results.items():
        paired = result.get("paired", {})
        if "against" not in paired:
            lines.append(f"- `{preset}`: {paired.get('note', 'no comparison')}.")
            continue
        best = paired["best_peer"]
        c = paired["against"][best]
        default = result["models"][paired["default"]]["summary"]
        peer = result["models"][best]["summary"]
        if c["lo"] > 0:
            reading = "the default is better than the best other model on this preset"
        elif c["hi"] < 0:
            reading = f"`{best}` is better than the default (the interval excludes 0)"
        else:
            reading = "the two cannot be told apart on these blocks"
        lines.append(
            f"- `{preset}`: default `{paired['default']}` PR AUC "
            f"{stats.format_mean_spread(default['pr_auc'])} over {default['blocks']} blocks "
            f"(false-alarm rate {_pct(default['false_alarm_rate']['mean'])}, target "
            f"{_pct(result['target_false_alarm_rate'])}); best other model `{best}` "
            f"{stats.format_mean_spread(peer['pr_auc'])} (false-alarm rate "
            f"{_pct(peer['false_alarm_rate']['mean'])}). Paired difference default minus "
            f"`{best}`: {c['difference']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}]: {reading}.")
    return lines
