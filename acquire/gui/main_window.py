"""The main window: microscope dock, views, stage map, error table, controls, log.

The window holds one core, loaded once: the microscope dock's controls
(`acquire.gui.microscope_panel`), snaps, the stage position on the map and
every long operation (fiducials, relocation, paired acquisition, live
enhancement, the MDA builder's run) use it, the operations on a worker
thread. One operation runs at a time; its buttons and the dock are disabled
meanwhile and the window keeps painting.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from acquire.gui.controls import ControlPanel, PathField
from acquire.gui.log_pane import LogPane
from acquire.gui.messages import describe_error
from acquire.gui.microscope_panel import MicroscopePanel
from acquire.gui.stage_jog import StageJog
from acquire.gui.stage_map import MapTarget, StageMap
from acquire.gui.target_table import TargetTable, outcome_text
from acquire.gui.views import StackPairView
from acquire.gui.workers import (
    FiducialsResult,
    OperationThread,
    RelocationResult,
    SnapResult,
    StackReader,
    Task,
    acquisition_task,
    fiducials_task,
    live_task,
    paired_task,
    relocation_task,
    snap_task,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import useq
    from numpy.typing import NDArray
    from pymmcore_plus import CMMCorePlus
    from PySide6.QtGui import QCloseEvent

    from acquire.hardware.controller import AcquisitionResult
    from acquire.storage.reader import StoredStack
    from acquire.workflows.live_enhance import EnhancedStack, LiveRunResult
    from acquire.workflows.paired_run import PairedRunResult
    from acquire.workflows.pairing import PairOutcome
    from acquire.workflows.relocation import RelocatedTarget

__all__ = ["DEFAULT_HOLDER", "MainWindow"]

DEFAULT_HOLDER = Path(
    str(importlib.resources.files("hardware_configs") / "demo_holder.json")
)
_STAGE_POLL_MS = 1000
_DOCK_WIDTH_PX = 420
_ERROR_STYLE = "color: #b00020; font-weight: bold;"
_INFO_STYLE = "color: #205020;"


class MainWindow(QMainWindow):
    """``pairscope gui``: one microscope, its views and its operations.

    Parameters
    ----------
    config : Path
        Micro-Manager configuration of this microscope.
    core : CMMCorePlus, optional
        A core already opened from ``config``; the window owns it from now on
        and closes it in `shutdown`. Without one, the window opens the
        configuration itself and shows why if it cannot.
    holder : Path, optional
        Holder description (default: the demo holder).
    parent : QWidget, optional
        Qt parent.

    """

    def __init__(
        self,
        config: Path,
        *,
        core: CMMCorePlus | None = None,
        holder: Path = DEFAULT_HOLDER,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.config = Path(config)
        self.core: CMMCorePlus | None = core
        self._thread: OperationThread | None = None
        self._last_snap: SnapResult | None = None
        self._on_success: Callable[[Any], None] = lambda _result: None
        self._dataset: Path | None = None
        self.setWindowTitle(f"pairscope - {self.config.name}")
        self.resize(1500, 950)

        self.views = StackPairView()
        self.stage_map = StageMap()
        self.jog = StageJog()
        self.table = TargetTable()
        self.controls = ControlPanel(holder)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.log = LogPane()
        self.reader = StackReader(self)
        self.reader.loaded.connect(self._on_stack_loaded)
        self.reader.failed.connect(self.log.append_line)
        self._build_layout()

        self.controls.snap.clicked.connect(self.snap)
        self.stage_map.move_requested.connect(self.move_stage_to)
        self.jog.jog_requested.connect(self.jog_by)
        self.controls.save_snap.clicked.connect(self._save_snap_clicked)
        self.controls.find_fiducials.clicked.connect(self.find_fiducials)
        self.controls.relocate.clicked.connect(self.relocate)
        self.controls.paired.clicked.connect(self.paired_acquisition)
        self.controls.live.clicked.connect(self.live_enhancement)

        if self.core is None:
            self._open_core()
        self.microscope: MicroscopePanel | None = None
        if self.core is not None:
            self._build_microscope(self.core)
        self._refresh_buttons()
        self._refresh_stage()
        self._poll = QTimer(self)
        self._poll.setInterval(_STAGE_POLL_MS)
        self._poll.timeout.connect(self._refresh_stage)
        self._poll.start()

    def _build_layout(self) -> None:
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.stage_map)
        right.addWidget(self.jog)
        right.addWidget(self.table)
        right.setSizes([460, 90, 230])
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.views)
        top.addWidget(right)
        top.setSizes([1000, 500])
        status = QVBoxLayout()
        status.addWidget(self.progress)
        status.addWidget(self.message)
        status.addWidget(self.log, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.controls, 3)
        bottom.addLayout(status, 2)
        bottom_widget = QWidget()
        bottom_widget.setLayout(bottom)
        outer = QSplitter(Qt.Orientation.Vertical)
        outer.addWidget(top)
        outer.addWidget(bottom_widget)
        outer.setSizes([600, 350])
        self.setCentralWidget(outer)

    def _build_microscope(self, core: CMMCorePlus) -> None:
        """The pymmcore-widgets controls in a dock, and the live feed."""
        self.microscope = MicroscopePanel(core)
        self.microscope.mda.run_requested.connect(self.run_sequence)
        dock = QDockWidget("Microscope", self)
        dock.setObjectName("microscope")
        dock.setWidget(self.microscope)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.resizeDocks([dock], [_DOCK_WIDTH_PX], Qt.Orientation.Horizontal)
        self.resize(self.width() + _DOCK_WIDTH_PX, self.height())
        self.microscope.feed.frame.connect(self._show_frame)

    # -- state ---------------------------------------------------------------

    def busy(self) -> bool:
        """Whether an operation is running."""
        return self._thread is not None

    def message_text(self) -> str:
        """The message line (the last error or result)."""
        return self.message.text()

    def _show_message(self, text: str, *, error: bool) -> None:
        self.message.setStyleSheet(_ERROR_STYLE if error else _INFO_STYLE)
        self.message.setText(text)
        self.log.append_line(f"error: {text}" if error else text)

    def _refresh_buttons(self) -> None:
        self.controls.set_busy(self.busy())
        for button in self.jog.buttons():
            button.setEnabled(not self.busy() and self.core is not None)
        if not self.busy():
            self.controls.snap.setEnabled(self.core is not None)
            self.controls.save_snap.setEnabled(self._last_snap is not None)

    def _open_core(self) -> None:
        from acquire.hardware.microscope import open_core

        try:
            self.core = open_core(self.config)
        except Exception as error:
            self.core = None
            self._show_message(describe_error(error), error=True)

    def _release_core(self) -> None:
        if self.core is not None:
            from acquire.hardware.microscope import close_core

            if self.microscope is not None:
                self.microscope.disconnect_core()
            core, self.core = self.core, None
            close_core(core)

    @Slot()
    def _refresh_stage(self) -> None:
        if self.core is None or self.busy():
            return
        try:
            x, y = self.core.getXYPosition()
        except RuntimeError:
            return
        self.stage_map.set_stage(float(x), float(y))

    @Slot(float, float, float)
    def jog_by(self, dx_um: float, dy_um: float, dz_um: float) -> bool:
        """Move the stage (dx, dy) or the focus (dz) by a step, inside the limits.

        Returns
        -------
        bool
            Whether it moved.

        """
        if (core := self._open_scope()) is None:
            return False
        if dz_um:
            return self.move_focus_to(float(core.getPosition()) + dz_um)
        x_um, y_um = core.getXYPosition()
        return self.move_stage_to(float(x_um) + dx_um, float(y_um) + dy_um)

    @Slot(float)
    def move_focus_to(self, z_um: float) -> bool:
        """Move the focus drive, inside its soft limits; whether it moved."""

        def start(core: CMMCorePlus) -> str:
            core.setPosition(z_um)
            return str(core.getFocusDevice())

        return self._move_within_limits(
            "focus", (None, None, z_um), start, f"focus to z {z_um:.2f} um"
        )

    @Slot(float, float)
    def move_stage_to(self, x_um: float, y_um: float) -> bool:
        """Move the XY stage to a place on the map, inside its soft limits.

        Returns
        -------
        bool
            Whether the stage moved (not while an operation runs, not
            without a microscope, not past the configuration's limits).

        """

        def start(core: CMMCorePlus) -> str:
            core.setXYPosition(x_um, y_um)
            return str(core.getXYStageDevice())

        moved = self._move_within_limits(
            "stage",
            (x_um, y_um, None),
            start,
            f"stage to x {x_um:.1f}, y {y_um:.1f} um",
        )
        if moved:
            self._refresh_stage()
        return moved

    def _move_within_limits(
        self,
        what: str,
        target_um: tuple[float | None, float | None, float | None],
        start: Callable[[CMMCorePlus], str],
        done: str,
    ) -> bool:
        """Check ``target_um`` against the soft limits, then move and wait.

        ``start`` starts the move and returns the device to wait for. Refused
        (one message) while an operation runs, without a microscope, or past
        the configuration's StageLimitsUm.
        """
        from acquire.hardware.autofocus import stage_limits_of

        if self.busy():
            self._show_message(
                f"{self._thread.name if self._thread else 'an operation'} is "
                f"running; move the {what} when it ends",
                error=True,
            )
            return False
        if (core := self._open_scope()) is None:
            return False
        problem = stage_limits_of(core).violation(*target_um)
        if problem is not None:
            self._show_message(
                f"refusing to move the {what}: {problem} (the configuration's "
                "StageLimitsUm)",
                error=True,
            )
            return False
        try:
            core.waitForDevice(start(core))
        except RuntimeError as error:
            self._show_message(describe_error(error), error=True)
            return False
        self.log.append_line(done)
        return True

    # -- operations ----------------------------------------------------------

    def _require(
        self, operation: str, fields: dict[str, PathField]
    ) -> dict[str, Path] | None:
        """The fields' paths by label; None (and say which) if any is empty."""
        paths = {label: field.path() for label, field in fields.items()}
        missing = [label for label, path in paths.items() if path is None]
        if missing:
            self._show_message(
                f"{operation} needs: {', '.join(missing)}. Fill them in above.",
                error=True,
            )
            return None
        return {label: path for label, path in paths.items() if path is not None}

    def _refuse_existing(self, path: Path, what: str) -> bool:
        """Say so and return True if ``path`` already holds something."""
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            self._show_message(
                f"{path} already exists. Choose a new {what}, or move the old one "
                "away.",
                error=True,
            )
            return True
        return False

    def _start(
        self,
        name: str,
        task: Task,
        on_success: Callable[[Any], None],
    ) -> None:
        if self.busy():
            return
        self.message.setText("")
        self.log.append_line(f"{name}: started")
        thread = OperationThread(name, task, parent=self)
        signals = thread.signals
        signals.line.connect(self.log.append_line)
        signals.acquisition_started.connect(self._on_acquisition_started)
        signals.frame_acquired.connect(self._on_frame)
        signals.stack_committed.connect(self._on_stack_committed)
        signals.stage_moved.connect(self._on_stage_moved)
        signals.outcome.connect(self._on_outcome)
        signals.enhanced.connect(self._on_enhanced)
        signals.succeeded.connect(self._on_succeeded)
        signals.failed.connect(self._on_failed)
        thread.finished.connect(self._on_thread_finished)
        self._thread = thread
        self._on_success = on_success
        self.progress.setRange(0, 0)  # busy until an acquisition says how long
        self._refresh_buttons()
        if self.microscope is not None:
            # the widgets would be called from the worker's thread
            self.microscope.hold_events()
        thread.start()

    def _new_dataset_operation(
        self, name: str, fields: dict[str, PathField]
    ) -> tuple[CMMCorePlus, dict[str, Path]] | None:
        """The core and the fields' paths, or None after saying what is missing.

        ``fields`` holds an "Output dataset" that must not exist yet; the
        window then shows its stacks as they are committed, beside their
        partners from a "Confocal dataset" where there is one.
        """
        paths = self._require(name, fields)
        if paths is None or self._refuse_existing(paths["Output dataset"], "dataset"):
            return None
        if (core := self._open_scope()) is None:
            return None
        self._dataset = paths["Output dataset"]
        self.reader.reset(paths.get("Confocal dataset"))
        return core, paths

    def _open_scope(self) -> CMMCorePlus | None:
        """The window's core, or None after saying that no microscope is open."""
        if self.core is None:
            self._show_message(
                f"no microscope is open ({self.config} failed to load); fix the "
                "configuration and start pairscope gui again",
                error=True,
            )
        return self.core

    @Slot()
    def snap(self) -> None:
        """Snap one frame into the camera view."""
        if (core := self._open_scope()) is None:
            return
        self._start("snap", snap_task(core), self._snapped)

    @Slot()
    def find_fiducials(self) -> None:
        """Scope A: find the marks and write the session (with the targets)."""
        c = self.controls
        paths = self._require(
            "Find fiducials", {"Holder": c.holder, "Session": c.session}
        )
        if paths is None or self._refuse_existing(paths["Session"], "session file"):
            return
        if (core := self._open_scope()) is None:
            return
        task = fiducials_task(
            core, self.config, paths["Session"], paths["Holder"], c.targets.path()
        )
        self._start("find fiducials", task, self._fiducials_found)

    @Slot()
    def relocate(self) -> None:
        """Scope B: find the marks, fit the transform, map the session's targets."""
        paths = self._require("Relocate", {"Session": self.controls.session})
        if paths is None or (core := self._open_scope()) is None:
            return
        task = relocation_task(core, paths["Session"], self.config)
        self._start("relocate", task, self._relocated)

    @Slot()
    def paired_acquisition(self) -> None:
        """Relocate, acquire at every target, register each stack into the database."""
        from acquire.workflows.paired_run import PairedRunRequest

        c = self.controls
        fields = {
            "Session": c.session,
            "Confocal dataset": c.confocal,
            "Output dataset": c.out,
            "Database": c.database,
        }
        ready = self._new_dataset_operation("Paired acquisition", fields)
        if ready is None:
            return
        core, paths = ready
        request = PairedRunRequest(
            session=paths["Session"],
            confocal_dataset=paths["Confocal dataset"],
            config=self.config,
            out=paths["Output dataset"],
            database=paths["Database"],
        )
        task = paired_task(core, request)
        self._start("paired acquisition", task, self._paired)

    @Slot()
    def live_enhancement(self) -> None:
        """Acquire the sequence and enhance every stack as it completes."""
        c = self.controls
        fields = {"Sequence": c.sequence, "Output dataset": c.out, "Model": c.model}
        ready = self._new_dataset_operation("Live enhancement", fields)
        if ready is None:
            return
        core, paths = ready
        out = paths["Output dataset"]
        task = live_task(core, paths["Sequence"], self.config, out, paths["Model"])
        self._start("live enhancement", task, self._enhanced_all)

    @Slot(object)
    def run_sequence(self, sequence: useq.MDASequence) -> None:
        """Acquire the MDA builder's sequence into the output dataset, crash-safe."""
        ready = self._new_dataset_operation(
            "MDA run", {"Output dataset": self.controls.out}
        )
        if ready is None:
            return
        core, paths = ready
        task = acquisition_task(core, sequence, self.config, paths["Output dataset"])
        self._start("MDA", task, self._acquired)

    # -- results -------------------------------------------------------------

    @Slot(object, float)
    def _show_frame(self, image: NDArray[np.generic], pixel_size_um: float) -> None:
        px = pixel_size_um if pixel_size_um > 0 else 1.0
        live = self.core is not None and self.core.isSequenceRunning()
        self.views.show_camera(
            image[None], (1.0, px, px), "live" if live else "snap (microscope panel)"
        )

    def _acquired(self, result: AcquisitionResult) -> None:
        text = (
            f"MDA {result.status}: {result.stacks_committed} stacks, "
            f"{result.frames_acquired} frames in {result.wall_time_s:.1f} s"
        )
        if result.status != "complete":
            self._show_message(f"{text}; {result.failure}", error=True)
        else:
            self._show_message(text, error=False)
        self.log.append_line(text)

    @Slot()
    def _save_snap_clicked(self) -> None:
        self.save_snap()

    def save_snap(self, path: Path | None = None) -> Path | None:
        """Write the last snap as an OME-TIFF; ask where if ``path`` is None.

        A path given here must not exist; one chosen in the dialog may
        replace a file (the dialog asked).

        Returns
        -------
        Path or None
            The file written, or None (nothing to save, cancelled, refused).

        """
        from acquire.storage.ome_tiff import write_ome_tiff

        snap = self._last_snap
        if snap is None or snap.ome is None:
            self._show_message(
                "no snap with a pixel size to save: snap first (the objective "
                "needs a pixel-size configuration)",
                error=True,
            )
            return None
        overwrite = path is None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Save snap", "snap.ome.tif", "OME-TIFF (*.ome.tif *.ome.tiff)"
            )
            if not chosen:
                return None
            path = Path(chosen)
        try:
            write_ome_tiff(path, snap.ome, overwrite=overwrite)
        except Exception as error:
            self._show_message(describe_error(error), error=True)
            return None
        self._show_message(f"snap saved to {path}", error=False)
        return path

    def _snapped(self, result: SnapResult) -> None:
        self._last_snap = result
        x, y = result.stage_xy_um
        px = result.pixel_size_um or 1.0
        self.views.show_camera(
            result.image, (1.0, px, px), f"snap at x {x:.1f}, y {y:.1f} um"
        )
        self.stage_map.set_stage(x, y)
        self.log.append_line(
            f"snap: {result.image.shape[1]}x{result.image.shape[0]} px "
            f"at x {x:.1f}, y {y:.1f} um"
        )

    def _fiducials_found(self, result: FiducialsResult) -> None:
        self.stage_map.set_marks(result.survey.positions())
        self.stage_map.set_targets(
            MapTarget(t.name, (t.stage_xyz_um[0], t.stage_xyz_um[1]))
            for t in result.session.targets
        )
        missing = result.survey.missing
        self._show_message(
            f"found {len(result.survey.marks)} marks"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + f", {len(result.session.targets)} targets; session written to "
            f"{result.path}",
            error=False,
        )

    def _show_relocated(self, targets: tuple[RelocatedTarget, ...]) -> None:
        self.stage_map.set_targets(
            MapTarget(
                t.name,
                (t.stage_xyz_um[0], t.stage_xyz_um[1]),
                t.predicted_tre_um,
                t.too_uncertain,
            )
            for t in targets
        )
        self.table.set_targets(targets)

    def _relocated(self, result: RelocationResult) -> None:
        self.stage_map.set_marks(result.survey.positions())
        self._show_relocated(result.targets)
        transform = result.transform
        for t in result.targets:
            x, y, z = t.stage_xyz_um
            self.log.append_line(
                f"{t.name}: x {x:.1f}, y {y:.1f}, z {z:.2f} um, predicted error "
                f"{t.predicted_tre_um:.2f} um (z {t.predicted_z_error_um:.2f} um)"
                + (" TOO UNCERTAIN" if t.too_uncertain else "")
            )
        self._show_message(
            f"relocated with {len(transform.inliers)} marks ({transform.model}, "
            f"residual {transform.residual_rms_um:.2f} um): "
            f"{len(result.targets)} targets mapped",
            error=False,
        )

    def _paired(self, result: PairedRunResult) -> None:
        self._show_relocated(result.relocated)
        for outcome in result.outcomes:
            self.table.set_outcome(outcome)
        acquisition = result.acquisition
        accepted = sum(o.accepted for o in result.outcomes)
        text = (
            f"paired acquisition {acquisition.status}: "
            f"{acquisition.stacks_committed} stacks, {accepted} of "
            f"{len(result.outcomes)} pairs accepted"
        )
        if result.registration_failures:
            text += f", {result.registration_failures} registrations failed"
        if acquisition.failure:
            text += f"; {acquisition.failure}"
        self._show_message(text, error=acquisition.status != "complete")

    def _enhanced_all(self, result: LiveRunResult) -> None:
        acquisition = result.acquisition
        latencies = result.latencies_s
        mean = sum(latencies) / len(latencies) if latencies else 0.0
        text = (
            f"live enhancement {acquisition.status}: {result.enhanced} stacks "
            f"enhanced into {result.enhanced_dataset} (dropped {result.dropped}, "
            f"failed {result.failed}; mean latency {mean:.1f} s)"
        )
        if acquisition.failure:
            text += f"; {acquisition.failure}"
        self._show_message(text, error=acquisition.status != "complete")

    # -- signals from the worker ---------------------------------------------

    @Slot(int, int)
    def _on_acquisition_started(self, n_frames: int, n_stacks: int) -> None:
        self.progress.setRange(0, max(n_frames, 1))
        self.progress.setValue(0)
        self.log.append_line(f"acquiring {n_stacks} stacks, {n_frames} frames")

    @Slot(str, int, int)
    def _on_frame(self, name: str, c: int, z: int) -> None:
        if self.progress.maximum() > 0:
            self.progress.setValue(self.progress.value() + 1)

    @Slot(str)
    def _on_stack_committed(self, name: str) -> None:
        if self._dataset is not None:
            self.reader.read(self._dataset, name)

    @Slot(object, object)
    def _on_stack_loaded(self, stack: StoredStack, partner: StoredStack | None) -> None:
        caption = f"{stack.name} ({stack.position_name})"
        self.log.append_line(f"{caption}: committed")
        if partner is None:
            self.views.show_camera(stack.data[0], stack.voxel_size_um, caption)
            return
        # a stack and its partner share their centre (the target)
        self.views.show_camera(
            stack.data[0],
            stack.voxel_size_um,
            caption,
            z_origin_um=-_half_depth_um(stack),
        )
        self.views.show_enhanced(
            partner.data[0],
            partner.voxel_size_um,
            f"{partner.name} ({partner.position_name})",
            z_origin_um=-_half_depth_um(partner),
            title="Confocal partner (scope A)",
        )

    @Slot(float, float)
    def _on_stage_moved(self, x_um: float, y_um: float) -> None:
        self.stage_map.set_stage(x_um, y_um)

    @Slot(object)
    def _on_outcome(self, outcome: PairOutcome) -> None:
        self.table.set_outcome(outcome)
        self.log.append_line(f"pair {outcome.position_name}: {outcome_text(outcome)}")

    @Slot(object)
    def _on_enhanced(self, stack: EnhancedStack) -> None:
        self.views.show_camera(stack.raw, stack.raw_voxel_size_um, f"{stack.name} raw")
        self.views.show_enhanced(
            stack.enhanced,
            stack.voxel_size_um,
            f"{stack.name} ({stack.latency_s:.1f} s)",
        )
        self.log.append_line(
            f"{stack.name}: enhanced in {stack.latency_s:.1f} s "
            f"({stack.enhanced.shape[0]} planes)"
        )

    @Slot(object)
    def _on_succeeded(self, result: object) -> None:
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.progress.setValue(self.progress.maximum())
        self._on_success(result)

    @Slot(str)
    def _on_failed(self, text: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self._show_message(text, error=True)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.deleteLater()
        # show every stack of the run before saying it ended
        self.reader.wait()
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
        self._dataset = None
        self._on_success = lambda _result: None
        if self.microscope is not None:
            self.microscope.release_events()
        self._refresh_buttons()
        self._refresh_stage()

    # -- closing -------------------------------------------------------------

    def shutdown(self) -> None:
        """Wait for a running operation, then close the core (idempotent)."""
        self._poll.stop()
        if self._thread is not None:
            self._thread.wait()
            self.reader.wait()
            # deliver what the finished thread queued before the core goes
            QCoreApplication.sendPostedEvents()
        self._release_core()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Refuse to close while an operation runs; else close the core."""
        if self._thread is not None:
            self._show_message(
                f"{self._thread.name} is running; close the window when it ends",
                error=True,
            )
            event.ignore()
            return
        self.shutdown()
        event.accept()


def _half_depth_um(stack: StoredStack) -> float:
    """Half the height from a stack's first plane to its last."""
    return 0.5 * (int(stack.data.shape[1]) - 1) * stack.voxel_size_um[0]
