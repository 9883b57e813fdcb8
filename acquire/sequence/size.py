"""Sizes of a sequence: axis counts without expanding it, grid fields of view.

useq-schema expands every axis into a list before it yields the first event,
so a mistyped ``loops: 100000000`` would take minutes and gigabytes before the
frame cap could stop it. `axis_counts` counts each plan arithmetically and
`frames_lower_bound` gives the fewest frames the sequence can take, so that a
sequence far beyond the cap is refused at once.

Grid tiles depend on the camera's field of view, which the pymmcore-plus
engine writes into every grid plan when the acquisition starts;
`with_field_of_view` does the same ahead of time for planning.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import useq

    from acquire.sequence.problems import KeyPath

__all__ = [
    "axis_counts",
    "describe_counts",
    "frames_lower_bound",
    "grid_without_field_of_view",
    "with_field_of_view",
]


def _count(plan: object, method: str) -> int:
    """Call ``plan.<method>()``; 1 for no plan, 0 where it cannot be counted."""
    if plan is None:
        return 1
    count = getattr(plan, method, None)
    if not callable(count):
        return 1
    try:
        return max(int(count()), 0)
    except (ArithmeticError, ValueError, TypeError):
        return 0


def axis_counts(sequence: useq.MDASequence) -> dict[str, int]:
    """Count the entries of each axis of a sequence (not of its sub-sequences).

    Parameters
    ----------
    sequence : useq.MDASequence
        The sequence.

    Returns
    -------
    dict of str to int
        ``t``, ``p``, ``g``, ``c``, ``z``: entries of each plan (1 where the
        sequence has none, 0 where a plan cannot be counted, such as a grid
        whose tiles depend on an unknown field of view, 1 for an axis that
        ``axis_order`` leaves out).

    """
    positions = sequence.stage_positions
    counts = {
        "t": _count(sequence.time_plan, "num_timepoints"),
        "p": max(len(positions) if isinstance(positions, tuple) else 1, 1),
        "g": _count(sequence.grid_plan, "num_positions"),
        "c": max(len(sequence.channels), 1),
        "z": _count(sequence.z_plan, "num_positions"),
    }
    # useq skips the plan of an axis that axis_order leaves out
    return {axis: n if axis in sequence.axis_order else 1 for axis, n in counts.items()}


def describe_counts(sequence: useq.MDASequence) -> str:
    """Write the axis counts as ``"t 100 x p 10 x c 2 x z 50"`` (axes above 1).

    Parameters
    ----------
    sequence : useq.MDASequence
        The sequence.

    Returns
    -------
    str
        The counts of the axes with more than one entry.

    """
    counts = axis_counts(sequence)
    text = " x ".join(f"{axis} {n:,}" for axis, n in counts.items() if n > 1)
    return text or "one frame per axis"


def frames_lower_bound(sequence: useq.MDASequence) -> int:
    """Return a number of frames the sequence takes at least.

    Channels acquired only every n-th time point and channels without a z
    stack are accounted for; positions with their own sub-sequence make the
    bound fall back to the largest single axis.

    Parameters
    ----------
    sequence : useq.MDASequence
        The sequence.

    Returns
    -------
    int
        The bound (0 when nothing can be said).

    """
    sequences = [sequence]
    if isinstance(sequence.stage_positions, tuple):
        sequences += [p.sequence for p in sequence.stage_positions if p.sequence]
    bounds = []
    for seq in sequences:
        counts = axis_counts(seq)
        every = max((c.acquire_every for c in seq.channels), default=1)
        stacked = all(c.do_stack for c in seq.channels)
        bounds.append(math.ceil(counts["t"] / every))
        bounds.append(counts["g"])
        bounds.append(counts["z"] if stacked else 1)
    if len(sequences) == 1:
        counts = axis_counts(sequence)
        bounds.append(
            bounds[0] * counts["p"] * counts["g"] * (bounds[2] if counts["z"] else 1)
        )
    return max(bounds)


def _grid_plans(
    sequence: useq.MDASequence,
) -> list[tuple[KeyPath, useq.MultiPointPlan]]:
    """The grid plans of a sequence and of its positions' sub-sequences."""
    grids: list[tuple[KeyPath, useq.MultiPointPlan]] = []
    if sequence.grid_plan is not None:
        grids.append((("grid_plan",), sequence.grid_plan))
    if isinstance(sequence.stage_positions, tuple):
        for index, position in enumerate(sequence.stage_positions):
            sub = position.sequence
            if sub is not None and sub.grid_plan is not None:
                path = ("stage_positions", index, "sequence", "grid_plan")
                grids.append((path, sub.grid_plan))
    return grids


def grid_without_field_of_view(
    sequence: useq.MDASequence, *, positions_matter: bool
) -> KeyPath | None:
    """Find a grid plan that cannot be planned without the field of view.

    The tile count of a grid given by extents depends on the field of view;
    the tile positions of every grid do.

    Parameters
    ----------
    sequence : useq.MDASequence
        The sequence.
    positions_matter : bool
        Whether tile positions are needed (to check stage limits), not only
        the number of tiles.

    Returns
    -------
    KeyPath or None
        Where the first such grid plan is, None if there is none.

    """
    for path, grid in _grid_plans(sequence):
        if grid.fov_width is not None and grid.fov_height is not None:
            continue
        if positions_matter:
            return path
        try:
            grid.num_positions()
        except ValueError:
            return path
    return None


def with_field_of_view(
    sequence: useq.MDASequence, frame_shape: tuple[int, int], pixel_size_um: float
) -> useq.MDASequence:
    """Return a copy whose grid plans have the camera's field of view.

    Like the pymmcore-plus engine at the start of an acquisition, every grid
    plan (also those of positions' sub-sequences) gets ``fov_width`` and
    ``fov_height`` from the frame size and pixel size.

    Parameters
    ----------
    sequence : useq.MDASequence
        The sequence (not changed).
    frame_shape : tuple of int
        ``(height_px, width_px)`` of one camera frame.
    pixel_size_um : float
        Camera pixel size in the sample.

    Returns
    -------
    useq.MDASequence
        ``sequence`` itself when it has no grid plan, else a copy.

    Raises
    ------
    ValueError
        When ``pixel_size_um`` is not above 0.

    """
    if not pixel_size_um > 0:
        raise ValueError(f"pixel_size_um must be above 0, got {pixel_size_um}")
    if not _grid_plans(sequence):
        return sequence
    planned = sequence.model_copy(deep=True)
    height_px, width_px = frame_shape
    for _, grid in _grid_plans(planned):
        grid.fov_width = width_px * pixel_size_um
        grid.fov_height = height_px * pixel_size_um
    return planned
