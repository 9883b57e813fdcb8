"""The simulator's uneven illumination, autofluorescence, dust and debris.

Each is checked against a profile or a geometry computed here, not with the
simulator's own helpers; with every property at its default a frame is
exactly what it was without them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from acquire.config.errors import ConfigError
from acquire.hardware.microscope import close_core, open_core
from acquire.sim import groundtruth
from acquire.sim.debris import Debris, DebrisSpecimen, debris_emitters
from acquire.sim.illumination import (
    Illumination,
    autofluorescence,
    illuminate,
    mountant_fraction,
    parse_vignetting,
    relative_illumination,
)
from acquire.sim.mount import MountLimits, draw_mount
from acquire.sim.render import CameraGeometry
from acquire.sim.specimen import generate_specimen

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymmcore_plus import CMMCorePlus

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"
WIDEFIELD = CONFIGS / "demo_widefield.cfg"
STILL = MountLimits(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""A mount that leaves the sample where the stage says."""


@pytest.fixture
def blank_widefield() -> Iterator[CMMCorePlus]:
    """The 40x wide-field over an empty, evenly autofluorescent coverslip."""
    core = open_core(WIDEFIELD)
    camera = core.getCameraDevice()
    for name, value in (
        ("RealTiming", "No"),
        ("SensorWidthPx", 128),
        ("SensorHeightPx", 128),
        ("SpecimenCellCount", 0),
        ("AutofluorescencePerUm2", 200.0),
        ("AutofluorescenceVariation", 0.0),
    ):
        core.setProperty(camera, name, value)
    # between the marks, away from the few beads
    x, y, z = groundtruth.stage_position_of(core, (-47.0, 31.0, 0.0))
    core.setXYPosition(float(x), float(y))
    core.setPosition(float(z))
    core.waitForSystem()
    try:
        yield core
    finally:
        close_core(core)


def _mean_frame(core: CMMCorePlus, n: int = 4) -> np.ndarray:
    frames = []
    core.setShutterOpen(True)
    try:
        for _ in range(n):
            core.snapImage()
            frames.append(np.asarray(core.getImage(), dtype=np.float64))
    finally:
        core.setShutterOpen(False)
    offset = float(core.getProperty(core.getCameraDevice(), "OffsetAdu"))
    return np.mean(frames, axis=0) - offset


def _block(image: np.ndarray, row: int, col: int, half: int = 8) -> float:
    return float(image[row - half : row + half, col - half : col + half].mean())


def test_an_even_field_leaves_the_frame_untouched() -> None:
    rate = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    geometry = CameraGeometry(0.1625, (16, 16))
    mount = draw_mount(0, STILL)
    kwargs = {"geometry": geometry, "mount": mount, "axis_xy_um": (0.0, 0.0)}
    assert (
        illuminate(rate, Illumination(), magnification=40, specimen_seed=0, **kwargs)
        is rate
    )
    # vignetting of another objective only
    other = Illumination(vignetting=parse_vignetting("10x:0.3"))
    assert illuminate(rate, other, magnification=40, specimen_seed=0, **kwargs) is rate
    assert (
        illuminate(rate, other, magnification=10, specimen_seed=0, **kwargs) is not rate
    )


def test_vignetting_values_are_parsed_and_bad_ones_refused() -> None:
    assert parse_vignetting("") == ()
    assert parse_vignetting("0.2") == ((None, 0.2),)
    assert parse_vignetting("10x:0.35  63X:0.1 *:0.05") == (
        (10.0, 0.35),
        (63.0, 0.1),
        (None, 0.05),
    )
    lit = Illumination(vignetting=parse_vignetting("10x:0.35 *:0.05"))
    assert lit.corner_loss(10) == 0.35 and lit.corner_loss(40) == 0.05
    with pytest.raises(ValueError, match=r"'40x-0\.2' is not"):
        parse_vignetting("40x-0.2")
    with pytest.raises(ValueError, match=r"must lie in \[0, 0.9\]"):
        parse_vignetting("40x:1.5")


def test_a_bad_vignetting_line_fails_where_the_config_loads(tmp_path: Path) -> None:
    config = tmp_path / "bad.cfg"
    config.write_text(
        WIDEFIELD.read_text() + "\n#py Property,Camera,Vignetting,40x:2\n"
    )
    with pytest.raises(ConfigError, match=r"bad\.cfg:\d+: .*Vignetting entry '40x:2'"):
        open_core(config)


def test_relative_illumination_profile() -> None:
    rows, cols = 101, 121
    field = relative_illumination((rows, cols), 0.3, 0.2, 0.0)
    corner = math.hypot(50, 60)
    # vignetting: 1 - v (r / r_corner)^2; tilt: +-t/2 across the diagonal
    for r, c in ((50, 60), (0, 0), (100, 120), (50, 0), (0, 60)):
        dr, dc = r - 50, c - 60
        expected = (1 - 0.3 * (dr * dr + dc * dc) / corner**2) * (1 + 0.1 * dc / corner)
        assert field[r, c] == pytest.approx(expected, rel=1e-6)
    assert not field.flags.writeable


