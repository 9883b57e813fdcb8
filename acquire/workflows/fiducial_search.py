"""Find the holder's fiducial marks on a scope and record their stage positions.

The search runs with a low-magnification objective: focus on the coverslip,
then visit fields along a square spiral from the current position until marks
are detected (:func:`correlate.fiducials.detect.detect_marks`). The camera is
calibrated on the first mark found (it gives the structure a shift measurement
needs). With the holder's nominal mark positions, two found marks fix where the
others must be, so the rest are visited directly instead of searched for.

Each mark is then measured with the fine objective: centred iteratively,
focused by software autofocus, and its sub-pixel centre converted to stage
coordinates through that objective's calibration. No move ever leaves the
configuration's soft limits.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from acquire.errors import UserError
from acquire.hardware.autofocus import FocusError, autofocus, stage_limits_of
from acquire.hardware.microscope import snap
from acquire.workflows.calibrate import CalibrationError, calibrate_camera
from correlate.fiducials.detect import MarkDetection, MarkDetectionError, detect_marks

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pymmcore_plus import CMMCorePlus

    from acquire.config.stage_limits import StageLimits
    from acquire.workflows.flat_fields import FlatField
    from correlate.fiducials.marks import Holder
    from correlate.stage.camera_calibration import PixelCalibration

Progress = Callable[[str], None]
_CENTRING_TOLERANCE_UM = 0.3
_MAX_CENTRING_STEPS = 4


class FiducialSearchError(UserError, RuntimeError):
    """The marks could not be found or measured."""


@dataclass(frozen=True)
class FoundMark:
    """One mark measured on this scope.

    Attributes
    ----------
    identity : str
        Holder mark identity.
    stage_xyz_um : tuple of float
        Stage coordinates of the mark's centre, in focus.
    score : float
        Identification confidence of the final detection.

    """

    identity: str
    stage_xyz_um: tuple[float, float, float]
    score: float


@dataclass(frozen=True)
class FiducialSurvey:
    """Result of a fiducial search on one scope."""

    marks: tuple[FoundMark, ...]
    missing: tuple[str, ...]
    fields_searched: int
    wall_time_s: float
    calibrations: Mapping[str, PixelCalibration] = field(default_factory=dict)

    def positions(self) -> dict[str, tuple[float, float, float]]:
        """Mark identity -> stage (x, y, z)."""
        return {m.identity: m.stage_xyz_um for m in self.marks}


def spiral_offsets(step_um: float, n_fields: int) -> NDArray[np.float64]:
    """Offsets of a square spiral of fields, starting at (0, 0).

    Parameters
    ----------
    step_um : float
        Distance between neighbouring fields.
    n_fields : int
        How many offsets.

    Returns
    -------
    ndarray
        (n_fields, 2) offsets in um.

    """
    offsets = [(0, 0)]
    x = y = 0
    leg, direction = 1, 0
    moves = ((1, 0), (0, 1), (-1, 0), (0, -1))
    while len(offsets) < n_fields:
        for _ in range(2):
            dx, dy = moves[direction % 4]
            for _ in range(leg):
                x, y = x + dx, y + dy
                offsets.append((x, y))
            direction += 1
        leg += 1
    return np.asarray(offsets[:n_fields], dtype=np.float64) * step_um


def _predict_from_two(
    holder: Holder, found: Mapping[str, NDArray[np.float64]]
) -> dict[str, NDArray[np.float64]]:
    """Stage xy of every mark from two found ones (similarity, exact)."""
    (id_a, stage_a), (id_b, stage_b) = list(found.items())[:2]
    nominal_a = complex(*holder.mark(id_a).nominal_centre_um)
    nominal_b = complex(*holder.mark(id_b).nominal_centre_um)
    za, zb = complex(stage_a[0], stage_a[1]), complex(stage_b[0], stage_b[1])
    scale_rotation = (zb - za) / (nominal_b - nominal_a)
    predicted = {}
    for mark in holder.marks:
        z = za + scale_rotation * (complex(*mark.nominal_centre_um) - nominal_a)
        predicted[mark.identity] = np.array([z.real, z.imag])
    return predicted


class SearchScope:
    """Moves, snaps and detections on one core, always inside the soft limits."""

    def __init__(
        self,
        core: CMMCorePlus,
        holder: Holder,
        limits: StageLimits,
        flat_fields: Mapping[str, FlatField] | None = None,
        dark_level: float = 0.0,
    ) -> None:
        self.core = core
        self.holder = holder
        self.limits = limits
        self.flat_fields = dict(flat_fields or {})
        self.dark_level = dark_level

    def inside(self, xy: NDArray[np.float64]) -> bool:
        """Whether stage ``xy`` lies inside the soft limits."""
        return self.limits.violation(float(xy[0]), float(xy[1]), None) is None

    def move_xy(self, xy: NDArray[np.float64]) -> None:
        """Move to stage ``xy`` and wait; refuses a move outside the limits."""
        problem = self.limits.violation(float(xy[0]), float(xy[1]), None)
        if problem:
            raise FiducialSearchError(
                f"refusing to move the stage: {problem}",
                "Check the holder positions and the config's #pairscope limits.",
            )
        self.core.setXYPosition(float(xy[0]), float(xy[1]))
        self.core.waitForDevice(self.core.getXYStageDevice())

    def xy(self) -> NDArray[np.float64]:
        """The stage's (x, y) in um."""
        x, y = self.core.getXYPosition()
        return np.array([x, y], dtype=np.float64)

    def detections(self) -> tuple[NDArray[np.float64], tuple[MarkDetection, ...]]:
        """Snap a frame; it and the identified marks that do not touch its edge."""
        image = np.asarray(snap(self.core))
        pixel_um = float(self.core.getPixelSizeUm())
        bits = int(self.core.getImageBitDepth())
        flat = self.flat_fields.get(_objective_label(self.core))
        try:
            found = detect_marks(
                image,
                pixel_size_um=pixel_um,
                holder=self.holder,
                saturation_level=float(2**bits - 1) if 0 < bits <= 32 else None,
                flat_field=None if flat is None else flat.image,
                dark_level=self.dark_level,
            )
        except MarkDetectionError as error:
            x, y = self.xy()
            raise FiducialSearchError(
                f"objective {_objective_label(self.core)!r} at stage "
                f"({x + 0.0:.1f}, {y + 0.0:.1f}) um: {error}"
            ) from None
        usable = tuple(d for d in found if d.identity and not d.touches_border)
        return image, usable

    def set_objective(self, label: str) -> None:
        """Put the objective ``label`` in the light path."""
        turret = _objective_device(self.core)
        self.core.setStateLabel(turret, label)
        self.core.waitForDevice(turret)


