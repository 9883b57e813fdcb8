"""The simulated cameras on the demo configs: geometry, shutter, noise, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from skimage.registration import phase_cross_correlation

from acquire.hardware.microscope import close_core, open_core
from acquire.sim import groundtruth
from acquire.sim.camera import SimulatorNotAttachedError, WidefieldCamera

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymmcore_plus import CMMCorePlus

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"
WIDEFIELD = CONFIGS / "demo_widefield.cfg"
CONFOCAL = CONFIGS / "demo_confocal.cfg"


def snap(core: CMMCorePlus) -> np.ndarray:
    core.setShutterOpen(True)
    try:
        core.snapImage()
        return np.asarray(core.getImage()).astype(np.float64)
    finally:
        core.setShutterOpen(False)


def set_camera(core: CMMCorePlus, **properties: object) -> None:
    camera = core.getCameraDevice()
    for name, value in properties.items():
        core.setProperty(camera, name, value)


@pytest.fixture
def widefield() -> Iterator[CMMCorePlus]:
    core = open_core(WIDEFIELD)
    set_camera(core, RealTiming="No", SensorWidthPx=256, SensorHeightPx=256)
    try:
        yield core
    finally:
        close_core(core)


def go_to_cell(
    core: CMMCorePlus, cell: int = 0, height_um: float = 0.5
) -> tuple[float, float, float]:
    x, y, z = groundtruth.stage_position_of_cell(core, cell, height_um=height_um)
    core.setXYPosition(x, y)
    core.setPosition(z)
    core.waitForSystem()
    return x, y, z


@pytest.mark.parametrize(
    ("rotation_deg", "flip"), [(0.0, "No"), (90.0, "No"), (33.0, "Yes")]
)
def test_stage_move_shifts_image_as_geometry_predicts(
    widefield: CMMCorePlus, rotation_deg: float, flip: str
) -> None:
    core = widefield
    set_camera(
        core, CameraRotationDeg=rotation_deg, CameraFlip=flip, StageRepeatabilityUm=0.0
    )
    core.setExposure(200)
    x, y, _ = go_to_cell(core)
    reference = snap(core)
    dx_um, dy_um = 2.37, -1.61
    core.setXYPosition(x + dx_um, y + dy_um)
    core.waitForSystem()
    moved = snap(core)
    # the (row, col) shift that registers `moved` onto `reference`; plain
    # cross-correlation, since phase normalisation whitens the aliased high
    # frequencies of an undersampled 40x image and biases the sub-pixel peak
    shift, _, _ = phase_cross_correlation(
        reference, moved, upsample_factor=100, normalization=None
    )

    camera = groundtruth.simulated_camera(core)
    mount = groundtruth.mount_of(core)
    state = camera.read_scope_state()
    pixel_to_stage = camera.geometry(state.objective).pixel_to_stage
    physical_move = np.array([dx_um, dy_um]) * np.array(mount.scale[:2])
    # content at stage offset d appears at pixel inv(M) d; moving the stage by D
    # moves content by -inv(M) D, so registering back needs +inv(M) D (col, row)
    expected_col, expected_row = np.linalg.solve(pixel_to_stage, physical_move)
    assert shift[0] == pytest.approx(expected_row, abs=0.1)
    assert shift[1] == pytest.approx(expected_col, abs=0.1)


def test_closed_shutter_gives_a_dark_frame_with_read_noise(
    widefield: CMMCorePlus,
) -> None:
    core = widefield
    go_to_cell(core)
    core.setShutterOpen(False)
    core.snapImage()
    dark = np.asarray(core.getImage()).astype(np.float64)
    camera = core.getCameraDevice()
    offset = float(core.getProperty(camera, "OffsetAdu"))
    gain = float(core.getProperty(camera, "GainAduPerElectron"))
    read_noise = float(core.getProperty(camera, "ReadNoiseElectrons"))
    assert dark.mean() == pytest.approx(offset, abs=1.0)
    assert dark.std() == pytest.approx(read_noise * gain, rel=0.1)
    lit = snap(core)
    assert lit.mean() > offset + 20 * read_noise * gain


def test_signal_scales_with_exposure(widefield: CMMCorePlus) -> None:
    core = widefield
    go_to_cell(core)
    offset = float(core.getProperty(core.getCameraDevice(), "OffsetAdu"))
    core.setExposure(20)
    short = snap(core).mean() - offset
    core.setExposure(80)
    long = snap(core).mean() - offset
    assert long / short == pytest.approx(4.0, rel=0.03)


def test_image_follows_focus_and_objective(widefield: CMMCorePlus) -> None:
    core = widefield
    _, _, z = go_to_cell(core, height_um=0.3)
    core.setExposure(100)
    in_focus = snap(core)
    set_camera(core, SensorWidthPx=512, SensorHeightPx=512)
    in_focus = snap(core)
    core.setPosition(z + 5.0)
    core.waitForSystem()
    defocused = snap(core)
    # wide-field keeps the flux (the blur stays inside the field) but loses contrast
    assert defocused.mean() == pytest.approx(in_focus.mean(), rel=0.05)
    assert defocused.std() < 0.6 * in_focus.std()

    core.setPosition(z)
    objectives = [
        core.getStateLabel("Objective"),
        next(label for label in core.getStateLabels("Objective") if "63x" in label),
    ]
    core.setStateLabel("Objective", objectives[1])
    core.waitForSystem()
    high_mag = snap(core)
    camera = groundtruth.simulated_camera(core)
    assert camera.pixel_size_um(camera.read_scope_state().objective) == pytest.approx(
        6.5 / 63
    )
    assert not np.array_equal(high_mag, in_focus)


def snap_fresh(config: Path, **properties: object) -> np.ndarray:
    core = open_core(config)
    try:
        set_camera(
            core, RealTiming="No", SensorWidthPx=128, SensorHeightPx=128, **properties
        )
        go_to_cell(core, cell=3)
        return snap(core)
    finally:
        close_core(core)


def test_same_seed_is_bit_identical_and_other_seed_differs() -> None:
    first = snap_fresh(WIDEFIELD)
    second = snap_fresh(WIDEFIELD)
    assert np.array_equal(first, second)
    other_noise = snap_fresh(WIDEFIELD, NoiseSeed=12345)
    assert not np.array_equal(first, other_noise)


def test_other_specimen_seed_gives_other_specimen() -> None:
    core = open_core(WIDEFIELD)
    try:
        camera = groundtruth.simulated_camera(core)
        first = camera.specimen()
        core.setProperty(core.getCameraDevice(), "SpecimenSeed", 777)
        second = camera.specimen()
    finally:
        close_core(core)
    assert first.cells[0].centre_um != second.cells[0].centre_um


def test_confocal_scan_zoom_sets_pixel_size() -> None:
    core = open_core(CONFOCAL)
    try:
        camera = groundtruth.simulated_camera(core)
        objective = camera.read_scope_state().objective
        assert camera.pixel_size_um(objective) == pytest.approx(0.1)
        assert core.getPixelSizeUm() == pytest.approx(0.1)
        core.setProperty(core.getCameraDevice(), "ScanZoom", 12.5)
        assert camera.pixel_size_um(objective) == pytest.approx(0.05)
    finally:
        close_core(core)


def test_two_scopes_hold_one_specimen_under_different_mounts() -> None:
    wide = open_core(WIDEFIELD)
    conf = open_core(CONFOCAL)
    try:
        assert groundtruth.specimen_of(wide) is groundtruth.specimen_of(conf)
        assert groundtruth.mount_of(wide) != groundtruth.mount_of(conf)
    finally:
        close_core(wide)
        close_core(conf)


def test_unattached_camera_explains_itself() -> None:
    camera = WidefieldCamera()
    with pytest.raises(SimulatorNotAttachedError, match="open_core"):
        camera.read_scope_state()


def test_real_timing_honours_the_exposure(widefield: CMMCorePlus) -> None:
    import time

    core = widefield
    set_camera(core, RealTiming="Yes")
    core.setExposure(300)
    core.snapImage()  # render once so only the exposure wait is timed below
    started = time.perf_counter()
    core.snapImage()
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert 300 <= elapsed_ms < 450


def test_exposure_from_a_config_line_and_its_limits(tmp_path: Path) -> None:
    text = WIDEFIELD.read_text()
    config = tmp_path / "with_exposure.cfg"
    config.write_text(text + "\n#py Property,Camera,Exposure,75\n")
    core = open_core(config)
    try:
        assert core.getExposure() == pytest.approx(75.0)
        camera = core.getCameraDevice()
        assert core.hasPropertyLimits(camera, "Exposure")
        assert core.getPropertyUpperLimit(camera, "Exposure") == pytest.approx(60000.0)
        with pytest.raises(ValueError, match="exposure must lie in"):
            core.setExposure(1e9)
    finally:
        close_core(core)
