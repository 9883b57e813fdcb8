"""Physics tests of the simulated sCMOS and PMT detector models."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from scipy import stats

from acquire.sim.detector import PMTDetector, SCMOSDetector

if TYPE_CHECKING:
    from numpy.typing import NDArray

SHAPE = (256, 256)


def flat_field(photons: float, shape: tuple[int, ...] = SHAPE) -> NDArray[np.float32]:
    return np.full(shape, photons, dtype=np.float32)


def mean_var(image: NDArray[np.uint16]) -> tuple[float, float]:
    values = image.astype(np.float64)
    return float(values.mean()), float(values.var(ddof=1))


def mixed_scene(shape: tuple[int, int] = (128, 160)) -> NDArray[np.float32]:
    """Dark, faint and bright regions: exercises every sampling branch."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = 4000.0 * np.exp(-((yy - 60.0) ** 2 + (xx - 90.0) ** 2) / (2 * 25.0**2))
    scene: NDArray[np.float32] = (blob + 3.0 * (xx / shape[1])).astype(np.float32)
    scene[:, :10] = 0.0
    return scene


# --- sCMOS -------------------------------------------------------------------------

SCMOS_CASES = [
    SCMOSDetector(),
    SCMOSDetector(
        quantum_efficiency=0.82,
        read_noise_e=3.0,
        gain_adu_per_e=0.8,
        offset_adu=400.0,
        full_well_e=45000.0,
        dark_current_e_per_ms=0.0,
    ),
]


@pytest.mark.parametrize("det", SCMOS_CASES, ids=["orca-defaults", "other"])
def test_scmos_photon_transfer_recovers_gain_read_noise_and_qe(
    det: SCMOSDetector,
) -> None:
    rng = np.random.default_rng(11)
    # Eight flat fields from dark to 85 % of full well (both sampling branches).
    fractions = [0.0, 1e-4, 5e-4, 2e-3, 1e-2, 5e-2, 0.25, 0.85]
    photons = np.array(fractions) * det.full_well_e / det.quantum_efficiency
    means, variances = [], []
    for p in photons:
        mean, var = mean_var(det.expose(flat_field(p), rng, exposure_ms=10.0))
        means.append(mean)
        variances.append(var)
    mean_adu, var_adu2 = np.array(means), np.array(variances)

    # Each level follows the photon-transfer model.
    model = det.expected_variance_adu2(mean_adu)
    np.testing.assert_allclose(var_adu2, model, rtol=0.1)

    # Weighted fit var = gain * (mean - offset) + (read_noise * gain)^2 + 1/12.
    slope, intercept = np.polyfit(
        mean_adu - det.offset_adu, var_adu2, 1, w=1 / var_adu2
    )
    read_noise_e = math.sqrt(intercept - 1 / 12) / slope
    assert slope == pytest.approx(det.gain_adu_per_e, rel=0.1)
    assert read_noise_e == pytest.approx(det.read_noise_e, rel=0.1)

    # Response per photon = QE * gain: QE follows from the fitted gain.
    response = np.polyfit(photons, mean_adu, 1)[0]
    assert response / slope == pytest.approx(det.quantum_efficiency, rel=0.1)
    assert response == pytest.approx(
        det.quantum_efficiency * det.gain_adu_per_e, rel=0.01
    )


def test_scmos_dark_frame_is_offset_plus_read_noise() -> None:
    det = SCMOSDetector()
    rng = np.random.default_rng(3)
    image = det.expose(flat_field(0.0, (512, 512)), rng, exposure_ms=100.0)
    mean, var = mean_var(image)
    expected_mean = det.offset_adu + det.gain_adu_per_e * (
        det.dark_current_e_per_ms * 100.0
    )
    assert mean == pytest.approx(expected_mean, abs=0.05)
    assert math.sqrt(var) == pytest.approx(
        det.read_noise_e * det.gain_adu_per_e, rel=0.1
    )
    assert var == pytest.approx(det.expected_variance_adu2(mean), rel=0.1)