def _objective_label(core: CMMCorePlus) -> str:
    """Label of the objective in the light path ("" without a turret)."""
    from acquire.hardware.microscope import objective_device

    turret = objective_device(core)
    return str(core.getStateLabel(turret)) if turret else ""


def _objective_device(core: CMMCorePlus) -> str:
    from acquire.hardware.microscope import objective_device

    turret = objective_device(core)
    if not turret:
        raise FiducialSearchError(
            "the configuration has no objective turret",
            "Add the turret with a pixel size for each objective (docs/configs.md).",
        )
    return turret


def _stage_of(
    scope: SearchScope,
    calibration: PixelCalibration,
    image_shape: tuple[int, int],
    det: MarkDetection,
) -> NDArray[np.float64]:
    return _stage_at(scope.xy(), calibration, image_shape, det)


def _stage_at(
    field_xy: NDArray[np.float64],
    calibration: PixelCalibration,
    image_shape: tuple[int, int],
    det: MarkDetection,
) -> NDArray[np.float64]:
    """Stage xy of a detection in a frame taken with the stage at ``field_xy``."""
    offset = calibration.stage_offset_um(np.asarray(det.centre_px), shape=image_shape)
    return field_xy + np.asarray(offset, dtype=np.float64)


def _calibrate_on_mark(
    scope: SearchScope,
    det: MarkDetection,
    image_shape: tuple[int, int],
    fov_um: float,
    report: Progress,
) -> PixelCalibration | None:
    """Calibrate the camera on a mark: small probe moves, centre it, then properly.

    The mark may sit near the edge of the field, where the larger moves of a
    precise calibration would push it out; tiny moves give a rough calibration
    that is good enough to centre it first.
    """
    report(f"calibrating the search objective on {det.identity}")
    try:
        rough = calibrate_camera(scope.core, step_um=0.04 * fov_um, n_moves=4)
        scope.move_xy(_stage_of(scope, rough, image_shape, det))
        return calibrate_camera(scope.core, step_um=0.2 * fov_um, n_moves=12)
    except CalibrationError as error:
        report(f"calibration on {det.identity} failed ({error}); searching on")
        return None


