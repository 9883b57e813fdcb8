"""The window's microscope controls (pymmcore-widgets), offline, used by hand."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

# before Qt is imported: no screen needed
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from typing import TYPE_CHECKING

import numpy as np
import pytest
import useq
from acquire_helpers import demo_scope, timeout_s
from PySide6.QtCore import QByteArray, QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QPainter
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication, QComboBox, QTableWidget

from acquire.gui import offline_icons
from acquire.gui.main_window import MainWindow
from acquire.gui.views import ImageView, StackPairView, display_range
from acquire.hardware.microscope import objective_device, snap
from acquire.sequence.read import load_sequence
from acquire.sim import groundtruth
from acquire.storage.reader import committed_stacks

if TYPE_CHECKING:
    from collections.abc import Iterator

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


# -- views: zoom, pan, readout, contrast --------------------------------------


@pytest.fixture
def ramp_view(qtbot: QtBot) -> StackPairView:
    """A shown pair view whose camera plane holds ``1000 y + x`` at pixel (x, y)."""
    pair = StackPairView()
    qtbot.addWidget(pair)
    pair.resize(900, 600)
    pair.show()
    ys, xs = np.mgrid[0:64, 0:80]
    pair.show_camera((1000 * ys + xs)[None].astype(np.uint16), (1.0, 0.1, 0.1), "ramp")
    qtbot.waitExposed(pair)
    return pair


def centre_of_pixel(view: ImageView, x: int, y: int) -> QPointF:
    """Widget point at the centre of image pixel (x, y), from the drawn rectangle."""
    plane = view.displayed_plane()
    assert plane is not None
    rect = view._target_rect()  # noqa: SLF001 (the geometry under test)
    assert rect is not None
    n_y, n_x = plane.shape
    return QPointF(
        rect.x() + (x + 0.5) * rect.width() / n_x,
        rect.y() + (y + 0.5) * rect.height() / n_y,
    )


def send_mouse(
    view: ImageView,
    kind: QEvent.Type,
    point: QPointF,
    button: Qt.MouseButton = Qt.MouseButton.NoButton,
) -> None:
    """A mouse event as the pointer sends it, delivered now."""
    buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else button
    event = QMouseEvent(
        kind,
        point,
        view.mapToGlobal(point),
        button,
        buttons,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(view, event)


def test_the_pixel_under_the_cursor_is_read_out(
    qtbot: QtBot, ramp_view: StackPairView
) -> None:
    view = ramp_view.camera
    point = centre_of_pixel(view, 10, 20)
    # a move event as the pointer sends it (the platform's cursor may already
    # be there, so QTest.mouseMove would send none)
    send_mouse(view, QEvent.Type.MouseMove, point)
    assert view.readout() == "x 10, y 20: 20010"
    outside = QPointF(1.0, 1.0)  # the title line, not the image
    assert view.pixel_at(outside) is None


def test_wheel_zoom_keeps_the_pixel_under_the_cursor_and_drag_pans(
    qtbot: QtBot, ramp_view: StackPairView
) -> None:
    view = ramp_view.camera
    anchor = centre_of_pixel(view, 60, 12)
    before = view.pixel_at(anchor)
    view.zoom_at(2.0, anchor)
    assert view.zoom == pytest.approx(2.0)
    assert view.pixel_at(anchor) == before == (60, 12)
    # a drag of 8 image pixels' width moves the image by 8 pixels
    rect = view._target_rect()  # noqa: SLF001
    assert rect is not None
    screen_px = rect.width() / 80
    start = centre_of_pixel(view, 40, 30)
    end = start + QPointF(8 * screen_px, 0)
    left = Qt.MouseButton.LeftButton
    send_mouse(view, QEvent.Type.MouseButtonPress, start, left)
    send_mouse(view, QEvent.Type.MouseMove, end)
    send_mouse(view, QEvent.Type.MouseButtonRelease, end, left)
    assert view.pixel_at(start) == (32, 30)
    send_mouse(view, QEvent.Type.MouseButtonDblClick, start, left)
    assert view.zoom == 1.0


def test_contrast_set_by_hand_holds_until_auto(
    qtbot: QtBot, ramp_view: StackPairView
) -> None:
    view, bar = ramp_view.camera, ramp_view.camera_contrast
    plane = view.displayed_plane()
    assert plane is not None
    edges, counts = bar.histogram()  # type: ignore[misc]
    expected, _ = np.histogram(plane, bins=len(counts), range=(edges[0], edges[-1]))
    np.testing.assert_array_equal(counts, expected)
    assert bar.auto.isChecked()
    assert view.display == pytest.approx(display_range(plane))
    bar.low.setValue(5000.0)
    bar.high.setValue(40000.0)
    assert view.display == (5000.0, 40000.0) and not bar.auto.isChecked()
    # a new stack keeps the range set by hand
    ramp_view.show_camera(plane[None] * 2, (1.0, 0.1, 0.1), "brighter")
    assert view.display == (5000.0, 40000.0)
    bar.auto.setChecked(True)
    assert view.display == pytest.approx(display_range(plane[None] * 2))


def test_a_screenshot_shows_every_panel(window: MainWindow) -> None:
    """The grabbed window: not blank, and each panel drawn where it sits."""
    shot = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    height, width = shot.height(), shot.width()
    pixels = np.frombuffer(shot.constBits(), dtype=np.uint8).reshape(
        height, shot.bytesPerLine() // 4, 4
    )[:, :width, :3]
    assert pixels.std() > 10
    ratio = shot.devicePixelRatio()
    panels = {
        "microscope dock": window.microscope,
        "camera view": window.views.camera,
        "histogram": window.views.camera_contrast,
        "stage map": window.stage_map,
        "targets": window.table,
        "operations": window.controls,
        "log": window.log,
    }
    for name, panel in panels.items():
        assert panel is not None and panel.isVisible(), name
        corner = panel.mapTo(window, panel.rect().topLeft())
        x0, y0 = round(corner.x() * ratio), round(corner.y() * ratio)
        x1 = x0 + round(panel.width() * ratio)
        y1 = y0 + round(panel.height() * ratio)
        crop = pixels[y0:y1, x0:x1]
        assert crop.size > 0 and crop.std() > 1, f"{name} is blank"


def test_a_camera_that_dies_mid_session_is_one_message(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    """Unplugged camera (the fault injector): snap and MDA run say so, once."""
    core, panel = window.core, window.microscope
    assert core is not None and panel is not None
    camera = core.getCameraDevice()
    core.setProperty(camera, "FaultPersistFromFrame", 1)
    try:
        qtbot.mouseClick(window.controls.snap, Qt.MouseButton.LeftButton)
        wait_idle(qtbot, window)
        snap_message = window.message_text()
        assert snap_message.startswith(f"snap on camera '{camera}' failed")
        assert "check the camera" in snap_message and "\n" not in snap_message
        x, y = core.getXYPosition()
        panel.mda.setValue(
            useq.MDASequence(
                stage_positions=(useq.Position(x=x, y=y, z=core.getPosition()),),
                z_plan=useq.ZRangeAround(range=0.5, step=0.5),
            )
        )
        out = tmp_path / "dead_camera"
        window.controls.out.set_path(out)
        qtbot.mouseClick(panel.mda.control_btns.run_btn, Qt.MouseButton.LeftButton)
        wait_idle(qtbot, window)
    finally:
        core.setProperty(camera, "FaultPersistFromFrame", 0)
    message = window.message_text()
    assert message.startswith("MDA failed") and "\n" not in message.strip()
    assert "Traceback" not in window.log.toPlainText()
    assert committed_stacks(out) == ()  # nothing half-written passes as a stack
    # the window and its dock work again at once
    assert panel.isEnabled() and not window.busy()
    qtbot.mouseClick(window.controls.snap, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert window.views.camera.displayed_plane() is not None


def test_the_shutter_control_opens_and_closes_the_shutter(
    qtbot: QtBot, window: MainWindow
) -> None:
    core, panel = window.core, window.microscope
    assert core is not None and panel is not None
    shutter = panel.shutter
    # the scope reports a shutter change from Micro-Manager's callback thread;
    # the widget sees it once the relay has brought it to the GUI thread
    reported: list[bool] = []
    panel.relay.events.shutterOpenChanged.connect(
        lambda _label, is_open: reported.append(bool(is_open))
    )
    qtbot.mouseClick(shutter.autoshutter_checkbox, Qt.MouseButton.LeftButton)
    assert not core.getAutoShutter()
    assert shutter.shutter_button.isEnabled()
    qtbot.mouseClick(shutter.shutter_button, Qt.MouseButton.LeftButton)
    assert core.getShutterOpen()
    qtbot.waitUntil(lambda: reported[-1:] == [True], timeout=5000)
    qtbot.mouseClick(shutter.shutter_button, Qt.MouseButton.LeftButton)
    assert not core.getShutterOpen()
    qtbot.waitUntil(lambda: reported[-1:] == [False], timeout=5000)
    qtbot.mouseClick(shutter.autoshutter_checkbox, Qt.MouseButton.LeftButton)
    assert core.getAutoShutter()


@pytest.mark.skipif(
    shutil.which("xvfb-run") is None,
    reason="needs Xvfb (Debian's xvfb; .ci/run installs it)",
)
def test_the_window_on_a_real_x_server_shows_every_panel(
    widefield: Path, tmp_path: Path
) -> None:
    """An X screen grab (Qt's xcb platform): every panel drawn, a snap shown."""
    shot_path = tmp_path / "screen.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb"}
    proc = subprocess.run(
        [
            "xvfb-run",
            "-a",
            "-s",
            "-screen 0 2200x1000x24",
            sys.executable,
            str(Path(__file__).with_name("xvfb_window.py")),
            str(widefield),
            str(shot_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s(180),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["platform"] == "xcb"
    assert report["message"] == ""  # the snap ran without a problem
    image = QImage(str(shot_path)).convertToFormat(QImage.Format.Format_RGB32)
    assert not image.isNull()
    pixels = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(
        image.height(), image.bytesPerLine() // 4, 4
    )[:, : image.width(), :3]
    ratio = report["ratio"]
    for name, (x, y, w, h) in report["panels"].items():
        crop = pixels[
            round(y * ratio) : round((y + h) * ratio),
            round(x * ratio) : round((x + w) * ratio),
        ]
        assert crop.size > 0 and crop.std() > 1, f"{name} is blank on the screen"
    # the camera view shows the snapped cell: more than its dark background
    x, y, w, h = report["panels"]["camera view"]
    camera = pixels[round(y) : round(y + h), round(x) : round(x + w)].mean(axis=2)
    assert np.percentile(camera, 99.5) > np.median(camera) + 40