def test_scmos_dark_current_is_poisson_and_linear_in_exposure() -> None:
    det = SCMOSDetector(dark_current_e_per_ms=0.25)
    rng = np.random.default_rng(4)
    exposures_ms = np.array([0.0, 10.0, 20.0, 40.0, 80.0, 400.0])
    means, variances = [], []
    for exposure_ms in exposures_ms:
        mean, var = mean_var(det.expose(flat_field(0.0), rng, exposure_ms=exposure_ms))
        means.append(mean)
        variances.append(var)
    slope, intercept = np.polyfit(exposures_ms, means, 1)
    assert slope == pytest.approx(det.gain_adu_per_e * 0.25, rel=0.02)
    assert intercept == pytest.approx(det.offset_adu, abs=0.1)
    # Dark electrons carry shot noise like photo-electrons.
    np.testing.assert_allclose(
        variances, det.expected_variance_adu2(np.array(means)), rtol=0.1
    )


def test_scmos_mean_is_linear_in_photons_and_exposure() -> None:
    det = SCMOSDetector()
    rng = np.random.default_rng(5)
    rate_photons_per_ms = 40.0
    exposures_ms = np.array([0.5, 1.0, 2.0, 5.0, 10.0, 50.0, 200.0])
    means = np.array(
        [
            mean_var(
                det.expose(flat_field(rate_photons_per_ms * t), rng, exposure_ms=t)
            )[0]
            for t in exposures_ms
        ]
    )
    expected = det.expected_mean_adu(
        rate_photons_per_ms * exposures_ms, exposure_ms=0.0
    )
    np.testing.assert_allclose(
        means - det.offset_adu, expected - det.offset_adu, rtol=0.01
    )
    fit = stats.linregress(exposures_ms, means)
    assert fit.rvalue > 0.99999
    assert fit.slope == pytest.approx(
        rate_photons_per_ms * det.quantum_efficiency * det.gain_adu_per_e, rel=0.01
    )


def test_scmos_exact_poisson_counts() -> None:
    # No read noise, unit gain, zero offset: the output is the electron count.
    det = SCMOSDetector(
        quantum_efficiency=1.0,
        read_noise_e=0.0,
        gain_adu_per_e=1.0,
        offset_adu=0.0,
        dark_current_e_per_ms=0.0,
    )
    rng = np.random.default_rng(6)
    for lam in [0.004, 0.37, 3.3, 17.06, 47.6]:
        counts = det.expose(flat_field(lam, (512, 512)), rng, exposure_ms=1.0)
        k = np.arange(int(lam + 10 * math.sqrt(lam) + 10))
        observed = np.bincount(counts.ravel(), minlength=k.size)
        assert observed[k.size :].sum() == 0
        expected = stats.poisson.pmf(k, lam) * counts.size
        keep = expected > 5
        chi2 = float(
            ((observed[: k.size][keep] - expected[keep]) ** 2 / expected[keep]).sum()
        )
        dof = max(int(keep.sum()) - 1, 1)
        assert stats.chi2.sf(chi2, dof) > 1e-4, f"counts at mean {lam} are not Poisson"


def test_scmos_read_noise_is_gaussian() -> None:
    det = SCMOSDetector(read_noise_e=20.0, gain_adu_per_e=1.0, offset_adu=1000.0)
    rng = np.random.default_rng(7)
    values = det.expose(flat_field(0.0, (512, 512)), rng, exposure_ms=0.0).astype(float)
    assert values.std() == pytest.approx(20.0, rel=0.01)
    assert abs(stats.skew(values.ravel())) < 0.03
    assert abs(stats.kurtosis(values.ravel())) < 0.06
    # Fractions of integer outputs within 1, 2, 3 sigma (bins are +-0.5 ADU wide).
    within = [np.mean(np.abs(values - 1000.0) <= s * 20.0) for s in (1, 2, 3)]
    normal = [2 * stats.norm.cdf((s * 20.0 + 0.5) / 20.0) - 1 for s in (1, 2, 3)]
    np.testing.assert_allclose(within, normal, atol=0.005)