def _layout_guesses(
    holder: Holder, found: Mapping[str, NDArray[np.float64]], step_um: float
) -> list[NDArray[np.float64]]:
    """Fields where a second mark must be, given one found mark and the layout.

    First around the other marks' places if the mount is not rotated (most
    mounts are rotated by a few degrees), then, for any rotation, along the
    circle of each nominal distance to the found mark, nearest first.
    """
    ((identity, xyz),) = found.items()
    origin = np.asarray(holder.mark(identity).nominal_centre_um, dtype=np.float64)
    guesses: list[NDArray[np.float64]] = []
    distances = set()
    for mark in holder.marks:
        if mark.identity == identity:
            continue
        offset = np.asarray(mark.nominal_centre_um) - origin
        guesses.extend(xyz[:2] + offset + spiral_offsets(step_um, 9))
        distances.add(round(float(np.hypot(*offset)), 1))
    for distance in sorted(distances):
        n = int(np.ceil(2 * np.pi * distance / step_um))
        angles = np.arange(n) * 2 * np.pi / n
        ring = distance * np.column_stack([np.cos(angles), np.sin(angles)])
        guesses.extend(xyz[:2] + ring)
    return guesses


def _refocus_coarse(core: CMMCorePlus) -> None:
    """Autofocus the search objective over the mount's height range, if it can."""
    # on failure, keep the height: the caller looks anyway
    with contextlib.suppress(FocusError):
        autofocus(core, range_um=60.0, step_um=3.0)


def _focus_on(scope: SearchScope, xy: NDArray[np.float64]) -> NDArray[np.float64]:
    """Centre a freshly found mark at stage ``xy``, focus on it; its (x, y, z).

    The coverslip's tilt puts marks millimetres apart at heights tens of
    micrometres apart, so each mark gets its own focus with the deep-focus
    search objective before the fine objective (a confocal's thin optical
    section would miss it otherwise) looks at it.
    """
    scope.move_xy(xy)
    _refocus_coarse(scope.core)
    return np.array([xy[0], xy[1], float(scope.core.getPosition())])


def layout_conflict(
    holder: Holder,
    found: Mapping[str, NDArray[np.float64]],
    identity: str,
    xy: NDArray[np.float64],
    *,
    tolerance_um: float,
) -> str | None:
    """Why a mark seen at ``xy`` cannot be ``identity``, given the marks found.

    Distances between marks survive any mount rotation and translation: a
    detection whose distance to a found mark differs from the holder's by
    more than ``tolerance_um`` (plus 3 % for stage scale and calibration) is
    another mark misidentified, or not a mark.

    Returns
    -------
    str or None
        The conflict in words, or None when the detection fits the layout.

    """
    nominal = np.asarray(holder.mark(identity).nominal_centre_um, dtype=np.float64)
    for other, other_xyz in found.items():
        expected = float(
            np.hypot(*(np.asarray(holder.mark(other).nominal_centre_um) - nominal))
        )
        measured = float(np.hypot(*(np.asarray(xy[:2]) - other_xyz[:2])))
        if abs(measured - expected) > tolerance_um + 0.03 * expected:
            return (
                f"{measured:.0f} um from {other}, where the holder puts them "
                f"{expected:.0f} um apart"
            )
    return None


def _seen_before(
    rejected: list[tuple[str, NDArray[np.float64]]],
    identity: str,
    xy: NDArray[np.float64],
    radius_um: float,
) -> bool:
    return any(
        name == identity and np.hypot(*(xy - where)) < radius_um
        for name, where in rejected
    )


def _confirm_pair(
    scope: SearchScope,
    approx: dict[str, NDArray[np.float64]],
    calibration: PixelCalibration,
    report: Progress,
) -> tuple[bool, int]:
    """Visit the marks two found ones predict; whether one is there, and fields.

    True also when none can be visited (all outside the limits). Two
    misidentified marks can sit as far apart as the layout says (the demo
    holder's four edges are equally long); the marks they predict are then
    absent, which no correct pair gives unless those marks are covered.
    """
    core = scope.core
    predicted = _predict_from_two(scope.holder, approx)
    visited, confirmed = 0, False
    for identity, xy in predicted.items():
        if identity in approx or not scope.inside(xy):
            continue
        scope.move_xy(xy)
        visited += 1
        image, found = scope.detections()
        if not any(det.identity == identity for det in found):
            # a tilted coverslip can put this mark beyond the depth of
            # field at the last mark's height: refocus here and look again
            _refocus_coarse(core)
            image, found = scope.detections()
        field_xy = scope.xy()
        for det in found:
            if det.identity == identity:
                xy_found = _stage_at(field_xy, calibration, image.shape, det)
                approx[identity] = _focus_on(scope, xy_found)
                confirmed = True
                report(f"found {identity} where the holder puts it")
    return confirmed or visited == 0, visited


