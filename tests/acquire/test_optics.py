"""Image formation against optical theory.

Theory here is computed independently of the renderer and of psfmodels: scalar
paraxial Airy patterns, numerically convolved with the pixel aperture and (for
the confocal) the pinhole; for a sample whose index differs from the immersion's,
a scalar Debye integral with Gibson-Lanni's optical path difference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from scipy.optimize import curve_fit
from scipy.signal import fftconvolve
from scipy.special import j1

from acquire.sim.mount import Mount
from acquire.sim.psf import OpticalSetup
from acquire.sim.render import CameraGeometry, FieldRenderer
from acquire.sim.targets import PointCloud, bead, fluorescent_layer

if TYPE_CHECKING:
    from pathlib import Path

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


# -- refractive-index mismatch and measured PSFs (issue 17) --------------------

WATER = 1.333
GLYCEROL = 1.474


def scalar_focus_um(depth_um: float, sample_index: float, na: float) -> float:
    """Nominal focus of the on-axis maximum by scalar Debye theory (Gibson-Lanni).

    I(zv) = |int_0^NA exp(i k [d sqrt(ns^2 - s^2) - zv sqrt(ni^2 - s^2)])
    (ni^2 - s^2)^(-1/4) s ds|^2: aplanatic apodisation, the supercritical part
    evanescent in the sample. Computed here without psfmodels.
    """
    k = 2 * np.pi / EMISSION_UM
    s = np.linspace(0.0, na, 3001)
    in_sample = np.sqrt((sample_index**2 - s**2).astype(complex))
    in_oil = np.sqrt(OIL**2 - s**2)
    weight = (OIL**2 - s**2) ** -0.25 * s

    def intensity(zv: np.ndarray) -> np.ndarray:
        phase = k * (depth_um * in_sample[None, :] - zv[:, None] * in_oil[None, :])
        return np.abs(np.trapezoid(np.exp(1j * phase) * weight, s, axis=1)) ** 2

    coarse = np.arange(0.9 * depth_um, 1.7 * depth_um + 0.5, 0.05)
    centre = coarse[int(np.argmax(intensity(coarse)))]
    fine = centre + np.arange(-10, 11) * 0.005
    values = intensity(fine)
    i = int(np.argmax(values))
    a, b, c = values[i - 1 : i + 2]
    return float(fine[i] + 0.005 * 0.5 * (a - c) / (a - 2 * b + c))


@pytest.mark.parametrize("na", [1.3, 1.4])
@pytest.mark.parametrize("sample_index", [WATER, GLYCEROL])
def test_focal_shift_factor_matches_scalar_theory(
    sample_index: float, na: float
) -> None:
    from acquire.sim.focal_shift import focal_shift

    setup = OpticalSetup(
        "widefield", na, OIL, EMISSION_UM, 0.1, sample_index=sample_index
    )
    depths = np.array([2.0, 5.0, 10.0])
    model = focal_shift(setup).nominal_focus_um(depths)
    theory = np.array([scalar_focus_um(d, sample_index, na) for d in depths])
    np.testing.assert_allclose(model / depths, theory / depths, rtol=0.05)
    slope_model = (model[-1] - model[0]) / (depths[-1] - depths[0])
    slope_theory = (theory[-1] - theory[0]) / (depths[-1] - depths[0])
    assert slope_model == pytest.approx(slope_theory, rel=0.05)
    # between the paraxial factor and (where the marginal ray exists) its factor
    paraxial = OIL / sample_index
    assert np.all(model / depths > paraxial)
    assert np.all(theory / depths > paraxial)
    if na < sample_index:
        marginal = np.sqrt(OIL**2 - na**2) / np.sqrt(sample_index**2 - na**2)
        assert np.all(model / depths < marginal)
        assert np.all(theory / depths < marginal)
    # the inverse undoes it
    np.testing.assert_allclose(focal_shift(setup).depth_um(model), depths, atol=1e-6)


def test_index_matched_setups_keep_their_tables_and_images() -> None:
    import hashlib
    import json

    import psfmodels

    from acquire.sim import psf
    from acquire.sim.focal_shift import focal_shift
    from acquire.sim.otf import DefocusOTF

    plain = OpticalSetup("widefield", 1.3, OIL, EMISSION_UM, 0.1625)
    same = OpticalSetup("widefield", 1.3, OIL, EMISSION_UM, 0.1625, sample_index=OIL)
    assert same == plain and same.sample_index is None
    # the key the tables had before sample media existed
    historic = {
        "setup": {
            "modality": "widefield",
            "numerical_aperture": 1.3,
            "immersion_index": OIL,
            "emission_wavelength_um": EMISSION_UM,
            "pixel_size_um": 0.1625,
            "excitation_wavelength_um": 0.488,
            "pinhole_au": 1.0,
        },
        "table": psf.defocus_table_um().tolist(),
        "psfmodels": getattr(psfmodels, "__version__", "?"),
        "version": 4,
    }
    digest = hashlib.sha256(json.dumps(historic, sort_keys=True).encode())
    assert psf.cache_key(same) == psf.cache_key(plain) == digest.hexdigest()[:24]
    np.testing.assert_array_equal(focal_shift(same).nominal_focus_um([1, 5]), [1, 5])

    geometry = CameraGeometry(0.1625, (40, 40))
    specimen = PointCloud(
        np.column_stack(
            [np.linspace(-2, 2, 9), np.linspace(2, -2, 9), np.linspace(0, 4, 9)]
        ),
        50.0,
    )
    frames = []
    for setup in (plain, same):
        renderer = FieldRenderer(specimen, identity_mount(), setup, geometry)
        assert isinstance(renderer.otf, DefocusOTF)
        frames.append([renderer.render((0.0, 0.0), z) for z in (0.0, 1.5, 3.0)])
    np.testing.assert_array_equal(frames[0], frames[1])


def peak_focus(renderer: FieldRenderer, centre: float, half_um: float) -> float:
    """Nominal focus of the brightest pixel's maximum over a focus scan."""
    zs = np.round(np.arange(centre - half_um, centre + half_um, 0.05) / 0.05) * 0.05
    peaks = np.array([renderer.render((0.0, 0.0), z).max() for z in zs])
    i = int(np.argmax(peaks))
    a, b, c = peaks[i - 1 : i + 2]
    return float(zs[i] + 0.05 * 0.5 * (a - c) / (a - 2 * b + c))


