"""Long operations off the GUI thread, reporting back through Qt signals.

An :class:`OperationThread` runs one task (a callable given the thread's
:class:`OperationSignals`). Library callbacks and the acquisition's psygnal
events fire on worker threads (the task's, the acquisition's, the
registration's); they only emit Qt signals of an object that lives in the GUI
thread, so Qt queues every call into the GUI thread. Errors end the task with
one line (:func:`acquire.gui.messages.describe_error`), never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, QThreadPool, Signal

from acquire.errors import DeviceFailure
from acquire.gui.messages import describe_error

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import useq
    from numpy.typing import NDArray
    from pymmcore_plus import CMMCorePlus

    from acquire.hardware.controller import AcquisitionController, AcquisitionResult
    from acquire.storage.ome_tiff import OmeImage
    from acquire.storage.reader import StoredStack
    from acquire.storage.session import CorrelationSession
    from acquire.workflows.fiducial_search import FiducialSurvey
    from acquire.workflows.live_enhance import LiveRunResult
    from acquire.workflows.paired_run import PairedRunRequest, PairedRunResult
    from acquire.workflows.relocation import RelocatedTarget
    from correlate.stage.transform import StageTransform

__all__ = [
    "FiducialsResult",
    "LogForwarder",
    "OperationSignals",
    "OperationThread",
    "RelocationResult",
    "SnapResult",
    "StackReader",
    "Task",
    "connect_controller",
    "fiducials_task",
    "live_task",
    "paired_task",
    "relocation_task",
    "snap_task",
]

_log = logging.getLogger(__name__)


class OperationSignals(QObject):
    """What a running operation reports (emitted from any thread)."""

    line = Signal(str)
    acquisition_started = Signal(int, int)  # frames, stacks
    frame_acquired = Signal(str, int, int)  # stack name, channel, z
    stack_committed = Signal(str)  # stack name
    stage_moved = Signal(float, float)  # x, y in um
    outcome = Signal(object)  # acquire.workflows.pairing.PairOutcome
    enhanced = Signal(object)  # acquire.workflows.live_enhance.EnhancedStack
    succeeded = Signal(object)  # the task's result
    failed = Signal(str)  # one line


Task = Callable[[OperationSignals], object]

FORWARDED_LOGGERS = ("acquire", "correlate", "enhance")
"""Loggers whose warnings and errors reach the log pane while a task runs."""


class LogForwarder(logging.Handler):
    """Sends warnings and errors logged by the library to the log pane.

    Each record becomes one line: its message and, for a logged exception,
    the exception's one-line description (never the traceback). Consumers on
    the acquisition's queues log their failures this way (a registration
    that failed on one stack, say) and the run goes on.
    """

    def __init__(self, signals: OperationSignals) -> None:
        super().__init__(level=logging.WARNING)
        self._signals = signals

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one record as a line."""
        try:
            text = " ".join(record.getMessage().split())
            if record.exc_info and record.exc_info[1] is not None:
                text += f": {describe_error(record.exc_info[1])}"
            self._signals.line.emit(f"{record.levelname.lower()}: {text}")
        except Exception:
            self.handleError(record)


