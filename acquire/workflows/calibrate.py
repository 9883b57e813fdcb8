"""Measure and keep the camera-to-stage calibration of a microscope.

Like Micro-Manager's pixel calibrator, `calibrate_camera` moves the XY stage
by known amounts around the current position, registers each image onto a
reference and fits how camera pixels map onto stage coordinates (pixel size,
camera rotation, mirror). The result is kept per scope and objective in a JSON
file, by default ``calibrations.json`` next to the hardware configuration.

The stage is calibrated as it reports itself: a stage whose encoders are off by
0.3 % gives a pixel size 0.3 % off the true one, which is what moving that
stage by pixels needs.
"""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from acquire.config.stage_limits import read_stage_limits
from acquire.errors import UserError
from acquire.hardware.microscope import snap
from acquire.storage.durable import write_json_atomic
from correlate.stage.camera_calibration import PixelCalibration, fit_pixel_calibration
from correlate.stage.image_shift import measure_shift

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pymmcore_plus import CMMCorePlus

__all__ = [
    "CALIBRATIONS_FILE",
    "DEFAULT_STEP_FRACTION",
    "MAX_RELATIVE_RESIDUAL",
    "MAX_STEP_FRACTION",
    "MIN_CONFIDENCE",
    "CalibrationError",
    "CalibrationFileError",
    "CalibrationNotFoundError",
    "calibrate_camera",
    "default_calibrations_path",
    "load_calibration",
    "save_calibration",
]

#: Name of the calibration file kept next to a hardware configuration.
CALIBRATIONS_FILE = "calibrations.json"
#: Default stage step, as a fraction of the smaller side of the field of view.
DEFAULT_STEP_FRACTION = 0.15
#: Largest step accepted, as a fraction of the field of view.
MAX_STEP_FRACTION = 0.35
#: Lowest correlation of two images accepted as "the same structured scene".
MIN_CONFIDENCE = 0.2
#: Largest RMS misfit accepted, as a fraction of the median image shift.
MAX_RELATIVE_RESIDUAL = 0.25
_UPSAMPLE = 50
_FORMAT = "pairscope-pixel-calibrations"
_VERSION = 1


class CalibrationError(UserError, RuntimeError):
    """The calibration could not be measured: what happened and what to do."""


class CalibrationFileError(UserError, ValueError):
    """A calibration file cannot be read or written: which file, what to do."""


class CalibrationNotFoundError(UserError, LookupError):
    """No calibration is stored for this scope and objective."""


