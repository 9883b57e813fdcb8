"""Software autofocus finds the coverslip and the marks' height on the simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from acquire_helpers import WIDEFIELD

from acquire.hardware.autofocus import FocusError, autofocus
from acquire.hardware.microscope import close_core, open_core
from acquire.sim import groundtruth
from correlate.focus_metric import focus_peak, sharpness

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymmcore_plus import CMMCorePlus


@pytest.fixture
def core() -> Iterator[CMMCorePlus]:
    core = open_core(WIDEFIELD)
    camera = core.getCameraDevice()
    core.setProperty(camera, "RealTiming", "No")
    core.setProperty(camera, "SensorWidthPx", 256)
    core.setProperty(camera, "SensorHeightPx", 256)
    try:
        yield core
    finally:
        close_core(core)


def at_mark(core: CMMCorePlus, objective: str) -> float:
    core.setStateLabel("Objective", objective)
    mark = groundtruth.specimen_of(core).fiducials[0]
    x, y, z = groundtruth.stage_position_of(core, (*mark.centre_um, 0.15))
    core.setXYPosition(x, y)
    core.waitForSystem()
    return float(z)


def test_search_objective_finds_the_coverslip_from_far_away(core: CMMCorePlus) -> None:
    true_z = at_mark(core, "EC Plan-Neofluar 10x/0.3 Air")
    core.setPosition(true_z + 70.0)  # the mount's height is unknown by +-100 um
    result = autofocus(core, range_um=240, step_um=10)
    assert result.z_um == pytest.approx(true_z, abs=0.5)
    assert core.getPosition() == pytest.approx(result.z_um, abs=0.01)


def test_fine_objective_measures_the_mark_height_to_a_tenth_of_a_micron(
    core: CMMCorePlus,
) -> None:
    true_z = at_mark(core, "Plan-Apochromat 40x/1.3 Oil")
    core.setPosition(true_z - 1.7)
    result = autofocus(core, range_um=8, step_um=1.0)
    assert result.z_um == pytest.approx(true_z, abs=0.15)


def test_focus_outside_the_scan_is_reported(core: CMMCorePlus) -> None:
    true_z = at_mark(core, "Plan-Apochromat 40x/1.3 Oil")
    core.setPosition(true_z + 30.0)
    with pytest.raises(FocusError, match="no focus"):
        autofocus(core, range_um=6, step_um=1.0)


def test_focus_peak_recovers_a_gaussian_maximum() -> None:
    z = np.arange(-5.0, 5.1, 1.0)
    metric = np.exp(-((z - 0.37) ** 2) / 4)
    peak, interior = focus_peak(z, metric)
    assert interior and peak == pytest.approx(0.37, abs=1e-9)
    assert (
        focus_peak(z, -metric)[1] is False
        or focus_peak(z, np.exp(-((z + 9) ** 2)))[1] is False
    )


def test_sharpness_prefers_the_sharper_image() -> None:
    rng = np.random.default_rng(0)
    sharp = np.zeros((64, 64))
    sharp[20:40, 30] = 1000.0
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(sharp, 4)
    noise = rng.normal(0, 0.01, sharp.shape)
    assert sharpness(sharp + 100 + noise) > sharpness(blurred + 100 + noise)


def test_sharpness_ignores_a_camera_offset() -> None:
    rng = np.random.default_rng(1)
    image = rng.poisson(50.0, (64, 80)).astype(np.float64)
    for offset in (0.0, 100.0, 10_000.0):
        assert sharpness(image + offset) == pytest.approx(sharpness(image), rel=1e-9)
    # and against an independent computation: gradient energy of the smoothed image
    from scipy.ndimage import gaussian_filter

    gy, gx = np.gradient(gaussian_filter(image, 1.5))
    assert sharpness(image) == pytest.approx(float(np.mean(gx**2 + gy**2)), rel=1e-12)