def test_camera_frame_is_lit_like_the_vignetting_and_tilt(
    blank_widefield: CMMCorePlus,
) -> None:
    core = blank_widefield
    camera = core.getCameraDevice()
    even = _mean_frame(core)
    assert np.std(even) / np.mean(even) < 0.2  # evenly lit before
    core.setProperty(camera, "Vignetting", "10x:0.1 40x:0.4")
    vignetted = _mean_frame(core)
    corner = math.hypot(63.5, 63.5)
    centre = _block(vignetted, 64, 64)
    for r, c in ((8, 8), (8, 120), (120, 8), (120, 120), (64, 8)):
        r_px = math.hypot(r - 0.5 - 63.5, c - 0.5 - 63.5)
        expected = 1 - 0.4 * (r_px / corner) ** 2
        assert _block(vignetted, r, c) / centre == pytest.approx(expected, abs=0.03)
    core.setProperty(camera, "Vignetting", "")
    core.setProperty(camera, "IlluminationTiltPercent", 40.0)
    core.setProperty(camera, "IlluminationTiltDeg", 90.0)  # brighter down the rows
    tilted = _mean_frame(core)
    top, bottom = _block(tilted, 8, 64), _block(tilted, 120, 64)
    expected = (1 + 0.2 * 56 / corner) / (1 - 0.2 * 56 / corner)
    assert bottom / top == pytest.approx(expected, abs=0.03)


def test_autofluorescence_is_fixed_to_the_sample() -> None:
    pixel = 0.5
    geometry = CameraGeometry(pixel, (40, 60))
    mount = draw_mount(0, STILL)
    lit = Illumination(autofluorescence_per_um2=10.0, autofluorescence_variation=0.8)
    first = autofluorescence(
        lit, geometry=geometry, mount=mount, axis_xy_um=(0.0, 0.0), specimen_seed=4
    )
    # the stage moves 5 um along +x: the pattern moves 10 pixels to the left
    moved = autofluorescence(
        lit, geometry=geometry, mount=mount, axis_xy_um=(5.0, 0.0), specimen_seed=4
    )
    np.testing.assert_allclose(moved[:, :-10], first[:, 10:], rtol=1e-5)
    assert first.mean() == pytest.approx(10.0 * pixel**2, rel=0.5)
    assert first.min() >= 0.2 * 10.0 * pixel**2 - 1e-6
    assert np.ptp(first) > 0


def test_debris_lies_beside_the_marks_and_is_not_part_of_the_truth() -> None:
    specimen = generate_specimen(1, n_cells=0)
    near = debris_emitters(specimen, Debris(near_marks=3))
    assert near is debris_emitters(specimen, Debris(near_marks=3))  # cached, fixed
    for mark in specimen.fiducials:
        distance = np.hypot(*(near.xyz_um[:, :2] - mark.centre_um).T)
        beside = distance < mark.radius_um + 30.0
        assert beside.any(), mark.identity
        # particle centres lie 1.5-11 um beyond the outer radius, particles
        # reach at most 12.5 um from their centre
        assert distance[beside].min() > mark.radius_um + 1.5 - 12.5
        assert distance[beside].max() < mark.radius_um + 11.0 + 12.5
    assert np.all((near.xyz_um[:, 2] >= 0.1) & (near.xyz_um[:, 2] <= 0.6))
    scattered = debris_emitters(specimen, Debris(per_mm2=50.0))
    assert len(scattered.photons_per_ms) > len(near.photons_per_ms)
    source = DebrisSpecimen(specimen, specimen, Debris(near_marks=3))
    x, y = specimen.fiducials[0].centre_um
    box = (x - 40, x + 40, y - 40, y + 40)
    plain = specimen.emitters_in_box(*box)
    dusty = source.emitters_in_box(*box)
    assert len(dusty.photons_per_ms) > len(plain.photons_per_ms)
    assert generate_specimen(1, n_cells=0).fiducials == specimen.fiducials


def test_a_confocal_sees_the_mountant_only_above_the_glass() -> None:
    optics = {"numerical_aperture": 0.45, "immersion_index": 1.0}
    # axial FWHM 0.88 lambda / (n - sqrt(n^2 - NA^2)) = 4.3 um at 0.52 um
    fwhm = 0.88 * 0.52 / (1.0 - math.sqrt(1.0 - 0.45**2))
    assert mountant_fraction(0.0, wavelength_um=0.52, **optics) == pytest.approx(0.5)
    assert mountant_fraction(fwhm / 2, wavelength_um=0.52, **optics) == pytest.approx(
        0.5 * (1 + math.erf(math.sqrt(math.log(2.0)))), rel=1e-9
    )
    assert mountant_fraction(-30.0, wavelength_um=0.52, **optics) < 1e-6
    assert mountant_fraction(30.0, wavelength_um=0.52, **optics) > 1 - 1e-6
