"""Registration beyond our own simulator (issue 17).

Pairs come from ``bench/independent_pairs.py`` (a renderer that shares no code
with ``acquire.sim``: other PSF models, other noise, specimens not centred in
z) and from synthetic volumes built here; the gate is judged on transforms
made wrong by a known amount. Small fields keep this file fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from correlate.registration import (
    PairTransform,
    QualityGate,
    RegistrationError,
    assess_alignment,
    register_pair,
    rotation_matrix,
    transform_difference,
)
from correlate.registration.blur_match import blur_axially, matching_axial_blur_um
from correlate.registration.shift_field import fit_shift_field
from correlate.registration.tiles import TileShifts, lateral_given_axial

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import independent_pairs


def _truth(pair: independent_pairs.IndependentPair) -> PairTransform:
    return PairTransform.from_arrays(
        pair.truth_matrix, pair.truth_translation_um, pair.truth_axial_scale
    )


def _initial(pair: independent_pairs.IndependentPair) -> PairTransform:
    return PairTransform.from_arrays(
        pair.initial_matrix, pair.initial_translation_um, pair.initial_axial_scale
    )


@pytest.fixture(scope="module")
def independent() -> independent_pairs.IndependentPair:
    """A 256-px pair from the independent renderer, dense enough to register."""
    return independent_pairs.render_pair(
        8,
        psf="gaussian",
        field_px=256,
        widefield_pixel_um=0.1625,
        axial_scale=1.0,
        lateral_scale=1.0,
        placement="lower",
    )


def test_independent_pair_registers_within_a_tenth_of_a_pixel(
    independent: independent_pairs.IndependentPair,
) -> None:
    pair = independent
    truth = _truth(pair)
    result = register_pair(
        pair.widefield,
        pair.confocal,
        widefield_voxel_um=pair.widefield_voxel_um,
        confocal_voxel_um=pair.confocal_voxel_um,
        initial=_initial(pair),
    )
    kw = {
        "confocal_shape": pair.confocal.shape,
        "confocal_voxel_um": pair.confocal_voxel_um,
    }
    before = transform_difference(_initial(pair), truth, **kw)
    after = transform_difference(result.transform, truth, **kw)
    pixel = pair.widefield_voxel_um[1]
    assert before.lateral_rms_um > 2 * pixel  # started well away
    assert after.lateral_rms_um < 0.1 * pixel
    assert after.lateral_max_um < 0.25 * pixel
    assert after.axial_rms_um < 0.1
    assert abs(after.rotation_deg) < 0.1
    assert result.accepted, result.reason
    # the predicted error is of the size of the real one (not 10x off)
    q = result.quality
    assert q.predicted_lateral_rms_um < 10 * max(after.lateral_rms_um, 0.1 * pixel)
    assert np.isfinite(q.predicted_axial_rms_um)


def test_the_gate_flags_a_transform_made_wrong_and_accepts_the_truth(
    independent: independent_pairs.IndependentPair,
) -> None:
    pair = independent
    truth = _truth(pair)
    kw = {
        "widefield_voxel_um": pair.widefield_voxel_um,
        "confocal_voxel_um": pair.confocal_voxel_um,
    }
    pixel = pair.widefield_voxel_um[1]
    right = assess_alignment(pair.widefield, pair.confocal, transform=truth, **kw)
    assert right.accepted, right.reason
    shifted = truth.then_before(
        PairTransform.from_arrays(np.eye(2), [0.0, 0.6 * pixel, 0.0])
    )
    wrong = assess_alignment(pair.widefield, pair.confocal, transform=shifted, **kw)
    assert not wrong.accepted
    assert "lateral" in wrong.reason
    # the residual it measures is the step taken (0.6 px), within 0.15 px
    assert abs(wrong.quality.predicted_lateral_rms_px - 0.6) < 0.2
    deeper = truth.then_before(PairTransform.from_arrays(np.eye(2), [0.4, 0.0, 0.0]))
    off_axially = assess_alignment(
        pair.widefield, pair.confocal, transform=deeper, **kw
    )
    assert not off_axially.accepted
    assert "axial" in off_axially.reason


def test_a_thin_stack_keeps_the_axial_scale_and_says_so() -> None:
    pair = independent_pairs.render_pair(
        3,
        psf="gaussian",
        field_px=256,
        widefield_planes=21,
        confocal_planes=21,
        axial_scale=1.0,
        lateral_scale=1.0,
        specimen_thickness_um=1.5,
    )
    result = register_pair(
        pair.widefield,
        pair.confocal,
        widefield_voxel_um=pair.widefield_voxel_um,
        confocal_voxel_um=pair.confocal_voxel_um,
        initial=_initial(pair),
    )
    assert result.transform.axial_scale == pytest.approx(1.0)
    assert "axial scale not measured" in result.reason


def test_blur_matching_finds_the_axial_blur_that_was_applied() -> None:
    rng = np.random.default_rng(0)
    sharp = rng.normal(size=(40, 48, 48)).astype(np.float32)
    dz = 0.25
    widefield = blur_axially(sharp, 0.7, dz)
    mask = np.ones(sharp.shape, bool)
    found = matching_axial_blur_um(sharp, widefield, mask, dz)
    assert found == pytest.approx(0.7, abs=0.08)
    assert matching_axial_blur_um(sharp, sharp, mask, dz) < 0.1


def test_tiles_weighted_by_their_peaks_ignore_the_direction_they_cannot_see() -> None:
    # 12 tiles whose structure runs along x: their x shifts are garbage, their
    # y and z shifts true. The true field: b = (0.05, -0.02, 0.03) um.
    rng = np.random.default_rng(1)
    n = 12
    centres = np.column_stack(
        [np.zeros(n), rng.uniform(-20, 20, n), rng.uniform(-20, 20, n)]
    )
    truth = np.array([0.05, -0.02, 0.03])
    shifts = np.tile(truth, (n, 1))
    shifts[:, 2] += rng.uniform(-0.5, 0.5, n)  # along the fibres: anything
    shifts[:, :2] += rng.normal(0, 0.002, (n, 2))
    curvature = np.zeros((n, 3, 3))
    curvature[:, 0, 0] = 5.0
    curvature[:, 1, 1] = 5.0
    curvature[:, 2, 2] = 0.0  # flat along x
    # three tiles with structure along y pin the x shift down
    for i in range(3):
        curvature[i] = np.diag([5.0, 0.0, 5.0])
        shifts[i] = truth + np.array([0.0, rng.uniform(-0.5, 0.5), 0.0])
        shifts[i, [0, 2]] += rng.normal(0, 0.002, 2)
    tiles = TileShifts(
        centres_zyx_um=centres,
        shifts_zyx_um=shifts,
        scores=np.full(n, 0.8),
        sharpness=np.full(n, 2.0),
        curvature_per_um2=curvature,
        at_window_edge=np.zeros(n, bool),
    )
    fit = fit_shift_field(
        tiles, min_tile_score=0.2, allow_scale=False, allow_axial_scale=False
    )
    assert fit is not None
    np.testing.assert_allclose(fit.offset_zyx_um, truth, atol=0.01)
    assert abs(fit.parameters[1]) < 1e-3  # no rotation invented


def test_transform_axial_scale_composes_and_inverts() -> None:
    t = PairTransform.from_arrays(rotation_matrix(3.0), [0.4, 1.0, -2.0], 0.95)
    u = PairTransform.from_arrays(np.eye(2) * 1.01, [-0.1, 0.2, 0.3], 1.02)
    points = np.array([[1.5, 2.0, -3.0], [-2.0, 0.0, 4.0]])
    np.testing.assert_allclose(t.then_before(u).apply(points), t.apply(u.apply(points)))
    np.testing.assert_allclose(t.inverse().apply(t.apply(points)), points, atol=1e-12)
    assert t.apply(points)[:, 0] == pytest.approx(0.95 * points[:, 0] + 0.4)
    # catalogs written before the axial scale existed still load
    old = {"matrix": [[1, 0], [0, 1]], "translation_um": [0.1, 0.2, 0.3]}
    assert PairTransform.from_dict(old).axial_scale == 1.0
    assert PairTransform.from_dict(t.to_dict()) == t
    with pytest.raises(RegistrationError, match="axial_scale"):
        PairTransform.from_arrays(np.eye(2), [0, 0, 0], float("nan"))


def test_axial_error_over_the_specimen_planes_only() -> None:
    truth = PairTransform.identity()
    stretched = PairTransform.from_arrays(np.eye(2), [0.0, 0.0, 0.0], 1.02)
    kw = {"confocal_shape": (41, 64, 64), "confocal_voxel_um": (0.25, 0.1, 0.1)}
    whole = transform_difference(stretched, truth, **kw)
    middle = transform_difference(stretched, truth, planes=slice(18, 23), **kw)
    assert whole.axial_max_um == pytest.approx(0.02 * 5.0)
    assert middle.axial_max_um == pytest.approx(0.02 * 0.5)
    assert whole.axial_scale_ratio == pytest.approx(1.02)


@pytest.mark.parametrize(
    ("widefield", "confocal", "message"),
    [
        (np.zeros((8, 64, 64)), np.ones((8, 64, 64)), None),
        (np.full((8, 64, 64), np.nan), np.ones((8, 64, 64)), "NaN"),
        (np.ones((8, 64, 64)), np.ones((8, 64, 64)), None),
    ],
)
def test_empty_constant_or_nan_stacks_give_a_clear_answer(
    widefield: np.ndarray, confocal: np.ndarray, message: str | None
) -> None:
    kw = {
        "widefield_voxel_um": (0.25, 0.1625, 0.1625),
        "confocal_voxel_um": (0.25, 0.1, 0.1),
        "initial": PairTransform.identity(),
    }
    if message is not None:
        with pytest.raises(RegistrationError, match=message):
            register_pair(widefield, confocal, **kw)  # type: ignore[arg-type]
        return
    result = register_pair(widefield, confocal, **kw)  # type: ignore[arg-type]
    assert not result.accepted
    assert result.reason.startswith("flagged")


def test_gate_reason_names_every_failing_criterion() -> None:
    from correlate.registration import RegistrationQuality

    quality = RegistrationQuality(
        ncc=0.05,
        overlap_fraction=0.3,
        tiles_measured=10,
        tiles_usable=8,
        tile_inlier_fraction=1.0,
        tile_residual_um=0.01,
        median_tile_score=0.5,
        predicted_lateral_rms_um=0.05,
        predicted_lateral_max_um=0.2,
        predicted_axial_rms_um=0.1,
        predicted_axial_max_um=0.5,
        widefield_pixel_um=0.1625,
        lateral_scale_measured=True,
        axial_scale_measured=True,
    )
    accepted, reason = QualityGate().judge(quality)
    assert not accepted
    for word in ("overlap", "NCC", "lateral", "axial"):
        assert word in reason


def test_a_lateral_peak_on_a_tilted_ridge_is_read_at_the_axial_measurement() -> None:
    # structure tilted in z correlates along a ridge in (z, y, x): the sharp
    # (lateral) measurement's peak slid along it by an axial pull; read at the
    # blur-matched measurement's axial shift, its lateral shift is the truth
    rng = np.random.default_rng(3)
    n = 8
    truth = np.array([0.02, -0.03, 0.05])
    curvature = np.zeros((n, 3, 3))
    slid = np.zeros((n, 3))
    for i in range(n):
        ridge = np.array([1.0, *rng.uniform(-0.8, 0.8, 2)])
        ridge /= np.linalg.norm(ridge)
        across = np.linalg.svd(ridge[None])[2][1:]  # the two directions across
        curvature[i] = 20.0 * across.T @ across + 0.05 * np.outer(ridge, ridge)
        slid[i] = truth + rng.uniform(0.1, 0.3) * ridge
    common = {
        "centres_zyx_um": np.zeros((n, 3)),
        "sharpness": np.full(n, 2.0),
        "curvature_per_um2": curvature,
        "at_window_edge": np.zeros(n, bool),
    }
    lateral = TileShifts(shifts_zyx_um=slid, scores=np.full(n, 0.8), **common)
    scores = np.full(n, 0.8)
    scores[0] = 0.05  # an axial measurement without a peak moves nothing
    axial = TileShifts(
        shifts_zyx_um=np.tile(truth, (n, 1)) + rng.normal(0, 1e-4, (n, 3)),
        scores=scores,
        **common,
    )
    read = lateral_given_axial(lateral, axial, min_score=0.2)
    assert np.abs(slid[1:, 1:] - truth[1:]).max() > 0.02  # the slide was real
    np.testing.assert_allclose(
        read.shifts_zyx_um[1:, 1:], np.tile(truth[1:], (n - 1, 1)), atol=2e-3
    )
    np.testing.assert_array_equal(read.shifts_zyx_um[0], slid[0])
    # the axial measurement's noise, carried along each tile's lever, leaves
    # less lateral information than the peak alone had; most along the lever
    before = np.einsum("nii->n", curvature[1:, 1:, 1:])
    after = np.einsum("nii->n", read.curvature_per_um2[1:, 1:, 1:])
    assert np.all(after < before)
    np.testing.assert_array_equal(read.curvature_per_um2[0], curvature[0])