class OperationThread(QThread):
    """Runs one task (on the window's core) off the GUI thread.

    Parameters
    ----------
    name : str
        Operation name, for the log.
    task : Task
        The work; its return value is emitted with ``signals.succeeded``.
    parent : QObject, optional
        Qt parent.

    """

    def __init__(
        self,
        name: str,
        task: Task,
        *,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.name = name
        self.signals = OperationSignals()
        self._task = task

    def run(self) -> None:
        """Run the task in this thread (called by Qt)."""
        forwarder = LogForwarder(self.signals)
        loggers = [logging.getLogger(name) for name in FORWARDED_LOGGERS]
        for logger in loggers:
            logger.addHandler(forwarder)
        try:
            result = self._task(self.signals)
        except Exception as error:
            _log.debug("%s failed", self.name, exc_info=True)
            self.signals.failed.emit(describe_error(error))
        else:
            self.signals.succeeded.emit(result)
        finally:
            for logger in loggers:
                logger.removeHandler(forwarder)


def connect_controller(
    controller: AcquisitionController, signals: OperationSignals
) -> None:
    """Forward an acquisition's psygnal events to ``signals``.

    The handlers run on the acquisition thread, which owns the controller's
    core, so the stage position is read there.
    """
    core = controller.core

    def on_started(n_frames: int, n_stacks: int) -> None:
        signals.acquisition_started.emit(n_frames, n_stacks)

    def on_frame(name: str, c: int, z: int) -> None:
        signals.frame_acquired.emit(name, c, z)
        # a map that misses one position must not fail the acquisition
        with contextlib.suppress(RuntimeError):
            x, y = core.getXYPosition()
            signals.stage_moved.emit(float(x), float(y))

    def on_committed(name: str, path: object) -> None:
        signals.stack_committed.emit(name)

    controller.events.started.connect(on_started)
    controller.events.frame_acquired.connect(on_frame)
    controller.events.stack_committed.connect(on_committed)


@dataclass(frozen=True)
class SnapResult:
    """One camera frame and where it was taken."""

    image: NDArray[np.generic]
    pixel_size_um: float
    stage_xy_um: tuple[float, float]
    #: the frame with its OME metadata, to save; None without a pixel size
    ome: OmeImage | None = None


def snap_task(core: CMMCorePlus) -> Task:
    """Snap one frame on the window's core."""

    def run(signals: OperationSignals) -> SnapResult:
        from acquire.hardware.microscope import snap
        from acquire.hardware.snapshot import snap_ome

        x, y = core.getXYPosition()
        pixel_size_um = float(core.getPixelSizeUm())
        try:
            if pixel_size_um <= 0:  # shown, but nothing to save it with
                return SnapResult(snap(core), pixel_size_um, (float(x), float(y)))
            ome = snap_ome(core)
        except Exception as error:
            camera = core.getCameraDevice() or "camera"
            detail = " ".join(str(error).split()) or type(error).__name__
            raise DeviceFailure(
                f"snap on camera {camera!r} failed: {detail}",
                "check the camera (power, cable, driver, other programs using it) "
                "and snap again",
            ) from error
        return SnapResult(ome.data[0], pixel_size_um, (float(x), float(y)), ome)

    return run


@dataclass(frozen=True)
class FiducialsResult:
    """Scope A's marks and the session written."""

    session: CorrelationSession
    survey: FiducialSurvey
    path: Path


def fiducials_task(
    core: CMMCorePlus, config: Path, session: Path, holder: Path, targets: Path | None
) -> Task:
    """Scope A: find the marks on the window's core, write the session."""

    def run(signals: OperationSignals) -> FiducialsResult:
        from acquire.workflows.relocation import (
            load_holder,
            load_targets,
            record_fiducials,
        )

        written, survey = record_fiducials(
            config,
            session,
            load_holder(holder),
            targets=load_targets(targets),
            core=core,
            progress=signals.line.emit,
        )
        return FiducialsResult(written, survey, session)

    return run


@dataclass(frozen=True)
class RelocationResult:
    """Scope B's marks, the fitted transform and the mapped targets."""

    transform: StageTransform
    targets: tuple[RelocatedTarget, ...]
    survey: FiducialSurvey


def relocation_task(core: CMMCorePlus, session: Path, config: Path) -> Task:
    """Scope B: find the marks on the window's core, fit, map the targets."""

    def run(signals: OperationSignals) -> RelocationResult:
        from acquire.workflows.relocation import relocate

        transform, targets, survey = relocate(
            session, config, core=core, progress=signals.line.emit
        )
        return RelocationResult(transform, targets, survey)

    return run


def paired_task(core: CMMCorePlus, request: PairedRunRequest) -> Task:
    """Relocate, acquire at every target and pair each stack (window's core)."""

    def run(signals: OperationSignals) -> PairedRunResult:
        from acquire.workflows.paired_run import run_paired_acquisition

        return run_paired_acquisition(
            request,
            core=core,
            progress=signals.line.emit,
            on_outcome=signals.outcome.emit,
            connect=lambda controller: connect_controller(controller, signals),
        )

    return run


def acquisition_task(
    core: CMMCorePlus, sequence: useq.MDASequence, config: Path, out: Path
) -> Task:
    """Acquire a sequence (the MDA builder's) on the window's core, crash-safe."""

    def run(signals: OperationSignals) -> AcquisitionResult:
        from acquire.workflows.acquisition import AcquisitionRequest, run_acquisition

        return run_acquisition(
            AcquisitionRequest(sequence, config, out),
            core=core,
            connect=lambda controller: connect_controller(controller, signals),
        )

    return run


def live_task(
    core: CMMCorePlus, sequence: Path, config: Path, out: Path, model: Path
) -> Task:
    """Acquire the sequence on the window's core, enhancing every stack."""

    def run(signals: OperationSignals) -> LiveRunResult:
        from acquire.workflows.acquisition import AcquisitionRequest
        from acquire.workflows.live_enhance import run_live_enhancement

        signals.line.emit(f"loading model {model}")
        return run_live_enhancement(
            AcquisitionRequest(sequence, config, out),
            model,
            core=core,
            on_enhanced=signals.enhanced.emit,
            connect=lambda controller: connect_controller(controller, signals),
        )

    return run


class StackReader(QObject):
    """Reads committed stacks (and their confocal partners) off the GUI thread.

    Reads run one at a time, in the order asked, on a pool thread of their
    own; each ends with ``loaded(stack, partner or None)`` or ``failed(line)``.

    Parameters
    ----------
    parent : QObject, optional
        Qt parent.

    """

    loaded = Signal(object, object)  # StoredStack, StoredStack or None
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._partner_dataset: Path | None = None
        self._partners: dict[str, StoredStack] = {}

    def reset(self, partner_dataset: Path | None) -> None:
        """Start a new run: its partners come from ``partner_dataset`` (if any)."""
        self._pool.waitForDone()
        self._partner_dataset = partner_dataset
        self._partners = {}

    def read(self, dataset: Path, name: str) -> None:
        """Read stack ``name`` of ``dataset`` (and the partner at its position)."""
        self._pool.start(lambda: self._read(dataset, name))

    def wait(self) -> None:
        """Block until every read asked for has ended."""
        self._pool.waitForDone()

    def _read(self, dataset: Path, name: str) -> None:
        from acquire.storage.reader import read_stack

        try:
            stack = read_stack(dataset, name)
            partner = self._partner_of(stack.position_name)
        except Exception as error:
            self.failed.emit(f"{name}: not shown: {describe_error(error)}")
            return
        self.loaded.emit(stack, partner)

    def _partner_of(self, position_name: str) -> StoredStack | None:
        from acquire.storage.reader import committed_stacks, read_stack

        if self._partner_dataset is None:
            return None
        if not self._partners:
            for name in committed_stacks(self._partner_dataset):
                stored = read_stack(self._partner_dataset, name)
                self._partners.setdefault(stored.position_name, stored)
        return self._partners.get(position_name)
