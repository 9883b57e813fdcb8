"""The microscope's own controls, from pymmcore-widgets, on the window's core.

Live view with start/stop, exposure, objective, channel and shutter; every
configuration group's presets; a property browser; and the MDA builder,
whose sequence runs through pairscope's crash-safe acquisition (not
pymmcore-plus' runner) or is saved as the YAML ``pairscope acquire`` reads.

The widgets see the core through `acquire.gui.core_relay.GuiCore`, whose
events arrive on the GUI thread whichever thread the core emits them from.
While one of pairscope's operations runs, the panel is disabled and the
relay is held (`hold_events`); afterwards the panel is brought up to date
from the core (`release_events`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QGroupBox,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from acquire.gui import offline_icons
from acquire.gui.core_relay import CoreEventRelay, GuiCore

offline_icons.install()  # before pymmcore-widgets binds pyconify's svg_path

from pymmcore_widgets import (  # noqa: E402 (after the icons are routed)
    ChannelGroupWidget,
    ChannelWidget,
    ExposureWidget,
    GroupPresetTableWidget,
    LiveButton,
    MDAWidget,
    ObjectivesWidget,
    PropertyBrowser,
    ShuttersWidget,
)

if TYPE_CHECKING:
    from pathlib import Path

    import useq
    from numpy.typing import NDArray
    from pymmcore_plus import CMMCorePlus

__all__ = ["LiveFeed", "MicroscopePanel", "PairscopeMDAWidget"]

LIVE_REFRESH_MS = 100
"""How often the live view takes the camera's newest frame (10 Hz)."""


class PairscopeMDAWidget(MDAWidget):
    """pymmcore-widgets' MDA builder whose Run hands the sequence to pairscope.

    ``run_requested`` carries the built `useq.MDASequence`; the window runs
    it with `acquire.workflows.acquisition.run_acquisition` (crash-safe
    dataset, retries, resume) instead of pymmcore-plus' own runner. "Save
    Settings" writes the YAML that ``pairscope acquire`` reads.
    """

    run_requested = Signal(object)

    def __init__(self, *, mmcore: Any, parent: QWidget | None = None) -> None:
        super().__init__(mmcore=mmcore, parent=parent)
        # where the stacks go is the window's Output dataset (a pairscope
        # dataset), not pymmcore-plus' writers: their save settings would
        # only mislead
        self.save_info.hide()

    def execute_mda(self, output: Any) -> None:
        """Hand the sequence to the window instead of running it here."""
        self.run_requested.emit(self.value())