def calibrate_camera(
    core: CMMCorePlus, *, step_um: float | None = None, n_moves: int = 4
) -> PixelCalibration:
    """Measure the camera's pixel size, rotation and mirror with the XY stage.

    At the current position two reference images are snapped (their
    correlation tells whether the scene has enough structure, before anything
    moves). The stage then visits ``n_moves`` points on a circle of radius
    ``step_um`` around the start (4: +x, +y, -x, -y) and one diagonal point
    ``(+step_um, +step_um)``; each image is registered onto the reference and
    `correlate.stage.camera_calibration.fit_pixel_calibration` fits the matrix (with a
    common offset, which absorbs where the stage landed for the reference).
    The stage returns to the start in every case, errors included.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded core with a camera, a shutter and an XY stage, focused on a
        structured sample (cells, beads) that fills much of the field.
    step_um : float, optional
        Radius of the moves, in stage um. Default: 15 % of the field of view
        estimated from the core's pixel-size configuration. Larger steps (up
        to 35 % of the field) average a stage's repeatability error better.
    n_moves : int, optional
        Points on the circle (at least 2); more moves average stage
        repeatability errors.

    Returns
    -------
    PixelCalibration
        The fitted calibration; ``residual_px`` is the RMS misfit.

    Raises
    ------
    CalibrationError
        No camera or XY stage, no pixel size configured and no ``step_um``,
        a step out of range or leaving the stage limits, too little structure
        in the image, or shifts that do not fit one calibration.

    Notes
    -----
    Registration itself is good to a few hundredths of a pixel; what limits
    the result is where the stage really lands. A landing error of ``s`` um
    (standard deviation) gives a pixel-size error of roughly
    ``s / (step_um * sqrt(n_moves / 2))``: for 0.2 um at 40x (256 px field),
    about 2 % with the defaults and 0.2 to 0.4 % with ``step_um=14,
    n_moves=32``. ``residual_px`` shows it: near ``sqrt(2) * s / pixel size``
    when landing errors dominate.

    """
    camera, stage = core.getCameraDevice(), core.getXYStageDevice()
    if not camera or not stage:
        missing = "camera" if not camera else "XY stage"
        raise CalibrationError(
            f"the configuration has no {missing}",
            "Calibration moves the XY stage and registers camera images; set the "
            "core's Camera and XYStage roles in the .cfg.",
        )
    if isinstance(n_moves, bool) or not isinstance(n_moves, int) or n_moves < 2:
        raise CalibrationError(
            f"n_moves = {n_moves!r} is too few",
            "Pass n_moves=2 or more (4 by default).",
        )
    shape = (int(core.getImageHeight()), int(core.getImageWidth()))
    pixel_um = float(core.getPixelSizeUm())
    step = _step_um(step_um, pixel_um, shape)
    moves = _move_pattern(step, n_moves)
    max_shift_px = _max_shift_px(moves, pixel_um, shape)

    x0, y0 = (float(v) for v in core.getXYPosition())
    _check_limits(core, x0, y0, moves)
    reference = snap(core)
    repeat = measure_shift(reference, snap(core), upsample=_UPSAMPLE, max_shift_px=2.0)
    if repeat.confidence < MIN_CONFIDENCE:
        raise CalibrationError(
            f"the image at stage ({x0:.1f}, {y0:.1f}) um has too little structure "
            f"to register (two snaps correlate only {repeat.confidence:.2f}, "
            f"at least {MIN_CONFIDENCE} needed)",
            "Move to cells or beads that fill much of the field, focus on them, "
            "and raise the exposure if the image is noisy; then calibrate again.",
        )
    points = [np.zeros(2)]
    shifts = [np.asarray(repeat.shift_px)]
    try:
        for dx, dy in moves:
            core.setXYPosition(x0 + dx, y0 + dy)
            core.waitForDevice(stage)
            result = measure_shift(
                reference, snap(core), upsample=_UPSAMPLE, max_shift_px=max_shift_px
            )
            if result.confidence < MIN_CONFIDENCE:
                raise CalibrationError(
                    f"after a stage move of ({dx:.2f}, {dy:.2f}) um the image "
                    f"correlates only {result.confidence:.2f} with the reference "
                    f"(at least {MIN_CONFIDENCE} needed)",
                    "The move lost too much of the field, or the sample has too "
                    "little structure: pass a smaller step_um, or move to cells "
                    "or beads that fill the field.",
                )
            # the stage's own report: it may round a move to its step size
            reached = np.array(core.getXYPosition(), dtype=np.float64)
            points.append(reached - (x0, y0))
            shifts.append(np.asarray(result.shift_px))
    finally:
        core.setXYPosition(x0, y0)
        core.waitForDevice(stage)
    return _fit(np.array(points), np.array(shifts))


def _step_um(step_um: float | None, pixel_um: float, shape: tuple[int, int]) -> float:
    """The radius of the moves, checked against the field of view when known."""
    field_um = min(shape) * pixel_um
    if step_um is None:
        if pixel_um <= 0:
            raise CalibrationError(
                "no pixel size is configured for the current objective, so the "
                "field of view (and a safe stage step) is unknown",
                "Pass step_um (about 15 % of the field of view in um), or add a "
                "pixel-size configuration for this objective to the .cfg.",
            )
        return DEFAULT_STEP_FRACTION * field_um
    if not (math.isfinite(step_um) and step_um > 0):
        raise CalibrationError(
            f"step_um = {step_um!r} is not a positive distance",
            "Pass the stage step in um, e.g. 15 % of the field of view.",
        )
    if pixel_um > 0 and step_um > MAX_STEP_FRACTION * field_um:
        raise CalibrationError(
            f"step_um = {step_um:g} um is {step_um / field_um:.0%} of the "
            f"{field_um:.1f} um field of view; the moved images would share too "
            "little with the reference",
            f"Pass step_um of at most {MAX_STEP_FRACTION * field_um:.1f} um.",
        )
    return float(step_um)


