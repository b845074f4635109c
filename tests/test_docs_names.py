"""docs/internals.md names the project's public names in backticks (`analysis.report.PAGES`,
`enterprise_tools.trace_windows.pulse_windows(...)`); every one must still resolve, so a rename or a
module split that forgets the docs fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "internals.md"
PACKAGES = ("enterprise_tools", "data_preparation", "model", "training", "testing", "analysis",
            "utils", "parser", "live", "benchmarks")
_DOTTED = rf"(?:{'|'.join(PACKAGES)})\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
# Fenced blocks first (their ``` would pair wrongly with inline spans). Plain and python fences
# hold signatures (`training.train.run_train_flow(config, ...)`); shell or YAML fences hold
# commands and config keys (`--set model.name=...`), which are not Python names.
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
_SPAN = re.compile(r"`([^`]+)`")
_STARTS = re.compile(rf"\s*({_DOTTED})")                 # a span that starts with a dotted name
_ANYWHERE = re.compile(rf"(?<![\w./-])({_DOTTED})")     # a dotted name inside a code block


def documented_names(text: str) -> list[str]:
    """Dotted project names in inline code spans (leading) and python/plain fenced blocks,
    call parentheses and arguments stripped, in order of first appearance."""
    names = []
    for info, body in _FENCE.findall(text):
        if info in ("", "python"):
            names += _ANYWHERE.findall(body)
    for span in _SPAN.findall(_FENCE.sub("", text)):
        match = _STARTS.match(span)
        if match:
            names.append(match.group(1))
    return list(dict.fromkeys(names))


def resolves(name: str) -> bool:
    """Import the longest importable module prefix of `name`, then getattr the rest."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # Only "this prefix is not a module" moves on; a module that exists but fails to
            # import (a missing dependency) is a real error and propagates.
            missing = error.name or ""
            if missing and (module_name == missing or module_name.startswith(missing + ".")):
                continue
            raise
        break
    else:
        return False
    for attribute in parts[cut:]:
        if not hasattr(obj, attribute):
            return False
        obj = getattr(obj, attribute)
    return True


def unresolved(text: str) -> list[str]:
    return [name for name in documented_names(text) if not resolves(name)]


def test_every_name_in_internals_md_resolves():
    names = documented_names(DOC.read_text(encoding="utf-8"))
    assert len(names) >= 10, f"{DOC}: expected the doc to name project functions, found {names}"
    missing = [name for name in names if not resolves(name)]
    assert not missing, f"{DOC}: names that do not resolve (renamed or moved?): {missing}"


def test_the_check_catches_a_wrong_name_and_strips_call_arguments():
    text = ("See `analysis.report.PAGES` and `utils.no_such_module.thing`.\n"
            "`enterprise_tools.trace_windows.pulse_windows(path, var_id,\nbegin) -> PulseSet`, "
            "`analysis.report.NO_SUCH_NAME`, `model.list_models()`, `--set model.name=x`\n"
            "```python\nlive.cli.run_live(args)  # then testing.test.not_a_function\n```\n"
            "```yaml\nmodel.not_checked: 1\n```\n")
    assert documented_names(text) == [
        "live.cli.run_live", "testing.test.not_a_function", "analysis.report.PAGES",
        "utils.no_such_module.thing", "enterprise_tools.trace_windows.pulse_windows",
        "analysis.report.NO_SUCH_NAME", "model.list_models"]
    assert unresolved(text) == ["testing.test.not_a_function", "utils.no_such_module.thing",
                                "analysis.report.NO_SUCH_NAME"]
