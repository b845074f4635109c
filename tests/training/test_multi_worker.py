"""Multi-worker training on localhost: two worker processes, a TF_CONFIG each, free ports.

Every run is its own process (tests/training/multi_worker_job.py): a strategy must be created
before any other TensorFlow op. The references are the same loop in one process with two
replicas (same per-replica batches, so it must agree to the bit) and plain Keras `fit` with the
same global batch (BatchNormalization sees half batches under two replicas: close, not equal).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.training.slurm_cluster import free_port
from training.multi_worker import slurm_cluster_resolver, tf_config_cluster_resolver, worker_info
from training.multi_worker_backup import completed_backups
from training.multi_worker_loop import per_example_loss, write_history_csv

REPO = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_S = 240  # a hung collective fails the test instead of blocking CI
EPOCHS = 2


def start_job(out: Path, mode: str, *args: str, epochs: int = EPOCHS,
              tf_config: dict | None = None, log_name: str = "job.log"):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / log_name).open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.training.multi_worker_job", "--out", str(out),
         "--mode", mode, "--epochs", str(epochs), *args],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def finish(*processes) -> list[int]:
    """Waits for every process; kills them all if one hangs past the timeout."""
    try:
        return [p.wait(timeout=PROCESS_TIMEOUT_S) for p in processes]
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        pytest.fail(f"a training process did not finish within {PROCESS_TIMEOUT_S} s")


def result(out: Path) -> dict:
    path = out / "result.json"
    assert path.exists(), (out / "job.log").read_text()[-3000:]
    return json.loads(path.read_text())


def weights(out: Path) -> list[np.ndarray]:
    with np.load(out / "weights.npz") as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Every first run side by side: the two workers, the references, and the runs killed
    after epoch 1 (resumed by their tests). Returns the folder; exit codes in `codes.json`."""
    root = tmp_path_factory.mktemp("multi_worker")
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    jobs = {
        f"worker{i}": start_job(root / f"worker{i}", "multi_worker",
                                tf_config={"cluster": cluster, "task": {"type": "worker",
                                                                        "index": i}})
        for i in range(2)
    }
    jobs["two_replicas"] = start_job(root / "two_replicas", "two_replicas")
    jobs["fit"] = start_job(root / "fit", "fit")
    jobs["killed"] = start_job(root / "killed", "two_replicas", "--exit-after-epoch", "1")
    jobs["fit_killed"] = start_job(root / "fit_killed", "fit_callbacks",
                                   "--exit-after-epoch", "2", epochs=3)
    codes = finish(*jobs.values())
    (root / "codes.json").write_text(json.dumps(dict(zip(jobs, codes, strict=True))))
    return root


def exit_code(runs: Path, name: str) -> int:
    return json.loads((runs / "codes.json").read_text())[name]


def test_two_workers_each_train_and_agree_who_is_chief(runs):
    infos = [result(runs / f"worker{i}")["worker"] for i in range(2)]
    assert infos == [{"index": 0, "count": 2, "is_chief": True},
                     {"index": 1, "count": 2, "is_chief": False}]
    assert all(result(runs / f"worker{i}")["replicas"] == 2 for i in range(2))


def test_workers_end_with_identical_weights(runs):
    chief, other = weights(runs / "worker0"), weights(runs / "worker1")
    assert len(chief) == len(other) > 0
    for a, b in zip(chief, other, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(w).all() for w in chief)  # the 1-sample last batch left one empty