def test_scmos_mixed_frame_regions_follow_the_model() -> None:
    det = SCMOSDetector()
    rng = np.random.default_rng(8)
    photons = np.zeros((256, 256), dtype=np.float32)
    photons[:, ::2] = 20.0  # exact-Poisson branch
    photons[:, 1::2] = 2000.0  # Gaussian branch
    image = det.expose(photons, rng, exposure_ms=10.0).astype(np.float64)
    for column_slice, p in ((slice(0, None, 2), 20.0), (slice(1, None, 2), 2000.0)):
        region = image[:, column_slice]
        expected = det.expected_mean_adu(p, exposure_ms=10.0)
        assert region.mean() == pytest.approx(expected, rel=0.005)
        assert region.var() == pytest.approx(
            det.expected_variance_adu2(expected), rel=0.1
        )


def test_scmos_saturation_and_bit_depth() -> None:
    rng = np.random.default_rng(9)
    bright = flat_field(1e7, (64, 64))

    det = SCMOSDetector()
    image = det.expose(bright, rng, exposure_ms=10.0)
    assert image.dtype == np.uint16
    full_well_adu = round(det.full_well_e * det.gain_adu_per_e + det.offset_adu)
    assert det.saturation_adu == full_well_adu
    assert np.all(image == full_well_adu)

    # Near full well the signal is unclipped, never above saturation.
    near = det.expose(
        flat_field(0.99 * det.full_well_e / 0.7, (64, 64)), rng, exposure_ms=1
    )
    assert near.max() <= full_well_adu
    assert near.mean() == pytest.approx(0.99 * det.full_well_e * 2.17 + 100, rel=0.01)

    high_gain = SCMOSDetector(gain_adu_per_e=4.0)  # full well beyond the ADC range
    assert np.all(high_gain.expose(bright, rng, exposure_ms=10.0) == 65535)

    twelve_bit = SCMOSDetector(gain_adu_per_e=0.12, bit_depth=12)
    assert twelve_bit.saturation_adu == 3700
    assert np.all(twelve_bit.expose(bright, rng, exposure_ms=1.0) == 3700)
    eight_bit = SCMOSDetector(offset_adu=10.0, bit_depth=8)
    assert np.all(eight_bit.expose(bright, rng, exposure_ms=1.0) == 255)

    # Negative excursions clip at zero instead of wrapping around.
    no_offset = SCMOSDetector(offset_adu=0.0, read_noise_e=5.0)
    dark = no_offset.expose(flat_field(0.0, (128, 128)), rng, exposure_ms=1.0)
    assert dark.min() == 0
    assert dark.max() < 100
    assert np.mean(dark == 0) == pytest.approx(0.5, abs=0.03)


# --- PMT ---------------------------------------------------------------------------


@pytest.mark.parametrize("excess_noise_factor", [1.0, 1.3, 1.6])
def test_pmt_mean_and_excess_noise(excess_noise_factor: float) -> None:
    det = PMTDetector(excess_noise_factor=excess_noise_factor)
    rng = np.random.default_rng(21)
    dwell_ms = 0.002
    photons = np.array([2.0, 8.0, 40.0, 400.0])  # 0.5 .. 100 photo-electrons
    means, variances = [], []
    for p in photons:
        mean, var = mean_var(det.expose(flat_field(p), rng, exposure_ms=dwell_ms))
        expected = det.expected_mean_adu(p, exposure_ms=dwell_ms)
        assert mean - det.offset_adu == pytest.approx(
            expected - det.offset_adu, rel=0.02
        )
        assert var == pytest.approx(det.expected_variance_adu2(mean), rel=0.1)
        means.append(mean)
        variances.append(var)
    # Variance grows as F^2 * gain * signal: the slope measures F.
    slope = np.polyfit(np.array(means) - det.offset_adu, variances, 1)[0]
    fitted_f = math.sqrt(slope / det.gain_adu_per_photoelectron)
    assert fitted_f == pytest.approx(excess_noise_factor, rel=0.05)
    response = np.polyfit(photons, means, 1)[0]
    assert response == pytest.approx(
        det.quantum_efficiency * det.gain_adu_per_photoelectron, rel=0.02
    )


