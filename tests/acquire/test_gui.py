"""``pairscope gui``: the window driven through its own controls, offscreen."""

from __future__ import annotations

import logging
import os
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

# before Qt is imported: no screen needed
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
import typer
import yaml
from acquire_helpers import demo_scope, timeout_s
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QPushButton
from typer.testing import CliRunner

from acquire.cli.gui import gui
from acquire.gui.app import run_gui
from acquire.gui.main_window import MainWindow
from acquire.gui.messages import describe_error
from acquire.gui.stage_map import MapTarget, StageMap, nice_length_um
from acquire.gui.views import StackPairView
from acquire.gui.workers import LogForwarder, OperationSignals, OperationThread
from acquire.hardware.microscope import close_core, open_core, scope, snap
from acquire.sim import groundtruth
from acquire.storage.reader import committed_stacks, read_stack
from acquire.storage.session import load_session
from acquire.workflows.acquisition import AcquisitionRequest, run_acquisition
from correlate.pairdb import PairDatabase

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytestqt.qtbot import QtBot

ROOT = Path(__file__).resolve().parents[2]
HOLDER = ROOT / "hardware_configs" / "demo_holder.json"
CELLS = [0, 5]
N_PLANES, Z_STEP_UM = 11, 0.3
OPERATION_TIMEOUT_MS = round(timeout_s(120) * 1000)


def small_scope(folder: Path, name: str, seed: int, sensor_px: int = 256) -> Path:
    """A demo scope with its own mount; the wide-field one with a 256 px sensor."""
    # the confocal keeps its 51 um field: marks are 30 um
    sensor = (
        {"SensorWidthPx": sensor_px, "SensorHeightPx": sensor_px}
        if name == "widefield"
        else {}
    )
    return demo_scope(
        folder,
        name,
        filename=f"{name}_{sensor_px}.cfg",
        MountSeed=seed,
        # a sample mounted within 150 um of nominal: a short search (speed only;
        # tests/acquire/test_relocation.py covers the full range)
        MountMaxTranslationUm=150,
        **sensor,
    )


