"""Find the keys of a sequence file that useq-schema would silently ignore.

useq-schema's models ignore unknown keys: a misspelled ``z_plan`` vanishes and
the sequence runs without a z stack. `unknown_key_problem` walks the user's
data together with the validated model (or, when validation failed, with the
model classes the schema allows there) and compares every key with the fields
of the model class it became. Nothing here lists useq's fields by hand.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel, ValidationError

from acquire.sequence.problems import (
    KeyPath,
    Problem,
    format_key_path,
    validation_problem,
    where,
)

__all__ = ["unknown_key_problem"]

_UNION_ORIGINS = (Union, UnionType, Annotated)
_CONTAINERS = (tuple, list, set, frozenset, Sequence)


def _model_classes(annotation: object) -> tuple[type[BaseModel], ...]:
    """Return the pydantic model classes an annotation admits, in order.

    Looks through unions, optionals and ``Annotated``, not into containers.
    """
    found: list[type[BaseModel]] = []

    def visit(item: object) -> None:
        origin = get_origin(item)
        if origin in _UNION_ORIGINS:
            for arg in get_args(item)[: 1 if origin is Annotated else None]:
                visit(arg)
        elif (
            origin is None
            and isinstance(item, type)
            and issubclass(item, BaseModel)
            and item not in found
        ):
            found.append(item)

    visit(annotation)
    return tuple(found)


def _item_classes(annotation: object) -> tuple[type[BaseModel], ...]:
    """Return the model classes of the items of a list-valued annotation.

    ``tuple[Position, ...]`` gives ``(Position,)``; an annotation without a
    container (a list useq turns into one model) gives its own classes.
    """
    found: list[type[BaseModel]] = []

    def visit(item: object) -> None:
        origin = get_origin(item)
        if origin in _UNION_ORIGINS:
            for arg in get_args(item)[: 1 if origin is Annotated else None]:
                visit(arg)
        elif isinstance(origin, type) and issubclass(origin, _CONTAINERS):
            for arg in get_args(item):
                found.extend(c for c in _model_classes(arg) if c not in found)

    visit(annotation)
    return tuple(found) or _model_classes(annotation)


def _accepted_keys(cls: type[BaseModel]) -> dict[str, str]:
    """Map every key a model class accepts (field names and aliases) to its field."""
    keys: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        keys[name] = name
        if isinstance(info.alias, str):
            keys[info.alias] = name
        alias = info.validation_alias
        if isinstance(alias, str):
            keys[alias] = name
        elif isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    keys[choice] = name
    return keys


def _did_you_mean(key: object, preferred: Sequence[str], others: Sequence[str]) -> str:
    """Return ``"Did you mean 'z_plan'? "`` for a near miss, else ``""``."""
    text = str(key)
    for pool in (preferred, others):
        lowered = {name.lower(): name for name in pool}
        if text.lower() in lowered:
            return f"Did you mean '{lowered[text.lower()]}'? "
        close = difflib.get_close_matches(text, list(pool), n=1, cutoff=0.6)
        if close:
            return f"Did you mean '{close[0]}'? "
    return ""


# -- unknown keys --------------------------------------------------------------


def unknown_key_problem(
    raw: Mapping[Any, Any], model: BaseModel | None, cls: type[BaseModel]
) -> Problem | None:
    """Find the first key in ``raw`` that useq-schema would silently ignore.

    Parameters
    ----------
    raw : Mapping
        The user's data as read from the file (not modified by validation).
    model : BaseModel or None
        The model validated from ``raw``; None when validation failed, in which
        case every class the schema allows at a place is accepted there.
    cls : type of BaseModel
        The class ``raw`` was validated as (`useq.MDASequence`).

    Returns
    -------
    Problem or None
        The first unknown key in file order, or None when every key is used.

    """
    return next(_walk(raw, model, (cls,), (), ()), None)


def _walk(
    raw: object,
    value: object,
    candidates: tuple[type[BaseModel], ...],
    item_candidates: tuple[type[BaseModel], ...],
    path: KeyPath,
) -> Iterator[Problem]:
    """Yield the unknown keys in ``raw``, which validated into ``value``.

    ``candidates`` are the model classes the schema allows for ``raw`` itself,
    ``item_candidates`` those for its items when it is a list; ``value`` is
    None where validation failed.
    """
    if isinstance(raw, Mapping):
        if isinstance(value, BaseModel):
            yield from _walk_model(raw, value, candidates, path)
        elif value is None and candidates:
            yield from _walk_schema(raw, candidates, path)
        return
    if not isinstance(raw, list):
        return
    items: Sequence[object] = [None] * len(raw)
    if isinstance(value, BaseModel):
        # A list that became one model (time_plan: [phase, ...]): pair it with
        # the model's only list-valued field of the same length.
        fields = [
            name
            for name in type(value).model_fields
            if isinstance(getattr(value, name), (list, tuple))
            and len(getattr(value, name)) == len(raw)
        ]
        if len(fields) != 1:
            return
        items = getattr(value, fields[0])
        item_candidates = _item_classes(type(value).model_fields[fields[0]].annotation)
    elif isinstance(value, (list, tuple)) and len(value) == len(raw):
        items = value
    for index, (item, item_value) in enumerate(zip(raw, items, strict=True)):
        yield from _walk(item, item_value, item_candidates, (), (*path, index))


def _walk_field(
    raw: object, value: object, annotation: object, path: KeyPath
) -> Iterator[Problem]:
    """Walk the value of one field, declared as ``annotation``."""
    yield from _walk(
        raw, value, _model_classes(annotation), _item_classes(annotation), path
    )


def _walk_model(
    raw: Mapping[Any, Any],
    model: BaseModel,
    candidates: tuple[type[BaseModel], ...],
    path: KeyPath,
) -> Iterator[Problem]:
    """Check ``raw``'s keys against the class ``model`` was validated as."""
    cls = type(model)
    keys = _accepted_keys(cls)
    for key in raw:
        if key not in keys and not _renamed_by_validator(key, raw, model, keys):
            yield _unknown_in_model(raw, key, cls, candidates, path)
            return
    for key, item in raw.items():
        if key in keys:  # else an old spelling a validator moved elsewhere
            name = keys[key]
            annotation = cls.model_fields[name].annotation
            yield from _walk_field(item, getattr(model, name), annotation, (*path, key))