def test_loss_matches_one_process_with_the_same_global_batch(runs):
    history = result(runs / "worker0")["history"]
    same_split = result(runs / "two_replicas")["history"]
    keras_fit = result(runs / "fit")["history"]
    for key in ("loss", "val_loss", "val_auc_pr", "auc_pr"):
        np.testing.assert_allclose(history[key], same_split[key], rtol=1e-5)
    for a, b in zip(weights(runs / "worker0"), weights(runs / "two_replicas"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # Plain fit normalises over whole batches; a loss scaled per worker would be 2x off.
    np.testing.assert_allclose(history["loss"], keras_fit["loss"], rtol=0.02)
    np.testing.assert_allclose(history["val_loss"], keras_fit["val_loss"], rtol=0.02)


def test_chief_writes_history_and_every_worker_its_own_checkpoint_and_backup(runs):
    chief, other = runs / "worker0" / "work", runs / "worker1" / "work"
    rows = (chief / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,auc_pr,learning_rate,loss,val_auc_pr,val_loss"
    assert [row.split(",")[0] for row in rows[1:]] == [str(e) for e in range(EPOCHS)]
    assert not (other / "history.csv").exists()
    for work in (chief, other):
        assert (work / "checkpoints" / "best.keras").is_file()
        assert completed_backups(work / "backup") == list(range(1, EPOCHS + 1))


def test_killed_training_resumes_from_its_last_epoch_and_ends_the_same(runs):
    out = runs / "killed"
    assert exit_code(runs, "killed") == 17  # os._exit after epoch 1's line
    assert completed_backups(out / "work" / "backup") == [1]

    assert finish(start_job(out, "two_replicas", log_name="resume.log")) == [0]

    resume_log = (out / "resume.log").read_text()
    assert "resuming from" in resume_log and "epoch 1/2" not in resume_log
    resumed, uninterrupted = result(out)["history"], result(runs / "two_replicas")["history"]
    np.testing.assert_allclose(resumed["loss"], uninterrupted["loss"], rtol=1e-6)
    for a, b in zip(weights(out), weights(runs / "two_replicas"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


def resume_fit_killed(runs: Path) -> Path:
    """Reruns the Keras-fit job killed after epoch 2 of 3 (once per module)."""
    out = runs / "fit_killed"
    if not (out / "result.json").exists():
        assert exit_code(runs, "fit_killed") == 17  # os._exit after epoch 2's line
        assert finish(start_job(out, "fit_callbacks", epochs=3, log_name="resume.log")) == [0]
    return out


def test_keras_fit_with_the_flow_callbacks_resumes_after_a_kill(runs):
    out = resume_fit_killed(runs)

    resume_log = (out / "resume.log").read_text()
    assert "epoch 3/3" in resume_log
    assert "epoch 1/3" not in resume_log and "epoch 2/3" not in resume_log
    rows = (out / "work" / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]
    assert result(out)["history"]["loss"] == [float(rows[3].split(",")[3])]


# --- the cluster resolvers, without starting a cluster -----------------------------------


def test_tf_config_resolver_reads_the_config_given_not_os_environ(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["elsewhere:1"]}, '
                                    '"task": {"type": "worker", "index": 0}}')
    tf_config = {"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]},
                 "task": {"type": "worker", "index": 1}}
    resolver = tf_config_cluster_resolver(json.dumps(tf_config))
    assert resolver.cluster_spec().as_dict() == tf_config["cluster"]
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert worker_info(resolver).index == 2 and worker_info(resolver).count == 3


@pytest.mark.parametrize("text", ["not json", '{"cluster": {}}',
                                  '{"cluster": {"worker": ["a:1"]}, '
                                  '"task": {"type": "worker", "index": 3}}'])
def test_bad_tf_config_is_reported_with_what_was_expected(text):
    with pytest.raises(ValueError, match="TF_CONFIG"):
        tf_config_cluster_resolver(text)


def slurm_step_env(procid: int) -> dict[str, str]:
    return {"SLURM_JOB_ID": "42", "SLURM_PROCID": str(procid), "SLURM_STEP_NUM_TASKS": "4",
            "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_STEP_TASKS_PER_NODE": "2(x2)"}


def test_slurm_resolver_lays_out_cpu_only_tasks_one_port_each(monkeypatch):
    env = slurm_step_env(procid=3)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_GPUS_ON_NODE", raising=False)
    config = type("TrainConfig", (), {"port_base": 9000, "gpus_per_node": None,
                                      "gpus_per_task": None})()
    resolver = slurm_cluster_resolver(config, env)
    assert resolver.cluster_spec().as_dict() == {
        "worker": ["node01:9000", "node01:9001", "node02:9000", "node02:9001"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 3)
    assert resolver.num_accelerators() == {"GPU": 0}
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_slurm_resolver_gives_each_task_on_a_gpu_node_its_own_gpu(monkeypatch):
    env = {**slurm_step_env(procid=1), "SLURM_STEP_NUM_TASKS": "2",
           "SLURM_STEP_NODELIST": "gpu07", "SLURM_STEP_TASKS_PER_NODE": "2",
           "SLURM_GPUS_ON_NODE": "2"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # restored after the test
    config = type("TrainConfig", (), {"port_base": 9000, "gpus_per_node": None,
                                      "gpus_per_task": None})()
    resolver = slurm_cluster_resolver(config, env)
    assert resolver.cluster_spec().as_dict() == {"worker": ["gpu07:9000", "gpu07:9001"]}
    assert resolver.num_accelerators() == {"GPU": 1}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_slurm_resolver_refuses_an_env_that_differs_from_os_environ(monkeypatch):
    for name, value in slurm_step_env(procid=0).items():
        monkeypatch.setenv(name, value)
    config = type("TrainConfig", (), {"port_base": 9000, "gpus_per_node": None,
                                      "gpus_per_task": None})()
    with pytest.raises(ValueError, match="SLURM_PROCID"):
        slurm_cluster_resolver(config, slurm_step_env(procid=1))


def test_slurm_resolver_outside_a_job_step_says_to_use_srun():
    env = {"SLURM_JOB_ID": "42", "SLURM_PROCID": "0"}
    config = type("TrainConfig", (), {"port_base": 9000, "gpus_per_node": None,
                                      "gpus_per_task": None})()
    with pytest.raises(ValueError, match="srun"):
        slurm_cluster_resolver(config, env)


# --- small pieces --------------------------------------------------------------------------


def test_per_example_loss_keeps_one_value_per_sample_with_its_weight():
    import keras

    y = np.array([[1.0], [0.0], [1.0]], np.float32)
    scores = np.array([[0.9], [0.2], [0.4]], np.float32)
    weight = np.array([1.0, 2.0, 0.0], np.float32)
    values = np.asarray(per_example_loss(keras.losses.BinaryCrossentropy())(y, scores, weight))
    expected = -np.log([0.9, 0.8, 0.4]) * weight
    np.testing.assert_allclose(values, expected, rtol=1e-5)


def test_history_csv_has_keras_csvlogger_columns(tmp_path):
    write_history_csv(tmp_path / "history.csv", {"val_loss": [0.5, 0.4], "loss": [0.7, 0.6]})
    assert (tmp_path / "history.csv").read_text() == "epoch,loss,val_loss\n0,0.7,0.5\n1,0.6,0.4\n"
