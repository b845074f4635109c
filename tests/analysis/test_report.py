"""Tests for analysis.report: the PDF is written, readable and shows the summary figures."""

from datetime import datetime

import numpy as np
import pytest
from pypdf import PdfReader

from analysis.evaluation import compute_metrics
from analysis.plots import pick_examples
from analysis.report import ReportContent, format_number, write_report
from analysis.thresholds import choose_threshold

RUN_ID = "20240102-030405-unit"


def _content(labels, scores, history=True) -> ReportContent:
    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.min() != labels.max():
        threshold = choose_threshold(labels, scores, target_false_alarm_rate=0.1).to_dict()
    else:
        threshold = {"threshold": 0.5, "method": "target_false_alarm_rate"}
    traces = np.sin(np.linspace(0, 6, 200))[None, :] * (1 + np.arange(labels.size))[:, None]
    return ReportContent(
        title="beamwatch test report",
        run_id=RUN_ID,
        created=datetime(2024, 1, 2, 3, 4, 5),
        data_period=("2023-05-01 00:00", "2023-05-02 00:00"),
        split_sizes={"train": {"n": 70, "n_errant": 7, "start": "a", "end": "b"},
                     "test": {"n": int(labels.size), "n_errant": int(labels.sum()), "start": "c", "end": "d"}},
        seeds={"run": 42},
        metrics=compute_metrics(labels, scores, threshold["threshold"]),
        threshold=threshold,
        ledger_summary=[{"reason": "mislabelled_normal_file", "files": 2, "pulses": 0},
                        {"reason": "trip_on_first_pulse", "files": 1, "pulses": 1}],
        skipped_files=[f"/data/dcm/normal/file_{i:03d}.bin.gz" for i in range(60)],
        history={"loss": [0.7, 0.5, 0.4], "val_loss": [0.8, 0.6, 0.5], "auc_pr": [0.2, 0.4, 0.5],
                 "val_auc_pr": [0.1, 0.3, 0.45], "learning_rate": [1e-3, 1e-3, 5e-4]} if history else None,
        labels=labels,
        scores=scores,
        example_traces=pick_examples(traces, labels, scores, threshold["threshold"]),
        config_text="run:\n  name: unit   # a <comment> & more\n" * 5,
        notes=["Split is stratified-random: this overstates accuracy on future beam."],
    )


def _text(path) -> tuple[int, str]:
    reader = PdfReader(path)
    text = " ".join(page.extract_text() for page in reader.pages)
    return len(reader.pages), " ".join(text.split())


def test_report_holds_summary_figures(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(16, int), np.ones(4, int)]  # 20 samples
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.15), 0, 1)
    content = _content(labels, scores)
    path = tmp_path / "train_metrics_report.pdf"
    write_report(path, content)

    pages, text = _text(path)
    m = content.metrics
    assert pages >= 8
    assert RUN_ID in text
    assert format_number(m["pr_auc"]) in text
    assert format_number(m["roc_auc"]) in text
    caught = m["errant_caught"]
    assert f"Errant pulses caught {caught['caught']} of {caught['total']}" in text
    assert "False alarms per hour of beam" in text
    assert "mislabelled_normal_file" in text
    assert "file_049.bin.gz" in text and "file_050.bin.gz" not in text
    assert "and 10 more" in text
    assert "stratified-random" in text
    assert "<comment> & more" in text  # config shown verbatim
    assert f"Page {pages}" in text
    assert "Online recalibration" not in text and "over time and per configuration" not in text
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_one_class_report_says_curves_not_defined(tmp_path):
    labels = np.zeros(12, int)
    scores = np.linspace(0.05, 0.6, 12)
    path = tmp_path / "test_metrics_report.pdf"
    write_report(path, _content(labels, scores, history=False))

    pages, text = _text(path)
    assert pages >= 6
    assert "ROC and PR curves not defined: only one class" in text
    assert "Errant pulses caught 0 of 0" in text
    assert "Training curves" not in text


def test_empty_part_report_is_written(tmp_path):
    content = _content([0, 1], [0.2, 0.8])
    content.labels, content.scores, content.example_traces = np.zeros(0), np.zeros(0), {}
    path = tmp_path / "r.pdf"
    write_report(path, content)
    assert "not defined: no samples" in _text(path)[1]