def survey_coarse(
    scope: SearchScope,
    *,
    use_nominal: bool,
    max_fields: int,
    calibration: PixelCalibration | None,
    report: Progress,
) -> tuple[dict[str, NDArray[np.float64]], int, PixelCalibration]:
    """Spiral (then jump) with the search objective; approximate mark positions.

    With the nominal layout, every detection must sit at the holder's
    distances from the marks already found, and the first two must predict
    a third that is really there; a detection that fails either is dropped
    (and said so) and the search goes on.

    Parameters
    ----------
    scope : SearchScope
        The scope, search objective in place and focused on the coverslip.
    use_nominal : bool
        Spiral from the first mark's nominal place and use the holder's
        layout (distances, predicted places) once a mark is found.
    max_fields : int
        Most fields of the blind spiral.
    calibration : PixelCalibration or None
        The search objective's calibration; measured on the first mark if None.
    report : callable
        Receives one line per step.

    Returns
    -------
    approx : dict of str to ndarray
        Mark identity -> approximate stage (x, y, z) in um.
    fields : int
        Fields visited.
    calibration : PixelCalibration
        The search objective's calibration.

    Raises
    ------
    FiducialSearchError
        No mark was found to calibrate on.

    """
    core = scope.core
    start = scope.xy()
    if use_nominal:
        # holders sit roughly centred: a mark is near its nominal place, or
        # (mount rotated) near another mark's, so spiral out from there
        start = np.asarray(scope.holder.marks[0].nominal_centre_um, dtype=np.float64)
    image, _ = scope.detections()
    rows, cols = image.shape
    fov_um = min(rows, cols) * float(core.getPixelSizeUm())
    step_um = 0.8 * fov_um
    approx: dict[str, NDArray[np.float64]] = {}
    rejected: list[tuple[str, NDArray[np.float64]]] = []
    fields = 0
    wanted = set(scope.holder.identities)
    local: list[NDArray[np.float64]] = []  # fields where the layout says
    guessed_from = ""
    # the spiral's budget bounds the blind search; the layout's guesses after a
    # first mark are a finite list of their own (a ring at each mark distance)
    global_fields = iter(start + spiral_offsets(step_um, max_fields))
    while True:
        if approx.keys() >= wanted or (use_nominal and len(approx) >= 3):
            break
        if use_nominal and len(approx) == 2 and calibration is not None:
            confirmed, visited = _confirm_pair(scope, approx, calibration, report)
            fields += visited
            if confirmed:
                break
            first, doubtful = approx
            report(
                f"dropped {doubtful}: the marks it and {first} predict "
                "are not there; searching on"
            )
            rejected.append((doubtful, approx.pop(doubtful)[:2]))
        if use_nominal and len(approx) == 1 and guessed_from not in approx:
            guessed_from = next(iter(approx))
            local = _layout_guesses(scope.holder, approx, step_um)
        target = local.pop(0) if local else next(global_fields, None)
        if target is None:
            break
        if not scope.inside(target):
            continue
        scope.move_xy(target)
        fields += 1
        image, found = scope.detections()
        if not found:
            continue
        if calibration is None:
            calibration = _calibrate_on_mark(
                scope, found[0], image.shape, fov_um, report
            )
            if calibration is None:
                continue
            image, found = scope.detections()
        field_xy = scope.xy()  # _focus_on moves: place every detection first
        placed = [(d, _stage_at(field_xy, calibration, image.shape, d)) for d in found]
        for det, xy in placed:
            if det.identity in approx or _seen_before(
                rejected, det.identity, xy, 0.5 * fov_um
            ):
                continue
            conflict = (
                layout_conflict(
                    scope.holder, approx, det.identity, xy, tolerance_um=0.1 * fov_um
                )
                if use_nominal
                else None
            )
            if conflict:
                report(f"ignored {det.identity} in field {fields}: {conflict}")
                rejected.append((det.identity, xy))
                continue
            approx[det.identity] = _focus_on(scope, xy)
            report(f"found {det.identity} in field {fields}")
    if calibration is None:
        raise FiducialSearchError(
            f"no fiducial mark found in {fields} fields around "
            f"({start[0]:.0f}, {start[1]:.0f}) um",
            "Start the search nearer the holder's centre, raise the field count, "
            "or check focus and illumination.",
        )
    return approx, fields, calibration