def test_pmt_zero_light_reads_offset() -> None:
    rng = np.random.default_rng(22)
    det = PMTDetector()
    image = det.expose(flat_field(0.0, (512, 512)), rng, exposure_ms=0.002)
    assert np.median(image) == det.offset_adu
    expected = det.expected_mean_adu(0.0, exposure_ms=0.002)
    assert image.mean() == pytest.approx(expected, abs=0.05)
    # Without the (rare, heavy-tailed) dark counts only electronic noise remains.
    quiet = PMTDetector(dark_counts_per_ms=0.0, electronic_noise_adu=2.0)
    mean, var = mean_var(quiet.expose(flat_field(0.0, (512, 512)), rng, exposure_ms=1))
    assert mean == pytest.approx(quiet.offset_adu, abs=0.02)
    assert math.sqrt(var) == pytest.approx(2.0, rel=0.05)
    assert var == pytest.approx(quiet.expected_variance_adu2(mean), rel=0.1)


def test_pmt_dark_counts_scale_with_dwell() -> None:
    det = PMTDetector(dark_counts_per_ms=50.0, electronic_noise_adu=0.5)
    rng = np.random.default_rng(23)
    for dwell_ms in (0.01, 0.04):
        mean, var = mean_var(det.expose(flat_field(0.0), rng, exposure_ms=dwell_ms))
        dark_pe = 50.0 * dwell_ms
        assert mean - det.offset_adu == pytest.approx(
            det.gain_adu_per_photoelectron * dark_pe, rel=0.03
        )
        assert var == pytest.approx(det.expected_variance_adu2(mean), rel=0.1)


@pytest.mark.parametrize(("bit_depth", "ceiling"), [(8, 255), (12, 4095), (16, 65535)])
def test_pmt_clips_to_bit_depth(bit_depth: int, ceiling: int) -> None:
    det = PMTDetector(bit_depth=bit_depth)
    rng = np.random.default_rng(24)
    image = det.expose(flat_field(1e5, (32, 32)), rng, exposure_ms=0.002)
    assert image.dtype == np.uint16
    assert np.all(image == ceiling)


# --- common behaviour ------------------------------------------------------------

DETECTORS: list[SCMOSDetector | PMTDetector] = [SCMOSDetector(), PMTDetector()]


@pytest.mark.parametrize("det", DETECTORS, ids=["scmos", "pmt"])
def test_determinism(det: SCMOSDetector | PMTDetector) -> None:
    scene = mixed_scene()
    first = det.expose(scene, np.random.default_rng(1234), exposure_ms=5.0)
    again = det.expose(scene, np.random.default_rng(1234), exposure_ms=5.0)
    other = det.expose(scene, np.random.default_rng(1235), exposure_ms=5.0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    rng = np.random.default_rng(1234)
    assert not np.array_equal(
        det.expose(scene, rng, exposure_ms=5.0), det.expose(scene, rng, exposure_ms=5.0)
    )


@pytest.mark.parametrize("det", DETECTORS, ids=["scmos", "pmt"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 1), (0, 4), (33, 17)])
def test_output_shape_and_dtype(
    det: SCMOSDetector | PMTDetector, shape: tuple[int, int]
) -> None:
    image = det.expose(flat_field(30.0, shape), np.random.default_rng(2), exposure_ms=1)
    assert image.shape == shape
    assert image.dtype == np.uint16


@pytest.mark.parametrize("det", DETECTORS, ids=["scmos", "pmt"])
def test_input_layout_and_dtype_do_not_matter(det: SCMOSDetector | PMTDetector) -> None:
    scene = mixed_scene()
    reference = det.expose(
        np.ascontiguousarray(scene.T), np.random.default_rng(5), exposure_ms=1.0
    )
    transposed = det.expose(scene.T, np.random.default_rng(5), exposure_ms=1.0)
    as_float64 = det.expose(
        scene.T.astype(np.float64), np.random.default_rng(5), exposure_ms=1.0
    )
    np.testing.assert_array_equal(transposed, reference)
    np.testing.assert_array_equal(as_float64, reference)


