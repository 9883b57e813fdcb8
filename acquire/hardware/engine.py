"""An MDA engine that retries flaky snaps and stage moves, and stops on real faults.

pymmcore-plus' stock :class:`~pymmcore_plus.mda.MDAEngine` logs a failed snap or
XY move and carries on: the frame is silently missing, or taken at the wrong
place. :class:`ResilientEngine` retries each snap, XY move and Z move as a
:class:`RetryPolicy` says (with exponential back-off) and, when the fault
persists, raises :class:`AcquisitionFault`, which ends the run: a frame is
either acquired where it was planned or the acquisition stops.

Use it with the blocking runner, where the fault propagates to the caller::

    core.mda.set_engine(ResilientEngine(core, retry_policy=RetryPolicy()))
    try:
        core.mda.run(sequence)
    except AcquisitionFault as fault:
        print(fault)  # what failed, where, how often, what to check

(``core.run_mda`` runs the same runner on a thread, where the exception only
reaches ``threading.excepthook``.)

A device that *refuses* a request (it raises ``ValueError``, e.g. a stage asked
to move outside its travel) is not retried: the fault is raised at once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pymmcore_plus.mda import MDAEngine

from acquire.hardware.mmcore_compat import (
    ImagePayload,
    SequencedEvent,
    autofocus_z_correction,
    engine_opens_shutter,
    last_config,
)
from acquire.hardware.retry import RetryPolicy

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from pymmcore_plus.metadata import SummaryMetaV1
    from useq import MDAEvent, MDASequence

    from acquire.hardware.mmcore_compat import PImagePayload

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "AcquisitionFault",
    "FaultKind",
    "ResilientEngine",
]

logger = logging.getLogger(__name__)

FaultKind: TypeAlias = Literal["snap", "xy_move", "z_move"]
"""What failed: a camera snap, an XY stage move or a focus (Z) move."""

_RunnerSignal: TypeAlias = Literal["cancel", "pause"] | None
_PayloadGenerator: TypeAlias = Generator["PImagePayload | None", _RunnerSignal, None]


DEFAULT_RETRY_POLICY = RetryPolicy()
"""Three attempts, waiting 50 ms and then 100 ms."""


_DEFAULT_ACTIONS: dict[str, str] = {
    "snap": "camera snap",
    "xy_move": "XY stage move",
    "z_move": "focus (Z) move",
}
_DEFAULT_HINTS: dict[str, str] = {
    "snap": (
        "Check the camera (power, cable, driver, other programs using it) "
        "before running again"
    ),
    "xy_move": (
        "Check the XY stage (power, cable, controller, nothing blocking its "
        "travel) before running again"
    ),
    "z_move": (
        "Check the focus drive (power, cable, controller, the objective not "
        "touching the sample) before running again"
    ),
}


class AcquisitionFault(RuntimeError):
    """A snap or stage move that still failed after every retry.

    Parameters
    ----------
    kind : {"snap", "xy_move", "z_move"}
        What failed.
    event_index : Mapping of str to int
        The MDA event's index (e.g. ``{"t": 0, "p": 1, "z": 4}``).
    attempts : int
        How many attempts were made.
    last_error : str
        The last error's message.
    action : str, optional
        What was attempted, e.g. ``"XY stage 'XYStage' move to (10, 20) um"``.
    hint : str, optional
        What the user should check.

    Attributes
    ----------
    kind, event_index, attempts, last_error, action, hint
        As given (``action`` and ``hint`` filled in from ``kind`` if empty).

    """

    def __init__(
        self,
        kind: FaultKind,
        event_index: Mapping[str, int],
        attempts: int,
        last_error: str,
        action: str = "",
        hint: str = "",
    ) -> None:
        self.kind: FaultKind = kind
        self.event_index: dict[str, int] = {
            str(k): int(v) for k, v in event_index.items()
        }
        self.attempts = int(attempts)
        self.last_error = last_error
        self.action = action or _DEFAULT_ACTIONS.get(kind, kind)
        self.hint = hint or _DEFAULT_HINTS.get(kind, "")
        super().__init__(self._message())

    def _message(self) -> str:
        times = "once" if self.attempts == 1 else f"{self.attempts} times"
        at = _where(self.event_index)
        error = self.last_error.strip().rstrip(".") or "no error message"
        hint = f" {self.hint.strip().rstrip('.')}." if self.hint.strip() else ""
        return f"{self.action} failed {times} {at}: {error}.{hint}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (
                self.kind,
                self.event_index,
                self.attempts,
                self.last_error,
                self.action,
                self.hint,
            ),
        )


def _where(index: Mapping[str, int]) -> str:
    """``"at t=0 p=1 z=4"`` for an MDA event index."""
    where = " ".join(f"{k}={v}" for k, v in index.items())
    return f"at {where}" if where else "at the sequence's setup event"


def _describe(error: BaseException) -> str:
    """An error's message, or its type's name if it has none."""
    return " ".join(str(error).split()) or type(error).__name__


class ResilientEngine(MDAEngine):
    """MDA engine that retries snaps and stage moves and never drops a frame.

    Everything else (channels, exposure, properties, autofocus, frame metadata,
    what is yielded) is the stock engine's.

    Parameters
    ----------
    mmcore : CMMCorePlus
        The core to drive.
    retry_policy : RetryPolicy, optional
        Attempts and back-off per snap and per move.
    use_hardware_sequencing : bool, optional
        False by default (unlike the stock engine), so that every frame is a
        snap that can be retried. With True, sequenceable events run as one
        hardware sequence: they are not retried, and a sequence that delivers
        fewer frames than planned raises `AcquisitionFault` of kind "snap".
    **kwargs
        Passed on to `pymmcore_plus.mda.MDAEngine`.

    Attributes
    ----------
    retry_policy : RetryPolicy
        The policy in use.
    retries : collections.Counter of str
        Retries made in the current (or last) run, by kind ("snap",
        "xy_move", "z_move"); cleared when a run starts.

    Raises
    ------
    TypeError
        ``retry_policy`` is not a `RetryPolicy`.

    """

    def __init__(
        self,
        mmcore: CMMCorePlus,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        use_hardware_sequencing: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(retry_policy, RetryPolicy):
            raise TypeError(
                f"retry_policy must be a RetryPolicy, got {type(retry_policy).__name__}"
            )
        super().__init__(
            mmcore, use_hardware_sequencing=use_hardware_sequencing, **kwargs
        )
        self.retry_policy = retry_policy
        self.retries: Counter[str] = Counter()
        self._last_xy: tuple[float, float] | None = None

    # -- sequence ------------------------------------------------------------

    def setup_sequence(self, sequence: MDASequence) -> SummaryMetaV1 | None:
        """Clear the retry counts, then set up as the stock engine does."""
        self.retries.clear()
        self._last_xy = None
        return super().setup_sequence(sequence)

    def setup_event(self, event: MDAEvent) -> None:
        """Set up the hardware for an event, waiting only for what changed.

        The stock engine ends every setup with ``waitForSystem()`` (about 1 ms
        per frame on the demo devices, more on real ones). Moves here already
        wait for their own stage; a channel change waits for its config group;
        only arbitrary property changes still wait for the whole system.
        """
        if isinstance(event, SequencedEvent):
            super().setup_event(event)
            return
        channel_before = last_config(self.mmcore)
        self.setup_single_event(event)
        if event.properties:
            self.mmcore.waitForSystem()
        elif event.channel is not None and channel_before != (
            event.channel.group,
            event.channel.config,
        ):
            self.mmcore.waitForConfig(event.channel.group, event.channel.config)

    # -- moves ---------------------------------------------------------------

    def setup_single_event(self, event: MDAEvent) -> None:
        """Move XY and Z (with retries), then set up the rest as the stock engine.

        Raises
        ------
        AcquisitionFault
            A move failed ``max_attempts`` times, or was refused.

        """
        if event.x_pos is not None or event.y_pos is not None:
            self._move_xy(event)
        if event.z_pos is not None:
            self._move_z(event)
        rest = event.model_copy(update={"x_pos": None, "y_pos": None, "z_pos": None})
        super().setup_single_event(rest)

    def _move_xy(self, event: MDAEvent) -> None:
        core = self.mmcore
        stage = core.getXYStageDevice()
        if not stage:
            logger.warning("No XY stage device found. Cannot set XY position.")
            return
        x, y = event.x_pos, event.y_pos
        last = self._last_xy
        if (
            not self.force_set_xy_position
            and last is not None
            and (x is None or x == last[0])
            and (y is None or y == last[1])
        ):
            return
        if x is None or y is None:
            current_x, current_y = core.getXYPosition()
            x = current_x if x is None else x
            y = current_y if y is None else y
        target = (float(x), float(y))

        def move() -> None:
            core.setXYPosition(*target)
            core.waitForDevice(stage)

        self._with_retries(
            "xy_move",
            move,
            event,
            action=f"XY stage {stage!r} move to ({target[0]:g}, {target[1]:g}) um",
        )
        self._last_xy = target

    def _move_z(self, event: MDAEvent) -> None:
        core = self.mmcore
        focus = core.getFocusDevice()
        if not focus:
            logger.warning("No Z stage device found. Cannot set Z position.")
            return
        # the stock engine's per-position autofocus correction
        correction = autofocus_z_correction(self, event.index.get("p"))
        target = float(event.z_pos or 0.0) + correction

        def move() -> None:
            core.setZPosition(target)
            core.waitForDevice(focus)

        self._with_retries(
            "z_move", move, event, action=f"focus {focus!r} move to {target:g} um"
        )

    # -- snaps ---------------------------------------------------------------

    def exec_single_event(self, event: MDAEvent) -> Iterator[PImagePayload | None]:
        """Snap (with retries) and yield one payload per camera channel.

        Raises
        ------
        AcquisitionFault
            The snap failed ``max_attempts`` times; nothing is yielded for it.

        """
        if event.slm_image is not None:
            self._exec_event_slm_image(event.slm_image)

        core = self.mmcore
        camera = core.getCameraDevice()
        self._with_retries(
            "snap", core.snapImage, event, action=f"camera {camera!r} snap"
        )
        # as the stock engine: the event time is taken after the exposure
        t0 = event.metadata.get("runner_t0") or time.perf_counter()
        event_time_ms = (time.perf_counter() - t0) * 1000
        if not event.keep_shutter_open and engine_opens_shutter(self):
            core.setShutterOpen(False)

        n_cam_channels = core.getNumberOfCameraChannels()
        for cam in range(n_cam_channels):
            meta = self.get_frame_metadata(
                event,
                runner_time_ms=event_time_ms,
                camera_device=core.getPhysicalCameraDevice(cam),
                include_position=self.include_frame_position_metadata is not False,
            )
            sub_event = event
            if n_cam_channels > 1:
                sub_event = event.model_copy(
                    update={"index": {**event.index, "cam": cam}}
                )
            # the stock engine yields this NamedTuple too (its metadata field is
            # typed wider than PImagePayload)
            yield ImagePayload(core.getImage(cam), sub_event, meta)  # type: ignore[misc]

    def exec_sequenced_event(self, event: SequencedEvent) -> _PayloadGenerator:
        """Run a hardware sequence as the stock engine, but never skip a frame.

        Raises
        ------
        AcquisitionFault
            The sequence delivered fewer frames than planned.

        """
        inner = super().exec_sequenced_event(event)
        n_channels = max(1, self.mmcore.getNumberOfCameraChannels())
        expected = len(event.events) * n_channels
        delivered = 0
        signal: _RunnerSignal = None
        while True:
            try:
                payload = inner.send(signal)
            except StopIteration:
                return
            if payload is None:
                inner.close()
                missing = event.events[
                    min(delivered // n_channels, len(event.events) - 1)
                ]
                fault = AcquisitionFault(
                    "snap",
                    missing.index,
                    1,
                    f"it delivered {delivered} of {expected} frames",
                    action=(
                        f"camera {self.mmcore.getCameraDevice()!r} hardware sequence"
                    ),
                )
                self._close_shutter_after_fault()
                raise fault
            delivered += 1
            signal = yield payload

    # -- retries -------------------------------------------------------------

    def _with_retries(
        self,
        kind: FaultKind,
        operation: Callable[[], object],
        event: MDAEvent,
        *,
        action: str,
    ) -> None:
        """Run ``operation`` until it succeeds, per the retry policy.

        Raises
        ------
        AcquisitionFault
            It failed ``max_attempts`` times, or raised one of ``give_up_on``.

        """
        policy = self.retry_policy
        delays = policy.delays_ms()
        for attempt in range(1, policy.max_attempts + 1):
            try:
                operation()
            except policy.give_up_on as error:
                self._close_shutter_after_fault()
                raise AcquisitionFault(
                    kind,
                    event.index,
                    attempt,
                    _describe(error),
                    action=action,
                    hint=(
                        "The device refused the request itself, so it was not "
                        "retried: check the requested position or setting"
                    ),
                ) from error
            except Exception as error:
                if attempt == policy.max_attempts:
                    self._close_shutter_after_fault()
                    raise AcquisitionFault(
                        kind, event.index, attempt, _describe(error), action=action
                    ) from error
                self.retries[kind] += 1
                delay_ms = delays[attempt - 1]
                logger.warning(
                    "%s failed (attempt %d of %d) %s: %s; retrying in %g ms",
                    action,
                    attempt,
                    policy.max_attempts,
                    _where({str(k): v for k, v in event.index.items()}),
                    _describe(error),
                    delay_ms,
                )
                if delay_ms > 0:
                    time.sleep(delay_ms / 1000.0)
            else:
                return

    def _close_shutter_after_fault(self) -> None:
        """Close the shutter the engine opened, as the run is about to stop."""
        if not engine_opens_shutter(self):
            return  # the user owns the shutter (auto-shutter was off)
        core = self.mmcore
        with suppress(Exception):
            if core.getShutterDevice():
                core.setShutterOpen(False)