def _walk_schema(
    raw: Mapping[Any, Any], candidates: tuple[type[BaseModel], ...], path: KeyPath
) -> Iterator[Problem]:
    """Check ``raw``'s keys against every class the schema allows here."""
    keys_of = {cls: _accepted_keys(cls) for cls in candidates}
    known = list(dict.fromkeys(key for keys in keys_of.values() for key in keys))
    for key, item in raw.items():
        owners = [cls for cls, keys in keys_of.items() if key in keys]
        if not owners:
            yield Problem(
                (*path, key),
                f"Unknown key '{key}' {where(path)}",
                _did_you_mean(key, known, ()) + f"{_place(path)} accepts: "
                f"{', '.join(known)}.",
            )
            return
        for cls in owners:
            annotation = cls.model_fields[keys_of[cls][key]].annotation
            problem = next(_walk_field(item, None, annotation, (*path, key)), None)
            if problem is not None:
                yield problem
                return


def _renamed_by_validator(
    key: object, raw: Mapping[Any, Any], model: BaseModel, keys: Mapping[str, str]
) -> bool:
    """Whether a validator moved ``raw[key]`` into a field the user did not name.

    useq-schema accepts a few old spellings this way (a position's ``row``
    becomes ``grid_row``); such a key is understood, not ignored.
    """
    given = {keys[k] for k in raw if k in keys}
    for name in model.model_fields_set - given:
        try:
            if getattr(model, name) == raw[key]:
                return True
        except (TypeError, ValueError):  # pragma: no cover - odd comparisons
            continue
    return False


def _unknown_in_model(
    raw: Mapping[Any, Any],
    key: object,
    cls: type[BaseModel],
    candidates: tuple[type[BaseModel], ...],
    path: KeyPath,
) -> Problem:
    """Explain the unknown ``key`` of ``raw``, which became a ``cls``."""
    fitting = [
        other
        for other in candidates
        if other is not cls and all(k in _accepted_keys(other) for k in raw)
    ]
    if fitting:
        # The keys are those of another kind of plan whose validation failed,
        # so useq fell back to ``cls``: report why that kind failed.
        try:
            fitting[0].model_validate(dict(raw))
        except ValidationError as exc:
            return validation_problem(exc, raw, path)
        except (TypeError, ValueError, ArithmeticError):
            pass  # no better explanation than the unknown key
    fields = list(cls.model_fields)
    accepts = f"{_place(path)} accepts: {', '.join(fields)}."
    owners = [c.__name__ for c in candidates if key in _accepted_keys(c)]
    if owners:
        return Problem(
            (*path, key),
            f"The key '{key}' does not go with the other keys {where(path)}, "
            f"which make it a {cls.__name__}",
            f"Use the keys of one kind of plan only; a {cls.__name__} "
            f"takes: {', '.join(fields)}.",
        )
    others = [k for other in candidates for k in other.model_fields]
    kind = f" (read as {cls.__name__})" if len(candidates) > 1 else ""
    return Problem(
        (*path, key),
        f"Unknown key '{key}' {where(path)}{kind}",
        _did_you_mean(key, fields, others) + accepts,
    )


def _place(path: KeyPath) -> str:
    """``"'z_plan'"``, or ``"The top level"`` for the empty path."""
    return f"'{format_key_path(path)}'" if path else "The top level"
