"""Problems found in a sequence file, and pydantic's errors worded as problems.

A `Problem` is one thing wrong in a sequence, located by its key path (the
keys and list indices from the top of the file). `validation_problem` turns
pydantic's report on a failed `useq.MDASequence` into the one problem the user
should fix first, worded for a microscopist and located in the user's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "KeyPath",
    "Problem",
    "format_key_path",
    "shown_value",
    "validation_problem",
    "where",
]

#: A path into the user's data: mapping keys and list indices.
KeyPath = tuple[object, ...]

_MAX_SHOWN_CHARS = 60


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a sequence, located by its key path.

    Attributes
    ----------
    path : KeyPath
        Keys and list indices from the top of the file to the offending entry.
    what : str
        What is wrong, one sentence naming the entry.
    hint : str
        How to fix it.

    """

    path: KeyPath
    what: str
    hint: str


def format_key_path(path: KeyPath) -> str:
    """Write a key path as a microscopist reads it: ``stage_positions[1].z_plan``.

    Parameters
    ----------
    path : KeyPath
        Keys and list indices.

    Returns
    -------
    str
        The dotted path, ``""`` for the top level.

    """
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def shown_value(value: object) -> str:
    """Return ``repr(value)``, shortened for a one-line message."""
    text = repr(value)
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[: _MAX_SHOWN_CHARS - 3] + "..."
    return text