def test_bead_in_water_focuses_at_the_focal_shift_and_blurs_asymmetrically() -> None:
    from acquire.sim.focal_shift import focal_shift

    pixel = 0.2
    geometry = CameraGeometry(pixel, (24, 24))
    water = OpticalSetup("widefield", 1.3, OIL, EMISSION_UM, pixel, sample_index=WATER)
    matched = OpticalSetup("widefield", 1.3, OIL, EMISSION_UM, pixel)
    target = bead(pixel / 2, pixel / 2, 5.0)
    in_water = FieldRenderer(target, identity_mount(), water, geometry)
    in_oil = FieldRenderer(target, identity_mount(), matched, geometry)
    shift = float(focal_shift(water).nominal_focus_um(5.0))
    assert shift > 5.0 * OIL / WATER  # beyond even the paraxial shift
    assert peak_focus(in_water, shift, 1.5) == pytest.approx(shift, abs=0.05)
    assert peak_focus(in_oil, 5.0, 1.0) == pytest.approx(5.0, abs=0.03)

    def peak(renderer: FieldRenderer, z: float) -> float:
        return float(renderer.render((0.0, 0.0), z).max())

    # spherical aberration: the PSF differs either side of best focus
    asymmetry = peak(in_water, shift - 1.0) / peak(in_water, shift + 1.0)
    assert abs(asymmetry - 1.0) > 0.2
    assert peak(in_oil, 4.0) / peak(in_oil, 6.0) == pytest.approx(1.0, rel=0.02)


def test_deep_bead_in_water_is_dimmer_on_the_confocal() -> None:
    from acquire.sim.focal_shift import focal_shift

    pixel = 0.15
    setup = OpticalSetup(
        "confocal",
        1.3,
        OIL,
        EMISSION_UM,
        pixel,
        excitation_wavelength_um=EXCITATION_UM,
        sample_index=WATER,
    )
    shift = focal_shift(setup)
    peaks = {}
    for depth in (0.5, 6.0):
        renderer = FieldRenderer(
            bead(pixel / 2, pixel / 2, depth),
            identity_mount(),
            setup,
            CameraGeometry(pixel, (24, 24)),
        )
        best = float(shift.nominal_focus_um(depth))
        peaks[depth] = max(
            float(renderer.render((0.0, 0.0), best + dz).max())
            for dz in (-0.1, -0.05, 0.0, 0.05, 0.1)
        )
    ratio = peaks[6.0] / peaks[0.5]
    assert ratio < 0.5
    expected = shift.relative_brightness(6.0) / shift.relative_brightness(0.5)
    assert ratio == pytest.approx(float(expected), rel=0.1)


