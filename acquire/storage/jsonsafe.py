"""Turn metadata from devices and callers into plain JSON values."""

from __future__ import annotations

import datetime as dt
from typing import Any

from acquire.storage.errors import DatasetError
from correlate.json_values import plain_json

__all__ = ["json_safe", "utc_now_iso"]


def utc_now_iso() -> str:
    """Return the current UTC time as ISO 8601 text with milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def json_safe(value: Any, *, where: str) -> Any:
    """Dataset metadata as plain JSON values: `correlate.json_values.plain_json`.

    NaN and infinity become None (a device that reports no reading must not
    stop an acquisition); a value JSON cannot hold raises `DatasetError`
    naming ``where`` (e.g. ``"plane c=0 z=3 of stack t0000_p0000_g0000"``).
    """
    return plain_json(value, where=where, non_finite="null", error=DatasetError)
