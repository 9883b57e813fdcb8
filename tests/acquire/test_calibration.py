"""Camera-to-stage calibration: shift measurement, the fit, the scope, the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from scipy import ndimage

from acquire.hardware.microscope import close_core, open_core, set_objective, snap
from acquire.sim import groundtruth
from acquire.workflows.calibrate import (
    CALIBRATIONS_FILE,
    CalibrationError,
    CalibrationFileError,
    CalibrationNotFoundError,
    calibrate_camera,
    default_calibrations_path,
    load_calibration,
    save_calibration,
)
from correlate.stage.camera_calibration import PixelCalibration, fit_pixel_calibration
from correlate.stage.image_shift import measure_shift

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymmcore_plus import CMMCorePlus

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"
WIDEFIELD = CONFIGS / "demo_widefield.cfg"
CONFOCAL = CONFIGS / "demo_confocal.cfg"
OBJECTIVE_63X = "Plan-Apochromat 63x/1.43 Oil"


def similarity(pixel_um: float, rotation_deg: float, flip: bool) -> np.ndarray:
    """pixel_size * R(rotation) @ diag(+-1, 1), the simulator's convention."""
    a = np.deg2rad(rotation_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return pixel_um * rotation @ np.diag([-1.0 if flip else 1.0, 1.0])


def registering_shifts(pixel_to_stage: np.ndarray, moves_um: np.ndarray) -> np.ndarray:
    """(row, col) shifts registering images moved by ``moves_um`` onto the reference."""
    return (moves_um @ np.linalg.inv(pixel_to_stage).T)[:, ::-1]


def angle_error_deg(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


# -- fit_pixel_calibration (pure) ---------------------------------------------


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize(
    "rotation_deg", [-179.5, -120.0, -37.0, 0.0, 37.0, 90.0, 180.0]
)
def test_fit_recovers_rotation_flip_and_pixel_size(
    rotation_deg: float, flip: bool
) -> None:
    rng = np.random.default_rng(abs(int(rotation_deg * 10)) + flip)
    truth = similarity(0.1625, rotation_deg, flip)
    moves = rng.uniform(-8.0, 8.0, (8, 2))
    noise_px = 0.03
    shifts = registering_shifts(truth, moves) + rng.normal(0.0, noise_px, (8, 2))

    fitted = fit_pixel_calibration(moves, shifts)

    assert fitted.pixel_size_um == pytest.approx(0.1625, rel=2e-3)
    assert angle_error_deg(fitted.rotation_deg, rotation_deg) < 0.1
    assert -180.0 < fitted.rotation_deg <= 180.0
    assert fitted.flipped is flip
    assert fitted.residual_px == pytest.approx(noise_px * np.sqrt(2), rel=0.6)
    np.testing.assert_allclose(fitted.pixel_to_stage, truth, atol=5e-4)


def test_fit_with_offset_absorbs_a_reference_error() -> None:
    rng = np.random.default_rng(5)
    truth = similarity(0.103, 61.0, True) @ np.diag([1.002, 0.997])
    moves = np.vstack([[0.0, 0.0], rng.uniform(-5.0, 5.0, (6, 2))])
    shifts = registering_shifts(truth, moves) + np.array([0.8, -1.3])

    biased = fit_pixel_calibration(moves[1:], shifts[1:])
    fitted = fit_pixel_calibration(moves, shifts, fit_offset=True)

    np.testing.assert_allclose(fitted.pixel_to_stage, truth, atol=1e-9)
    assert fitted.residual_px < 1e-9
    assert biased.residual_px > 0.1


def test_fit_of_an_exact_pair_of_moves() -> None:
    truth = similarity(0.2, -15.0, False)
    moves = np.array([[3.0, 0.0], [0.0, 3.0]])
    fitted = fit_pixel_calibration(moves, registering_shifts(truth, moves))
    np.testing.assert_allclose(fitted.pixel_to_stage, truth, atol=1e-12)
    assert fitted.rotation_deg == pytest.approx(-15.0)


@pytest.mark.parametrize(
    ("moves", "shifts", "kwargs", "message"),
    [
        ([[1.0, 0.0]], [[0.0, 5.0]], {}, "at least 2 moves"),
        ([[0, 0], [1, 0], [0, 1]], [[0, 0], [0, 5]], {}, "3 stage moves but 2"),
        ([[1, 0], [2, 0], [-3, 0]], [[0, 5], [0, 10], [0, -15]], {}, "on one line"),
        ([[0, 0], [1, 1]], [[0, 0], [5, 5]], {"fit_offset": True}, "at least 3"),
        ([[1, 0], [0, 1]], [[0, 0], [0, 0]], {}, "do not follow the stage moves"),
        ([[1, 0], [0, np.nan]], [[0, 5], [5, 0]], {}, "NaN"),
        ([1.0, 2.0], [5.0, 0.0], {}, r"\(N, 2\)"),
    ],
)
def test_fit_refuses_what_cannot_determine_a_calibration(
    moves: list[list[float]],
    shifts: list[list[float]],
    kwargs: dict[str, bool],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_pixel_calibration(moves, shifts, **kwargs)


# -- PixelCalibration ---------------------------------------------------------


def test_stage_offset_of_pixels_from_the_image_centre() -> None:
    matrix = similarity(0.5, 30.0, True)
    calibration = PixelCalibration(matrix)
    shape = (101, 200)  # centre at row 50, col 99.5

    assert calibration.stage_offset_um((50, 99.5), shape=shape) == pytest.approx(
        [0.0, 0.0]
    )
    offsets = calibration.stage_offset_um([[50, 100.5], [49, 99.5]], shape=shape)
    np.testing.assert_allclose(offsets, [matrix[:, 0], -matrix[:, 1]])
    with pytest.raises(ValueError, match="pixel_rc"):
        calibration.stage_offset_um([1, 2, 3], shape=shape)


def test_calibration_is_frozen_and_round_trips_through_json() -> None:
    calibration = PixelCalibration(similarity(0.1625, -37.0, True), residual_px=0.02)
    assert calibration.flipped
    assert calibration.pixel_size_um == pytest.approx(0.1625)
    assert calibration.rotation_deg == pytest.approx(-37.0)
    with pytest.raises(ValueError, match="read-only"):
        calibration.pixel_to_stage[0, 0] = 1.0

    data = json.loads(json.dumps(calibration.to_dict()))
    assert PixelCalibration.from_dict(data) == calibration

    data["pixel_size_um"] = 0.2
    with pytest.raises(ValueError, match=r"pixel_size_um = 0\.2 disagrees"):
        PixelCalibration.from_dict(data)
    with pytest.raises(ValueError, match="needs a 'pixel_to_stage'"):
        PixelCalibration.from_dict({"pixel_size_um": 0.1})
    with pytest.raises(ValueError, match="singular"):
        PixelCalibration(np.array([[1.0, 2.0], [2.0, 4.0]]))


# -- measure_shift ------------------------------------------------------------


def test_measure_shift_recovers_synthetic_subpixel_shifts() -> None:
    rng = np.random.default_rng(1)
    scene = ndimage.gaussian_filter(rng.random((128, 128)), 2.0)
    for true_shift in [(3.0, -5.0), (0.37, -0.81), (-12.25, 20.6)]:
        moved = np.fft.ifftn(
            ndimage.fourier_shift(np.fft.fftn(scene), np.negative(true_shift))
        ).real
        result = measure_shift(scene, moved, upsample=100)
        np.testing.assert_allclose(result.shift_px, true_shift, atol=0.02)
        assert result.confidence > 0.8


def test_measure_shift_confidence_and_search_limit() -> None:
    rng = np.random.default_rng(2)
    noise = measure_shift(rng.normal(size=(128, 128)), rng.normal(size=(128, 128)))
    assert noise.confidence < 0.1

    # a periodic scene matches at every period: the limit picks the near match
    cols = np.arange(128)
    stripes = np.sin(2 * np.pi * cols / 16)[None, :] * np.ones((128, 1))
    stripes += 0.05 * rng.normal(size=stripes.shape)
    moved = np.roll(stripes, -3, axis=1)
    assert measure_shift(stripes, moved, max_shift_px=6).shift_px[1] == pytest.approx(
        3.0, abs=0.1
    )


@pytest.mark.parametrize(
    ("reference", "moved", "message"),
    [
        (np.zeros((16, 16)), np.zeros((16, 17)), "differ in shape"),
        (np.zeros((2, 16, 16)), np.zeros((2, 16, 16)), "must be 2D"),
        (np.zeros((6, 6)), np.zeros((6, 6)), "at least 8x8"),
        (np.full((16, 16), np.nan), np.zeros((16, 16)), "NaN"),
    ],
)
def test_measure_shift_explains_bad_input(
    reference: np.ndarray, moved: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        measure_shift(reference, moved)


# -- on the simulated scopes --------------------------------------------------


def open_scope(config: Path, **properties: object) -> CMMCorePlus:
    core = open_core(config)
    settings: dict[str, object] = {
        "RealTiming": "No",
        "SensorWidthPx": 256,
        "SensorHeightPx": 256,
    }
    settings.update(properties)
    for name, value in settings.items():
        core.setProperty(core.getCameraDevice(), name, value)
    return core


@pytest.fixture
def widefield() -> Iterator[CMMCorePlus]:
    core = open_scope(WIDEFIELD, CameraRotationDeg=37.0, CameraFlip="Yes")
    try:
        yield core
    finally:
        close_core(core)


def go_to_cell(core: CMMCorePlus, cell: int = 0) -> tuple[float, float]:
    x, y, z = groundtruth.stage_position_of_cell(core, cell, height_um=0.5)
    core.setXYPosition(x, y)
    core.setPosition(z)
    core.waitForSystem()
    reported = core.getXYPosition()
    return float(reported[0]), float(reported[1])


def reported_truth(core: CMMCorePlus) -> PixelCalibration:
    """The simulator's pixel_to_stage in the stage's reported (commanded) um."""
    camera = groundtruth.simulated_camera(core)
    physical = camera.geometry(camera.read_scope_state().objective).pixel_to_stage
    scale_xy = np.array(groundtruth.mount_of(core).scale[:2])
    return PixelCalibration(np.diag(1.0 / scale_xy) @ physical)


def test_measure_shift_on_simulated_images_with_known_subpixel_moves(
    widefield: CMMCorePlus,
) -> None:
    core = widefield
    core.setProperty(core.getCameraDevice(), "StageRepeatabilityUm", 0.0)
    x, y = go_to_cell(core)
    reference = snap(core)
    truth = reported_truth(core)
    for move in [(0.3, 0.0), (0.0, -0.45), (1.23, 0.77), (-2.51, 3.14), (6.0, -4.5)]:
        core.setXYPosition(x + move[0], y + move[1])
        core.waitForSystem()
        reached = np.array(core.getXYPosition()) - (x, y)
        result = measure_shift(reference, snap(core))
        expected = registering_shifts(truth.pixel_to_stage, reached[None, :])[0]
        np.testing.assert_allclose(result.shift_px, expected, atol=0.05)
        assert result.confidence > 0.9


def assert_matches(measured: PixelCalibration, truth: PixelCalibration) -> None:
    assert measured.pixel_size_um == pytest.approx(truth.pixel_size_um, rel=2e-3)
    assert angle_error_deg(measured.rotation_deg, truth.rotation_deg) < 0.1
    assert measured.flipped is truth.flipped


def test_calibrate_widefield_40x_rotated_and_mirrored(
    widefield: CMMCorePlus,
) -> None:
    core = widefield
    core.setProperty(core.getCameraDevice(), "StageRepeatabilityUm", 0.0)
    start = go_to_cell(core)

    calibration = calibrate_camera(core)

    truth = reported_truth(core)
    assert truth.rotation_deg == pytest.approx(37.0)
    assert truth.flipped
    assert_matches(calibration, truth)
    np.testing.assert_allclose(
        calibration.pixel_to_stage, truth.pixel_to_stage, atol=3e-4
    )
    assert calibration.residual_px < 0.1
    assert core.getXYPosition() == pytest.approx(start, abs=1e-6)


def test_calibrate_with_stage_repeatability_needs_more_and_larger_moves(
    widefield: CMMCorePlus,
) -> None:
    core = widefield  # the default StageRepeatabilityUm, 0.2 um (1.2 px at 40x)
    assert float(core.getProperty(core.getCameraDevice(), "StageRepeatabilityUm")) == (
        pytest.approx(0.2)
    )
    go_to_cell(core)

    # each landing error is ~0.5 % of a 14 um step: averaging needs many moves
    calibration = calibrate_camera(core, step_um=14.0, n_moves=32)

    truth = reported_truth(core)
    assert calibration.pixel_size_um == pytest.approx(truth.pixel_size_um, rel=5e-3)
    assert angle_error_deg(calibration.rotation_deg, truth.rotation_deg) < 0.3
    assert calibration.flipped
    assert calibration.residual_px == pytest.approx(0.2 / 0.1625 * np.sqrt(2), rel=0.5)


def test_calibrate_widefield_63x() -> None:
    core = open_scope(
        WIDEFIELD, CameraRotationDeg=-120.0, CameraFlip="No", StageRepeatabilityUm=0.0
    )
    try:
        set_objective(core, OBJECTIVE_63X)
        go_to_cell(core, cell=3)
        calibration = calibrate_camera(core)
        truth = reported_truth(core)
    finally:
        close_core(core)
    assert truth.pixel_size_um == pytest.approx(6.5 / 63, rel=0.01)
    assert not truth.flipped
    assert_matches(calibration, truth)


def test_calibrate_confocal() -> None:
    # 256 px at ScanZoom 12.5 keep the config's 0.1 um pixels
    core = open_scope(
        CONFOCAL,
        CameraRotationDeg=-100.0,
        CameraFlip="Yes",
        StageRepeatabilityUm=0.0,
        ScanZoom=12.5,
    )
    try:
        go_to_cell(core)
        calibration = calibrate_camera(core)
        truth = reported_truth(core)
    finally:
        close_core(core)
    assert truth.pixel_size_um == pytest.approx(0.1, rel=0.01)
    assert_matches(calibration, truth)


def test_calibrate_refuses_a_field_without_structure(widefield: CMMCorePlus) -> None:
    core = widefield
    x, y = go_to_cell(core)
    core.setXYPosition(x + 3000.0, y)  # empty glass
    core.waitForSystem()
    start = core.getXYPosition()
    with pytest.raises(CalibrationError, match="too little structure"):
        calibrate_camera(core)
    assert core.getXYPosition() == pytest.approx(start, abs=1e-6)


def test_calibrate_refuses_bad_steps_before_moving(widefield: CMMCorePlus) -> None:
    core = widefield
    with pytest.raises(CalibrationError, match="share too little"):
        calibrate_camera(core, step_um=30.0)
    with pytest.raises(CalibrationError, match="n_moves"):
        calibrate_camera(core, n_moves=1)
    for preset in core.getAvailablePixelSizeConfigs():
        core.deletePixelSizeConfig(preset)
    with pytest.raises(CalibrationError, match="no pixel size is configured"):
        calibrate_camera(core)


def test_calibrate_stays_inside_the_stage_limits(tmp_path: Path) -> None:
    config = tmp_path / "tight_limits.cfg"
    # the stage starts at the origin (not over a cell), 2 um inside the limit
    config.write_text(
        WIDEFIELD.read_text().replace(
            "StageLimitsUm,XY,-30000,30000,", "StageLimitsUm,XY,-2,30000,"
        )
        + "#py Property,Camera,StartOnCell,No\n"
    )
    core = open_scope(config)
    try:
        start = core.getXYPosition()
        with pytest.raises(CalibrationError, match=r"x = -6\.24 um is outside"):
            calibrate_camera(core)
        assert core.getXYPosition() == pytest.approx(start)
    finally:
        close_core(core)


# -- the calibration file -----------------------------------------------------


def test_save_and_load_per_scope_and_objective(tmp_path: Path) -> None:
    path = default_calibrations_path(tmp_path / "scope.cfg")
    assert path == tmp_path / CALIBRATIONS_FILE
    wide_40 = PixelCalibration(similarity(0.1625, 37.0, True), residual_px=0.01)
    wide_63 = PixelCalibration(similarity(0.103, 37.0, True), residual_px=0.02)
    confocal = PixelCalibration(similarity(0.1, -3.0, False))

    save_calibration(path, "widefield", "40x", wide_40)
    save_calibration(path, "widefield", "63x", PixelCalibration(np.eye(2)))
    save_calibration(path, "widefield", "63x", wide_63)  # replaces the first
    save_calibration(path, "confocal", "40x", confocal)

    assert load_calibration(path, "widefield", "40x") == wide_40
    assert load_calibration(path, "widefield", "63x") == wide_63
    assert load_calibration(path, "confocal", "40x") == confocal
    assert [p.name for p in tmp_path.iterdir()] == [CALIBRATIONS_FILE]
    stored = json.loads(path.read_text())
    assert stored["scopes"]["widefield"]["40x"]["calibration"]["rotation_deg"] == (
        pytest.approx(37.0)
    )


def test_load_explains_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / CALIBRATIONS_FILE
    with pytest.raises(CalibrationNotFoundError, match="no calibration file"):
        load_calibration(path, "widefield", "40x")
    save_calibration(path, "widefield", "40x", PixelCalibration(np.eye(2)))
    with pytest.raises(CalibrationNotFoundError, match=r"it has: 'widefield'"):
        load_calibration(path, "confocal", "40x")
    with pytest.raises(CalibrationNotFoundError, match=r"objective '63x'.*'40x'"):
        load_calibration(path, "widefield", "63x")


def test_foreign_or_broken_files_are_refused_and_left_alone(tmp_path: Path) -> None:
    foreign = tmp_path / "other.json"
    foreign.write_text('{"something": "else"}')
    with pytest.raises(CalibrationFileError, match="not a pairscope calibration"):
        save_calibration(foreign, "widefield", "40x", PixelCalibration(np.eye(2)))
    assert foreign.read_text() == '{"something": "else"}'

    broken = tmp_path / "broken.json"
    broken.write_text('{"format": ')
    with pytest.raises(CalibrationFileError, match="not valid JSON"):
        load_calibration(broken, "widefield", "40x")

    edited = tmp_path / CALIBRATIONS_FILE
    save_calibration(edited, "widefield", "40x", PixelCalibration(np.eye(2)))
    data = json.loads(edited.read_text())
    data["scopes"]["widefield"]["40x"]["calibration"]["pixel_to_stage"] = [[1, 2]]
    edited.write_text(json.dumps(data))
    with pytest.raises(CalibrationFileError, match="2x2 matrix"):
        load_calibration(edited, "widefield", "40x")
    with pytest.raises(CalibrationFileError, match="scope name"):
        save_calibration(edited, " ", "40x", PixelCalibration(np.eye(2)))
