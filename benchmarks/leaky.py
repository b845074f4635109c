"""How much the public prototype's evaluation recipe overstates, on the same archive.

The prototype (aj-broderick/SNS_Anomaly_Detection) applied SMOTE to the WHOLE data set, then
split it at random and tested on the resampled test part. Three leaks at once: synthetic errant
pulses interpolated between two real ones land on both sides of the split (the test "pulses"
are mixtures of training pulses), neighbouring pulses of one period land on both sides, and the
test part's class mix is SMOTE's, not the beam's. Here the same cheap model (standardised
hand-made features plus settings, logistic regression) is scored three ways:

* `leaky`: SMOTE on everything, stratified random split, test on the resampled test part;
* `random_split`: stratified random split of the real pulses, SMOTE on the training part only
  (isolates the random-split leak);
* `honest`: the rolling folds (train on the past, SMOTE on that training part only, test on
  the next block of real pulses), averaged over blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks import stats
from benchmarks.report import render_table

RECIPES = ("leaky", "random_split", "honest")
TEST_FRACTION = 0.2  # the prototype held out 20 %


def _model():
    from training.peers import logistic_model

    return logistic_model()


def _smote(x, y, ratio: float, seed: int):
    from data_preparation.imbalance import smote

    return smote(np.asarray(x, dtype=np.float64), np.asarray(y), ratio, seed)


def _stratified_split(y, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        n_test = max(1, int(round(rows.size * test_fraction)))
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _scores(model, x_train, y_train, x_test) -> np.ndarray:
    model.fit(x_train, y_train)
    return model.predict_proba(x_test)[:, 1]


def _figures(y, s) -> dict:
    from benchmarks.rolling_figures import average_precision

    y = np.asarray(y, dtype=np.int64)
    return {"pr_auc": average_precision(y, s), "roc_auc": float(roc_auc_score(y, s)),
            "prevalence": float(np.mean(y)), "n": int(y.size)}


def leaky_recipe(x, y, *, smote_ratio: float, seed: int, model_factory: Callable = _model,
                 test_fraction: float = TEST_FRACTION) -> dict:
    """The prototype's recipe: SMOTE on all rows, random split, test on the resampled part."""
    xs, ys = _smote(x, y, smote_ratio, seed)
    train, test = _stratified_split(ys, test_fraction, seed)
    return _figures(ys[test], _scores(model_factory(), xs[train], ys[train], xs[test]))


def random_split_recipe(x, y, *, smote_ratio: float, seed: int, model_factory: Callable = _model,
                        test_fraction: float = TEST_FRACTION) -> dict:
    """Random split of the real rows; SMOTE on the training rows only; real test rows."""
    y = np.asarray(y)
    train, test = _stratified_split(y, test_fraction, seed)
    xs, ys = _smote(np.asarray(x)[train], y[train], smote_ratio, seed)
    return _figures(y[test], _scores(model_factory(), xs, ys, np.asarray(x)[test]))


def honest_recipe(x, y, folds: Sequence[dict], *, smote_ratio: float, seed: int,
                  model_factory: Callable = _model) -> dict:
    """Train on each fold's past (train + val: no threshold needed), SMOTE there only, test on
    the next block; figures averaged over blocks."""
    x, y = np.asarray(x), np.asarray(y)
    per_block = []
    for fold in folds:
        past = np.concatenate([fold["train"], fold["val"]])
        xs, ys = _smote(x[past], y[past], smote_ratio, seed)
        per_block.append(_figures(y[fold["test"]],
                                  _scores(model_factory(), xs, ys, x[fold["test"]])))
    return {key: float(np.mean([b[key] for b in per_block]))
            for key in ("pr_auc", "roc_auc", "prevalence")} | {
        "n": int(sum(b["n"] for b in per_block)), "blocks": len(per_block)}


def compare(x, y, folds: Sequence[dict], *, smote_ratio: float, seed: int = 0,
            model_factory: Callable = _model) -> dict:
    """The three recipes on the same rows: `{"recipes": {name: figures}, "overstatement"}`."""
    recipes = {
        "leaky": leaky_recipe(x, y, smote_ratio=smote_ratio, seed=seed,
                              model_factory=model_factory),
        "random_split": random_split_recipe(x, y, smote_ratio=smote_ratio, seed=seed,
                                            model_factory=model_factory),
        "honest": honest_recipe(x, y, folds, smote_ratio=smote_ratio, seed=seed,
                                model_factory=model_factory),
    }
    return {"model": "logistic regression on hand-made features + settings",
            "smote_ratio": smote_ratio, "recipes": recipes,
            "overstatement_pr_auc": recipes["leaky"]["pr_auc"] - recipes["honest"]["pr_auc"]}


def render(result: dict) -> list[str]:
    labels = {"leaky": "prototype recipe: SMOTE on all data, random split, resampled test",
              "random_split": "random split of real pulses, SMOTE on training only",
              "honest": "rolling time blocks, SMOTE on training only, real future pulses"}
    rows = [[labels[name], stats.format_number(r["pr_auc"]), stats.format_number(r["roc_auc"]),
             stats.format_number(r["prevalence"]), str(r["n"])]
            for name, r in result["recipes"].items()]
    return [f"Leaky against honest evaluation ({result['model']}, SMOTE ratio "
            f"{result['smote_ratio']}): the prototype's recipe overstates PR AUC by "
            f"{result['overstatement_pr_auc']:+.3f} on this archive.", "",
            render_table(["recipe", "PR AUC", "ROC AUC", "errant share of test rows",
                          "test rows"], rows, align="lrrrr")]
