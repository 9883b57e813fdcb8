"""The window's microscope controls (pymmcore-widgets), offline, used by hand."""

from __future__ import annotations

import os
import socket
import threading
import time

# before Qt is imported: no screen needed
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from typing import TYPE_CHECKING

import numpy as np
import pytest
import useq
from acquire_helpers import demo_scope, timeout_s
from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication, QComboBox, QTableWidget

from acquire.gui import offline_icons
from acquire.gui.main_window import MainWindow
from acquire.hardware.microscope import objective_device, snap
from acquire.sequence.read import load_sequence
from acquire.sim import groundtruth
from acquire.storage.reader import committed_stacks

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pytestqt.qtbot import QtBot

OPERATION_TIMEOUT_MS = round(timeout_s(120) * 1000)


# -- icons -------------------------------------------------------------------


def raster(svg: bytes, size: int = 48) -> np.ndarray:
    """Alpha channel of an SVG drawn by Qt's own renderer."""
    renderer = QSvgRenderer(QByteArray(svg))
    assert renderer.isValid()
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    bits = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(size, size, 4)
    return bits[..., 3].astype(float)


def test_every_icon_the_widgets_name_ships_with_pairscope() -> None:
    subset = offline_icons.load_subset()
    missing = []
    for key in offline_icons.widget_icon_keys():
        prefix, name = key.split(":", 1)
        if prefix not in subset.sets:
            continue  # not an icon (e.g. a "host:port" string)
        try:
            subset.icon(prefix, name)
        except offline_icons.UnknownIcon:
            missing.append(key)
    assert missing == []
    # every set keeps its licence
    for icon_set in subset.sets.values():
        assert icon_set["license"]["spdx"]


def test_icons_render_flipped_and_turned_as_iconify_defines() -> None:
    subset = offline_icons.load_subset()
    # an asymmetric icon: each transform must move its pixels
    plain = raster(offline_icons.render_svg(subset, "mdi", "arrow-top-left-thick"))
    assert plain.sum() > 0
    assert not np.array_equal(plain, np.fliplr(plain))
    flipped = raster(
        offline_icons.render_svg(
            subset, "mdi", "arrow-top-left-thick", flip="horizontal"
        )
    )
    vertical = raster(
        offline_icons.render_svg(subset, "mdi", "arrow-top-left-thick", flip="vertical")
    )
    quarter = raster(
        offline_icons.render_svg(subset, "mdi", "arrow-top-left-thick", rotate=1)
    )
    half = raster(
        offline_icons.render_svg(subset, "mdi", "arrow-top-left-thick", rotate="180deg")
    )
    np.testing.assert_allclose(flipped, np.fliplr(plain), atol=2)
    np.testing.assert_allclose(vertical, np.flipud(plain), atol=2)
    np.testing.assert_allclose(quarter, np.rot90(plain, k=-1), atol=2)  # clockwise
    np.testing.assert_allclose(half, np.rot90(plain, k=2), atol=2)


def test_icon_colour_and_size_follow_the_request() -> None:
    subset = offline_icons.load_subset()
    svg = offline_icons.render_svg(subset, "mdi", "play", color="lime", height=32)
    text = svg.decode()
    assert 'fill="lime"' in text and "currentColor" not in text
    assert 'height="32"' in text and 'width="32"' in text
    with pytest.raises(offline_icons.UnknownIcon):
        offline_icons.render_svg(subset, "mdi", "no-such-icon-anywhere")


# -- the window --------------------------------------------------------------


