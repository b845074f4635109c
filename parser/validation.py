"""Config validation machinery: field checks (`option`), coercion of YAML values, `ConfigError`.

Each section dataclass of `parser.schema` subclasses `Section`, which checks and normalises its
fields in `__post_init__` and reports every problem as a `Problem` inside one `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any, ClassVar, NamedTuple

from utils.errors import UsageError

__all__ = ["ConfigError", "Problem"]


# --------------------------------------------------------------------------------------------
# Errors


class Problem(NamedTuple):
    """One config problem: the key path, what is wrong, and where the value came from."""

    key: str  # key path such as "train.learning_rate"; "" for the file as a whole
    detail: str  # what was received and what is allowed
    origin: str | None = None  # "configs/x.yaml:12", "override 'train.epochs=x'", ...

    def __str__(self) -> str:
        parts = [p for p in (self.origin, self.key, self.detail) if p]
        return ": ".join(parts)


class ConfigError(UsageError, ValueError):
    """Every config problem: unknown key, wrong type, out of range, unreadable file.

    ``problems`` holds each ``Problem``; the message lists them all, one per line.
    """

    def __init__(self, problems: str | Problem | Iterable[Problem], source: str | None = None):
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.source = source
        self.problems: tuple[Problem, ...] = tuple(
            p if p.origin or source is None else p._replace(origin=source) for p in problems
        )
        super().__init__(self._message())

    def _message(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        where = f" in {self.source}" if self.source else ""
        lines = [f"{len(self.problems)} config problems{where}:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class _Invalid(Exception):
    """Internal: one value failed its check; ``detail`` says how."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


# --------------------------------------------------------------------------------------------
# Field specifications: the type comes from the annotation, the rest from field metadata.


def option(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
    path: bool = False,
    unique: bool = False,
    mapping: bool = False,
) -> Any:
    """A dataclass field with its checks; bounds and ``unique`` apply to a tuple's items."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "path": path,
            "unique": unique, "mapping": mapping}
    return field(default=default, metadata=meta)


_NO_CHECKS: Mapping[str, Any] = {}


def show_value(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _describe(hint: Any, meta: Mapping[str, Any]) -> str:
    """Human wording of what a field accepts, e.g. 'a number in (0, 1)'."""
    args = typing.get_args(hint)
    if _is_optional(hint):
        inner = next(a for a in args if a is not type(None))
        return f"{_describe(inner, meta)} or null"
    if typing.get_origin(hint) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = args[0]
            if typing.get_origin(item) is tuple:
                return "a mapping of PV name to minimum (number)"
            noun = _describe(item, meta).removeprefix("a ").removeprefix("an ")
            noun = noun.replace("integer", "integers", 1).replace("string", "strings", 1)
            return f"a list of {noun}" + (" without duplicates" if meta.get("unique") else "")
        nouns = (_describe(a, _NO_CHECKS).removeprefix("a ").removeprefix("an ") for a in args)
        return "a [" + ", ".join(nouns) + "] pair"
    if hint is bool:
        return "true or false"
    if hint is str:
        if meta.get("choices"):
            return "one of " + ", ".join(repr(c) for c in meta["choices"])
        return "a non-empty string"
    noun = "an integer" if hint is int else "a number"
    lo = meta.get("ge") if meta.get("ge") is not None else meta.get("gt")
    hi = meta.get("le") if meta.get("le") is not None else meta.get("lt")
    if lo is not None and hi is not None:
        left = "[" if meta.get("ge") is not None else "("
        right = "]" if meta.get("le") is not None else ")"
        return f"{noun} in {left}{_fmt(lo)}, {_fmt(hi)}{right}"
    if lo is not None:
        return f"{noun} {'>=' if meta.get('ge') is not None else '>'} {_fmt(lo)}"
    if hi is not None:
        return f"{noun} {'<=' if meta.get('le') is not None else '<'} {_fmt(hi)}"
    return noun


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )


def _in_range(x: float, meta: Mapping[str, Any]) -> bool:
    checks = (
        (meta.get("ge"), lambda b: x >= b),
        (meta.get("gt"), lambda b: x > b),
        (meta.get("le"), lambda b: x <= b),
        (meta.get("lt"), lambda b: x < b),
    )
    return all(bound is None or ok(bound) for bound, ok in checks)


def _coerce(value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    """Check ``value`` against ``hint`` and ``meta``; return it normalised or raise _Invalid."""
    expected = _describe(hint, meta)
    if _is_optional(hint):
        if value is None:
            return None
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        try:
            return _coerce(value, inner, meta)
        except _Invalid as err:  # same detail, with "or null" added to what is allowed
            inner_expected = f"expected {_describe(inner, meta)}"
            raise _Invalid(err.detail.replace(inner_expected, f"expected {expected}", 1)) from None
    if typing.get_origin(hint) is tuple:
        return _coerce_tuple(value, hint, meta, expected)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        number = _as_int(value)
        if number is not None and _in_range(number, meta):
            return number
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number) and _in_range(number, meta):
                return number
    elif hint is str:
        if meta.get("path") and isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, str) and value.strip():
            if not meta.get("choices") or value in meta["choices"]:
                return value
        elif isinstance(value, (int, float)):
            raise _Invalid(f"received {show_value(value)}; expected {expected} "
                           "(quote it to give a number as text)")
    raise _Invalid(f"received {show_value(value)}; expected {expected}")


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is an integer or an integral float; never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def _coerce_tuple(value: Any, hint: Any, meta: Mapping[str, Any], expected: str) -> tuple:
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
        item_hint = args[0]
        if meta.get("mapping") and isinstance(value, Mapping):
            labels = [f"entry {k!r}" for k in value]
            value = list(value.items())
        elif isinstance(value, (list, tuple)):
            labels = [f"item {i}" for i in range(len(value))]
        else:
            raise _Invalid(f"received {show_value(value)}; expected {expected}")
        items = []
        for label, item in zip(labels, value, strict=True):
            try:
                items.append(_coerce(item, item_hint, meta))
            except _Invalid as err:
                raise _Invalid(f"{label}: {err.detail}") from None
        if meta.get("unique"):
            keys = [i[0] if isinstance(i, tuple) else i for i in items]
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                raise _Invalid(f"received duplicates {dupes}; expected {expected}")
        return tuple(items)
    # fixed-length tuple such as a (pv, minimum) pair
    if not isinstance(value, (list, tuple)) or len(value) != len(args):
        raise _Invalid(f"received {show_value(value)}; expected {expected}")
    return tuple(_coerce(v, a, _NO_CHECKS) for v, a in zip(value, args, strict=True))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_names_of(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


class Section:
    """Mixin that validates and normalises a section dataclass after construction."""

    section: ClassVar[str]

    def __post_init__(self) -> None:
        self._prepare()
        problems = []
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            try:
                value = _coerce(getattr(self, f.name), hints[f.name], f.metadata)
            except _Invalid as err:
                problems.append(Problem(f"{self.section}.{f.name}", err.detail))
            else:
                object.__setattr__(self, f.name, value)
        if not problems:  # cross-key checks only make sense on well-typed values
            problems = [Problem(f"{self.section}.{k}", d) for k, d in self._cross_check()]
        if problems:
            raise ConfigError(problems)

    def _prepare(self) -> None:
        """Normalise accepted spellings before the type checks (override when needed)."""

    def _cross_check(self) -> list[tuple[str, str]]:
        """Checks that involve several keys: ``[(key, detail), ...]`` (override when needed)."""
        return []