def cell_sequence(path: Path, config: Path, cells: list[int]) -> Path:
    """A sequence with a stack at each simulated cell (ground truth positions)."""
    with scope(config) as core:
        positions = [
            groundtruth.stage_position_of_cell(core, c, height_um=2.0) for c in cells
        ]
    data = {
        "stage_positions": [
            {"x": x, "y": y, "z": z, "name": f"cell{c}"}
            for c, (x, y, z) in zip(cells, positions, strict=True)
        ],
        "z_plan": {"range": Z_STEP_UM * (N_PLANES - 1), "step": Z_STEP_UM},
        "axis_order": "pcz",
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass(frozen=True)
class ScopeA:
    """Scope A's session and stacks, and what its window showed."""

    session: Path
    dataset: Path
    message: str
    map_marks: dict[str, tuple[float, float]]
    map_targets: list[str]


def wait_idle(win: MainWindow, timeout_s: float = OPERATION_TIMEOUT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout_s
    while win.busy():
        assert time.monotonic() < deadline, "the operation did not end"
        QApplication.processEvents()
        time.sleep(0.02)


@pytest.fixture(scope="module")
def scope_a(qapp: QApplication, tmp_path_factory: pytest.TempPathFactory) -> ScopeA:
    """Scope A (confocal): its window finds the marks, the library takes stacks."""
    folder = tmp_path_factory.mktemp("scope_a")
    confocal = small_scope(folder, "confocal", 41)
    sequence = cell_sequence(folder / "cells.yaml", confocal, CELLS)
    session = folder / "session.json"
    win = MainWindow(confocal)
    try:
        win.controls.holder.set_path(HOLDER)
        win.controls.targets.set_path(sequence)
        win.controls.session.set_path(session)
        win.controls.find_fiducials.click()
        wait_idle(win)
        shown = ScopeA(
            session,
            folder / "confocal_stacks",
            win.message_text(),
            dict(win.stage_map.marks),
            [t.name for t in win.stage_map.targets],
        )
    finally:
        win.shutdown()
    result = run_acquisition(AcquisitionRequest(sequence, confocal, shown.dataset))
    assert result.status == "complete", result.failure
    return shown


@pytest.fixture
def widefield(tmp_path: Path) -> Path:
    return small_scope(tmp_path, "widefield", 42)


@pytest.fixture
def window(qtbot: QtBot, widefield: Path) -> Iterator[MainWindow]:
    win = MainWindow(widefield)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()


def click_and_wait(qtbot, win: MainWindow, button: QPushButton) -> None:
    """Click an operation's button and wait for it, checking the window stays live."""
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(50)
    started = time.monotonic()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert win.busy()
    assert not any(b.isEnabled() for b in win.controls.buttons())
    qtbot.waitUntil(lambda: not win.busy(), timeout=OPERATION_TIMEOUT_MS)
    timer.stop()
    # the GUI thread kept handling events (20 a second when idle): at least one
    # tick in every whole second the operation took
    assert len(ticks) >= int(time.monotonic() - started)
    assert "Traceback" not in win.log.toPlainText()


# -- pieces ----------------------------------------------------------------


def test_one_slider_maps_z_by_physical_height(qtbot: QtBot) -> None:
    view = StackPairView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(0)
    raw = rng.random((11, 16, 16)).astype(np.float32)  # 0.3 um planes
    fine = rng.random((31, 24, 24)).astype(np.float32)  # 0.1 um planes, same depth
    view.show_camera(raw, (0.3, 0.16, 0.16), "raw")
    view.show_enhanced(fine, (0.1, 0.1, 0.1), "enhanced")
    assert view.slider.maximum() == 30  # 3.0 um in 0.1 um steps
    for step, raw_plane, fine_plane in (
        (0, 0, 0),
        (15, 5, 15),
        (16, 5, 16),
        (30, 10, 30),
    ):
        view.slider.setValue(step)
        assert view.camera.plane_index == raw_plane
        assert view.enhanced.plane_index == fine_plane
        np.testing.assert_array_equal(view.camera.displayed_plane(), raw[raw_plane])
    # a new, shallower stack keeps the height where it can
    view.show_camera(raw[:4], (0.3, 0.16, 0.16), "raw")
    view.slider.setValue(20)
    assert view.camera.plane_index == 3
    # stacks sharing their centre: 11 planes at 0.3 um and 21 at 0.1 um
    view.show_camera(raw, (0.3, 0.16, 0.16), "wide-field", z_origin_um=-1.5)
    view.show_enhanced(fine[:21], (0.1, 0.1, 0.1), "confocal", z_origin_um=-1.0)
    assert view.slider.maximum() == 30  # -1.5 um to 1.5 um
    view.slider.setValue(15)  # z = 0: both middle planes
    assert (view.camera.plane_index, view.enhanced.plane_index) == (5, 10)
    view.slider.setValue(2)  # z = -1.3 um: below the confocal stack
    assert (view.camera.plane_index, view.enhanced.plane_index) == (1, 0)


def test_stage_map_fits_everything_with_a_round_scale_bar(qtbot: QtBot) -> None:
    stage_map = StageMap()
    qtbot.addWidget(stage_map)
    stage_map.resize(400, 300)
    stage_map.set_marks({"A": (-2000.0, -1500.0, 0.0), "B": (2500.0, 1800.0, 3.0)})
    stage_map.set_targets([MapTarget("t", (3000.0, 0.0), error_um=400.0)])
    stage_map.set_stage(-2600.0, 100.0)
    for x, y in [(-2000, -1500), (2500, 1800), (3400, 0), (-2600, 100)]:
        point = stage_map.to_pixels(x, y)
        assert 0 <= point.x() <= 400 and 0 <= point.y() <= 300
    bar = stage_map.scale_bar_um()
    assert bar / 10 ** np.floor(np.log10(bar)) in (1.0, 2.0, 5.0)
    assert nice_length_um(730.0) == 500.0 and nice_length_um(0.19) == 0.1
    image = stage_map.grab().toImage()
    assert image.width() == 400


def test_library_errors_logged_on_worker_threads_reach_the_log_as_one_line() -> None:
    signals = OperationSignals()
    lines: list[str] = []
    signals.line.connect(lines.append)
    forwarder = LogForwarder(signals)
    logger = logging.getLogger("acquire.hardware.consumers")
    logger.addHandler(forwarder)
    try:
        try:
            raise ValueError("shapes differ\n  (5, 4) vs (5, 3)")
        except ValueError:
            logger.exception("registration failed on stack %s", "s1")
        logger.info("not forwarded")
    finally:
        logger.removeHandler(forwarder)
    assert lines == [
        "error: registration failed on stack s1: "
        "unexpected error: ValueError: shapes differ (5, 4) vs (5, 3)"
    ]


def test_a_crashing_task_reports_one_line(qtbot: QtBot) -> None:
    def task(signals: OperationSignals) -> object:
        raise KeyError("frame")

    thread = OperationThread("crash", task)
    with qtbot.waitSignal(thread.signals.failed, timeout=5000) as failed:
        thread.start()
    thread.wait()
    assert failed.args == ["unexpected error: KeyError: 'frame'"]


def test_unexpected_errors_are_one_line() -> None:
    assert describe_error(RuntimeError("boom\n  at x")) == (
        "unexpected error: RuntimeError: boom at x"
    )


# -- the window ---------------------------------------------------------------


def test_snap_shows_the_camera_frame(
    qtbot: QtBot, window: MainWindow, widefield: Path
) -> None:
    core = window.core
    assert core is not None
    cell = groundtruth.stage_position_of_cell(core, 3, height_um=2.0)
    core.setXYPosition(cell[0], cell[1])
    core.setPosition(cell[2])
    core.waitForSystem()
    click_and_wait(qtbot, window, window.controls.snap)
    shown = window.views.camera.displayed_plane()
    assert shown is not None and shown.shape == (256, 256)
    # an independent core at the same place sees the same cell (noise differs)
    other = open_core(widefield)
    try:
        other.setXYPosition(cell[0], cell[1])
        other.setPosition(cell[2])
        other.waitForSystem()
        fresh = snap(other)
    finally:
        close_core(other)
    assert shown.std() > 0
    r = np.corrcoef(shown.ravel().astype(float), fresh.ravel().astype(float))[0, 1]
    assert r > 0.9
    assert window.stage_map.stage_xy_um == pytest.approx(cell[:2], abs=0.1)


def test_a_snap_is_saved_as_ome_tiff_and_never_overwrites(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    core = window.core
    assert core is not None
    assert not window.controls.save_snap.isEnabled()  # nothing snapped yet
    click_and_wait(qtbot, window, window.controls.snap)
    assert window.controls.save_snap.isEnabled()
    target = tmp_path / "cell.ome.tif"
    assert window.save_snap(target) == target
    shown = window.views.camera.displayed_plane()
    with tifffile.TiffFile(target) as tif:
        pixels = tif.asarray()
        ome = tif.ome_metadata
    assert shown is not None
    np.testing.assert_array_equal(pixels, shown)
    # the pixel size and the stage position of the scope at the snap
    root = ET.fromstring(ome)
    pixels_el = next(e for e in root.iter() if e.tag.endswith("Pixels"))
    plane = next(e for e in root.iter() if e.tag.endswith("Plane"))
    assert float(pixels_el.get("PhysicalSizeX", "nan")) == pytest.approx(
        core.getPixelSizeUm()
    )
    stage_xy = (
        float(plane.get("PositionX", "nan")),
        float(plane.get("PositionY", "nan")),
    )
    assert stage_xy == pytest.approx(tuple(core.getXYPosition()), abs=1e-6)
    assert float(plane.get("ExposureTime", "nan")) == pytest.approx(core.getExposure())
    # a path given again is refused with one message, the file untouched
    before = target.read_bytes()
    assert window.save_snap(target) is None
    assert "already exists" in window.message_text()
    assert target.read_bytes() == before


def test_a_click_on_the_stage_map_moves_the_stage_there(
    qtbot: QtBot, window: MainWindow
) -> None:
    core = window.core
    assert core is not None
    x0, y0 = core.getXYPosition()
    targets = [
        MapTarget("a", (x0 - 300.0, y0 + 150.0)),
        MapTarget("b", (x0 + 400.0, y0)),
    ]
    window.stage_map.set_targets(targets)
    point = window.stage_map.to_pixels(*targets[1].xy_um)
    qtbot.mouseClick(window.stage_map, Qt.MouseButton.LeftButton, pos=point.toPoint())
    # where the click landed, to the map's pixel (it shows 700+ um in ~260 px)
    span = window.stage_map.to_pixels(x0 + 100.0, y0).x()
    um_per_px = 100.0 / (span - window.stage_map.to_pixels(x0, y0).x())
    x, y = core.getXYPosition()
    assert np.hypot(x - targets[1].xy_um[0], y - targets[1].xy_um[1]) <= um_per_px
    assert window.stage_map.stage_xy_um == pytest.approx((x, y), abs=1e-6)
    # past the configuration's soft limits: refused, one message, no move
    assert not window.move_stage_to(1e9, y)
    assert "refusing to move the stage" in window.message_text()
    assert core.getXYPosition() == pytest.approx((x, y), abs=0.05)


def test_jog_buttons_move_the_stage_and_focus_by_their_steps(
    qtbot: QtBot, window: MainWindow
) -> None:
    core = window.core
    assert core is not None
    jog = window.jog
    jog.xy_step.setValue(25.0)
    jog.z_step.setValue(0.5)
    x0, y0 = core.getXYPosition()
    z0 = core.getPosition()
    for button in (jog.x_plus, jog.x_plus, jog.y_minus, jog.z_plus, jog.z_plus):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    # the demo stage moves in 15 nm steps
    assert core.getXYPosition() == pytest.approx((x0 + 50.0, y0 - 25.0), abs=0.02)
    assert core.getPosition() == pytest.approx(z0 + 1.0, abs=0.02)
    assert window.stage_map.stage_xy_um == pytest.approx(
        tuple(core.getXYPosition()), abs=1e-6
    )
    # past the focus drive's soft limits: refused, one message, no move
    assert not window.move_focus_to(1e6)
    assert "refusing to move the focus" in window.message_text()
    assert core.getPosition() == pytest.approx(z0 + 1.0, abs=0.02)


def test_run_gui_runs_until_the_window_closes(
    qapp: QApplication, widefield: Path
) -> None:
    seen: list[MainWindow] = []

    def close_window() -> None:
        windows = [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow)]
        seen.extend(w for w in windows if w.isVisible())
        for w in windows:
            w.close()

    QTimer.singleShot(300, close_window)
    assert run_gui(widefield) == 0
    assert len(seen) == 1 and seen[0].core is None  # closed with the window


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland only")
def test_no_display_is_one_message(
    monkeypatch: pytest.MonkeyPatch, widefield: Path
) -> None:
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    app = typer.Typer()
    app.command("gui")(gui)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["gui", "--config", str(widefield)])
    assert result.exit_code == 2
    assert "no display" in result.output and "Traceback" not in result.output


def test_missing_paths_are_named_before_anything_runs(
    window: MainWindow, tmp_path: Path
) -> None:
    window.controls.paired.click()
    assert not window.busy()
    text = window.message_text()
    assert "Paired acquisition needs" in text
    assert "Session" in text and "Confocal dataset" in text
    # an output that exists is refused before a long relocation
    c = window.controls
    for field in (c.session, c.confocal, c.database):
        field.set_path(tmp_path)
    c.out.set_path(tmp_path)
    (tmp_path / "old_stack").mkdir()
    c.paired.click()
    assert not window.busy()
    assert f"{tmp_path} already exists" in window.message_text()


def test_a_user_error_in_an_operation_is_one_message(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    core = window.core
    window.controls.session.set_path(tmp_path / "nowhere.json")
    click_and_wait(qtbot, window, window.controls.relocate)
    assert "no such session file" in window.message_text()
    assert str(tmp_path / "nowhere.json") in window.message_text()
    # the window keeps its microscope: the same core, never reloaded
    assert window.controls.snap.isEnabled()
    assert window.core is core is not None


def test_a_config_that_fails_to_load_is_one_message(
    qtbot: QtBot, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.cfg"
    bad.write_text("Device,Camera,NoSuchLibrary,NoSuchCamera\n")
    # the command: exit 2 and one message, before any window
    app = typer.Typer()
    app.command("gui")(gui)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["gui", "--config", str(bad)])
    assert result.exit_code == 2
    assert "pairscope: error:" in result.output and str(bad) in result.output
    assert "Traceback" not in result.output
    assert result.output.count("pairscope: error:") == 1
    # the window: the message, and no snap without a microscope
    win = MainWindow(bad)
    qtbot.addWidget(win)
    try:
        assert win.core is None
        assert str(bad) in win.message_text()
        assert not win.controls.snap.isEnabled()
        assert "Traceback" not in win.log.toPlainText()
    finally:
        win.shutdown()


def test_find_fiducials_writes_the_session(scope_a: ScopeA) -> None:
    session = load_session(scope_a.session)
    assert (
        sorted(session.marks) == sorted(scope_a.map_marks) and len(session.marks) == 4
    )
    for name, xyz in session.marks.items():
        assert scope_a.map_marks[name] == pytest.approx(xyz[:2])
    assert [t.name for t in session.targets] == [f"cell{i}" for i in CELLS]
    assert scope_a.map_targets == [f"cell{i}" for i in CELLS]
    assert "found 4 marks, 2 targets; session written" in scope_a.message


def test_relocate_and_paired_acquisition(
    qtbot: QtBot, window: MainWindow, scope_a: ScopeA, tmp_path: Path
) -> None:
    c = window.controls
    window_core = window.core
    assert window_core is not None
    engine = window_core.mda.engine
    c.session.set_path(scope_a.session)
    click_and_wait(qtbot, window, c.relocate)
    assert "relocated with" in window.message_text(), window.message_text()
    assert len(window.stage_map.marks) == 4
    assert [t.name for t in window.stage_map.targets] == [f"cell{i}" for i in CELLS]
    assert all(t.error_um > 0 for t in window.stage_map.targets)
    assert window.table.rowCount() == len(CELLS)
    # the relocated targets are where the cells really are on this stage
    truth = [
        groundtruth.stage_position_of_cell(window_core, i, height_um=2.0) for i in CELLS
    ]
    for target, true in zip(window.stage_map.targets, truth, strict=True):
        assert np.hypot(*np.subtract(target.xy_um, true[:2])) < 3.0

    out = tmp_path / "widefield_stacks"
    c.confocal.set_path(scope_a.dataset)
    c.out.set_path(out)
    c.database.set_path(tmp_path / "pairs")
    click_and_wait(qtbot, window, c.paired)
    assert "paired acquisition complete" in window.message_text(), window.message_text()
    assert window.progress.maximum() == len(CELLS) * N_PLANES
    assert window.progress.value() == window.progress.maximum()
    # relocation and acquisition ran on the window's own core, which keeps its
    # own MDA engine afterwards
    assert window.core is window_core
    assert window_core.mda.engine is engine
    # every registered pair is in the log and the table, as the database has it
    records = PairDatabase.open(tmp_path / "pairs").records(accepted_only=False)
    assert sorted(r.cell_id for r in records) == [f"cell{i}" for i in CELLS]
    log = window.log.toPlainText()
    statuses = dict(
        zip(window.table.column_texts(0), window.table.column_texts(6), strict=True)
    )
    for record in records:
        verdict = "paired" if record.accepted else "rejected"
        assert f"pair {record.cell_id}: {verdict}" in log
        assert statuses[record.cell_id].startswith(verdict)
        ncc = record.metrics.get("ncc")
        if ncc is not None and np.isfinite(ncc):
            assert f"ncc {ncc:.2f}" in statuses[record.cell_id]
    # the camera view shows the last committed raw stack
    last = read_stack(out, committed_stacks(out)[-1])
    shown = window.views.camera.stack
    assert shown is not None and shown.shape == (N_PLANES, 256, 256)
    np.testing.assert_array_equal(shown, last.data[0])
    # beside it, its confocal partner from scope A
    partner = window.views.enhanced.stack
    assert partner is not None
    confocal = scope_a.dataset
    by_position = {
        read_stack(confocal, n).position_name: n for n in committed_stacks(confocal)
    }
    expected = read_stack(confocal, by_position[last.position_name]).data[0]
    np.testing.assert_array_equal(partner, expected)
    screenshot = os.environ.get("PAIRSCOPE_GUI_SCREENSHOT")
    if screenshot:  # docs/gui.png: this window after this run
        window.views.slider.setValue(window.views.slider.maximum() // 2)
        assert window.grab().save(screenshot)


def tiny_model(path: Path) -> Path:
    """An untrained, small U-Net checkpoint for the confocal grid."""
    from enhance.checkpoint import Checkpoint
    from enhance.normalization import PercentileNormalization
    from enhance.unet import UNet3D, UNetConfig

    config = UNetConfig(depth=1, base_channels=4)
    Checkpoint(
        unet=config,
        state_dict=UNet3D(config).state_dict(),
        normalization=PercentileNormalization(),
        voxel_size_um=(0.3, 0.1, 0.1),
    ).save(path)
    return path


def test_live_enhancement_shows_raw_and_enhanced(qtbot: QtBot, tmp_path: Path) -> None:
    # a 128 px camera keeps the CPU inference short
    window = MainWindow(small_scope(tmp_path, "widefield", 42, sensor_px=128))
    qtbot.addWidget(window)
    try:
        run_live_enhancement(qtbot, window, tmp_path)
    finally:
        window.shutdown()


def run_live_enhancement(qtbot, window: MainWindow, tmp_path: Path) -> None:
    c = window.controls
    c.sequence.set_path(cell_sequence(tmp_path / "cells.yaml", window.config, [2]))
    c.model.set_path(tiny_model(tmp_path / "model.pt"))
    out = tmp_path / "live"
    c.out.set_path(out)
    click_and_wait(qtbot, window, c.live)
    assert "live enhancement complete: 1 stacks enhanced" in window.message_text(), (
        window.message_text()
    )
    assert window.progress.value() == window.progress.maximum() == N_PLANES
    raw = window.views.camera.stack
    enhanced = window.views.enhanced.stack
    assert raw is not None and enhanced is not None
    assert raw.shape == (N_PLANES, 128, 128)
    # the model's grid: 0.1 um pixels over the same 20.8 um field, same planes
    assert window.views.enhanced.voxel_size_um == pytest.approx((0.3, 0.1, 0.1))
    assert enhanced.shape == (N_PLANES, 208, 208)
    stored = read_stack(out.with_name("live-enhanced"), committed_stacks(out)[0])
    np.testing.assert_array_equal(enhanced, stored.data[0])
    np.testing.assert_array_equal(
        raw, read_stack(out, committed_stacks(out)[0]).data[0]
    )
    # one slider for both: the same height in both views
    window.views.slider.setValue(window.views.slider.maximum())
    assert window.views.camera.plane_index == window.views.enhanced.plane_index == 10
