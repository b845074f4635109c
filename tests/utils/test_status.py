"""utils.status: the newest complete run of the kind a command needs, or a refusal naming
the newest run and its kind."""

from __future__ import annotations

import pytest

from parser.configs import dump_config, load_config, require_source, run_source
from utils.run_folder import NoRunFoundError
from utils.status import COMPLETE, SNS_SOURCE, newest_complete_run, write_status


def _run(root, name, source="sns_dcm", state=COMPLETE):
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(load_config(None, [f"data.source={source}"])))
    write_status(run, state, "done")
    return run


def test_newest_run_of_the_kind_is_picked_over_a_newer_run_of_another(tmp_path):
    sns = _run(tmp_path, "20260101-000000-demo")
    _run(tmp_path, "20260102-000000-sessions", "sessions")
    assert newest_complete_run(tmp_path, (SNS_SOURCE,), "--export", run_source)[0] == sns
    assert newest_complete_run(tmp_path)[0].name == "20260102-000000-sessions"


def test_no_run_of_the_kind_names_the_newest_run_and_its_kind(tmp_path):
    newest = _run(tmp_path, "20260102-000000-sessions", "sessions")
    with pytest.raises(NoRunFoundError) as caught:
        newest_complete_run(tmp_path, (SNS_SOURCE,), "--export", run_source)
    message = str(caught.value)
    assert message == (f"--export needs an SNS (DCM archive) run and {tmp_path} holds none complete; "
                       f"the newest run, {newest}, is a sessions run. Train one, or pass --run DIR.")


def test_a_run_given_of_the_wrong_kind_is_refused_by_name(tmp_path):
    run = _run(tmp_path, "20260102-000000-text", "text")
    with pytest.raises(NoRunFoundError, match=r"^--export needs an SNS \(DCM archive\) run; .*"
                                              r"20260102-000000-text is a text run \(data.source: text\)$"):
        require_source(run, (SNS_SOURCE,), "--export")
    require_source(_run(tmp_path, "20260103-000000-demo"), (SNS_SOURCE,), "--export")
