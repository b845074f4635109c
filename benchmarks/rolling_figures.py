"""Rolling-origin evaluation, part 2: the statistics across blocks and seeds (PR AUC, paired
bootstrap, per-block figures with online recalibration, per-model summaries and comparisons)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks import stats
from parser.configs import ModelConfig

DEFAULT_MODEL = ModelConfig().name  # the shipped default (configs/default.yaml)


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


def recalibration_function():
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


def fold_record(block: int, seed_figures: list[dict]) -> dict:
    """One model's record on one test block: each seed's `fold_figures` and their mean +-
    spread (the false-alarm rate at the validation threshold included)."""
    return {"block": block, "seeds": seed_figures,
            "summary": stats.combine_seeds(seed_figures)
            | {"false_alarm_rate": stats.mean_spread([f["false_alarm_rate"]
                                                      for f in seed_figures])}}


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
                       n_boot: int) -> dict:
    """The default model against every other model (paired bootstrap), and which peer is best."""
    if DEFAULT_MODEL not in test_scores:
        return {"note": f"{DEFAULT_MODEL} did not run; no paired comparison"}
    others = {name: result["models"][name]["summary"]["pr_auc"]["mean"]
              for name in test_scores if name != DEFAULT_MODEL}
    if not others:
        return {"note": "no other model ran"}
    best = max(others, key=lambda n: -1.0 if others[n] is None else others[n])
    comparisons = {name: paired_bootstrap(labels, test_scores[DEFAULT_MODEL], test_scores[name],
                                          n_boot=n_boot, seed=0)
                   for name in others}
    out = {"default": DEFAULT_MODEL, "best_peer": best, "against": comparisons}
    # Each other network against the best peer too (which network a new default should be).
    peer_scores = {n: v for n, v in others.items() if result["models"][n]["kind"] == "peer"}
    if peer_scores:
        best_peer = max(peer_scores, key=lambda n: -1.0 if peer_scores[n] is None else peer_scores[n])
        out["networks_vs_best_peer"] = {
            name: {"peer": best_peer, **paired_bootstrap(labels, test_scores[name],
                                                         test_scores[best_peer],
                                                         n_boot=n_boot, seed=0)}
            for name in test_scores
            if result["models"][name]["kind"] == "neural" and name != DEFAULT_MODEL}
    return out