@pytest.mark.parametrize("det", DETECTORS, ids=["scmos", "pmt"])
@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_invalid_photons_raise(det: SCMOSDetector | PMTDetector, bad: float) -> None:
    photons = flat_field(10.0, (8, 8))
    photons[3, 4] = bad
    with pytest.raises(ValueError, match="photons"):
        det.expose(photons, np.random.default_rng(0), exposure_ms=1.0)


@pytest.mark.parametrize("det", DETECTORS, ids=["scmos", "pmt"])
@pytest.mark.parametrize("exposure_ms", [-1.0, np.nan, np.inf])
def test_invalid_exposure_raises(
    det: SCMOSDetector | PMTDetector, exposure_ms: float
) -> None:
    with pytest.raises(ValueError, match="exposure_ms"):
        det.expose(
            flat_field(1.0, (4, 4)), np.random.default_rng(0), exposure_ms=exposure_ms
        )


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (SCMOSDetector, {"quantum_efficiency": 0.0}, "quantum_efficiency"),
        (SCMOSDetector, {"quantum_efficiency": 1.2}, "quantum_efficiency"),
        (SCMOSDetector, {"quantum_efficiency": float("nan")}, "quantum_efficiency"),
        (SCMOSDetector, {"read_noise_e": -0.1}, "read_noise_e"),
        (SCMOSDetector, {"gain_adu_per_e": 0.0}, "gain_adu_per_e"),
        (SCMOSDetector, {"gain_adu_per_e": -2.0}, "gain_adu_per_e"),
        (SCMOSDetector, {"offset_adu": -1.0}, "offset_adu"),
        (SCMOSDetector, {"offset_adu": 300.0, "bit_depth": 8}, "offset_adu"),
        (SCMOSDetector, {"full_well_e": 0.0}, "full_well_e"),
        (SCMOSDetector, {"full_well_e": float("inf")}, "full_well_e"),
        (SCMOSDetector, {"dark_current_e_per_ms": -1e-3}, "dark_current"),
        (SCMOSDetector, {"bit_depth": 10}, "bit_depth"),
        (SCMOSDetector, {"bit_depth": 16.0}, "bit_depth"),
        (SCMOSDetector, {"bit_depth": True}, "bit_depth"),
        (PMTDetector, {"quantum_efficiency": -0.1}, "quantum_efficiency"),
        (
            PMTDetector,
            {"gain_adu_per_photoelectron": 0.0},
            "gain_adu_per_photoelectron",
        ),
        (PMTDetector, {"excess_noise_factor": 0.9}, "excess_noise_factor"),
        (PMTDetector, {"excess_noise_factor": float("nan")}, "excess_noise_factor"),
        (PMTDetector, {"dark_counts_per_ms": -1.0}, "dark_counts_per_ms"),
        (PMTDetector, {"electronic_noise_adu": -1.0}, "electronic_noise_adu"),
        (PMTDetector, {"offset_adu": float("nan")}, "offset_adu"),
        (PMTDetector, {"bit_depth": 32}, "bit_depth"),
    ],
)
def test_invalid_parameters_raise(cls: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_expected_variance_accepts_scalars_and_arrays() -> None:
    scmos, pmt = SCMOSDetector(), PMTDetector()
    assert isinstance(scmos.expected_variance_adu2(1000.0), float)
    assert isinstance(pmt.expected_mean_adu(3.0, exposure_ms=1.0), float)
    means = np.array([0.0, 100.0, 1100.0])
    var = scmos.expected_variance_adu2(means)
    assert isinstance(var, np.ndarray)
    read_var = (1.5 * 2.17) ** 2 + 1 / 12
    # Below-offset means are clamped to the dark variance.
    np.testing.assert_allclose(var, [read_var, read_var, 2.17 * 1000.0 + read_var])
    assert pmt.expected_variance_adu2(10.0 + 200.0) == pytest.approx(
        1.3**2 * 20.0 * 200.0 + 1.0 + 1 / 12
    )