def _measure_fine(
    scope: SearchScope,
    identity: str,
    approx_xy: NDArray[np.float64],
    calibration: PixelCalibration | None,
    report: Progress,
) -> tuple[FoundMark | None, PixelCalibration | None]:
    """Centre, focus and measure one mark with the fine objective."""
    core = scope.core
    scope.move_xy(approx_xy[:2])
    core.setPosition(float(approx_xy[2]))
    try:
        autofocus(core, range_um=6.0, step_um=0.5)
    except FocusError:
        report(f"{identity}: no focus at the fine objective")
        return None, calibration
    for _ in range(_MAX_CENTRING_STEPS):
        image, found = scope.detections()
        det = next((d for d in found if d.identity == identity), None)
        if det is None:
            report(f"{identity}: not seen with the fine objective")
            return None, calibration
        if calibration is None:
            report("calibrating the fine objective on the first mark")
            fov_um = min(image.shape) * float(core.getPixelSizeUm())
            step_um = min(12.0, 0.25 * fov_um)  # the mark must stay in view
            calibration = calibrate_camera(core, step_um=step_um, n_moves=12)
            continue
        offset = np.asarray(
            calibration.stage_offset_um(np.asarray(det.centre_px), shape=image.shape),
            dtype=np.float64,
        )
        if np.hypot(*offset) < _CENTRING_TOLERANCE_UM:
            break
        scope.move_xy(scope.xy() + offset)
    focus = autofocus(core, range_um=4.0, step_um=0.5, fine_step_um=0.1)
    image, found = scope.detections()
    det = next((d for d in found if d.identity == identity), None)
    if det is None or calibration is None:
        return None, calibration
    xy = _stage_of(scope, calibration, image.shape, det)
    return FoundMark(
        identity, (float(xy[0]), float(xy[1]), focus.z_um), det.score
    ), calibration


def find_fiducials(
    core: CMMCorePlus,
    holder: Holder,
    *,
    search_objective: str,
    fine_objective: str,
    use_nominal: bool = True,
    max_fields: int = 600,
    focus_range_um: float = 240.0,
    calibrations: Mapping[str, PixelCalibration] | None = None,
    flat_fields: Mapping[str, FlatField] | None = None,
    dark_level: float = 0.0,
    progress: Progress | None = None,
) -> FiducialSurvey:
    """Find every mark of ``holder`` and measure its stage position.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded core; the search starts at the current XY position.
    holder : Holder
        The holder's marks (shapes, sizes and, for ``use_nominal``, nominal
        positions).
    search_objective, fine_objective : str
        Turret labels of the low-magnification search objective and of the
        objective that measures the marks.
    use_nominal : bool, optional
        Jump to the marks the nominal layout predicts once two are found.
    max_fields : int, optional
        Most fields the spiral visits.
    focus_range_um : float, optional
        Range of the first (coarse) autofocus on the coverslip.
    calibrations : mapping, optional
        Known calibrations by objective label; missing ones are measured.
    flat_fields : mapping, optional
        Flat fields by objective label (:mod:`acquire.workflows.flat_fields`): frames
        through that objective are divided by it before marks are detected.
    dark_level : float, optional
        Camera offset subtracted from frame and flat field before the division.
    progress : callable, optional
        Receives one line per step, for a log pane or the terminal.

    Returns
    -------
    FiducialSurvey
        Found marks (stage x, y, z), missing identities, effort and the
        calibrations used.

    Raises
    ------
    FiducialSearchError
        No mark was found, or the coverslip could not be focused.

    """
    started = time.perf_counter()
    report = progress or (lambda _line: None)
    known = dict(calibrations or {})
    scope = SearchScope(core, holder, stage_limits_of(core), flat_fields, dark_level)

    scope.set_objective(search_objective)
    try:
        autofocus(core, range_um=focus_range_um, step_um=10.0)
    except FocusError as error:
        raise FiducialSearchError(
            f"could not focus on the coverslip: {error}",
            "Focus near the sample by hand, then start the search again.",
        ) from None
    approx, fields, known[search_objective] = survey_coarse(
        scope,
        use_nominal=use_nominal,
        max_fields=max_fields,
        calibration=known.get(search_objective),
        report=report,
    )

    scope.set_objective(fine_objective)
    found: list[FoundMark] = []
    fine_calibration = known.get(fine_objective)
    for identity in holder.identities:
        if identity not in approx:
            continue
        mark, fine_calibration = _measure_fine(
            scope, identity, approx[identity], fine_calibration, report
        )
        if mark is not None:
            found.append(mark)
            x, y, z = mark.stage_xyz_um
            report(f"{identity}: stage ({x:.2f}, {y:.2f}, {z:.2f}) um")
    if fine_calibration is not None:
        known[fine_objective] = fine_calibration
    missing = tuple(
        i for i in holder.identities if i not in {m.identity for m in found}
    )
    return FiducialSurvey(
        marks=tuple(found),
        missing=missing,
        fields_searched=fields,
        wall_time_s=time.perf_counter() - started,
        calibrations=known,
    )
