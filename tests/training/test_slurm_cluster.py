"""submit.sh end to end on a local one-node SLURM cluster: two workers train (cancelled and
resumed), one task tests.

Skipped (with the reason) where SLURM cannot be started: no slurm-wlm/munge, or not root.
The cluster, a copy of the project and a tiny simulated archive are made once per module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.training.slurm_cluster import free_port, local_slurm_cluster, unavailable_reason

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 360
# Two tasks on one GPU-less node; submit.sh's #SBATCH defaults (1 GPU, 8 CPUs, 64G) overridden.
SBATCH_ARGS = ["--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--mem=1G",
               "--gpus-per-node=0", "--time=00:10:00"]
TINY_CONFIG = """\
run:
  name: slurmtest
  demo_archive: false
data:
  dataset_loc: data/tiny/dcm
  workers: 1
  cache_dir: null
beam_settings:
  data_location: data/tiny/beam_settings
model:
  conv_filters: [4, 4]
  conv_kernels: [5, 3]
  conv_strides: [8, 8]
  lstm_units: 4
  bidirectional: false
  settings_units: [4]
  head_units: [4]
train:
  epochs: 2
  batch_size: 16
  tensorboard: false
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with local_slurm_cluster(tmp_path_factory.mktemp("slurm")) as running:
        yield running


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project with a tiny simulated archive and a tiny config."""
    from enterprise_tools.simulator import SimulatorParams, simulate_archive

    root = tmp_path_factory.mktemp("project") / "beamwatch"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(
        ".git", "runs", "data", "logs", ".cache", "__pycache__", "tests", "benchmarks"))
    simulate_archive(root / "data" / "tiny", SimulatorParams.tiny(seed=1))
    (root / "tiny.yaml").write_text(TINY_CONFIG)
    # SLURM opens --output=logs/slurm-%j.out before submit.sh runs: the folder must exist.
    (root / "logs").mkdir()
    return root


def submit(cluster, project: Path, driver_args: list[str], *, wait: bool, run_dir: str) -> int:
    """sbatch submit.sh with the test overrides; returns the job id (after the job, if `wait`)."""
    port = free_port()
    env = cluster.env({**os.environ, "BEAMWATCH_PYTHON": sys.executable,
                       "BEAMWATCH_RUN_DIR": run_dir})
    cmd = ["sbatch", "--parsable", *SBATCH_ARGS, *(["--wait"] if wait else []), "submit.sh",
           "--config", "tiny.yaml", "--set", f"train.port_base={port}", *driver_args]
    result = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True,
                            timeout=JOB_TIMEOUT_S)
    match = re.match(r"(\d+)", result.stdout.strip())
    if wait and result.returncode != 0 or match is None:
        job_log = project / "logs" / f"slurm-{match.group(1) if match else 'x'}.out"
        pytest.fail(f"sbatch failed ({result.returncode}): {result.stderr}\n"
                    f"{job_log.read_text() if job_log.exists() else ''}\n{cluster.log_tail()}")
    return int(match.group(1))


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def job_running(cluster, job_id: int) -> bool:
    result = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True,
                            text=True, env=cluster.env(os.environ), timeout=10)
    return bool(result.stdout.strip())


def test_cancelled_two_worker_job_resumes_from_its_last_epoch_then_tests(cluster, project):
    """One job, cancelled after its first epoch and submitted again: the two workers resume
    from their backups, train to the end, and the job's test task tests the run."""
    run_dir = project / "runs" / "slurm-resume"
    # Small batches (13 two-worker steps an epoch) and epochs to spare: the cancel lands long
    # before the end even when the machine is idle and an epoch takes about a second.
    epochs = 6
    args = ["--set", f"train.epochs={epochs}", "--set", "train.batch_size=8",
            "--set", f"train.early_stopping_patience={epochs + 10}"]
    first = submit(cluster, project, args, wait=False, run_dir="runs/slurm-resume")
    try:
        wait_for(lambda: (run_dir / "backup" / "epoch-00001" / "state.json").exists()
                 and (run_dir / "workers" / "1" / "backup" / "epoch-00001").exists(),
                 JOB_TIMEOUT_S, "the first epoch's backups")
    finally:
        subprocess.run(["scancel", str(first)], env=cluster.env(os.environ), timeout=10)
    wait_for(lambda: not job_running(cluster, first), 60, f"job {first} to end")
    assert not (run_dir / "metrics.json").exists()
    done_before = len((run_dir / "history.csv").read_text().splitlines()) - 1
    assert 1 <= done_before < epochs

    second = submit(cluster, project, args, wait=True, run_dir="runs/slurm-resume")

    second_log = (project / "logs" / f"slurm-{second}.out").read_text()
    assert "distribute=multi_worker" in second_log
    assert f"{done_before} epoch(s) done" in second_log
    assert f"epoch {done_before}/{epochs} " not in second_log  # nothing retrained
    assert f"epoch {done_before + 1}/{epochs} " in second_log
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["workers"], metrics["replicas"], metrics["epochs_trained"]) == (2, 2, epochs)
    history_epochs = [line.split(",")[0] for line in
                      (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert history_epochs == [str(epoch) for epoch in range(epochs)]
    assert (run_dir / "model.keras").is_file()
    assert (run_dir / "train_metrics_report.pdf").is_file()
    assert len(list(run_dir.glob("tests/*/test_metrics_report.pdf"))) == 1
