"""Metadata to plain JSON values, with one rule for numbers JSON cannot hold.

Datasets, the pair catalog and evaluation reports all store metadata that
callers and devices hand over as NumPy numbers, arrays, tuples, paths, enums
or datetimes. :func:`plain_json` turns such a value into the types
`json.dumps` writes with ``allow_nan=False``. What to do with NaN and
infinity is the caller's choice, and the only one:

``"null"``
    they become ``None`` ("unknown"): device metadata and measured scores,
    where a missing reading must not stop a run;
``"refuse"``
    they raise: catalog records, where a non-finite transform or voxel size
    is a caller's mistake that must not be stored.

It lives in `correlate` because `acquire` and `enhance` may both import it.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Literal

import numpy as np

from correlate.errors import HintedError

__all__ = ["NonFinite", "plain_json"]

NonFinite = Literal["null", "refuse"]


def plain_json(
    value: Any,
    *,
    where: str,
    non_finite: NonFinite,
    error: type[HintedError] = HintedError,
) -> Any:
    """Return ``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    NumPy scalars and arrays become Python numbers and lists, tuples become
    lists, datetimes become ISO 8601 text, paths become text and enums their
    value.

    Parameters
    ----------
    value : Any
        The value to convert.
    where : str
        What the value is, for the error message (e.g. ``"the manifest of
        run1"``); the key path inside it is added.
    non_finite : {"null", "refuse"}
        NaN and infinity become ``None``, or raise ``error``.
    error : type of HintedError
        The error raised for a value JSON cannot hold (the caller's kind of
        mistake: a dataset error, a catalog error).

    Returns
    -------
    Any
        A value `json.dumps` accepts with ``allow_nan=False``.

    Raises
    ------
    HintedError
        Of type ``error``: a value of a type with no JSON form, a mapping key
        that is not text, or (``non_finite="refuse"``) a non-finite number.

    """
    if non_finite not in ("null", "refuse"):
        raise ValueError(f"non_finite must be 'null' or 'refuse', got {non_finite!r}")
    return _convert(value, _Context(where, non_finite, error), key="")


class _Context:
    __slots__ = ("error", "non_finite", "where")

    def __init__(self, where: str, non_finite: NonFinite, error: type[HintedError]):
        self.where = where
        self.non_finite = non_finite
        self.error = error

    def at(self, key: str) -> str:
        return f"{key!r} in {self.where}" if key else self.where


def _convert(value: Any, context: _Context, *, key: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return _convert(value.value, context, key=key)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _number(float(value), context, key=key)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        return _convert(value.tolist(), context, key=key)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for sub_key, sub_value in value.items():
            if not isinstance(sub_key, str):
                raise context.error(
                    f"the key {sub_key!r} of {context.at(key)} is not text",
                    "Use text keys in metadata mappings.",
                )
            dotted = f"{key}.{sub_key}" if key else sub_key
            out[sub_key] = _convert(sub_value, context, key=dotted)
        return out
    if isinstance(value, (list, tuple)):
        return [_convert(item, context, key=key) for item in value]
    raise context.error(
        f"{context.at(key)} is a {type(value).__name__}, which has no JSON form",
        "Pass numbers, text, booleans, None, lists or mappings of them.",
    )


def _number(number: float, context: _Context, *, key: str) -> float | None:
    if math.isfinite(number):
        return number
    if context.non_finite == "null":
        return None
    raise context.error(
        f"{context.at(key)} holds the non-finite number {number}",
        "JSON cannot hold NaN or infinity; use None for unknown values.",
    )