@pytest.fixture(scope="module")
def widefield(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("microscope")
    # a second channel preset, so the channel control has a choice
    return demo_scope(
        folder,
        "widefield",
        extra="ConfigGroup,Channel,mCherry,FilterWheel,Label,mCherry\n",
        SensorWidthPx=128,
        SensorHeightPx=128,
        MountSeed=7,
    )


@pytest.fixture(scope="module")
def window(qapp: QApplication, widefield: Path) -> Iterator[MainWindow]:
    """One window for the module, built with the network refused."""
    real_connect = socket.socket.connect
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"test: no network ({address})")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        win = MainWindow(widefield)
        win.show()
        for index in range(win.microscope.count()):  # every tab drawn once
            win.microscope.setCurrentIndex(index)
            QApplication.processEvents()
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
    assert attempts == []
    assert not offline_icons.MISSING
    yield win
    win.shutdown()
    win.close()


def wait_idle(qtbot: QtBot, win: MainWindow) -> None:
    qtbot.waitUntil(lambda: not win.busy(), timeout=OPERATION_TIMEOUT_MS)


def test_exposure_objective_and_channel_controls_set_the_scope(
    window: MainWindow,
) -> None:
    core, panel = window.core, window.microscope
    assert core is not None and panel is not None
    panel.exposure.spinBox.setValue(37.5)
    panel.exposure.spinBox.editingFinished.emit()
    assert core.getExposure() == pytest.approx(37.5)
    # objective: the turret and the pixel size follow the combo box
    (combo,) = panel.objectives.findChildren(QComboBox)  # the turret's
    pixel_before = core.getPixelSizeUm()
    other = next(
        combo.itemText(i)
        for i in range(combo.count())
        if combo.itemText(i) != combo.currentText()
    )
    combo.setCurrentText(other)
    device = objective_device(core)
    assert device is not None
    assert core.getStateLabel(device) == other
    assert core.getPixelSizeUm() != pytest.approx(pixel_before)
    # channel: the preset of the channel group
    group = core.getChannelGroup()
    presets = list(core.getAvailableConfigs(group))
    target = next(p for p in presets if p != core.getCurrentConfig(group))
    (channel_combo,) = panel.channel.findChildren(QComboBox)
    channel_combo.setCurrentText(target)  # as a user picks it
    assert core.getCurrentConfig(group) == target


def test_presets_and_properties_list_the_loaded_scope(window: MainWindow) -> None:
    core, panel = window.core, window.microscope
    assert core is not None and panel is not None
    presets = panel.presets.table_wdg
    shown = {presets.item(r, 0).text() for r in range(presets.rowCount())}
    assert shown == set(core.getAvailableConfigGroups())
    # the property browser holds a row for every property of every device
    browser = panel.properties
    (table,) = browser.findChildren(QTableWidget)
    model_rows = table.rowCount()
    expected = sum(len(core.getDevicePropertyNames(d)) for d in core.getLoadedDevices())
    assert model_rows == expected


def test_events_from_other_threads_reach_the_widgets_on_the_gui_thread(
    qtbot: QtBot, window: MainWindow
) -> None:
    core, panel = window.core, window.microscope
    assert core is not None and panel is not None
    seen: list[threading.Thread] = []
    panel.relay.events.exposureChanged.connect(
        lambda *_: seen.append(threading.current_thread())
    )
    camera = core.getCameraDevice()

    def on_another_thread() -> None:
        # as Micro-Manager's callback thread reports a camera's new exposure
        core.setExposure(12.0)
        core.events.exposureChanged.emit(camera, 12.0)

    worker = threading.Thread(target=on_another_thread)
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen == [threading.main_thread()]
    assert panel.exposure.spinBox.value() == pytest.approx(12.0)


def test_a_failing_control_does_not_break_the_core_call(window: MainWindow) -> None:
    core, panel = window.core, window.microscope
    assert core is not None and panel is not None

    def broken(*_args: object) -> None:
        raise RuntimeError("a broken control")

    panel.relay.events.exposureChanged.connect(broken)
    try:
        core.setExposure(21.0)  # would raise if the fault reached the core
    finally:
        panel.relay.events.exposureChanged.disconnect(broken)
    assert core.getExposure() == pytest.approx(21.0)