def test_mismatched_labels_and_scores_are_rejected(tmp_path):
    content = _content([0, 1], [0.2, 0.8])
    content.scores = np.array([0.1])
    with pytest.raises(ValueError, match="differ in shape"):
        write_report(tmp_path / "r.pdf", content)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "value,expected",
    [(None, "n/a"), (float("nan"), "n/a"), (41, "41"), (12345, "12,345"), (0.91234, "0.9123"),
     (0.000123456, "0.0001235"), (72000.0, "72,000"), (12.3456, "12.35")],
)
def test_format_number(value, expected):
    assert format_number(value) == expected


def _operations_content(n=600, seed=0) -> ReportContent:
    """A part with times, configuration groups, references and an online threshold."""
    from analysis.recalibration import online_in_time_order

    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.08).astype(int)
    groups = rng.integers(0, 20, n)
    scores = 1 / (1 + np.exp(-rng.normal(-3 + 3.5 * labels + 0.1 * groups, 1.2)))
    ts = 1_700_000_000_000_000_000 + np.sort(rng.integers(0, 4 * 3_600_000_000_000, n))
    content = _content(labels, scores, history=False)
    chopped = np.tile([1.0] * 6 + [0.0] * 4, 30)  # 300 samples: a 30 us chopped window
    traces = chopped[None, :] * (1 - 0.001 * labels[:, None] * np.arange(300))
    refs = np.repeat(chopped[None, None, :], n, axis=0) * rng.uniform(0.95, 1.05, (n, 3, 1))
    content.example_traces = pick_examples(traces, labels, scores, content.threshold["threshold"],
                                           references=refs)
    online = online_in_time_order(ts, scores, labels, content.threshold["threshold"], 0.1)
    content.timestamps_ns, content.groups = ts, groups
    content.online, content.online_alarms = online.summary(), online.alarms
    content.online_thresholds = online.thresholds
    return content


def test_report_shows_online_figures_and_rates_per_block(tmp_path):
    content = _operations_content()
    path = tmp_path / "r.pdf"
    write_report(path, content)
    _, text = _text(path)
    o = content.online
    assert "Online recalibration" in text
    assert f"({o['false_alarms']} of {o['n_normal']})" in text
    assert f"{o['caught']} of {o['n_errant']}" in text
    assert f"False-alarm rate (target {format_number(100 * o['target_false_alarm_rate'], 3)} %)" in text
    assert "Operating point over time and per configuration" in text
    assert "20 groups; the 15 largest shown" in text and "other" in text
    assert "Online FA rate" in text
    assert "min-max band" in text


def test_report_shows_the_metrics_it_is_handed(tmp_path):
    content = _content([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], history=False)
    content.metrics = {**content.metrics, "confusion_matrix": {"tn": 7, "fp": 3, "fn": 5, "tp": 11}}
    del content.metrics["reliability"]
    path = tmp_path / "r.pdf"
    write_report(path, content)
    _, text = _text(path)
    assert "Normal 7 3 Errant 5 11" in text  # the handed counts, not the arrays' 1 1 1 1
    assert "No calibration table in the metrics given" in text


def test_per_pulse_arrays_must_match_the_labels(tmp_path):
    content = _operations_content(n=50)
    content.groups = content.groups[:-1]
    with pytest.raises(ValueError, match="groups has shape \\(49,\\)"):
        write_report(tmp_path / "r.pdf", content)


def _pages(path) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in PdfReader(path).pages]


