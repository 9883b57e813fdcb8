"""Metadata to plain JSON: every type converted, one rule for NaN, clear refusals."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from pathlib import PurePosixPath

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from acquire.storage.errors import DatasetError
from acquire.storage.jsonsafe import json_safe
from correlate.errors import HintedError
from correlate.json_values import plain_json


class Shutter(enum.Enum):
    OPEN = "open"


def test_numpy_and_python_types_become_plain_json() -> None:
    value = {
        "exposure_ms": np.float32(12.5),
        "binning": np.int64(2),
        "flags": np.array([True, False]),
        "matrix": np.eye(2),
        "shape": (3, 4),
        "when": dt.datetime(2026, 12, 7, 10, 15, tzinfo=dt.UTC),
        "file": PurePosixPath("/data/run1"),
        "shutter": Shutter.OPEN,
        "on": np.bool_(True),
        "nested": [{"z_um": np.float64(0.25)}],
    }
    out = plain_json(value, where="plane 0", non_finite="refuse")
    assert out == {
        "exposure_ms": 12.5,
        "binning": 2,
        "flags": [True, False],
        "matrix": [[1.0, 0.0], [0.0, 1.0]],
        "shape": [3, 4],
        "when": "2026-12-07T10:15:00+00:00",
        "file": "/data/run1",
        "shutter": "open",
        "on": True,
        "nested": [{"z_um": 0.25}],
    }
    assert type(out["binning"]) is int and type(out["on"]) is bool
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_non_finite_numbers_are_null_or_refused_with_their_key(number: float) -> None:
    value = {"stage": {"z_um": [1.0, number]}}
    assert plain_json(value, where="the manifest", non_finite="null") == {
        "stage": {"z_um": [1.0, None]}
    }

    class CatalogError(HintedError):
        pass

    with pytest.raises(CatalogError, match=r"'stage\.z_um' in the manifest holds"):
        plain_json(value, where="the manifest", non_finite="refuse", error=CatalogError)


def test_keys_that_are_not_text_and_objects_without_json_form_are_refused() -> None:
    with pytest.raises(DatasetError, match=r"the key 3 of 'channels' in plane 2"):
        json_safe({"channels": {3: "GFP"}}, where="plane 2")
    with pytest.raises(DatasetError, match=r"'device' in plane 2 is a object"):
        json_safe({"device": object()}, where="plane 2")
    with pytest.raises(HintedError, match="bytes, which has no JSON form"):
        plain_json(b"raw", where="x", non_finite="null")
    with pytest.raises(ValueError, match="non_finite"):
        plain_json(1.0, where="x", non_finite="drop")  # type: ignore[arg-type]


def test_datasets_keep_a_missing_reading_as_null() -> None:
    assert json_safe({"temperature_c": float("nan")}, where="plane 0") == {
        "temperature_c": None
    }


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
)
json_trees = st.recursive(
    json_leaves,
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_trees)
def test_any_json_tree_survives_and_dumps_without_nan(value: object) -> None:
    out = plain_json(value, where="fuzz", non_finite="null")
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text) == out
