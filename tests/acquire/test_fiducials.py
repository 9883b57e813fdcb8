"""Fiducial mark detection on images rendered by the simulated scopes.

The demo specimen carries four marks; these tests put the same coverslip with
all eight mark shapes (same seed and cell count) on the scopes, so that every
shape is imaged, including the asymmetric L and triangle whose area centroids
differ from their bounding-box centres.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from scipy import ndimage as ndi

import acquire.sim.fiducial_marks as sim_marks
import acquire.sim.specimen as sim_specimen
from acquire.hardware.microscope import close_core, open_core, snap
from acquire.sim import groundtruth
from acquire.sim.specimen import Specimen, generate_specimen
from correlate.fiducials import marks
from correlate.fiducials.detect import MarkDetection, detect_marks
from correlate.fiducials.marks import Holder, MarkSpec, mark_mask

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymmcore_plus import CMMCorePlus

    from acquire.sim.fiducial_marks import FiducialMark

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"
WIDEFIELD = CONFIGS / "demo_widefield.cfg"
CONFOCAL = CONFIGS / "demo_confocal.cfg"
MARK_LAYER_UM = 0.1
MAX_CENTRE_ERROR_UM = 0.2


@pytest.fixture(scope="module")
def eight_marks() -> Specimen:
    """The demo coverslip (seed 1, 40 cells) made with all eight marks."""
    return generate_specimen(1, n_cells=40, n_fiducials=8)


@dataclass
class Scope:
    core: CMMCorePlus
    specimen: Specimen

    def configure(self, *, objective: str, mount_seed: int) -> float:
        """Pick objective and mount; returns the pixel size."""
        labels = self.core.getStateLabels("Objective")
        label = next(lab for lab in labels if objective in lab)
        camera = self.core.getCameraDevice()
        self.core.setProperty(camera, "MountSeed", mount_seed)
        self.core.setProperty("Objective", "Label", label)
        self.core.waitForSystem()
        return float(self.core.getPixelSizeUm())

    def snap_at(
        self, xy_um: tuple[float, float], *, dz_um: float = 0.0
    ) -> tuple[np.ndarray, tuple[float, float, float]]:
        """Image centred on sample point ``xy_um`` (mark layer, plus defocus)."""
        x, y, z = groundtruth.stage_position_of(self.core, (*xy_um, MARK_LAYER_UM))
        self.core.setXYPosition(float(x), float(y))
        self.core.setPosition(float(z) + dz_um)
        self.core.waitForSystem()
        stage_x, stage_y = self.core.getXYPosition()
        return np.asarray(snap(self.core)), (stage_x, stage_y, self.core.getPosition())

    def centre_error_um(
        self,
        detection: MarkDetection,
        mark: FiducialMark,
        stage_xyz: tuple[float, float, float],
    ) -> float:
        """Distance, in stage coordinates, of a detection from the true centre."""
        camera = groundtruth.simulated_camera(self.core)
        geometry = camera.geometry(camera.read_scope_state().objective)
        mount = groundtruth.mount_of(self.core)
        rows, cols = geometry.shape
        row, col = detection.centre_px
        offset = geometry.pixel_to_stage @ (col - (cols - 1) / 2, row - (rows - 1) / 2)
        physical = mount.stage_to_physical(stage_xyz)
        physical[:2] += offset
        found = mount.physical_to_stage(physical)[:2]
        truth = mount.sample_to_stage((*mark.centre_um, MARK_LAYER_UM))[:2]
        return float(np.hypot(*(found - truth)))

    def orientation_error_deg(
        self, detection: MarkDetection, mark: FiducialMark
    ) -> float | None:
        """Angle from the true orientation of the mark in the image."""
        symmetry = marks.SHAPES[mark.shape].symmetry
        if symmetry == 0:
            assert detection.orientation_deg is None
            return None
        assert detection.orientation_deg is not None
        camera = groundtruth.simulated_camera(self.core)
        geometry = camera.geometry(camera.read_scope_state().objective)
        mount = groundtruth.mount_of(self.core)
        true = mark.orientation_deg + mount.rotation_deg - geometry.rotation_deg
        return _circular_difference(detection.orientation_deg, true, 360 / symmetry)


def _circular_difference(a: float, b: float, period: float) -> float:
    return (a - b + period / 2) % period - period / 2


def _open(config: Path, specimen: Specimen) -> Iterator[Scope]:
    core = open_core(config)
    core.setProperty("XYStage", "Velocity", 1000.0)  # no waiting for slow moves
    camera = core.getCameraDevice()
    for name, value in (
        ("RealTiming", "No"),
        ("MountMaxRotationDeg", 180.0),
        # exact stage landing, so the image sits where the stage says
        ("StageRepeatabilityUm", 0.0),
        ("FocusRepeatabilityUm", 0.0),
    ):
        core.setProperty(camera, name, value)
    device = groundtruth.simulated_camera(core)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(device, "specimen", lambda: specimen)
        try:
            yield Scope(core, specimen)
        finally:
            close_core(core)


@pytest.fixture(scope="module")
def widefield(eight_marks: Specimen) -> Iterator[Scope]:
    yield from _open(WIDEFIELD, eight_marks)


@pytest.fixture(scope="module")
def confocal(eight_marks: Specimen) -> Iterator[Scope]:
    yield from _open(CONFOCAL, eight_marks)


def _identified(detections: tuple[MarkDetection, ...]) -> list[MarkDetection]:
    return [d for d in detections if d.identity]


# -- the holder's geometry -------------------------------------------------


def test_simulator_draws_the_holder_geometry_of_correlate() -> None:
    assert sim_marks.SHAPES is marks.SHAPES
    assert sim_specimen.nominal_mark_positions is marks.nominal_mark_positions


def test_holder_is_nominal_and_round_trips_through_json(
    eight_marks: Specimen,
) -> None:
    holder = eight_marks.holder()
    assert holder.identities == tuple(m.identity for m in eight_marks.fiducials)
    for spec, mark in zip(holder.marks, eight_marks.fiducials, strict=True):
        assert spec.shape == mark.shape
        assert spec.nominal_centre_um == mark.nominal_centre_um
        assert spec.nominal_centre_um != mark.centre_um  # jitter is not given
        assert spec.area_um2 == pytest.approx(mark.area_um2)
    restored = Holder.from_dict(json.loads(json.dumps(holder.to_dict())))
    assert restored == holder
    assert holder.mark("F6-L").shape == "L"
    with pytest.raises(KeyError):
        holder.mark("F9-star")
    with pytest.raises(ValueError, match="unique"):
        Holder((holder.marks[0], holder.marks[0]))
    with pytest.raises(ValueError, match="shape"):
        MarkSpec("X", "star", 20.0, (0.0, 0.0))


@pytest.mark.parametrize("shape", marks.SHAPE_ORDER)
@pytest.mark.parametrize("pixel_size_um", [0.1, 0.65])
def test_rasterised_mark_has_its_area_and_centroid_at_the_centre(
    shape: str, pixel_size_um: float
) -> None:
    size = marks.SHAPES[shape].size_um
    coverage = mark_mask(shape, size, 37.0, pixel_size_um=pixel_size_um)
    area = coverage.sum() * pixel_size_um**2
    assert area == pytest.approx(marks.SHAPES[shape].area_um2, rel=0.01)
    centre = (np.asarray(coverage.shape) - 1) / 2
    centroid = np.asarray(ndi.center_of_mass(coverage))
    assert np.hypot(*(centroid - centre)) * pixel_size_um < 0.01
    # a scaled mark scales its area
    bigger = mark_mask(shape, 1.5 * size, 0.0, pixel_size_um=pixel_size_um)
    assert bigger.sum() / coverage.sum() == pytest.approx(2.25, rel=0.02)


# -- detection on synthetic and degenerate images -------------------------


@pytest.mark.parametrize("shape", ["L", "triangle"])
def test_centre_of_a_blurred_asymmetric_mark_is_its_area_centroid(
    eight_marks: Specimen, shape: str
) -> None:
    pixel = 0.2
    coverage = mark_mask(shape, 30.0, 71.0, pixel_size_um=pixel, margin_px=60)
    shift = (3.3, -5.7)  # pixels
    image = 100.0 + 500.0 * ndi.gaussian_filter(ndi.shift(coverage, shift), 3.0)
    image = np.random.default_rng(0).poisson(image).astype(np.uint16)
    found = detect_marks(image, pixel_size_um=pixel, holder=eight_marks.holder())
    assert len(found) == 1 and found[0].identity.endswith(shape)
    expected = (np.asarray(coverage.shape) - 1) / 2 + shift
    assert np.hypot(*(np.asarray(found[0].centre_px) - expected)) * pixel < 0.05
    assert found[0].orientation_deg is not None
    period = 360 / marks.SHAPES[shape].symmetry
    assert abs(_circular_difference(found[0].orientation_deg, 71.0, period)) < 0.5


def test_blank_and_noise_images_have_no_marks(eight_marks: Specimen) -> None:
    holder = eight_marks.holder()
    assert (
        detect_marks(
            np.full((64, 64), 100, np.uint16), pixel_size_um=0.1, holder=holder
        )
        == ()
    )
    noise = np.random.default_rng(1).normal(100.0, 3.0, (256, 256))
    assert detect_marks(noise, pixel_size_um=0.1, holder=holder) == ()
    assert detect_marks(noise, pixel_size_um=0.1, holder=Holder(())) == ()


def test_bad_arguments_are_refused(eight_marks: Specimen) -> None:
    holder = eight_marks.holder()
    with pytest.raises(ValueError, match="2-D"):
        detect_marks(np.zeros((4, 4, 4)), pixel_size_um=0.1, holder=holder)
    with pytest.raises(ValueError, match="pixel_size_um"):
        detect_marks(np.zeros((8, 8)), pixel_size_um=0.0, holder=holder)
    with pytest.raises(ValueError, match="min_score"):
        detect_marks(np.zeros((8, 8)), pixel_size_um=0.1, holder=holder, min_score=2)


# -- detection on the simulated scopes -------------------------------------


def _check_every_mark(scope: Scope, pixel: float, *, dz_um: float = 0.0) -> None:
    holder = scope.specimen.holder()
    for mark in scope.specimen.fiducials:
        image, stage = scope.snap_at(mark.centre_um, dz_um=dz_um)
        found = _identified(detect_marks(image, pixel_size_um=pixel, holder=holder))
        assert [d.identity for d in found] == [mark.identity], mark.identity
        assert found[0].score > 0.9
        assert not found[0].touches_border
        if dz_um == 0.0:  # blur shrinks the half-height area of small parts
            assert found[0].area_um2 == pytest.approx(mark.area_um2, rel=0.05)
        error = scope.centre_error_um(found[0], mark, stage)
        assert error < MAX_CENTRE_ERROR_UM, (mark.identity, error)
        turn = scope.orientation_error_deg(found[0], mark)
        assert turn is None or abs(turn) < 1.0, (mark.identity, turn)


@pytest.mark.parametrize(("objective", "mount_seed"), [("40x", 11), ("63x", 13)])
def test_widefield_finds_and_identifies_every_mark(
    widefield: Scope, objective: str, mount_seed: int
) -> None:
    pixel = widefield.configure(objective=objective, mount_seed=mount_seed)
    _check_every_mark(widefield, pixel)


def test_confocal_finds_and_identifies_every_mark(confocal: Scope) -> None:
    pixel = confocal.configure(objective="40x", mount_seed=21)
    _check_every_mark(confocal, pixel)


def test_search_objective_with_coarse_pixels(widefield: Scope) -> None:
    if not any("10x" in lab for lab in widefield.core.getStateLabels("Objective")):
        pytest.skip("the wide-field demo config has no 10x objective")
    pixel = widefield.configure(objective="10x", mount_seed=14)
    assert pixel > 0.5
    _check_every_mark(widefield, pixel)


@pytest.mark.parametrize("dz_um", [-3.0, 3.0])
@pytest.mark.parametrize("objective", ["40x", "63x"])
def test_widefield_tolerates_three_micrometres_of_defocus(
    widefield: Scope, objective: str, dz_um: float
) -> None:
    pixel = widefield.configure(objective=objective, mount_seed=15)
    _check_every_mark(widefield, pixel, dz_um=dz_um)


def test_confocal_tolerates_defocus_while_the_mark_is_in_its_section(
    confocal: Scope,
) -> None:
    """A tilted mark 1 um off focus is unevenly bright; its centre still holds."""
    pixel = confocal.configure(objective="40x", mount_seed=23)
    _check_every_mark(confocal, pixel, dz_um=1.0)
    # 3 um away, optical sectioning leaves nothing of the 0.3 um layer
    mark = confocal.specimen.fiducials[0]
    image, _ = confocal.snap_at(mark.centre_um, dz_um=3.0)
    holder = confocal.specimen.holder()
    assert not _identified(detect_marks(image, pixel_size_um=pixel, holder=holder))


@pytest.mark.parametrize("fixture", ["widefield", "confocal"])
def test_cells_are_not_marks(request: pytest.FixtureRequest, fixture: str) -> None:
    scope: Scope = request.getfixturevalue(fixture)
    pixel = scope.configure(objective="40x", mount_seed=31)
    holder = scope.specimen.holder()
    for cell in scope.specimen.cells[:3]:
        x, y = cell.centre_um
        stage = groundtruth.stage_position_of(scope.core, (x, y, 1.0))
        scope.core.setXYPosition(float(stage[0]), float(stage[1]))
        scope.core.setPosition(float(stage[2]))
        scope.core.waitForSystem()
        image = np.asarray(snap(scope.core))
        assert image.max() > 1000  # there is something bright in view
        found = detect_marks(image, pixel_size_um=pixel, holder=holder)
        assert not _identified(found), cell.identity


def test_partly_visible_mark_touches_the_border(widefield: Scope) -> None:
    pixel = widefield.configure(objective="40x", mount_seed=41)
    holder = widefield.specimen.holder()
    # sample direction of the image rows and columns
    camera = groundtruth.simulated_camera(widefield.core)
    geometry = camera.geometry(camera.read_scope_state().objective)
    to_sample = groundtruth.mount_of(widefield.core).rotation_matrix.T
    axes = to_sample @ geometry.pixel_to_stage / pixel
    for mark in widefield.specimen.fiducials:
        # the mark 38 um from the centre of the 83 um field, along a row or a
        # column: it reaches over the edge
        direction = axes[:, mark.index % 2] * (-1) ** (mark.index // 2)
        image, _ = widefield.snap_at(
            tuple(np.asarray(mark.centre_um) - 38.0 * direction)
        )
        found = detect_marks(image, pixel_size_um=pixel, holder=holder)
        assert len(found) == 1, mark.identity
        assert found[0].touches_border, mark.identity