def _number(value: object) -> str:
    """Write a number as ``0`` rather than ``0.0``; other values as given."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


def where(path: KeyPath) -> str:
    """Return ``"in 'z_plan'"`` or ``"at the top level"``."""
    return f"in '{format_key_path(path)}'" if path else "at the top level"


_TYPE_HINTS = {
    "float_parsing": "Write a number.",
    "float_type": "Write a number.",
    "int_parsing": "Write a whole number.",
    "int_type": "Write a whole number.",
    "int_from_float": "Write a whole number.",
    "bool_parsing": "Write true or false.",
    "bool_type": "Write true or false.",
    "string_type": "Write text (in quotes if it looks like a number).",
    "tuple_type": "Write a list ('- item' lines or [a, b]).",
    "list_type": "Write a list ('- item' lines or [a, b]).",
}


def validation_problem(
    error: ValidationError, raw: object, prefix: KeyPath = ()
) -> Problem:
    """Turn pydantic's report into the one problem the user should fix first.

    For a union (``z_plan``, ``time_plan``, ``grid_plan``) pydantic reports why
    every kind of plan failed; the kind with the fewest missing keys is the one
    the user meant.

    Parameters
    ----------
    error : ValidationError
        What `useq.MDASequence.model_validate` raised.
    raw : object
        The data that was validated.
    prefix : KeyPath
        Key path of ``raw`` in the file.

    Returns
    -------
    Problem
        The first problem, located in the user's data.

    """
    details = error.errors(include_url=False)
    resolved = [
        _resolve(raw, tuple(d["loc"]), d.get("input"), d["type"]) for d in details
    ]
    missing_per_group: dict[tuple[object, ...], int] = {}
    for detail, (_, group) in zip(details, resolved, strict=True):
        if detail["type"] == "missing":
            missing_per_group[group] = missing_per_group.get(group, 0) + 1
    best = min(
        range(len(details)),
        key=lambda i: (
            missing_per_group.get(resolved[i][1], 0),
            details[i]["type"] == "missing",
            i,
        ),
    )
    detail = details[best]
    path = (*prefix, *resolved[best][0])
    loc = tuple(detail["loc"])
    if detail["type"] == "missing" and loc and (not path or path[-1] != loc[-1]):
        path = (*path, loc[-1])
    return _problem_from_detail(detail, path)


def _problem_from_detail(detail: Mapping[str, Any], path: KeyPath) -> Problem:
    """Word one pydantic error detail for a microscopist."""
    kind = detail["type"]
    shown = format_key_path(path)
    given = detail.get("input")
    if kind == "missing":
        parent = format_key_path(path[:-1])
        owner = f"'{parent}'" if parent else "The sequence"
        return Problem(
            path,
            f"{owner} needs the key '{path[-1]}'",
            f"Add '{path[-1]}: <value>'" + (f" under '{parent}'." if parent else "."),
        )
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return Problem(
            path,
            f"'{shown}' must be a mapping of keys, not {shown_value(given)}",
            f"Write '{path[-1] if path else shown}' as indented 'key: value' lines.",
        )
    message = str(detail["msg"])
    for lead in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(lead)
    message = message[:1].lower() + message[1:]
    ctx = detail.get("ctx") or {}
    hint = _TYPE_HINTS.get(kind, "")
    bound = {k: _number(v) for k, v in ctx.items() if k in {"gt", "ge", "lt", "le"}}
    if "gt" in bound:
        hint = f"Use a value above {bound['gt']}."
    elif "ge" in bound:
        hint = f"Use {bound['ge']} or more."
    elif "lt" in bound:
        hint = f"Use a value below {bound['lt']}."
    elif "le" in bound:
        hint = f"Use {bound['le']} or less."
    elif "expected" in ctx:
        hint = f"Use one of: {ctx['expected']}."
    if not hint:
        hint = "See the useq-schema documentation for this entry."
    subject = f"'{shown}'" if shown else "The sequence"
    got = (
        f" (got {shown_value(given)})"
        if kind != "value_error" and given is not None
        else ""
    )
    return Problem(path, f"{subject}: {message}{got}", hint)


def _resolve(
    raw: object, loc: tuple[object, ...], wanted: object, kind: str
) -> tuple[KeyPath, tuple[object, ...]]:
    """Follow pydantic's ``loc`` through the user's data.

    ``loc`` mixes the user's keys with entries the user never wrote (the names
    of union members, validator tags) and loses list indices where useq builds
    items in its own validators. Returns the key path in the user's data and
    the union group of the error (``loc`` up to its last skipped entry).
    """
    path, _, skipped = _follow(raw, loc, wanted, kind == "missing")
    group = loc[: skipped + 1] if skipped >= 0 else ()
    return path, group


def _follow(
    node: object, loc: tuple[object, ...], wanted: object, missing: bool, depth: int = 0
) -> tuple[KeyPath, bool, int]:
    """Return (key path, whether it leads to ``wanted``, last skipped loc index)."""
    if not loc:
        return (), _same(node, wanted) and not missing, -1
    head, rest = loc[0], loc[1:]
    if isinstance(node, Mapping):
        if head in node:
            path, found, skipped = _follow(node[head], rest, wanted, missing, depth + 1)
            return (head, *path), found, skipped
        if missing and not rest:
            return (head,), _same(node, wanted), -1
        path, found, skipped = _follow(node, rest, wanted, missing, depth + 1)
        return path, found, max(skipped, depth)
    if isinstance(node, list):
        if isinstance(head, int) and not isinstance(head, bool):
            if 0 <= head < len(node):
                path, found, skipped = _follow(
                    node[head], rest, wanted, missing, depth + 1
                )
                return (head, *path), found, skipped
        else:
            # useq validated the items itself and the index was lost: find the
            # item that holds the value pydantic reports (for a missing key:
            # the item that is pydantic's input).
            for index, item in enumerate(node):
                if isinstance(item, Mapping) and (head in item or missing):
                    path, found, skipped = _follow(item, loc, wanted, missing, depth)
                    if found:
                        return (index, *path), True, skipped
        path, found, skipped = _follow(node, rest, wanted, missing, depth + 1)
        return path, found, max(skipped, depth)
    return (), False, -1


def _same(value: object, wanted: object) -> bool:
    """``value == wanted``, False where the comparison itself fails."""
    try:
        return bool(value == wanted)
    except (TypeError, ValueError):  # pragma: no cover - array-like inputs
        return False
