"""Rolling-origin evaluation, part 3: the Markdown tables of the rolling section (per block,
across blocks, paired bootstrap, recall breakdown, and the default-model choice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import leaky, stats
from benchmarks.detection_truth import STRENGTH_BINS
from benchmarks.report import render_table


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
             "by_strength": [b for b in STRENGTH_BINS if b in keys["by_strength"]],
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