def _move_pattern(step_um: float, n_moves: int) -> NDArray[np.float64]:
    """``n_moves`` points on a circle (first +x, then counter-clockwise) + diagonal."""
    angles = 2.0 * np.pi * np.arange(n_moves) / n_moves
    circle = step_um * np.column_stack([np.cos(angles), np.sin(angles)])
    circle[np.abs(circle) < 1e-9 * step_um] = 0.0
    return np.vstack([circle, [[step_um, step_um]]])


def _max_shift_px(
    moves: NDArray[np.float64], pixel_um: float, shape: tuple[int, int]
) -> float:
    """Largest image shift to search: twice the expected one, at most half the field."""
    half_field = 0.5 * min(shape)
    if pixel_um <= 0:
        return half_field
    expected = float(np.hypot(moves[:, 0], moves[:, 1]).max()) / pixel_um
    return min(2.0 * expected + 5.0, half_field)


def _check_limits(
    core: CMMCorePlus, x0: float, y0: float, moves: NDArray[np.float64]
) -> None:
    """Refuse moves outside the configuration's soft stage limits."""
    config = core.systemConfigurationFile()
    if not config or not Path(config).is_file():
        return
    limits = read_stage_limits(config)
    for dx, dy in moves:
        problem = limits.violation(x0 + dx, y0 + dy, None)
        if problem is not None:
            raise CalibrationError(
                f"a calibration move to ({x0 + dx:.1f}, {y0 + dy:.1f}) um would "
                f"leave the stage limits: {problem}",
                "Start the calibration further from the edge of the travel, or "
                "pass a smaller step_um.",
            )


def _fit(points: NDArray[np.float64], shifts: NDArray[np.float64]) -> PixelCalibration:
    """Fit the calibration; refuse shifts that do not follow the moves."""
    try:
        calibration = fit_pixel_calibration(points, shifts, fit_offset=True)
    except ValueError as exc:
        raise CalibrationError(
            f"the measured image shifts give no calibration ({exc})",
            "Check that the XY stage moves and that the camera sees a focused, "
            "structured sample.",
        ) from None
    typical = float(np.median(np.hypot(shifts[1:, 0], shifts[1:, 1])))
    if calibration.residual_px > MAX_RELATIVE_RESIDUAL * typical:
        raise CalibrationError(
            f"the image shifts do not follow the stage moves (misfit "
            f"{calibration.residual_px:.1f} px for shifts of about {typical:.0f} px)",
            "Some images were registered wrongly or the stage slipped: move to a "
            "region with irregular structure (not a regular grid), and calibrate "
            "again, perhaps with a smaller step_um.",
        )
    return calibration


# -- persistence ------------------------------------------------------------


def default_calibrations_path(config_file: Path | str) -> Path:
    """The calibration file kept next to a hardware configuration.

    Parameters
    ----------
    config_file : Path or str
        The Micro-Manager ``.cfg`` file.

    Returns
    -------
    Path
        ``calibrations.json`` in the configuration's folder.

    """
    return Path(config_file).expanduser().absolute().parent / CALIBRATIONS_FILE


def save_calibration(
    path: Path | str,
    scope_name: str,
    objective_label: str,
    calibration: PixelCalibration,
) -> None:
    """Store a calibration for one scope and objective, replacing an older one.

    The file is rewritten atomically (temporary file, fsync, rename): a crash
    leaves the old or the new file, never a half-written one. Other scopes'
    and objectives' entries are kept.

    Parameters
    ----------
    path : Path or str
        The JSON file (see `default_calibrations_path`); created if missing.
    scope_name : str
        Name of the microscope, e.g. the configuration's file stem.
    objective_label : str
        The objective's turret label.
    calibration : PixelCalibration
        What to store.

    Raises
    ------
    CalibrationFileError
        If a name is empty, the folder does not exist, or an existing file is
        not a pairscope calibration file (it is then left untouched).

    """
    file = Path(path).expanduser()
    _check_names(scope_name, objective_label)
    if not file.parent.is_dir():
        raise CalibrationFileError(
            f"the folder of the calibration file {str(file)!r} does not exist",
            "Create the folder, or save next to the hardware configuration.",
        )
    data = _read(file) if file.exists() else _empty()
    saved = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    data["scopes"].setdefault(scope_name, {})[objective_label] = {
        "saved_utc": saved.isoformat(),
        "calibration": calibration.to_dict(),
    }
    try:
        write_json_atomic(file, data)
    except OSError as exc:
        raise CalibrationFileError(
            f"the calibration file {str(file)!r} cannot be written "
            f"({exc.strerror or exc})",
            "Check that the folder is writable and the disk not full.",
        ) from None


