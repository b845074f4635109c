"""benchmarks.public_jobs: the table written between the markers of a document, from runs."""

from __future__ import annotations

import json

import pytest

from benchmarks import public_jobs


def _run(tmp_path, name: str, seed: int, network: float, peer: float) -> None:
    run = tmp_path / "public_jobs" / "runs" / f"{name}-seed{seed}" / "20260101-000000-sessions"
    run.mkdir(parents=True)
    metrics = {"model": "stacked_conv_lstm", "epochs_trained": 7,
               "test": {"n": 40, "accuracy": network},
               "peer": {"name": "minirocket_ridge", "test": {"accuracy": peer}},
               "epoch_choice": {"method": "cv"},
               "splits": {"train": {"n": 32}, "val": {"n": 8}, "test": {"n": 40}}}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_collect_averages_seeds_and_update_doc_rewrites_only_the_marked_part(tmp_path):
    _run(tmp_path, "BasicMotions", 0, 0.75, 1.0)
    _run(tmp_path, "BasicMotions", 1, 0.85, 1.0)
    result = public_jobs.collect(tmp_path, ("BasicMotions", "GunPoint"), (0, 1))
    assert set(result["sets"]) == {"BasicMotions"}  # GunPoint has no finished run
    summary = result["sets"]["BasicMotions"]
    assert summary["network_mean"] == pytest.approx(0.80)
    assert summary["peer_mean"] == 1.0
    doc = tmp_path / "jobs.md"
    doc.write_text(f"before\n{public_jobs.BEGIN}\nold\n{public_jobs.END}\nafter\n")
    public_jobs.update_doc(doc, result)
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert "| BasicMotions | sessions | 32/8/40 | stacked_conv_lstm | 0.800 |" in text
    assert "+0.200" in text and "cv (7)" in text
    assert "| 0: 0.750 / 1.000; 1: 0.850 / 1.000 |" in text  # every seed, network / peer
    doc.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        public_jobs.update_doc(doc, result)
