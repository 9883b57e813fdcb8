"""Turn metadata from devices and callers into plain JSON values."""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

from acquire.storage.errors import DatasetError

__all__ = ["json_safe", "utc_now_iso"]


def utc_now_iso() -> str:
    """Return the current UTC time as ISO 8601 text with milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def json_safe(value: Any, *, where: str) -> Any:
    """Return ``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    NumPy scalars and arrays become Python numbers and lists, tuples become
    lists, datetimes become ISO 8601 text, paths become text and enums their
    value. Non-finite floats (NaN, inf) are not valid JSON and become ``None``
    ("unknown").

    Parameters
    ----------
    value : Any
        The value to convert.
    where : str
        Where the value comes from, for the error message (e.g. ``"plane c=0
        z=3 of stack t0000_p0000_g0000"``).

    Returns
    -------
    Any
        A value `json.dumps` accepts with ``allow_nan=False``.

    Raises
    ------
    DatasetError
        A value of a type with no JSON form, or a mapping key that is not text.

    """
    return _convert(value, where=where, key="")


def _convert(value: Any, *, where: str, key: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return _convert(value.value, where=where, key=key)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        return _convert(value.tolist(), where=where, key=key)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for sub_key, sub_value in value.items():
            if not isinstance(sub_key, str):
                raise DatasetError(
                    f"metadata key {sub_key!r} in {where} is not text",
                    "Use text keys in metadata mappings.",
                )
            dotted = f"{key}.{sub_key}" if key else sub_key
            out[sub_key] = _convert(sub_value, where=where, key=dotted)
        return out
    if isinstance(value, (list, tuple)):
        return [_convert(item, where=where, key=key) for item in value]
    raise DatasetError(
        f"metadata {key or 'value'!r} in {where} is a {type(value).__name__}, "
        "which has no JSON form",
        "Pass numbers, text, booleans, lists or mappings of them.",
    )
