"""The test report's deployment figures: export parity and recall / false alarms on pulses the
unseen-configuration detector flags, from plain dicts and arrays (the files are read elsewhere)."""

from __future__ import annotations

import numpy as np

from analysis.unseen import UnseenDetector


def deployment_figures(serving: dict, parity: dict | None, settings, labels, scores,
                       threshold: float) -> dict:
    """`parity` (parity.json's "formats", when there is one) and, when the export carries an
    unseen-configuration detector and the pulses have settings, its flags and the fixed
    threshold's recall / false-alarm rate on flagged and unflagged pulses.

    `serving` is the export's serving.json; `settings` the raw settings [n, S] of the scored
    pulses (model feature order), `labels` and `scores` theirs.
    """
    out: dict = {}
    if parity is not None:
        out["parity"] = parity
    unseen = serving.get("unseen_configuration")
    settings = np.asarray(settings, dtype=np.float32)
    if unseen and settings.ndim == 2 and settings.shape[1]:
        center = np.asarray(serving["scaling"]["settings"]["center"], np.float64)
        scale = np.asarray(serving["scaling"]["settings"]["scale"], np.float64)
        detector = UnseenDetector.from_dict(unseen)
        flags = detector.flags((settings.astype(np.float64) - center) / scale)
        labels, alarms = np.asarray(labels), np.asarray(scores) >= threshold

        def rates(mask):
            errant, normal = mask & (labels == 1), mask & (labels == 0)
            return {"n": int(mask.sum()), "n_errant": int(errant.sum()),
                    "recall": float(alarms[errant].mean()) if errant.any() else None,
                    "false_alarm_rate": float(alarms[normal].mean()) if normal.any() else None}

        out["unseen_configuration"] = {"radius": detector.radius, "flagged": rates(flags),
                                       "unflagged": rates(~flags), "flags": flags}
    return out


def deployment_notes(summary: dict | None) -> list[str]:
    """Report lines for `deployment_figures` output (empty without an export)."""
    if not summary:
        return []
    notes = []
    for name, entry in summary.get("parity", {}).items():
        if "error" in entry:
            notes.append(f"Deployment: {name}: {entry['error']}")
        else:
            notes.append(f"Deployment: {name} ({entry['bytes']:,} bytes) max |score diff| "
                         f"{entry['max_abs_diff']:.1e} vs the Keras model, PR AUC change "
                         f"{'n/a' if entry['delta_pr_auc'] is None else format(entry['delta_pr_auc'], '+.2g')}"
                         " (export/parity.json).")
    unseen = summary.get("unseen_configuration")
    if unseen:
        f, u = unseen["flagged"], unseen["unflagged"]

        def show(x):
            return "n/a" if x is None else f"{x:.3f}"

        notes.append(f"Unseen configurations: {f['n']} of {f['n'] + u['n']} pulses flagged "
                     f"(farther than {unseen['radius']:.3g} from every training configuration); "
                     f"recall {show(f['recall'])} flagged vs {show(u['recall'])} unflagged, "
                     f"false-alarm rate {show(f['false_alarm_rate'])} vs "
                     f"{show(u['false_alarm_rate'])}.")
    return notes