def test_widefield_collected_flux_matches_psfmodels_planes() -> None:
    """Light beyond the critical angle reaches NA 1.4 only from near the glass."""
    import psfmodels

    from acquire.sim.focal_shift import collected_flux
    from acquire.sim.psf import _psfmodels_params, psfmodels_z

    setup = OpticalSetup("widefield", 1.4, OIL, EMISSION_UM, 0.08, sample_index=WATER)

    def plane_sum(depth: float) -> float:
        plane = psfmodels.vectorial_psf(
            psfmodels_z(setup, [depth * 1.3], depth),
            nx=601,
            dxy=0.08,
            pz=depth,
            wvl=EMISSION_UM,
            params=_psfmodels_params(setup, 1, mode=0),
            normalize=False,
        )
        return float(plane.sum())

    flux = [collected_flux(setup, d, EMISSION_UM) for d in (0.0, 2.0)]
    assert flux[1] / flux[0] == pytest.approx(plane_sum(2.0) / plane_sum(0.0), rel=0.03)
    assert flux[1] / flux[0] < 0.8


# -- measured PSFs -------------------------------------------------------------

BEAD_DZ, BEAD_DXY = 0.1, 0.065


def bead_stack(na: float = 1.3) -> np.ndarray:
    """A 'measured' bead: psfmodels' PSF point-sampled on a fine grid, on a pedestal."""
    import psfmodels

    z = np.round(np.arange(-3.0, 3.0 + 1e-9, BEAD_DZ), 6)
    params = {"NA": na, "ni": OIL, "ni0": OIL, "ns": OIL, "ng": OIL, "ng0": OIL}
    stack = psfmodels.vectorial_psf(
        z,
        nx=121,
        dxy=BEAD_DXY,
        pz=0.0,
        wvl=EMISSION_UM,
        params=params,
        normalize=False,
    )
    return (stack / stack.max() * 1000.0 + 100.0).astype(np.float32)


@pytest.fixture(scope="module")
def bead_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("psf") / "bead.npy"
    np.save(path, bead_stack())
    return path


@pytest.mark.parametrize("symmetrize", [False, True])
def test_measured_psf_reproduces_the_computed_one(
    bead_file: Path, symmetrize: bool
) -> None:
    from acquire.sim.measured_psf import load_measured_psf

    measured = load_measured_psf(
        bead_file, (BEAD_DZ, BEAD_DXY, BEAD_DXY), symmetrize=symmetrize
    )
    pixel = 6.5 / 40
    computed = OpticalSetup("widefield", 1.3, OIL, EMISSION_UM, pixel)
    from_file = OpticalSetup(
        "widefield", 1.3, OIL, EMISSION_UM, pixel, measured_psf=measured
    )
    rng = np.random.default_rng(1)
    cloud = PointCloud(
        np.column_stack(
            [rng.uniform(-3, 3, 30), rng.uniform(-3, 3, 30), rng.uniform(0, 1, 30)]
        ),
        100.0,
    )
    geometry = CameraGeometry(pixel, (48, 48))
    reference = FieldRenderer(cloud, identity_mount(), computed, geometry)
    candidate = FieldRenderer(cloud, identity_mount(), from_file, geometry)
    for focus in (0.0, 0.5, -1.0, 2.0):
        expected = reference.render((0.0, 0.0), focus)
        rendered = candidate.render((0.0, 0.0), focus)
        error = np.linalg.norm(rendered - expected) / np.linalg.norm(expected)
        assert error < 0.05, (focus, error)


def test_measured_psf_voxel_comes_from_ome_and_imagej_tiffs(
    bead_file: Path, tmp_path: Path
) -> None:
    import tifffile

    from acquire.sim.measured_psf import load_measured_psf

    stack = np.load(bead_file)
    ome = tmp_path / "bead.ome.tif"
    tifffile.imwrite(
        ome,
        stack,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeZ": BEAD_DZ,
            "PhysicalSizeY": BEAD_DXY,
            "PhysicalSizeX": BEAD_DXY,
        },
    )
    imagej = tmp_path / "bead_ij.tif"
    tifffile.imwrite(
        imagej,
        stack,
        imagej=True,
        resolution=(1 / BEAD_DXY, 1 / BEAD_DXY),
        metadata={"spacing": BEAD_DZ, "unit": "um", "axes": "ZYX"},
    )
    from_npy = load_measured_psf(bead_file, (BEAD_DZ, BEAD_DXY, BEAD_DXY))
    for path in (ome, imagej):
        loaded = load_measured_psf(path)
        np.testing.assert_allclose(loaded.voxel_um, from_npy.voxel_um, rtol=1e-6)
        np.testing.assert_array_equal(loaded.stack, from_npy.stack)


