"""Checks across config sections, made once every section is valid on its own.

Today one rule: a pulse history (`history.count` > 0) needs a model that reads it
(`HISTORY_MODELS`; the parser imports no model code, so the names are listed here and
`tests/model/test_architectures.py` checks them against the models' inputs), references from
outside any run-up (`reference.own_file: false`, `reference.count` >= 1) and DCM files, which
alone hold in-file history; and a history model needs a history.
"""

from __future__ import annotations

# The registered models that read a pulse history (inputs "history" and "history_count").
HISTORY_MODELS = ("sns_history_siamese",)


def history_problems(config) -> list[tuple[str, str]]:
    """`[(key, detail), ...]` for a `Config` whose history and model or references disagree."""
    count, name = config.history.count, config.model.name
    if not count:
        if name in HISTORY_MODELS:
            return [("history.count", f"received 0; model.name={name!r} reads a history of "
                                      "earlier pulses: expected 1 or more")]
        return []
    if name not in HISTORY_MODELS:
        return [("history.count", f"received {count}; model.name={name!r} reads no history: "
                                  f"expected 0, or a history model ({', '.join(HISTORY_MODELS)})")]
    problems = []
    if config.data.source != "sns_dcm":
        problems.append(("history.count", f"received {count}; only data.source='sns_dcm' has "
                                          f"in-file history, not {config.data.source!r}: "
                                          "expected 0"))
    if config.reference.own_file:
        problems.append(("reference.own_file", "received true; expected false with "
                                               "history.count > 0 (references must not come "
                                               "from the run-up the history shows)"))
    if not config.reference.count:
        problems.append(("reference.count", f"received 0; model.name={name!r} compares pulses "
                                            "with references: expected 1 or more"))
    return problems
