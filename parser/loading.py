"""Config loading: YAML files (`yaml.safe_load`), `section.key=value` overrides, and back to YAML.

Builds a `Config` from a mapping or file, naming the file line or override of every problem.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from parser.schema import SECTION_CLASSES, Config
from parser.validation import ConfigError, Problem, field_names_of, show_value

__all__ = [
    "MAX_YAML_NESTING",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "replace_section",
    "require_source",
    "run_source",
]


# --------------------------------------------------------------------------------------------
# Building from mappings, files and overrides


def _unknown_key(section: str, key: Any) -> str:
    """Detail for an unknown key, with the closest valid key path when there is one."""
    cls = SECTION_CLASSES[section]
    valid = field_names_of(cls)
    key = str(key)
    elsewhere = [s for s, c in SECTION_CLASSES.items() if key in field_names_of(c)]
    if elsewhere:
        return f"unknown key in section '{section}'; did you mean '{elsewhere[0]}.{key}'?"
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return f"unknown key; did you mean '{section}.{close[0]}'?"
    all_paths = {f"{s}.{k}": k for s, c in SECTION_CLASSES.items() for k in field_names_of(c)}
    close = difflib.get_close_matches(key, list(all_paths.values()), n=1)
    if close:
        path = next(p for p, k in all_paths.items() if k == close[0])
        return f"unknown key; did you mean '{path}'?"
    return f"unknown key; valid keys of '{section}': {', '.join(valid)}"


def _unknown_section(name: Any) -> str:
    close = difflib.get_close_matches(str(name), list(SECTION_CLASSES), n=1)
    if close:
        return f"unknown section; did you mean '{close[0]}'?"
    return f"unknown section; valid sections: {', '.join(SECTION_CLASSES)}"


# Keys that moved: old (section, key) -> new (section, key). Old configs and saved run folders
# still load; each use warns once with the new place.
_MOVED_KEYS: Mapping[tuple[str, str], tuple[str, str]] = types.MappingProxyType({
    ("scaling", "per_trace"): ("model", "per_trace"),
})


def _move_key(kwargs: dict[str, dict[str, Any]], old: tuple[str, str], value: Any,
              source: str) -> Problem | None:
    """Put a value given under a moved key at its new place, with a FutureWarning."""
    new = _MOVED_KEYS[old]
    old_path, new_path = ".".join(old), ".".join(new)
    if new[1] in kwargs[new[0]] and kwargs[new[0]][new[1]] != value:
        return Problem(old_path, f"received {show_value(value)}, but {new_path} is "
                                 f"{show_value(kwargs[new[0]][new[1]])}; {old_path} is the old name "
                                 f"of {new_path}: give only {new_path}")
    warnings.warn(f"{source}: {old_path} is deprecated; it is now {new_path}.",
                  FutureWarning, stacklevel=4)
    kwargs[new[0]][new[1]] = value
    return None


def _build(data: Any, source: str, origins: Mapping[str, str]) -> Config:
    """Check the sections and keys of ``data``, then construct every section over its defaults."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            Problem("", f"received {show_value(data)} at the top level; expected a mapping of "
                        f"sections ({', '.join(SECTION_CLASSES)})"),
            source,
        )
    problems: list[Problem] = []
    kwargs: dict[str, dict[str, Any]] = {name: {} for name in SECTION_CLASSES}
    moved: dict[tuple[str, str], Any] = {}
    for name, body in data.items():
        if name not in SECTION_CLASSES:
            problems.append(Problem(str(name), _unknown_section(name)))
        elif body is not None and not isinstance(body, Mapping):
            problems.append(Problem(name, f"received {show_value(body)}; expected a mapping of "
                                          f"keys such as '{field_names_of(SECTION_CLASSES[name])[0]}'"))
        else:
            valid = field_names_of(SECTION_CLASSES[name])
            for key, value in (body or {}).items():
                if key in valid:
                    kwargs[name][key] = value
                elif (name, key) in _MOVED_KEYS:
                    moved[(name, key)] = value
                else:
                    problems.append(Problem(f"{name}.{key}", _unknown_key(name, key)))
    for old, value in moved.items():  # after the loop: the new key wins wherever it stands
        problem = _move_key(kwargs, old, value, source)
        if problem is not None:
            problems.append(problem)
    sections = {}
    for name, cls in SECTION_CLASSES.items():
        try:
            sections[name] = cls(**kwargs[name])
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        located = [p._replace(origin=p.origin or origins.get(p.key) or origins.get(
            p.key.split(".")[0]) or source) for p in problems]
        raise ConfigError(located, source)
    try:
        return Config(**sections)
    except ConfigError as err:  # checks across sections (history and the model reading it)
        raise ConfigError([p._replace(origin=p.origin or origins.get(p.key) or source)
                           for p in err.problems], source) from None