def test_pages_with_rates_carry_their_95_percent_intervals(tmp_path):
    from analysis.evaluation import SECONDS_PER_HOUR, rates_by_block, time_blocks
    from analysis.intervals import poisson_interval, wilson_interval

    content = _operations_content()
    m, o = content.metrics, content.online
    path = tmp_path / "r.pdf"
    write_report(path, content)
    pages = _pages(path)
    summary = next(p for p in pages if "Summary: test part" in p)
    cm = m["confusion_matrix"]
    lo, hi = poisson_interval(cm["fp"], m["n_normal"] / 60.0 / SECONDS_PER_HOUR)
    assert (f"False alarms per hour of beam {format_number(m['false_alarms_per_hour'], 3)} "
            f"[{format_number(lo, 3)}, {format_number(hi, 3)}]") in summary
    r_lo, r_hi = wilson_interval(cm["tp"], m["n_errant"])
    assert f"{cm['tp']} of {m['n_errant']} [{format_number(r_lo, 3)}, {format_number(r_hi, 3)}] (recall)" in summary
    f_lo, f_hi = wilson_interval(o["false_alarms"], o["n_normal"])
    assert (f"({o['false_alarms']} of {o['n_normal']}) [{format_number(100 * f_lo, 3)}, "
            f"{format_number(100 * f_hi, 3)}] %") in summary
    # per time block: the first block's false-alarm rate with its Wilson interval
    blocks_page = next(p for p in pages if "Operating point over time and per configuration" in p)
    ts = np.asarray(content.timestamps_ns)
    table = rates_by_block(content.labels, content.scores, content.threshold["threshold"],
                           time_blocks(ts, 10), content.online_alarms)
    first = table[0]
    b_lo, b_hi = wilson_interval(first["false_alarms"], first["n_normal"])
    assert (f"{first['false_alarms']} of {first['n_normal']} "
            f"{format_number(100 * first['false_alarm_rate'], 3)} % "
            f"[{format_number(100 * b_lo, 3)}, {format_number(100 * b_hi, 3)}] %") in blocks_page
    curves = next(p for p in pages if "Operating and precision-recall curves" in p)
    assert "false alarms per hour of beam on a log axis" in curves


def test_facts_are_not_warnings_and_keras_cut_is_said(tmp_path):
    content = _content([0, 0, 1, 1, 0, 1], [0.1, 0.6, 0.4, 0.9, 0.2, 0.8])
    content.facts = ["Trained with 1 replica(s) on 2 worker process(es)."]
    content.skipped_files = [("/data/a.bin.gz", "no_production_beam")]
    path = tmp_path / "r.pdf"
    write_report(path, content)
    text = " ".join(_pages(path))
    assert "About this run - Trained with 1 replica(s)" in text
    assert "Warnings ! Split is stratified-random" in text
    assert "/data/a.bin.gz no_production_beam" in text
    assert "counting a score >= 0.5 as an alarm, not the run's threshold" in text
    assert "Summary: test part" in text and "(test part)" in text


def test_every_pulse_part_is_named_in_words(tmp_path):
    content = _content([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], history=False)
    content.part_name = "all"
    path = tmp_path / "r.pdf"
    write_report(path, content)
    text = " ".join(_pages(path))
    assert "Summary: every pulse scored" in text and "all part" not in text


@pytest.mark.parametrize("n_normal, resolved_text", [(200, "no (too little beam)"),
                                                     (60 * 3600, "yes")])
def test_operating_point_is_shown_in_false_alarms_per_hour_with_its_beam_time(
        tmp_path, n_normal, resolved_text):
    import dataclasses

    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(n_normal, int), np.ones(20, int)]
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.1), 0, 1)
    choice = choose_threshold(labels, scores, method="false_alarms_per_hour",
                              false_alarms_per_hour=10.0, pulse_rate_hz=60.0)
    content = dataclasses.replace(_content(labels[-40:], scores[-40:]), threshold=choice.to_dict())
    path = tmp_path / "r.pdf"
    write_report(path, content)
    _, text = _text(path)
    hours = n_normal / 60.0 / 3600.0
    beam = (f"{format_number(n_normal / 60.0, 3)} s" if n_normal / 60.0 < 600
            else f"{format_number(hours, 3)} h")
    assert "Target false alarms per hour 10" in text
    assert f"Placed on (normal) {format_number(n_normal)} pulses, {beam} of beam" in text
    assert f"Target resolvable {resolved_text}" in text
    assert "Target false-alarm rate" not in text
    assert "normal_beam_hours" not in text  # said in words on the summary, not as a key
    summary_beam = content.metrics["normal_beam_hours"] * 3600.0
    assert f"normal) {format_number(summary_beam, 3)} s of beam" in text
