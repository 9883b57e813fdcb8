"""The acquisition controller: a validated plan, a core and a dataset in, stacks out.

It runs the plan's events through pymmcore-plus's MDA runner with a
:class:`~acquire.hardware.engine.ResilientEngine` (retries, and a hard stop instead of a
silently skipped frame), writes every frame to disk as it arrives, commits each
completed z-stack atomically to the dataset, and offers committed stacks to
live consumers through bounded queues. Events already committed in the dataset
are skipped, which is how ``--resume`` continues a killed run.

Progress and results are published as psygnal signals (:class:`AcquisitionEvents`)
for the CLI's progress bar and the GUI.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal, SignalGroup

from acquire.hardware.autofocus import stage_limits_of
from acquire.hardware.consumers import CompletedStack, StackQueue
from acquire.hardware.engine import AcquisitionFault, ResilientEngine
from acquire.hardware.microscope import objective_device
from acquire.hardware.retry import RetryPolicy
from acquire.sequence.plan import (
    AcquisitionPlan,
    StackKey,
    is_image_event,
    stack_key,
)
from acquire.storage.spec import StackSpec

if TYPE_CHECKING:
    from pathlib import Path

    from pymmcore_plus import CMMCorePlus
    from useq import MDAEvent

    from acquire.hardware.mmcore_compat import PImagePayload
    from acquire.storage.dataset import Dataset
    from acquire.storage.stack_writer import StackWriter


class AcquisitionEvents(SignalGroup):
    """Signals of a running acquisition (emitted from the acquisition thread)."""

    started = Signal(int, int)  # frames to acquire, stacks to acquire
    frame_acquired = Signal(str, int, int)  # stack name, channel index, z index
    stack_committed = Signal(str, object)  # stack name, path
    finished = Signal(object)  # AcquisitionResult


@dataclass(frozen=True)
class StackLayout:
    """Shape of one stack, derived from the events that make it up."""

    key: StackKey
    n_channels: int
    n_planes: int
    channel_names: tuple[str, ...]
    z_step_um: float
    position_name: str


@dataclass
class AcquisitionResult:
    """How a run ended."""

    status: str  # "complete", "failed" or "cancelled"
    frames_acquired: int = 0
    stacks_committed: int = 0
    stacks_skipped_as_committed: int = 0
    wall_time_s: float = 0.0
    retries: dict[str, int] = field(default_factory=dict)
    dropped_stacks: dict[str, int] = field(default_factory=dict)
    failure: str = ""


def stack_layouts(events: Iterable[MDAEvent]) -> dict[StackKey, StackLayout]:
    """Channels, planes and z step of every stack of a sequence.

    Parameters
    ----------
    events : iterable of MDAEvent
        All events of the sequence.

    Returns
    -------
    dict
        One layout per stack key.

    """
    channels: dict[StackKey, dict[int, str]] = {}
    planes: dict[StackKey, set[int]] = {}
    z_positions: dict[StackKey, dict[int, float]] = {}
    names: dict[StackKey, str] = {}
    for event in events:
        if not is_image_event(event):
            continue
        key = stack_key(event)
        c = int(event.index.get("c", 0))
        z = int(event.index.get("z", 0))
        channels.setdefault(key, {})[c] = (
            event.channel.config if event.channel else "default"
        )
        planes.setdefault(key, set()).add(z)
        if event.z_pos is not None:
            z_positions.setdefault(key, {})[z] = float(event.z_pos)
        names.setdefault(key, event.pos_name or f"p{key.p}")
    layouts = {}
    for key, by_c in channels.items():
        zs = z_positions.get(key, {})
        ordered = [zs[i] for i in sorted(zs)]
        step = float(np.median(np.abs(np.diff(ordered)))) if len(ordered) > 1 else 1.0
        layouts[key] = StackLayout(
            key=key,
            n_channels=max(by_c) + 1,
            n_planes=max(planes[key]) + 1,
            channel_names=tuple(by_c.get(i, f"c{i}") for i in range(max(by_c) + 1)),
            z_step_um=step if step > 0 else 1.0,
            position_name=names[key],
        )
    return layouts


class _RecordingEngine(ResilientEngine):
    """The resilient engine, lighting each exposure and recording every frame.

    A Python camera never opens a C++ shutter by itself, so the shutter is
    opened for each snap here and closed after it (unless the event keeps it
    open), which also keeps the sample dark during stage moves.
    """

    def __init__(
        self, core: CMMCorePlus, controller: AcquisitionController, **kwargs: Any
    ):
        super().__init__(core, **kwargs)
        self._controller = controller

    def exec_single_event(self, event: MDAEvent) -> Iterator[PImagePayload | None]:
        core = self.mmcore
        shutter = core.getShutterDevice()
        if shutter:
            core.setShutterOpen(True)
        try:
            payloads = list(super().exec_single_event(event))
        finally:
            if shutter and not event.keep_shutter_open:
                core.setShutterOpen(False)
        for payload in payloads:
            if payload is not None:
                self._controller.on_frame(payload)
            yield payload


PositionOffset = Callable[[str], tuple[float, float, float]]
"""Stage (dx, dy, dz) in um to add to a position, given its name."""


class AcquisitionController:
    """Runs an acquisition plan on a core into a dataset.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded core (see :func:`acquire.hardware.microscope.open_core`).
    plan : AcquisitionPlan
        The validated plan (:func:`acquire.sequence.read.plan_acquisition`).
    dataset : Dataset
        Where stacks are committed; stacks it already holds are skipped.
    scope_name : str
        Recorded with every plane.
    retry_policy : RetryPolicy, optional
        How snaps and stage moves are retried.
    consumers : sequence of StackQueue, optional
        Live processing fed with each committed stack.
    position_offset : callable, optional
        Asked, just before a stack's first event runs, for a stage offset to
        add to that stack's position (by position name): closed-loop
        refinement, where stacks registered so far correct later positions.
        An offset that would leave the soft limits is not applied.

    """

    def __init__(
        self,
        core: CMMCorePlus,
        plan: AcquisitionPlan,
        dataset: Dataset,
        *,
        scope_name: str,
        retry_policy: RetryPolicy | None = None,
        consumers: Sequence[StackQueue] = (),
        position_offset: PositionOffset | None = None,
    ) -> None:
        self.core = core
        self.position_offset = position_offset
        # position name (or stack name) -> offset applied to it
        self.applied_offsets: dict[str, tuple[float, float, float]] = {}
        self.plan = plan
        self.dataset = dataset
        self.scope_name = scope_name
        self.retry_policy = retry_policy or RetryPolicy()
        self.consumers = tuple(consumers)
        self.events = AcquisitionEvents()
        self._layouts = stack_layouts(plan.sequence.iter_events())
        self._writers: dict[StackKey, StackWriter] = {}
        self._frames = 0
        self._committed = 0
        self._cancel = threading.Event()
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="pairscope-commit")
        self._commits: list[Future[None]] = []
        self._turret = objective_device(core)

    def _finish_commits(self, *, raise_errors: bool = True) -> None:
        """Wait for queued commits; the first failure is raised (or dropped)."""
        commits, self._commits = self._commits, []
        for commit in commits:
            error = commit.exception()
            if error is not None and raise_errors:
                raise error

    def cancel(self) -> None:
        """Stop after the current frame; committed stacks stay valid."""
        self._cancel.set()
        self.core.mda.cancel()

    def pending_events(self) -> Iterator[MDAEvent]:
        """Events of every stack the dataset does not hold yet, in plan order."""
        committed = self.dataset.committed()
        for event in self.plan.sequence.iter_events():
            if stack_key(event).name not in committed:
                yield event

    def run(self) -> AcquisitionResult:
        """Acquire every pending stack.

        Returns
        -------
        AcquisitionResult
            Status, counts, retries and consumer drops. A persistent device
            fault ends the run with status "failed"; it is recorded in the
            dataset's manifest and committed stacks stay valid.

        """
        started = time.perf_counter()
        already = len(self.dataset.committed())
        pending = list(self.pending_events())
        frames = [e for e in pending if is_image_event(e)]
        self.events.started.emit(len(frames), len({stack_key(e) for e in frames}))
        # a plane of a z-stack re-sends its position's XY: skip moves to where
        # the stage already is (a demo XY "move" in place still costs ~10 ms)
        engine = _RecordingEngine(
            self.core, self, retry_policy=self.retry_policy, force_set_xy_position=False
        )
        # a window's core keeps its own engine once the run is over
        previous_engine = self.core.mda.set_engine(engine)
        result = AcquisitionResult(
            status="complete", stacks_skipped_as_committed=already
        )
        self.dataset.update_manifest(status="running")
        try:
            self.core.mda.run(self._offset_events(pending))
            self._finish_commits()
        except AcquisitionFault as fault:
            result.status = "failed"
            result.failure = str(fault)
            self.dataset.record_failure(
                str(fault), kind=fault.kind, index=fault.event_index
            )
        except Exception as error:  # a device error the engine does not know
            result.status = "failed"
            result.failure = f"{type(error).__name__}: {error}"
            self.dataset.record_failure(result.failure)
        finally:
            if previous_engine is not None:
                self.core.mda.set_engine(previous_engine)
            self._finish_commits(raise_errors=False)
            self._committer.shutdown(wait=True)
            for writer in self._writers.values():
                writer.abort()
            self._writers.clear()
            for consumer in self.consumers:
                consumer.close()
        if result.status == "complete" and self._cancel.is_set():
            result.status = "cancelled"
            self.dataset.update_manifest(status="interrupted")
        elif result.status == "complete":
            self.dataset.mark_complete()
        result.frames_acquired = self._frames
        result.stacks_committed = self._committed
        result.wall_time_s = time.perf_counter() - started
        result.retries = dict(engine.retries)
        result.dropped_stacks = {c.name: c.stats.dropped for c in self.consumers}
        self.events.finished.emit(result)
        return result

    def _offset_events(self, events: Iterable[MDAEvent]) -> Iterator[MDAEvent]:
        """Events with each stack's offset, asked for when the stack begins."""
        offsets: dict[StackKey, tuple[float, float, float]] = {}
        for event in events:
            if self.position_offset is None or event.x_pos is None:
                yield event
                continue
            key = stack_key(event)
            if key not in offsets:
                offsets[key] = self._checked_offset(event)
                self.applied_offsets[event.pos_name or key.name] = offsets[key]
            dx, dy, dz = offsets[key]
            update: dict[str, float] = {"x_pos": event.x_pos + dx}
            if event.y_pos is not None:
                update["y_pos"] = event.y_pos + dy
            if event.z_pos is not None:
                update["z_pos"] = event.z_pos + dz
            yield event.model_copy(update=update)

    def _checked_offset(self, event: MDAEvent) -> tuple[float, float, float]:
        assert self.position_offset is not None
        name = event.pos_name or ""
        dx, dy, dz = self.position_offset(name)
        x = float(event.x_pos or 0.0) + dx
        y = float(event.y_pos or 0.0) + dy
        z = None if event.z_pos is None else float(event.z_pos) + dz
        if stage_limits_of(self.core).violation(x, y, z) is not None:
            return (0.0, 0.0, 0.0)
        return (float(dx), float(dy), float(dz))

    # -- frames -------------------------------------------------------------

    def on_frame(self, payload: PImagePayload) -> None:
        """Write one frame into its stack; commit the stack when it is whole."""
        image, event, meta = payload
        key = stack_key(event)
        writer = self._writers.get(key)
        if writer is None:
            writer = self.dataset.begin_stack(self._spec(key, image))
            self._writers[key] = writer
        c = int(event.index.get("c", 0))
        z = int(event.index.get("z", 0))
        writer.write_plane(c, z, np.asarray(image), self._plane_metadata(event, meta))
        self._frames += 1
        self.events.frame_acquired.emit(key.name, c, z)
        if writer.complete:
            del self._writers[key]
            # fsync + rename + journal take tens of ms: off the acquisition thread
            self._commits.append(self._committer.submit(self._commit, key, writer))

    def _commit(self, key: StackKey, writer: StackWriter) -> None:
        path = writer.commit()
        self._committed += 1
        self.events.stack_committed.emit(key.name, path)
        self._offer(key, writer, path)

    def _spec(self, key: StackKey, image: Any) -> StackSpec:
        layout = self._layouts[key]
        pixel_um = float(self.core.getPixelSizeUm()) or 1.0
        return StackSpec(
            name=key.name,
            n_channels=layout.n_channels,
            n_planes=layout.n_planes,
            shape_yx=(int(image.shape[-2]), int(image.shape[-1])),
            dtype=str(np.asarray(image).dtype),
            voxel_size_um=(layout.z_step_um, pixel_um, pixel_um),
            channel_names=layout.channel_names,
            position_name=layout.position_name,
            scope_name=self.scope_name,
        )

    def _plane_metadata(self, event: MDAEvent, meta: Any) -> dict[str, Any]:
        position = dict(meta.get("position", {})) if isinstance(meta, dict) else {}
        return {
            "stage_x_um": position.get("x"),
            "stage_y_um": position.get("y"),
            "stage_z_um": position.get("z"),
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "exposure_ms": meta.get("exposure_ms") if isinstance(meta, dict) else None,
            "objective": self._objective_label(),
            "channel": event.channel.config if event.channel else None,
            "scope": self.scope_name,
            "event_index": dict(event.index),
        }

    def _objective_label(self) -> str | None:
        return self.core.getStateLabel(self._turret) if self._turret else None

    def _offer(self, key: StackKey, writer: StackWriter, path: Path) -> None:
        if not self.consumers:
            return
        stack = CompletedStack(
            name=key.name,
            path=path,
            data=writer.data(),
            voxel_size_um=writer.spec.voxel_size_um,
            metadata={
                "planes": writer.plane_metadata(),
                "position_name": writer.spec.position_name,
                "scope_name": writer.spec.scope_name,
            },
        )
        for consumer in self.consumers:
            consumer.offer(stack)