def config_from_dict(data: Mapping[str, Any] | None, source: str = "<dict>") -> Config:
    """Build a ``Config`` from a plain mapping (e.g. a run's saved ``config.yaml``).

    Missing sections and keys take their defaults; ``source`` names the origin in errors.
    """
    return _build(data, source, {})


def _read_yaml(path: str | os.PathLike) -> tuple[Any, dict[str, str], list[Problem]]:
    """Parse a YAML file: ``(data, origin of each key path, duplicate-key problems)``."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError(Problem("", f"cannot read the config file ({reason})"), source) from err
    nesting = _flow_nesting(text)
    if nesting > MAX_YAML_NESTING:
        raise ConfigError(Problem("", f"YAML nested {nesting} levels deep; a config needs at most "
                                      f"{MAX_YAML_NESTING}"), source)
    try:
        data = yaml.safe_load(text)
        tree = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only, to find key lines
    except RecursionError as err:  # deep block nesting the bracket count does not see
        raise ConfigError(Problem("", f"YAML nested too deeply (more than {MAX_YAML_NESTING} "
                                      "levels are never needed)"), source) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        what = getattr(err, "problem", None) or str(err)
        column = f" (column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(Problem("", f"invalid YAML: {what}{column}", where), source) from err
    origins: dict[str, str] = {}
    duplicates: list[Problem] = []
    _walk_keys(tree, "", source, origins, duplicates, depth=3)
    return data, origins, duplicates


MAX_YAML_NESTING = 32  # configs nest 3 levels; deeper input is hostile or a mistake


def _flow_nesting(text: str) -> int:
    """The deepest [ / { bracket nesting in `text` (ignoring quotes: an upper bound, cheap)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def _walk_keys(node: Any, prefix: str, source: str, origins: dict[str, str],
               duplicates: list[Problem], depth: int) -> None:
    """Record the line of each mapping key; flag keys given twice (YAML keeps the last)."""
    if not isinstance(node, yaml.MappingNode) or depth == 0:
        return
    first_line: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        path = f"{prefix}{key_node.value}"
        line = key_node.start_mark.line + 1
        if path in first_line:
            duplicates.append(Problem(path, f"given twice (first at line {first_line[path]}); "
                                            "YAML would silently keep the last",
                                      f"{source}:{line}"))
        else:
            first_line[path] = line
            origins[path] = f"{source}:{line}"
        _walk_keys(value_node, f"{path}.", source, origins, duplicates, depth - 1)


def _apply_overrides(data: Any, overrides: Sequence[str], origins: dict[str, str]
                     ) -> tuple[Any, list[Problem]]:
    """Merge ``section.key=value`` strings (values parsed as YAML) into a copy of ``data``."""
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a sequence of 'section.key=value' strings, "
                        f"not a single string {overrides!r}; wrap it in a list")
    if not overrides:
        return data, []
    if not isinstance(data, Mapping):  # top-level problem; _build reports it
        return data, []
    merged = {name: (dict(body) if isinstance(body, Mapping) else body)
              for name, body in data.items()}
    problems = []
    for text in overrides:
        origin = f"override {text!r}"
        target, sep, raw = str(text).partition("=")
        names = target.strip().split(".")
        if not sep or len(names) != 2 or not all(names):
            problems.append(Problem("", "expected the form section.key=value, e.g. "
                                        "train.epochs=3", origin))
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            detail = getattr(err, "problem", None) or str(err)
            problems.append(Problem(target.strip(), f"cannot parse {raw!r} as YAML: {detail}",
                                    origin))
            continue
        section, key = names
        body = merged.get(section)
        if body is None:
            body = merged[section] = {}
        if isinstance(body, dict):
            body[key] = value
            origins[f"{section}.{key}"] = origin
            origins.setdefault(section, origin)
    return merged, problems


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML config over the defaults and apply ``section.key=value`` overrides.

    Args:
        path: a YAML file holding any subset of the sections and keys of
            ``configs/default.yaml``; ``None`` uses the defaults only.
        overrides: strings such as ``"train.epochs=3"``, ``"model.conv_filters=[8, 16]"`` or
            ``"data.cache_dir=null"``; the value is read as YAML. Applied after the file.

    Returns:
        The validated, frozen ``Config``.

    Raises:
        ConfigError: listing every problem with its file and line (or override), key path,
            the value received and what is allowed.
    """
    if path is None:
        source, data, origins, problems = "<defaults>", {}, {}, []
    else:
        source = os.fspath(path)
        data, origins, problems = _read_yaml(path)
    data, override_problems = _apply_overrides(data, overrides, origins)
    problems += override_problems
    try:
        config = _build(data, source, origins)
    except ConfigError as err:
        problems += list(err.problems)
    if problems:
        raise ConfigError(problems, source)
    return config


# --------------------------------------------------------------------------------------------
# Back to plain data


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Plain, YAML-ready mapping: tuples become lists, production_filter a {pv: minimum} map."""
    out: dict[str, dict[str, Any]] = {}
    for name in SECTION_CLASSES:
        section = getattr(config, name)
        body = {}
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if f.metadata.get("mapping"):
                value = {pv: minimum for pv, minimum in value}
            elif isinstance(value, tuple):
                value = list(value)
            body[f.name] = value
        out[name] = body
    return out


def dump_config(config: Config) -> str:
    """YAML text of ``config``, sections in ``configs/default.yaml`` order; loads back equal."""
    header = "# beamwatch resolved config (parser.configs.dump_config)\n"
    return header + yaml.safe_dump(
        config_to_dict(config), sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def replace_section(config: Config, section: str, **changes: Any) -> Config:
    """A copy of ``config`` with some keys of one section changed (and validated).

    >>> replace_section(Config(), "train", epochs=3).train.epochs
    3
    """
    if section not in SECTION_CLASSES:
        raise ConfigError(Problem(str(section), _unknown_section(section)))
    unknown = [k for k in changes if k not in field_names_of(SECTION_CLASSES[section])]
    if unknown:
        raise ConfigError([Problem(f"{section}.{k}", _unknown_key(section, k)) for k in unknown])
    updated = dataclasses.replace(getattr(config, section), **changes)
    return dataclasses.replace(config, **{section: updated})


# --------------------------------------------------------------------------------------------
# The kind of a trained run


def run_source(run_dir: str | os.PathLike) -> str:
    """The `data.source` a run was trained on, from its config.yaml (`sns_dcm` when the file
    does not name one: runs from before the other jobs existed)."""
    from utils.run_folder import NoRunFoundError
    from utils.status import SNS_SOURCE

    path = Path(run_dir) / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise NoRunFoundError(f"{path} cannot be read as YAML: {exc}".splitlines()[0]) from exc
    data = config.get("data") if isinstance(config, dict) else None
    source = data.get("source") if isinstance(data, dict) else None
    return str(source) if source else SNS_SOURCE


def require_source(run_dir: str | os.PathLike, sources: tuple[str, ...], verb: str) -> None:
    """Refuse `verb` on a run whose data.source is not one of `sources`, naming both kinds."""
    from utils.run_folder import NoRunFoundError
    from utils.status import article, source_words

    source = run_source(run_dir)
    if source not in sources:
        wanted = " or ".join(source_words(s) for s in sources)
        raise NoRunFoundError(f"{verb} needs {article(wanted)} run; {run_dir} is "
                              f"{article(source_words(source))} run (data.source: {source})")