def bad_psf_files(directory: Path, good: np.ndarray) -> dict[str, tuple[Path, str]]:
    """Each bad file, and a phrase its error message must contain."""
    files: dict[str, tuple[Path, str]] = {}

    def npy(name: str, array: np.ndarray, phrase: str) -> None:
        path = directory / f"{name}.npy"
        np.save(path, array)
        files[name] = (path, phrase)

    corrupt_tif = directory / "corrupt.tif"
    corrupt_tif.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    files["corrupt_tif"] = (corrupt_tif, "cannot read")
    corrupt_npy = directory / "corrupt.npy"
    corrupt_npy.write_bytes(b"\x93NUMPY garbage")
    files["corrupt_npy"] = (corrupt_npy, "cannot read")
    files["missing"] = (directory / "missing.tif", "does not exist")
    text = directory / "bead.png"
    text.write_bytes(b"\x89PNG")
    files["not_a_stack_format"] = (text, "neither a TIFF")
    npy("plane", good[30], "not one 3-D stack")
    npy("channels", np.stack([good, good]), "not one 3-D stack")
    npy("few_planes", good[28:31], "too few")
    npy("zeros", np.zeros_like(good), "constant")
    npy("constant", np.full_like(good, 7.0), "constant")
    with_nan = good.copy()
    with_nan[3, 4, 5] = np.nan
    npy("nan", with_nan, "NaN")
    npy("bead_at_side", good[:, :, 60:], "edge")
    npy("focus_outside", good[:25], "edge")
    return files


def test_bad_measured_psf_files_give_one_clear_message(
    bead_file: Path, tmp_path: Path
) -> None:
    from acquire.errors import UserError
    from acquire.sim.measured_psf import MeasuredPSFError, load_measured_psf

    voxel = (BEAD_DZ, BEAD_DXY, BEAD_DXY)
    for name, (path, phrase) in bad_psf_files(tmp_path, np.load(bead_file)).items():
        with pytest.raises(MeasuredPSFError) as caught:
            load_measured_psf(path, voxel)
        message = str(caught.value)
        assert phrase in message, (name, message)
        assert path.name in message and "\n" not in message, (name, message)
        assert isinstance(caught.value, UserError)  # the CLI prints it, exit 2
    with pytest.raises(MeasuredPSFError, match="carries no voxel size"):
        load_measured_psf(bead_file)


def test_camera_sample_medium_and_measured_psf_properties(
    bead_file: Path, tmp_path: Path
) -> None:
    from acquire.config.objectives import parse_objective_label
    from acquire.sim.camera import ConfocalCamera, WidefieldCamera
    from acquire.sim.measured_psf import MeasuredPSFError

    oil = parse_objective_label("Plan-Apochromat 40x/1.3 Oil")
    water_objective = parse_objective_label("C-Apochromat 40x/1.2 W")
    camera = WidefieldCamera()
    assert camera.optical_setup(oil).sample_index is None
    camera.set_property_value("SampleMedium", "water")
    assert camera.optical_setup(oil).sample_index == WATER
    assert camera.optical_setup(water_objective).index_matched
    camera.set_property_value("SampleRefractiveIndex", 1.46)
    assert camera.optical_setup(water_objective).sample_index == 1.46
    confocal = ConfocalCamera()
    confocal.set_property_value("SampleMedium", "glycerol")
    assert confocal.optical_setup(oil).sample_index == GLYCEROL
    assert confocal.optical_setup(oil).modality == "confocal"

    measured = WidefieldCamera()
    with pytest.raises(MeasuredPSFError, match=r"missing\.tif"):
        measured.set_property_value("MeasuredPsfFile", str(tmp_path / "missing.tif"))
    with pytest.raises(MeasuredPSFError, match="dz:dy:dx"):
        measured.set_property_value("MeasuredPsfVoxelUm", "0.1,0.05")
    measured.set_property_value("MeasuredPsfFile", str(bead_file))
    with pytest.raises(MeasuredPSFError, match="no voxel size"):
        measured.optical_setup(oil)
    measured.set_property_value(
        "MeasuredPsfVoxelUm", f"{BEAD_DZ},{BEAD_DXY},{BEAD_DXY}"
    )
    setup = measured.optical_setup(oil)
    assert setup.measured_psf is not None
    assert setup.measured_psf.voxel_um == (BEAD_DZ, BEAD_DXY, BEAD_DXY)
    measured.set_property_value("SampleMedium", "water")
    with pytest.raises(MeasuredPSFError, match="both a sample medium"):
        measured.optical_setup(oil)
