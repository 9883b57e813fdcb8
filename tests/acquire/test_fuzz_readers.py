"""Fuzzing the readers of user files: any input loads or gives our one error.

Each reader gets arbitrary text and arbitrary JSON-shaped data (Hypothesis,
seeded by the test database's derandomised profile below): it must return its
object or raise the project's own error (a ``UserError``, or the library's
documented error class) with a one-line message, never another exception.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquire.config.parse import parse_config_lines
from acquire.errors import UserError
from acquire.sequence.read import parse_sequence
from acquire.sequence.source import SequenceError
from acquire.storage.session import load_session
from acquire.workflows.relocation import load_holder
from enhance.checkpoint import checkpoint_from_payload
from enhance.errors import CheckpointError

if TYPE_CHECKING:
    import pytest

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # CI runs the same examples every time
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

finite_or_not = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
)
scalars = st.one_of(st.none(), st.booleans(), finite_or_not, st.text(max_size=12))
json_data = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=20,
)


def _one_line(error: BaseException) -> None:
    text = str(error)
    assert text.strip(), "an error without a message"
    assert "Traceback" not in text


def _sequence_like() -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with the keys a sequence has, holding anything."""
    keys = st.sampled_from(
        ["channels", "z_plan", "stage_positions", "time_plan", "grid_plan",
         "axis_order", "metadata", "autofocus_plan", "keep_shutter_open_across"]
    )  # fmt: skip
    return st.dictionaries(keys, json_data, max_size=4)


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_is_a_sequence_or_one_sequence_error(text: str) -> None:
    try:
        parse_sequence(text)
    except SequenceError as error:
        _one_line(error)


@FUZZ
@given(data=_sequence_like())
def test_any_sequence_shaped_data_is_a_sequence_or_one_error(
    data: dict[str, Any],
) -> None:
    try:
        text = yaml.safe_dump(data)
    except yaml.YAMLError:
        return
    try:
        parse_sequence(text)
    except SequenceError as error:
        _one_line(error)


@FUZZ
@given(
    plan=st.one_of(
        st.fixed_dictionaries({"range": finite_or_not, "step": finite_or_not}),
        st.fixed_dictionaries(
            {"top": finite_or_not, "bottom": finite_or_not, "step": finite_or_not}
        ),
    ),
    position=st.fixed_dictionaries(
        {"x": finite_or_not, "y": finite_or_not, "z": finite_or_not}
    ),
)
def test_any_numbers_in_plans_and_positions_are_a_sequence_or_one_error(
    plan: dict[str, Any], position: dict[str, Any]
) -> None:
    text = yaml.safe_dump({"z_plan": plan, "stage_positions": [position]})
    try:
        parse_sequence(text)
    except SequenceError as error:
        _one_line(error)


def _holder_like() -> st.SearchStrategy[Any]:
    mark = st.fixed_dictionaries(
        {},
        optional={
            "identity": scalars,
            "shape": st.one_of(st.sampled_from(["disc", "ring", "cross"]), scalars),
            "size_um": finite_or_not,
            "nominal_centre_um": st.lists(finite_or_not, max_size=3),
            "orientation_deg": finite_or_not,
        },
    )
    return st.one_of(
        json_data, st.fixed_dictionaries({"marks": st.lists(mark, max_size=3)})
    )


@FUZZ
@given(data=_holder_like())
def test_any_json_is_a_holder_or_one_user_error(
    tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    path = tmp_path_factory.mktemp("holder") / "holder.json"
    path.write_text(json.dumps(data))
    try:
        holder = load_holder(path)
    except UserError as error:
        _one_line(error)
        return
    assert holder.marks
    for mark in holder.marks:
        assert math.isfinite(mark.size_um) and mark.size_um > 0
        assert all(map(math.isfinite, mark.nominal_centre_um))


@FUZZ
@given(
    marks=json_data,
    targets=json_data,
    calibrations=json_data,
    metadata=json_data,
)
def test_any_session_json_is_a_session_or_one_user_error(
    tmp_path_factory: pytest.TempPathFactory,
    marks: Any,
    targets: Any,
    calibrations: Any,
    metadata: Any,
) -> None:
    root = Path(__file__).resolve().parents[2]
    holder = json.loads((root / "hardware_configs" / "demo_holder.json").read_text())
    data = {
        "format": "pairscope-correlation-session",
        "format_version": 1,
        "scope": "a",
        "holder": holder,
        "marks": marks,
        "targets": targets,
        "calibrations": calibrations,
        "metadata": metadata,
    }
    path = tmp_path_factory.mktemp("session") / "session.json"
    path.write_text(json.dumps(data))
    try:
        session = load_session(path)
    except UserError as error:
        _one_line(error)
        return
    for xyz in session.marks.values():
        assert all(map(math.isfinite, xyz))


@FUZZ
@given(metadata=json_data, extra=st.dictionaries(st.text(max_size=8), json_data))
def test_any_checkpoint_payload_loads_or_gives_one_checkpoint_error(
    metadata: Any, extra: dict[str, Any]
) -> None:
    payload: dict[str, Any] = {
        **extra,
        "format_version": 3,
        "metadata_json": json.dumps(metadata),
        "state_dict": {},
    }
    try:
        checkpoint_from_payload(payload, source="fuzz.pt")
    except CheckpointError as error:
        _one_line(error)


@FUZZ
@given(text=st.text(max_size=400))
def test_any_text_parses_as_config_lines_or_gives_config_errors(text: str) -> None:
    lines, errors = parse_config_lines(text, Path("fuzz.cfg"))
    for error in errors:
        _one_line(error)
        assert "fuzz.cfg" in str(error)
    assert all(line.number >= 1 for line in lines)
