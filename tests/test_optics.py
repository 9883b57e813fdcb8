"""Image formation against optical theory.

Theory here is computed independently of the renderer and of psfmodels: scalar
paraxial Airy patterns, numerically convolved with the pixel aperture and (for
the confocal) the pinhole.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit
from scipy.signal import fftconvolve
from scipy.special import j1

from acquire.sim.mount import Mount
from acquire.sim.psf import OpticalSetup
from acquire.sim.render import CameraGeometry, FieldRenderer
from acquire.sim.targets import bead, fluorescent_layer

EMISSION_UM = 0.52
EXCITATION_UM = 0.488
OIL = 1.518


def identity_mount() -> Mount:
    return Mount(0.0, (0.0, 0.0), 0.0, (0.0, 0.0), (1.0, 1.0, 1.0), 0.0, 0.0)


def airy(r_um: np.ndarray, wavelength_um: float, na: float) -> np.ndarray:
    v = 2 * np.pi * na * r_um / wavelength_um
    v = np.where(v == 0, 1e-12, v)
    return (2 * j1(v) / v) ** 2


def fwhm_of_profile(profile: np.ndarray, spacing: float) -> float:
    """Full width at half maximum with linear interpolation of the crossings."""
    peak = int(np.argmax(profile))
    half = profile[peak] / 2
    left = peak
    while profile[left] > half:
        left -= 1
    right = peak
    while profile[right] > half:
        right += 1
    x_left = left + (half - profile[left]) / (profile[left + 1] - profile[left])
    x_right = (
        right - 1 + (profile[right - 1] - half) / (profile[right - 1] - profile[right])
    )
    return float((x_right - x_left) * spacing)


def theory_grid(pixel_um: float, oversample: int = 8, half_width_um: float = 1.5):
    step = pixel_um / oversample
    axis = step * np.arange(
        -round(half_width_um / step), round(half_width_um / step) + 1
    )
    xx, yy = np.meshgrid(axis, axis)
    return step, np.hypot(xx, yy)


def pixel_box(pixel_um: float, step: float) -> np.ndarray:
    n = round(pixel_um / step)
    return np.ones((n, n)) / n**2


def widefield_theory_fwhm(na: float, pixel_um: float) -> float:
    step, r = theory_grid(pixel_um)
    psf = fftconvolve(airy(r, EMISSION_UM, na), pixel_box(pixel_um, step), mode="same")
    return fwhm_of_profile(psf[psf.shape[0] // 2], step)


def confocal_theory_fwhm(na: float, pinhole_au: float) -> float:
    step, r = theory_grid(0.02)
    pinhole_radius = pinhole_au * 0.61 * EMISSION_UM / na
    disc = (r <= pinhole_radius).astype(float)
    detection = fftconvolve(airy(r, EMISSION_UM, na), disc, mode="same")
    psf = airy(r, EXCITATION_UM, na) * detection
    return fwhm_of_profile(psf[psf.shape[0] // 2], step)


def render_bead(setup: OpticalSetup, size_px: int = 96) -> np.ndarray:
    # an even frame has its optical axis at a pixel corner: shift the bead by half
    # a pixel so it lands exactly on pixel (size/2, size/2)
    half = setup.pixel_size_um / 2
    geometry = CameraGeometry(setup.pixel_size_um, (size_px, size_px))
    renderer = FieldRenderer(bead(half, half, 0.0), identity_mount(), setup, geometry)
    return renderer.render((0.0, 0.0), 0.0)


def measured_fwhm(image: np.ndarray, pixel_um: float) -> float:
    row, col = np.unravel_index(np.argmax(image), image.shape)
    return 0.5 * (
        fwhm_of_profile(image[row].astype(float), pixel_um)
        + fwhm_of_profile(image[:, col].astype(float), pixel_um)
    )


FINE_PIXEL_UM = 0.025


def test_widefield_bead_fwhm_matches_diffraction_theory() -> None:
    setup = OpticalSetup("widefield", 1.3, OIL, EMISSION_UM, FINE_PIXEL_UM)
    theory = widefield_theory_fwhm(1.3, FINE_PIXEL_UM)
    assert (
        pytest.approx(theory, rel=0.05) == 0.51 * EMISSION_UM / 1.3
    )  # the textbook rule
    assert measured_fwhm(render_bead(setup), FINE_PIXEL_UM) == pytest.approx(
        theory, rel=0.10
    )


def test_widefield_fwhm_scales_inversely_with_na() -> None:
    fwhm = {
        na: measured_fwhm(
            render_bead(OpticalSetup("widefield", na, OIL, EMISSION_UM, FINE_PIXEL_UM)),
            FINE_PIXEL_UM,
        )
        for na in (1.3, 1.43)
    }
    assert fwhm[1.3] / fwhm[1.43] == pytest.approx(1.43 / 1.3, rel=0.05)


def gaussian_fwhm(patch: np.ndarray, pixel_um: float) -> float:
    n = patch.shape[0]
    yy, xx = np.mgrid[:n, :n] - n // 2

    def model(
        coords: tuple[np.ndarray, np.ndarray], amplitude: float, sigma: float
    ) -> np.ndarray:
        return amplitude * np.exp(-(coords[0] ** 2 + coords[1] ** 2) / (2 * sigma**2))

    (_, sigma), _ = curve_fit(
        model, (yy.ravel(), xx.ravel()), patch.ravel(), p0=(patch.max(), 1.0)
    )
    return float(2 * np.sqrt(2 * np.log(2)) * abs(sigma) * pixel_um)


def test_bead_at_camera_pixel_matches_sampled_theory() -> None:
    """At the real 40x camera pixel the bead equals theory sampled at pixel centres."""
    pixel = 6.5 / 40
    setup = OpticalSetup("widefield", 1.3, OIL, EMISSION_UM, pixel)
    image = render_bead(setup, size_px=64).astype(float)
    oversample = 9
    step, r = theory_grid(pixel, oversample=oversample, half_width_um=4.0)
    theory = fftconvolve(airy(r, EMISSION_UM, 1.3), pixel_box(pixel, step), mode="same")
    centre = theory.shape[0] // 2
    sampled = theory[
        centre % oversample :: oversample, centre % oversample :: oversample
    ]
    row, col = np.unravel_index(np.argmax(image), image.shape)
    srow, scol = np.unravel_index(np.argmax(sampled), sampled.shape)
    rendered = gaussian_fwhm(image[row - 3 : row + 4, col - 3 : col + 4], pixel)
    expected = gaussian_fwhm(sampled[srow - 3 : srow + 4, scol - 3 : scol + 4], pixel)
    # the vectorial high-NA PSF is ~8 % wider than the scalar Airy pattern
    assert rendered == pytest.approx(expected, rel=0.12)
    assert rendered > expected


def test_confocal_bead_fwhm_matches_theory_and_beats_widefield() -> None:
    confocal = OpticalSetup(
        "confocal",
        1.4,
        OIL,
        EMISSION_UM,
        FINE_PIXEL_UM,
        excitation_wavelength_um=EXCITATION_UM,
        pinhole_au=1.0,
    )
    widefield = OpticalSetup("widefield", 1.4, OIL, EMISSION_UM, FINE_PIXEL_UM)
    confocal_fwhm = measured_fwhm(render_bead(confocal), FINE_PIXEL_UM)
    widefield_fwhm = measured_fwhm(render_bead(widefield), FINE_PIXEL_UM)
    assert confocal_fwhm == pytest.approx(confocal_theory_fwhm(1.4, 1.0), rel=0.10)
    assert confocal_fwhm < widefield_fwhm
    # at 1 AU the gain is modest (about 1.1x), far from the 1.4x of a closed pinhole
    assert 1.03 < widefield_fwhm / confocal_fwhm < 1.4


def test_closing_the_pinhole_narrows_the_confocal_psf() -> None:
    def fwhm(pinhole: float) -> float:
        setup = OpticalSetup(
            "confocal",
            1.4,
            OIL,
            EMISSION_UM,
            FINE_PIXEL_UM,
            excitation_wavelength_um=EXCITATION_UM,
            pinhole_au=pinhole,
        )
        return measured_fwhm(render_bead(setup), FINE_PIXEL_UM)

    assert fwhm(0.3) < fwhm(1.0) < fwhm(3.0)


def layer_signal(setup: OpticalSetup, defocus_um: list[float]) -> np.ndarray:
    geometry = CameraGeometry(setup.pixel_size_um, (48, 48))
    layer = fluorescent_layer(40.0, spacing_um=0.08)
    renderer = FieldRenderer(layer, identity_mount(), setup, geometry)
    return np.array([renderer.render((0.0, 0.0), dz).sum() for dz in defocus_um])


DEFOCUS_UM = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]


def test_thin_layer_widefield_has_no_optical_sectioning() -> None:
    setup = OpticalSetup("widefield", 1.3, OIL, EMISSION_UM, 0.1625)
    signal = layer_signal(setup, DEFOCUS_UM)
    np.testing.assert_allclose(signal / signal[0], 1.0, atol=0.03)


def test_thin_layer_confocal_is_optically_sectioned() -> None:
    setup = OpticalSetup(
        "confocal",
        1.4,
        OIL,
        EMISSION_UM,
        0.1,
        excitation_wavelength_um=EXCITATION_UM,
        pinhole_au=1.0,
    )
    signal = layer_signal(setup, DEFOCUS_UM)
    relative = signal / signal[0]
    assert np.all(np.diff(relative) < 0), relative
    assert relative[2] < 0.8  # 1 um
    assert relative[4] < 0.3  # 4 um
    assert relative[5] < 0.15  # 8 um


def test_focus_is_symmetric_and_peaks_at_the_bead() -> None:
    setup = OpticalSetup("widefield", 1.3, OIL, EMISSION_UM, 0.1625)
    geometry = CameraGeometry(setup.pixel_size_um, (32, 32))
    renderer = FieldRenderer(bead(0.0, 0.0, 2.0), identity_mount(), setup, geometry)
    peaks = {
        dz: renderer.render((0.0, 0.0), 2.0 + dz).max()
        for dz in (-1.0, -0.5, 0.0, 0.5, 1.0)
    }
    assert max(peaks, key=peaks.__getitem__) == 0.0
    assert peaks[-1.0] == pytest.approx(peaks[1.0], rel=0.02)
    assert peaks[-0.5] == pytest.approx(peaks[0.5], rel=0.02)
