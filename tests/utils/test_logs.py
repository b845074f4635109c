"""Tests for utils.logs: three log files, prefix, idempotent set-up."""

import logging

import pytest

from utils.logs import setup_logging, teardown_logging


@pytest.fixture(autouse=True)
def _clean_logging():
    yield
    teardown_logging()


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_logging_writes_app_flow_and_run_logs(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    logger = setup_logging(tmp_path / "logs", "train", run_dir=run_dir)
    logging.getLogger("beamwatch.training").info("epoch 1 done")
    logging.getLogger("beamwatch.training").debug("batch detail")
    teardown_logging()

    assert logger.name == "beamwatch"
    app = _lines(tmp_path / "logs" / "app.log")
    flow = _lines(tmp_path / "logs" / "train_flow.log")
    run = _lines(run_dir / "train.log")
    assert any("epoch 1 done" in line and "beamwatch.training" in line for line in app)
    assert any("batch detail" in line for line in app)  # app.log keeps DEBUG
    assert [line for line in flow if "epoch 1 done" in line]
    assert not [line for line in flow if "batch detail" in line]  # flow log is INFO
    assert [line for line in run if "epoch 1 done" in line]
    assert not (tmp_path / "logs" / "test_flow.log").exists()


def test_prefix_is_on_every_line_including_tracebacks(tmp_path):
    setup_logging(tmp_path, "test", prefix="[worker 1/2] ")
    log = logging.getLogger("beamwatch.testing")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    teardown_logging()
    lines = _lines(tmp_path / "test_flow.log")
    assert len(lines) > 2
    assert all(line.startswith("[worker 1/2] ") for line in lines)


def test_setup_twice_does_not_duplicate_lines(tmp_path):
    setup_logging(tmp_path, "train")
    logger = setup_logging(tmp_path, "train")
    logging.getLogger("beamwatch.x").info("only once")
    teardown_logging()
    assert sum("only once" in line for line in _lines(tmp_path / "app.log")) == 1
    assert sum("only once" in line for line in _lines(tmp_path / "train_flow.log")) == 1
    assert not logger.handlers


def test_console_is_concise_and_quiet_hides_info(tmp_path, capsys):
    setup_logging(tmp_path, "train")
    logging.getLogger("beamwatch").info("visible")
    err = capsys.readouterr().err
    assert "INFO visible" in err and "beamwatch" not in err

    setup_logging(tmp_path, "train", quiet=True)
    logging.getLogger("beamwatch").info("hidden")
    logging.getLogger("beamwatch").warning("warned")
    err = capsys.readouterr().err
    assert "hidden" not in err and "WARNING warned" in err


def test_root_logger_is_left_alone(tmp_path):
    root_handlers = list(logging.getLogger().handlers)
    setup_logging(tmp_path, "test")
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger("beamwatch").propagate is False
    teardown_logging()
    assert logging.getLogger("beamwatch").propagate is True


def test_unknown_flow_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="train"):
        setup_logging(tmp_path, "predict")
