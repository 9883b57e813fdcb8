"""Plan an acquisition before it runs: frames, stacks, bytes, time, stage limits.

`plan_acquisition` expands a sequence once, as the pymmcore-plus engine will,
and refuses it (with a `acquire.sequence.read.SequenceError` saying which cap and how
to raise it) when it would take more frames, bytes or time than the limits
allow, or when any frame would drive a stage outside its soft limits. The plan
groups frames into stacks (every plane of one position/tile at one time point,
the unit pairscope commits to disk); `acquire.sequence.table.describe_plan`
renders it for ``--dry-run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from acquire.sequence.limits import SequenceLimits
from acquire.sequence.problems import KeyPath, format_key_path
from acquire.sequence.rules import semantic_problems
from acquire.sequence.size import (
    describe_counts,
    frames_lower_bound,
    grid_without_field_of_view,
    with_field_of_view,
)
from acquire.sequence.source import SequenceError, sequence_source

if TYPE_CHECKING:
    from collections.abc import Mapping

    import useq

    from acquire.config.stage_limits import StageLimits

__all__ = [
    "AcquisitionPlan",
    "StackKey",
    "format_bytes",
    "format_duration",
    "is_image_event",
    "plan_acquisition",
    "stack_key",
]

_SECONDS_PER_HOUR = 3600.0
_AXES = "tpgcz"


@dataclass(frozen=True, order=True)
class StackKey:
    """One committed unit: every plane of one position and tile at one time.

    Attributes
    ----------
    t : int
        Time point index.
    p : int
        Stage position index.
    g : int
        Grid tile index.

    """

    t: int
    p: int
    g: int

    @property
    def name(self) -> str:
        """Name of the stack, e.g. ``"t0000_p0001_g0000"``."""
        return f"t{self.t:04d}_p{self.p:04d}_g{self.g:04d}"


@dataclass(frozen=True)
class AcquisitionPlan:
    """What an acquisition will take, computed before it runs.

    Attributes
    ----------
    sequence : useq.MDASequence
        The sequence as it will run (grid fields of view filled in).
    n_frames : int
        Number of frames (images).
    stacks : tuple of StackKey
        The stacks, in the order their first frame is acquired.
    planes_per_stack : Mapping of StackKey to int
        Frames of each stack (channels x z planes, as the sequence gives them).
    frame_shape : tuple of int
        ``(height_px, width_px)`` of one frame.
    bytes_per_pixel : int
        Bytes per pixel (2 for 16-bit cameras).
    total_bytes : int
        Bytes of image data.
    estimated_duration_s : float
        Estimated duration in seconds: exposure plus overhead of every frame,
        and the waits of the time plan where those dominate.
    axis_sizes : Mapping of str to int
        Distinct indices seen on each axis (``t``, ``p``, ``g``, ``c``, ``z``).
    channel_names : tuple of str
        The channel presets used, in order of first use.

    """

    sequence: useq.MDASequence
    n_frames: int
    stacks: tuple[StackKey, ...]
    planes_per_stack: Mapping[StackKey, int]
    frame_shape: tuple[int, int]
    bytes_per_pixel: int
    total_bytes: int
    estimated_duration_s: float
    axis_sizes: Mapping[str, int]
    channel_names: tuple[str, ...]


def stack_key(event: useq.MDAEvent) -> StackKey:
    """Return the stack an event belongs to (missing axes count as index 0).

    Parameters
    ----------
    event : useq.MDAEvent
        One event of a sequence.

    Returns
    -------
    StackKey
        Its time point, position and tile.

    """
    index = event.index
    return StackKey(t=index.get("t", 0), p=index.get("p", 0), g=index.get("g", 0))


def is_image_event(event: useq.MDAEvent) -> bool:
    """Whether an event takes a frame (an autofocus event, say, takes none).

    Parameters
    ----------
    event : useq.MDAEvent
        One event of a sequence.

    Returns
    -------
    bool
        True for an image acquisition (useq's default action).

    """
    import useq  # loaded already: the event is one of its objects

    return isinstance(event.action, useq.AcquireImage)


def format_bytes(n_bytes: float) -> str:
    """Write a size for people, in decimal units: ``"39.3 MB"``, ``"2.00 TB"``.

    Parameters
    ----------
    n_bytes : float
        The size in bytes.

    Returns
    -------
    str
        Three significant digits and the unit.

    """
    value = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:,.3g} TB" if value < 1000 else f"{value:,.0f} TB"


def format_duration(seconds: float) -> str:
    """Write a duration for people: ``"45 s"``, ``"12 min 05 s"``, ``"2 d 03 h"``.

    Parameters
    ----------
    seconds : float
        The duration.

    Returns
    -------
    str
        Two units at most.

    """
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    if total == 0 and seconds > 0:
        return f"{seconds:.2f} s"
    return f"{secs} s"


def plan_acquisition(
    sequence: useq.MDASequence,
    *,
    frame_shape: tuple[int, int],
    bytes_per_pixel: int,
    default_exposure_ms: float,
    overhead_ms_per_frame: float = 5.0,
    limits: SequenceLimits | None = None,
    stage_limits: StageLimits | None = None,
    pixel_size_um: float | None = None,
) -> AcquisitionPlan:
    """Expand a sequence once and check it against the caps and stage limits.

    Parameters
    ----------
    sequence : useq.MDASequence
        The sequence (best read with `acquire.sequence.read.load_sequence`, so that
        errors name its file and line).
    frame_shape : tuple of int
        ``(height_px, width_px)`` of one camera frame.
    bytes_per_pixel : int
        Bytes per pixel of the camera's images.
    default_exposure_ms : float
        Exposure of frames whose channel sets none (the camera's current one).
    overhead_ms_per_frame : float
        Time per frame beyond the exposure (readout, stage and filter moves).
    limits : SequenceLimits or None
        Caps on frames, bytes and duration (None: the defaults).
    stage_limits : StageLimits or None
        Soft stage limits every frame's x/y/z must lie within (None: no check).
    pixel_size_um : float or None
        Camera pixel size in the sample; with it, grid plans get the field of
        view ``frame_shape * pixel_size_um``, as the pymmcore-plus engine gives
        them at run time. Needed for a grid plan without fov_width and
        fov_height whose tile count depends on the field of view (a grid by
        extents), or for any such grid when ``stage_limits`` are checked.

    Returns
    -------
    AcquisitionPlan
        Frames, stacks, bytes and estimated duration.

    Raises
    ------
    SequenceError
        When a cap is exceeded, a frame lies outside the stage limits, a grid
        needs a field of view that is not known, the sequence has no frames,
        or it has a value no acquisition can mean (checked again here for
        sequences built in Python, see `acquire.sequence.rules`).
    ValueError
        When the arguments themselves are impossible (a frame shape or
        exposure of 0 or below).

    """
    limits = SequenceLimits() if limits is None else limits
    _check_arguments(
        frame_shape, bytes_per_pixel, default_exposure_ms, overhead_ms_per_frame
    )
    source = sequence_source(sequence)

    def error(what: str, hint: str, key_path: KeyPath = ()) -> SequenceError:
        if source is None:
            return SequenceError(what, hint)
        return source.error(what, hint, key_path)

    # a sequence built in Python has not been through load_sequence's checks
    problem = next(semantic_problems(sequence), None)
    if problem is not None:
        raise error(problem.what, problem.hint, problem.path)
    if pixel_size_um is None:
        path = grid_without_field_of_view(
            sequence, positions_matter=stage_limits is not None
        )
        if path is not None:
            shown = format_key_path(path)
            raise error(
                f"The tiles of '{shown}' depend on the camera's field of view, "
                "which is not known here",
                f"Set 'fov_width' and 'fov_height' (um) in '{shown}' (pairscope "
                "fills them in from the camera when it knows its pixel size).",
                path,
            )
        planned = sequence
    else:
        planned = with_field_of_view(sequence, frame_shape, pixel_size_um)
    planes: dict[StackKey, int] = {}
    seen: dict[str, set[int]] = {axis: set() for axis in _AXES}
    channels: dict[str, None] = {}
    frames = 0
    clock_s = 0.0
    timer_origin_s = 0.0

    def too_many_frames(count: str) -> SequenceError:
        return error(
            f"The sequence has {count} frames; the limit is "
            f"{limits.max_frames:,} (its axes: {describe_counts(planned)})",
            "Use fewer positions, tiles, channels, z planes or time points, or "
            "raise the limit with --max-frames.",
        )

    # useq expands every axis before the first event: refuse a sequence far
    # beyond the cap before that takes minutes.
    at_least = frames_lower_bound(planned)
    if at_least > limits.max_frames:
        raise too_many_frames(f"at least {at_least:,}")
    for event in planned.iter_events():
        if not is_image_event(event):  # autofocus: no frame, no plane
            continue
        frames += 1
        if frames > limits.max_frames:
            raise too_many_frames(f"more than {limits.max_frames:,}")
        key = stack_key(event)
        planes[key] = planes.get(key, 0) + 1
        for axis, value in event.index.items():
            seen[str(axis)].add(int(value))
        if event.channel is not None:
            channels[event.channel.config] = None
        if stage_limits is not None:
            _check_stage(event, stage_limits, error)
        if event.reset_event_timer:
            timer_origin_s = clock_s
        if event.min_start_time:
            clock_s = max(clock_s, timer_origin_s + event.min_start_time)
        exposure_ms = default_exposure_ms if event.exposure is None else event.exposure
        clock_s += (exposure_ms + overhead_ms_per_frame) / 1000.0
    if frames == 0:
        raise error(
            "The sequence gives no frames",
            "Check its plans: every axis in axis_order that has a plan must give "
            "at least one entry.",
        )
    height_px, width_px = frame_shape
    total_bytes = frames * height_px * width_px * bytes_per_pixel
    if total_bytes > limits.max_bytes:
        raise error(
            f"The sequence would write {format_bytes(total_bytes)} "
            f"({frames:,} frames of {width_px} x {height_px} pixels, "
            f"{bytes_per_pixel} bytes each), more than the limit of "
            f"{format_bytes(limits.max_bytes)}",
            "Use fewer frames or a smaller camera ROI, or raise the limit with "
            "--max-bytes.",
        )
    if clock_s > limits.max_duration_s:
        raise error(
            f"The sequence would take about {format_duration(clock_s)}, longer "
            f"than the limit of {format_duration(limits.max_duration_s)} "
            f"({limits.max_duration_s / _SECONDS_PER_HOUR:.3g} h)",
            "Use fewer frames, shorter exposures or a shorter time plan, or raise "
            "the limit with --max-hours.",
        )
    return AcquisitionPlan(
        sequence=planned,
        n_frames=frames,
        stacks=tuple(planes),
        planes_per_stack=MappingProxyType(planes),
        frame_shape=(height_px, width_px),
        bytes_per_pixel=bytes_per_pixel,
        total_bytes=total_bytes,
        estimated_duration_s=clock_s,
        axis_sizes=MappingProxyType({a: len(v) for a, v in seen.items()}),
        channel_names=tuple(channels),
    )


def _check_arguments(
    frame_shape: tuple[int, int],
    bytes_per_pixel: int,
    default_exposure_ms: float,
    overhead_ms_per_frame: float,
) -> None:
    """Reject impossible planning arguments (a programming error)."""
    if len(frame_shape) != 2 or min(frame_shape) < 1:
        raise ValueError(
            f"frame_shape must be (height_px, width_px) >= 1, got {frame_shape}"
        )
    if bytes_per_pixel < 1:
        raise ValueError(f"bytes_per_pixel must be 1 or more, got {bytes_per_pixel}")
    if not default_exposure_ms > 0:
        raise ValueError(
            f"default_exposure_ms must be above 0, got {default_exposure_ms}"
        )
    if not overhead_ms_per_frame >= 0:
        raise ValueError(
            f"overhead_ms_per_frame must be 0 or more, got {overhead_ms_per_frame}"
        )


class _MakeError(Protocol):
    """Builds the error for an entry of the sequence (with its line if known)."""

    def __call__(
        self, what: str, hint: str, key_path: KeyPath = ()
    ) -> SequenceError: ...


def _check_stage(event: useq.MDAEvent, limits: StageLimits, error: _MakeError) -> None:
    """Raise when one event would drive a stage outside its soft limits."""
    text = limits.violation(event.x_pos, event.y_pos, event.z_pos)
    if text is None:
        return
    index = event.index
    parts = []
    key_path: KeyPath = ()
    if "p" in index:
        name = f" ('{event.pos_name}')" if event.pos_name else ""
        parts.append(f"Position {index['p']}{name}")
        key_path = ("stage_positions", int(index["p"]))
    if "g" in index:
        parts.append(f"tile {index['g']}")
        key_path = key_path or ("grid_plan",)
    if "z" in index:
        parts.append(f"z plane {index['z']}")
        key_path = key_path or ("z_plan",)
    where = ", ".join(parts) if parts else "The sequence"
    where = where[:1].upper() + where[1:]
    raise error(
        f"{where}: {text}",
        "Move or remove this position (or shrink its grid or z range); if the "
        "stage really travels there, widen the '#pairscope StageLimitsUm' line "
        "of the hardware configuration.",
        key_path,
    )
