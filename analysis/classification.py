"""Classification metrics for any number of classes, from labels and class probabilities.

`classification_metrics` gives what metrics.json stores per part: accuracy, balanced accuracy,
macro and weighted F1, per-class precision/recall/F1/support, the n x n confusion matrix (rows:
true class, columns: predicted class) and per-class one-vs-rest ROC AUC and PR AUC (average
precision). Works on arrays only; the flows decide the predicted classes (argmax, or the binary
threshold chosen on validation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_probabilities(outputs) -> np.ndarray:
    """Model outputs -> [n, k] class probabilities; one sigmoid column becomes [1 - s, s]."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1 or out.shape[1] == 1:
        score = out.reshape(-1)
        return np.stack([1.0 - score, score], axis=1)
    return out


def predicted_classes(probabilities, threshold: float | None = None) -> np.ndarray:
    """Argmax, or for two classes with a threshold: class 1 when its probability >= threshold."""
    probabilities = np.asarray(probabilities)
    if threshold is not None and probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= threshold).astype(np.int64)
    return np.argmax(probabilities, axis=1).astype(np.int64)


def _safe_div(a: float, b: float) -> float | None:
    return None if b == 0 else float(a) / float(b)


def confusion_matrix(labels, predicted, n_classes: int) -> np.ndarray:
    """[n_classes, n_classes] counts, rows true class, columns predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def _one_vs_rest_auc(positive: np.ndarray, score: np.ndarray) -> tuple[float | None, float | None]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if positive.all() or not positive.any():
        return None, None
    return float(roc_auc_score(positive, score)), float(average_precision_score(positive, score))


def classification_metrics(labels, probabilities, class_names: Sequence[str],
                           threshold: float | None = None) -> dict:
    """The metrics of one part (see the module docstring); `threshold` only for two classes."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = as_probabilities(probabilities)
    k = len(class_names)
    if probabilities.shape != (labels.size, k):
        raise ValueError(f"classification_metrics: probabilities have shape {probabilities.shape}, "
                         f"expected ({labels.size}, {k}) for {k} classes.")
    predicted = predicted_classes(probabilities, threshold)
    matrix = confusion_matrix(labels, predicted, k)
    support = matrix.sum(axis=1)
    per_class, recalls, f1s = {}, [], []
    for c, name in enumerate(class_names):
        tp = int(matrix[c, c])
        precision = _safe_div(tp, int(matrix[:, c].sum()))
        recall = _safe_div(tp, int(support[c]))
        f1 = (0.0 if not precision or not recall
              else 2 * precision * recall / (precision + recall))
        roc_auc, pr_auc = _one_vs_rest_auc(labels == c, probabilities[:, c])
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1,
                           "support": int(support[c]), "roc_auc": roc_auc, "pr_auc": pr_auc}
        if support[c]:
            recalls.append(recall)
        if support[c] or matrix[:, c].sum():  # as scikit-learn: classes seen or predicted
            f1s.append(f1)
    n = int(labels.size)
    weighted = (sum(per_class[name]["f1"] * support[c] for c, name in enumerate(class_names))
                / n if n else None)
    return {
        "n": n,
        "accuracy": _safe_div(int(np.trace(matrix)), n),
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "weighted_f1": None if weighted is None else float(weighted),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
        "threshold": threshold,
    }


def accuracy_interval(metrics: dict, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson interval of a part's accuracy (correct = the confusion matrix's diagonal)."""
    from analysis.intervals import wilson_interval

    matrix = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    return wilson_interval(int(np.trace(matrix)), int(matrix.sum()), level)


def compare_with_peer(network: dict, peer: dict, peer_name: str) -> dict:
    """The network and its peer on one part, side by side: accuracy with its 95 % Wilson
    interval, balanced accuracy and macro F1 of each, which is ahead, and one plain sentence."""
    sides = {}
    for who, m in (("network", network), ("peer", peer)):
        sides[who] = {"accuracy": m["accuracy"], "accuracy_interval": accuracy_interval(m),
                      "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"]}
    net, other = sides["network"], sides["peer"]
    gap = (other["accuracy"] or 0.0) - (net["accuracy"] or 0.0)
    lo_n, hi_n = net["accuracy_interval"] or (0.0, 1.0)
    lo_p, hi_p = other["accuracy_interval"] or (0.0, 1.0)
    apart = lo_p > hi_n or lo_n > hi_p
    figures = (f"accuracy {other['accuracy']:.3f} [{lo_p:.3f}, {hi_p:.3f}] (peer) against "
               f"{net['accuracy']:.3f} [{lo_n:.3f}, {hi_n:.3f}] (network), {network['n']} samples")
    chance = ("the 95 % intervals do not overlap" if apart else
              "the 95 % intervals overlap, so the gap may be chance")
    if gap > 0:
        winner = "peer"
        verdict = f"The simple peer ({peer_name}) beats the network: {figures}; {chance}."
    elif gap < 0:
        winner = "network"
        verdict = f"The network beats the simple peer ({peer_name}): {figures}; {chance}."
    else:
        winner = "tie"
        verdict = f"The network and the simple peer ({peer_name}) tie: {figures}."
    return {"peer_name": peer_name, "network": net, "peer": other,
            "accuracy_gap_peer_minus_network": gap, "ahead": winner,
            "intervals_overlap": not apart, "verdict": verdict}
