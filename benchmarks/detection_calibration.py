"""Detection benchmark, part 3: simulator calibration checks on a detection result (is the
simulated task neither trivial nor hopeless?)."""

from __future__ import annotations

from benchmarks import stats

# Calibration: what "clearly below" means for the simulator checks (PR AUC points).
CLEAR_MARGIN = 0.05
WEAK_RECALL_MAX = 0.8     # weak precursors caught less often than this: not trivial
STRONG_RECALL_MIN = 0.5   # strong precursors caught at least this often: not hopeless


def _pr(result: dict, name: str) -> dict | None:
    model = result["models"].get(name)
    return None if model is None else model["summary"]["pr_auc"]


def _pooled_bin(model: dict, bin_name: str) -> dict | None:
    caught = total = 0
    for seed in model["seeds"]:
        cell = seed["breakdown"]["by_strength"].get(bin_name)
        if cell:
            caught, total = caught + cell["caught"], total + cell["total"]
    return {"caught": caught, "total": total, "recall": stats.ratio(caught, total)} if total else None


def calibration_checks(result: dict) -> list[dict]:
    """Is the simulated task neither trivial nor hopeless? One dict per check, with the figures."""
    checks = []
    neural = [n for n in ("sns_cnn_lstm", "sns_cnn_lstm_trace_only", "sns_prototype")
              if n in result["models"]]
    if not neural:
        return checks
    best = max(neural, key=lambda n: _pr(result, n)["mean"] or -1.0)
    weak = _pooled_bin(result["models"][best], "weak")
    strong = _pooled_bin(result["models"][best], "strong")
    if weak is not None:
        checks.append({
            "check": f"weak precursors not trivial ({best})",
            "figure": f"weak-bin recall {weak['caught']}/{weak['total']} = "
                      f"{stats.format_number(weak['recall'])}",
            "criterion": f"< {WEAK_RECALL_MAX}", "passed": weak["recall"] < WEAK_RECALL_MAX})
    if strong is not None:
        checks.append({
            "check": f"strong precursors learnable ({best})",
            "figure": f"strong-bin recall {strong['caught']}/{strong['total']} = "
                      f"{stats.format_number(strong['recall'])}",
            "criterion": f">= {STRONG_RECALL_MIN}",
            "passed": strong["recall"] >= STRONG_RECALL_MIN})
    ceiling = result["models"][best]["seeds"][0]["breakdown"]["ceiling"]["share"]
    recall = result["models"][best]["summary"]["recall"]["mean"]
    if ceiling is not None and recall is not None:
        checks.append({
            "check": f"overall recall below the ceiling ({best})",
            "figure": f"recall {stats.format_number(recall)} vs ceiling "
                      f"{stats.format_number(ceiling)}",
            "criterion": "recall < ceiling", "passed": recall < ceiling})
    for other, label in (("hist_gradient_boosting", "feature baseline clearly below best model"),
                         ("sns_cnn_lstm_trace_only", "trace-only clearly below settings-aware")):
        reference = best if other != "sns_cnn_lstm_trace_only" else "sns_cnn_lstm"
        a, b = _pr(result, reference), _pr(result, other)
        if a is None or b is None or a["mean"] is None or b["mean"] is None or other == reference:
            continue
        gap = a["mean"] - b["mean"]
        checks.append({
            "check": label,
            "figure": f"PR AUC {reference} {stats.format_number(a['mean'])} vs {other} "
                      f"{stats.format_number(b['mean'])} (gap {gap:+.3f})",
            "criterion": f"gap >= {CLEAR_MARGIN}", "passed": gap >= CLEAR_MARGIN})
    return checks