def test_held_events_are_dropped_and_the_panel_resyncs(window: MainWindow) -> None:
    core, panel = window.core, window.microscope
    assert core is not None and panel is not None
    panel.hold_events()
    assert not panel.isEnabled()
    core.setExposure(44.0)
    QApplication.processEvents()
    assert panel.exposure.spinBox.value() != pytest.approx(44.0)
    panel.release_events()
    assert panel.isEnabled()
    assert panel.exposure.spinBox.value() == pytest.approx(44.0)


def test_live_view_shows_what_the_camera_sees(qtbot: QtBot, window: MainWindow) -> None:
    core, panel = window.core, window.microscope
    assert core is not None and panel is not None
    cell = groundtruth.stage_position_of_cell(core, 2, height_um=2.0)
    core.setXYPosition(cell[0], cell[1])
    core.setPosition(cell[2])
    core.waitForSystem()
    qtbot.mouseClick(panel.live, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: window.views.camera.caption().startswith("live"), timeout=10000
    )
    assert core.isSequenceRunning() and core.getShutterOpen()
    qtbot.mouseClick(panel.live, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not core.isSequenceRunning(), timeout=5000)
    assert not core.getShutterOpen()  # closed again by the panel that opened it
    shown = window.views.camera.displayed_plane()
    assert shown is not None
    fresh = snap(core)  # pairscope's own snap path, same place and settings
    # the same cell as a snap (noise differs), not a dark field
    assert shown.max() > 2 * np.median(shown)
    r = np.corrcoef(shown.ravel().astype(float), fresh.ravel().astype(float))[0, 1]
    assert r > 0.9


def test_an_operation_holds_the_panel_until_it_ends(
    qtbot: QtBot, window: MainWindow
) -> None:
    panel = window.microscope
    assert panel is not None
    qtbot.mouseClick(window.controls.snap, Qt.MouseButton.LeftButton)
    assert window.busy() and not panel.isEnabled() and panel.relay.held
    wait_idle(qtbot, window)
    assert panel.isEnabled() and not panel.relay.held


def test_the_mda_builder_saves_yaml_pairscope_reads_and_runs_through_pairscope(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    core, panel = window.core, window.microscope
    assert core is not None and panel is not None
    x, y = core.getXYPosition()
    z = core.getPosition()
    sequence = useq.MDASequence(
        stage_positions=[
            useq.Position(x=x, y=y, z=z, name="here"),
            useq.Position(x=x + 40.0, y=y, z=z, name="beside"),
        ],
        z_plan=useq.ZRangeAround(range=1.0, step=0.5),
        channels=[useq.Channel(config=core.getCurrentConfig(core.getChannelGroup()))],
        axis_order="pcz",
    )
    panel.mda.setValue(sequence)
    built = panel.sequence()
    assert [p.name for p in built.stage_positions] == ["here", "beside"]
    saved = tmp_path / "built.yaml"
    panel.save_sequence(saved)
    read = load_sequence(saved)  # pairscope acquire's own strict reader
    assert len(list(read)) == len(list(built)) == 2 * 3
    assert [p.x for p in read.stage_positions] == pytest.approx([x, x + 40.0])

    # Run: pairscope's crash-safe acquisition, not pymmcore-plus' runner
    out = tmp_path / "mda_dataset"
    window.controls.out.set_path(out)
    qtbot.mouseClick(panel.mda.control_btns.run_btn, Qt.MouseButton.LeftButton)
    assert window.busy()
    wait_idle(qtbot, window)
    assert "MDA complete: 2 stacks, 6 frames" in window.message_text()
    assert len(committed_stacks(out)) == 2
    # run again into the same folder: refused, nothing overwritten
    stamp = (out / "manifest.json").stat().st_mtime_ns
    time.sleep(0.01)
    qtbot.mouseClick(panel.mda.control_btns.run_btn, Qt.MouseButton.LeftButton)
    assert not window.busy()
    assert "exists" in window.message_text()
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