def load_calibration(
    path: Path | str, scope_name: str, objective_label: str
) -> PixelCalibration:
    """Read the calibration stored for one scope and objective.

    Parameters
    ----------
    path : Path or str
        The JSON file written by `save_calibration`.
    scope_name : str
        Name of the microscope it was saved under.
    objective_label : str
        The objective's turret label it was saved under.

    Returns
    -------
    PixelCalibration
        The stored calibration.

    Raises
    ------
    CalibrationNotFoundError
        No file, or no entry for this scope and objective (the message lists
        what is stored).
    CalibrationFileError
        The file is not a valid pairscope calibration file.

    """
    file = Path(path).expanduser()
    _check_names(scope_name, objective_label)
    if not file.is_file():
        raise CalibrationNotFoundError(
            f"no calibration file at {str(file)!r}",
            "Calibrate the camera (calibrate_camera) and save the result with "
            "save_calibration first.",
        )
    scopes = _read(file)["scopes"]
    if scope_name not in scopes:
        raise CalibrationNotFoundError(
            f"{str(file)!r} holds no calibration for scope {scope_name!r} "
            f"(it has: {_listing(scopes)})",
            "Check the scope name, or calibrate this scope and save the result.",
        )
    objectives = scopes[scope_name]
    if objective_label not in objectives:
        raise CalibrationNotFoundError(
            f"{str(file)!r} holds no calibration of scope {scope_name!r} with "
            f"objective {objective_label!r} (it has: {_listing(objectives)})",
            "Calibrate with this objective in the light path and save the result.",
        )
    entry = objectives[objective_label]
    try:
        if not isinstance(entry, dict) or not isinstance(
            entry.get("calibration"), dict
        ):
            raise ValueError("the entry has no 'calibration' object")
        return PixelCalibration.from_dict(entry["calibration"])
    except ValueError as exc:
        raise CalibrationFileError(
            f"the calibration of scope {scope_name!r} with objective "
            f"{objective_label!r} in {str(file)!r} is invalid: {exc}",
            "Calibrate again and save the result (it replaces this entry).",
        ) from None


def _empty() -> dict[str, Any]:
    return {"format": _FORMAT, "version": _VERSION, "scopes": {}}


def _listing(names: dict[str, Any]) -> str:
    return ", ".join(repr(name) for name in sorted(names)) or "nothing"


def _check_names(scope_name: str, objective_label: str) -> None:
    for what, name in (
        ("scope name", scope_name),
        ("objective label", objective_label),
    ):
        if not isinstance(name, str) or not name.strip():
            raise CalibrationFileError(
                f"the {what} {name!r} is empty",
                f"Pass a non-empty {what}.",
            )


def _read(file: Path) -> dict[str, Any]:
    """Load and check a calibration file's outline."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationFileError(
            f"the calibration file {str(file)!r} cannot be read "
            f"({exc.strerror or exc})",
            "Check the path and its permissions.",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationFileError(
            f"the calibration file {str(file)!r} is not valid JSON ({exc})",
            "Repair it, or move it away and calibrate again.",
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("format") != _FORMAT
        or not isinstance(data.get("scopes"), dict)
        or not all(isinstance(v, dict) for v in data["scopes"].values())
    ):
        raise CalibrationFileError(
            f"{str(file)!r} is not a pairscope calibration file (expected "
            f'"format": "{_FORMAT}" and a "scopes" object)',
            "Choose another file name, or move that file away.",
        )
    if data.get("version") != _VERSION:
        raise CalibrationFileError(
            f"the calibration file {str(file)!r} has version "
            f"{data.get('version')!r}; this pairscope reads version {_VERSION}",
            "Use the pairscope version that wrote it, or calibrate again into a "
            "new file.",
        )
    return data