class LiveFeed(QObject):
    """Frames of the core's camera: every snap, and live mode's newest frame.

    Parameters
    ----------
    relay : CoreEventRelay
        The core's events on the GUI thread (snaps from pymmcore-widgets
        come from a worker thread).
    parent : QObject, optional
        Qt parent.

    """

    frame = Signal(object, float)
    """(image, pixel size in um) of the newest frame."""

    def __init__(self, relay: CoreEventRelay, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = relay.core
        self._opened_shutter = False
        self._timer = QTimer(self)
        self._timer.setInterval(LIVE_REFRESH_MS)
        self._timer.timeout.connect(self._take_live_frame)
        relay.events.imageSnapped.connect(self._take_snap)
        relay.events.continuousSequenceAcquisitionStarting.connect(self._open_shutter)
        relay.events.continuousSequenceAcquisitionStarted.connect(self._live_started)
        relay.events.sequenceAcquisitionStopped.connect(self._live_stopped)

    def stop(self) -> None:
        """Stop taking live frames."""
        self._timer.stop()

    def _open_shutter(self, *_args: object) -> None:
        # Micro-Manager opens the shutter for a sequence when auto-shutter is
        # on; pymmcore-plus' Python cameras (the simulated scopes) do not, so
        # live mode there would show a dark field. Open it as live mode starts
        # (the event comes before the first frame when live is started from
        # the window), and close it when live mode stops, only where it was
        # closed.
        core = self._core
        closed = core.getShutterDevice() and not core.getShutterOpen()
        if core.getAutoShutter() and closed:
            core.setShutterOpen(True)
            self._opened_shutter = True

    def _live_started(self, *_args: object) -> None:
        self._open_shutter()  # in case the starting event was not seen
        self._timer.start()

    def _live_stopped(self, *_args: object) -> None:
        self._timer.stop()
        if self._opened_shutter:
            self._opened_shutter = False
            self._core.setShutterOpen(False)

    def _take_snap(self, *_args: object) -> None:
        image: NDArray[Any] = self._core.getImage()
        self.frame.emit(np.asarray(image), self._core.getPixelSizeUm())

    @Slot()
    def _take_live_frame(self) -> None:
        core = self._core
        if not core.isSequenceRunning():
            self._timer.stop()
            return
        if core.getRemainingImageCount() == 0:
            return
        image: NDArray[Any] = core.getLastImage()
        self.frame.emit(np.asarray(image), core.getPixelSizeUm())


def _scrolling(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    return area


class MicroscopePanel(QTabWidget):
    """Tabs of pymmcore-widgets controls on one core.

    Parameters
    ----------
    core : CMMCorePlus
        The window's core.
    parent : QWidget, optional
        Qt parent.

    """

    def __init__(self, core: CMMCorePlus, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.relay = CoreEventRelay(core, self)
        self.feed = LiveFeed(self.relay, self)
        gui_core: Any = GuiCore(core, self.relay)  # what the widgets see
        self.live = LiveButton(mmcore=gui_core)
        self.exposure = ExposureWidget(mmcore=gui_core)
        self.objectives = ObjectivesWidget(mmcore=gui_core)
        self.channel_group = ChannelGroupWidget(mmcore=gui_core)
        self.channel = ChannelWidget(mmcore=gui_core)
        self.shutter = ShuttersWidget(
            core.getShutterDevice() or "", autoshutter=True, mmcore=gui_core
        )
        self.presets = GroupPresetTableWidget(mmcore=gui_core)
        self.properties = PropertyBrowser(mmcore=gui_core)
        self.mda = PairscopeMDAWidget(mmcore=gui_core)
        self.addTab(self._camera_tab(), "Camera")
        # the wide tabs scroll sideways rather than widen the window past a
        # 1920 px screen
        self.addTab(_scrolling(self.presets), "Presets")
        self.addTab(_scrolling(self.properties), "Properties")
        self.addTab(_scrolling(self.mda), "MDA")

    def _camera_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        for title, widget in (
            ("Live", self.live),
            ("Exposure", self.exposure),
            ("Objective", self.objectives),
            ("Channel", None),
            ("Shutter", self.shutter),
        ):
            box = QGroupBox(title)
            inner = QVBoxLayout(box)
            if widget is None:
                inner.addWidget(self.channel_group)
                inner.addWidget(self.channel)
            else:
                inner.addWidget(widget)
            layout.addWidget(box)
        layout.addStretch(1)
        return tab

    def hold_events(self) -> None:
        """Stop live mode and hold the core's events (an operation starts)."""
        if self.core.isSequenceRunning():
            self.core.stopSequenceAcquisition()
        self.feed.stop()
        self.relay.hold()
        self.setEnabled(False)

    def release_events(self) -> None:
        """Let events through again and show the core's state as it is now."""
        self.relay.release()
        self.setEnabled(True)
        self.resync()

    def disconnect_core(self) -> None:
        """Stop listening to the core (before it closes)."""
        self.feed.stop()
        self.relay.disconnect_core()

    def resync(self) -> None:
        """Show the core's present state (what changed while events were held).

        Emits change events with the core's current values to the widgets
        only (the relay's copies), so each updates as if it had seen the
        change; nothing on the scope moves.
        """
        core, events = self.core, self.relay.events
        events.propertiesChanged.emit()
        camera = core.getCameraDevice()
        if camera:
            events.exposureChanged.emit(camera, core.getExposure())
        for group in core.getAvailableConfigGroups():
            events.configSet.emit(group, core.getCurrentConfig(group))
        events.pixelSizeChanged.emit(core.getPixelSizeUm())

    def sequence(self) -> useq.MDASequence:
        """The MDA builder's sequence."""
        return self.mda.value()

    def save_sequence(self, path: Path) -> None:
        """Write the MDA builder's sequence as YAML (``pairscope acquire`` reads it)."""
        self.mda.save(path)
