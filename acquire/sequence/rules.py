"""What useq-schema accepts in a sequence but no acquisition can mean.

A z step of 0 or below (useq quietly takes a single plane), z, time and grid
plans that give nothing or cannot be expanded, negative intervals, empty
channel names, and plans whose axis an explicit ``axis_order`` leaves out (useq
quietly skips them). `semantic_problems` finds them in a validated sequence.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel

from acquire.sequence.problems import KeyPath, Problem, format_key_path

if TYPE_CHECKING:
    from collections.abc import Iterator

    import useq

__all__ = ["semantic_problems"]

#: Which plan of a sequence each axis letter of ``axis_order`` iterates.
_AXIS_PLANS = {
    "t": "time_plan",
    "p": "stage_positions",
    "g": "grid_plan",
    "c": "channels",
    "z": "z_plan",
}


def semantic_problems(sequence: useq.MDASequence) -> Iterator[Problem]:
    """Yield what useq-schema accepts but no acquisition can mean.

    A z step of 0 or below, a z plan, time plan or grid plan that gives no
    planes, time points or tiles (or cannot be expanded at all), a negative
    time interval or duration, an empty channel name, and a plan whose axis is
    left out of an explicit ``axis_order`` (useq would skip the plan). Checked
    at the top level and in every position's sub-sequence.

    Parameters
    ----------
    sequence : useq.MDASequence
        A validated sequence.

    Yields
    ------
    Problem
        In the order of the sequence's fields.

    """
    yield from _sequence_problems(sequence, ())
    if isinstance(sequence.stage_positions, tuple):
        for index, position in enumerate(sequence.stage_positions):
            if position.sequence is not None:
                path = ("stage_positions", index, "sequence")
                yield from _sequence_problems(position.sequence, path)
    yield from _relative_z_problems(sequence)


def _relative_z_problems(sequence: useq.MDASequence) -> Iterator[Problem]:
    """A relative z plan needs a reference z at every position.

    pymmcore-plus sends the offsets of a relative z plan (range around,
    above/below, relative positions) to the focus drive as absolute positions
    when the position has no z: a stack meant around the cell would be taken
    around 0 um, possibly driving the objective into the sample.
    """
    positions = tuple(sequence.stage_positions) or (None,)
    for index, position in enumerate(positions):
        sub = position.sequence if position is not None else None
        plan = sub.z_plan if sub is not None and sub.z_plan else sequence.z_plan
        if plan is None or not plan.is_relative:
            continue
        if position is None or position.z is None:
            path: KeyPath = ("stage_positions", index) if position else ("z_plan",)
            yield Problem(
                path,
                f"'{format_key_path(path)}' has no z, but the z plan is relative "
                "to it, so the stack would be taken around z = 0 um",
                "Give every position a z (its focus), or use an absolute z plan "
                "(top/bottom or absolute positions).",
            )


def _sequence_problems(seq: useq.MDASequence, path: KeyPath) -> Iterator[Problem]:
    """Problems of one sequence (not of its positions' sub-sequences)."""
    if "axis_order" in seq.model_fields_set:
        order = "".join(seq.axis_order)
        for axis, plan in _AXIS_PLANS.items():
            if getattr(seq, plan) and axis not in seq.axis_order:
                yield Problem(
                    (*path, "axis_order"),
                    f"'{format_key_path((*path, plan))}' is given but axis_order "
                    f"'{order}' has no '{axis}', so it would be skipped",
                    f"Add '{axis}' to axis_order, or remove '{plan}'.",
                )
    yield from _z_problems(seq.z_plan, (*path, "z_plan"))
    for index, channel in enumerate(seq.channels):
        if not channel.config.strip():
            yield Problem(
                (*path, "channels", index, "config"),
                f"'{format_key_path((*path, 'channels', index))}' has no channel name",
                "Give the name of a preset of the channel group, e.g. 'config: GFP'.",
            )
    yield from _time_problems(seq.time_plan, (*path, "time_plan"))
    yield from _grid_problems(seq.grid_plan, (*path, "grid_plan"))


def _z_problems(plan: object, path: KeyPath) -> Iterator[Problem]:
    """A z step of 0 or below, or a z plan without planes."""
    if plan is None:
        return
    shown = format_key_path(path)
    step = getattr(plan, "step", None)
    if isinstance(step, (int, float)) and step <= 0:
        yield Problem(
            (*path, "step"),
            f"'{shown}.step' is {step:g} um, but the z step must be above 0",
            "Give the distance between z planes in um, e.g. 'step: 0.5'; for a "
            "single plane leave out z_plan.",
        )
        return
    count = getattr(plan, "num_positions", None)
    if callable(count) and int(count()) <= 0:
        yield Problem(
            path,
            f"'{shown}' gives no z planes",
            "Make the range non-empty (top at or above bottom) or list at least "
            "one z position.",
        )


def _time_problems(plan: object, path: KeyPath) -> Iterator[Problem]:
    """Negative intervals or durations; a time plan without time points."""
    if plan is None:
        return
    parts: list[tuple[KeyPath, object]] = [(path, plan)]
    parts += [
        ((*path, "phases", i), p) for i, p in enumerate(getattr(plan, "phases", ()))
    ]
    for part_path, part in parts:
        if not isinstance(part, BaseModel):  # pragma: no cover - useq always models
            continue
        for name in type(part).model_fields:
            value = getattr(part, name)
            if isinstance(value, timedelta) and value < timedelta(0):
                yield Problem(
                    (*part_path, name),
                    f"'{format_key_path((*part_path, name))}' is negative "
                    f"({value.total_seconds():g} s)",
                    "Give time intervals and durations of 0 s or more.",
                )
                return
    shown = format_key_path(path)
    try:
        count = int(plan.num_timepoints())  # type: ignore[attr-defined]
        for _, part in parts:  # the first two time points need the interval
            list(itertools.islice(part.deltas(), 2))  # type: ignore[attr-defined]
    except (ArithmeticError, ValueError, TypeError):
        yield Problem(
            path,
            f"'{shown}' cannot be expanded into time points",
            "With a duration, give an interval above 0 s (interval + duration) "
            "or at least 2 loops (duration + loops).",
        )
        return
    if count <= 0:
        yield Problem(
            path,
            f"'{shown}' gives no time points",
            "Give at least 1 loop, or a duration of 0 s or more.",
        )


def _grid_problems(plan: object, path: KeyPath) -> Iterator[Problem]:
    """A grid plan without tiles, or one that cannot be expanded."""
    count = getattr(plan, "num_positions", None)
    if plan is None or not callable(count):
        return
    shown = format_key_path(path)
    try:
        tiles = int(count())
    except ValueError:
        return  # the count depends on the field of view: checked when planning
    except (ArithmeticError, TypeError):
        yield Problem(
            path,
            f"'{shown}' cannot be expanded into tiles",
            "Check its sizes and keep the overlap below 100 %.",
        )
        return
    if tiles <= 0:
        yield Problem(
            path,
            f"'{shown}' gives no tiles",
            "Give at least one row and one column, or a non-empty area.",
        )
