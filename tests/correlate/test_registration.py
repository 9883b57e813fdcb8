"""Registration of wide-field/confocal stack pairs (correlate.registration).

Accuracy is checked against synthetic volumes built independently here (blobs
placed through a known transform) and against the simulator's ground truth;
deliberately wrong pairs must be flagged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from acquire.sim.pairs import SimulatedPair, simulate_pair
from correlate.registration import (
    PairTransform,
    RegistrationError,
    register_pair,
    rotation_matrix,
    transform_difference,
)
from correlate.registration.grid import resample_widefield

CONFOCAL_VOXEL = (0.25, 0.1, 0.1)
WIDEFIELD_VOXEL = (0.25, 0.1625, 0.1625)


def render_blobs(
    points_zyx: np.ndarray,
    shape: tuple[int, int, int],
    voxel: tuple[float, float, float],
    sigma_um: tuple[float, float, float],
    weights: np.ndarray,
) -> np.ndarray:
    """Gaussian blobs at centred physical positions, summed (separable)."""
    axes = [(np.arange(n) - (n - 1) / 2) * d for n, d in zip(shape, voxel, strict=True)]
    z, y, x = (
        np.exp(-0.5 * ((axis[None, :] - points_zyx[:, i, None]) / sigma_um[i]) ** 2)
        for i, axis in enumerate(axes)
    )
    planes = (weights[:, None, None] * y[:, :, None] * x[:, None, :]).reshape(
        len(weights), -1
    )
    return (z.T @ planes).reshape(shape).astype(np.float32)


def synthetic_pair(
    truth: PairTransform, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confocal and wide-field stacks of the same blobs; also the blob positions."""
    rng = np.random.default_rng(seed)
    n = 400
    points = np.column_stack(
        [
            rng.uniform(-2.0, 2.0, n),
            rng.uniform(-7.0, 7.0, n),
            rng.uniform(-7.0, 7.0, n),
        ]
    )
    weights = rng.uniform(0.5, 1.5, n)
    confocal = render_blobs(
        points, (24, 160, 160), CONFOCAL_VOXEL, (0.35, 0.12, 0.12), weights
    )
    # wide field: wider blobs plus a haze that does not fall off with defocus
    widefield = render_blobs(
        truth.apply(points), (24, 112, 112), WIDEFIELD_VOXEL, (0.5, 0.15, 0.15), weights
    )
    widefield += 0.3 * widefield.mean(axis=0, keepdims=True) + 0.05
    confocal += rng.normal(0.0, 0.01, confocal.shape).astype(np.float32)
    widefield += rng.normal(0.0, 0.01, widefield.shape).astype(np.float32)
    return widefield, confocal, points


TRUTH = PairTransform.from_arrays(rotation_matrix(3.0), [0.3, 0.45, -0.6])


def test_transform_conventions_and_round_trip() -> None:
    t = PairTransform.from_arrays(rotation_matrix(10.0) * 1.01, [0.1, 2.0, -3.0])
    assert t.rotation_deg == pytest.approx(10.0)
    assert t.scale == pytest.approx(1.01)
    # positive rotation turns +y towards +x
    assert t.apply([0.0, 1.0, 0.0])[2] > -3.0
    p = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])
    assert np.allclose(t.inverse().apply(t.apply(p)), p)
    u = PairTransform.from_arrays(np.diag([1.0, -1.0]), [0.0, 1.0, 1.0])
    assert u.flipped and not t.flipped
    assert np.allclose(t.then_before(u).apply(p), t.apply(u.apply(p)))
    again = PairTransform.from_dict(json.loads(json.dumps(t.to_dict())))
    assert again == t


def test_resample_puts_blobs_where_the_transform_says() -> None:
    widefield, _, points = synthetic_pair(TRUTH)
    aligned, mask = resample_widefield(
        widefield, WIDEFIELD_VOXEL, TRUTH, (24, 160, 160), CONFOCAL_VOXEL
    )
    # one isolated blob rendered alone: its centroid on the confocal grid
    single = render_blobs(
        TRUTH.apply(points[:1]),
        (24, 112, 112),
        WIDEFIELD_VOXEL,
        (0.5, 0.15, 0.15),
        np.ones(1),
    )
    on_confocal, _ = resample_widefield(
        single, WIDEFIELD_VOXEL, TRUTH, (24, 160, 160), CONFOCAL_VOXEL
    )
    grids = np.meshgrid(
        *[
            (np.arange(n) - (n - 1) / 2) * d
            for n, d in zip((24, 160, 160), CONFOCAL_VOXEL, strict=True)
        ],
        indexing="ij",
    )
    centroid = [float((g * on_confocal).sum() / on_confocal.sum()) for g in grids]
    assert np.allclose(centroid, points[0], atol=0.03)
    assert aligned.dtype == np.float32 and mask.mean() > 0.9


def test_resample_matches_a_direct_trilinear_sampling_and_its_overlap() -> None:
    rng = np.random.default_rng(4)
    widefield = rng.normal(100.0, 20.0, (12, 40, 48)).astype(np.float32)
    # half the confocal grid hangs off the wide-field field to the right
    truth = PairTransform.from_arrays(rotation_matrix(3.0), [0.3, 0.4, 3.5])
    shape = (10, 42, 42)
    volume, mask = resample_widefield(
        widefield, WIDEFIELD_VOXEL, truth, shape, CONFOCAL_VOXEL
    )
    # independent: every confocal voxel's point in wide-field voxel indices
    grids = np.meshgrid(
        *[
            (np.arange(n) - (n - 1) / 2) * d
            for n, d in zip(shape, CONFOCAL_VOXEL, strict=True)
        ],
        indexing="ij",
    )
    points = truth.apply(np.stack([g.ravel() for g in grids], axis=1))
    index = points / np.asarray(WIDEFIELD_VOXEL) + (np.asarray(widefield.shape) - 1) / 2
    inside = np.all(
        (index >= -1e-6) & (index <= np.asarray(widefield.shape) - 1 + 1e-6), axis=1
    )
    expected = ndimage.map_coordinates(widefield, index.T, order=1).reshape(shape)
    assert np.array_equal(mask, inside.reshape(shape))
    assert 0.2 < mask.mean() < 0.8 and not volume[~mask].any()
    # bilinear weights resolved to 1/32 px: well below the image's contrast
    assert np.abs(volume - expected)[mask].max() < 0.02 * widefield.std()
    # binned: the mean over each 2 x 2 block, where the whole block is inside
    binned, binned_mask = resample_widefield(
        widefield, WIDEFIELD_VOXEL, truth, shape, CONFOCAL_VOXEL, bin_factor=2
    )
    blocks = expected.reshape(10, 21, 2, 21, 2)
    assert np.array_equal(binned_mask, mask.reshape(10, 21, 2, 21, 2).all(axis=(2, 4)))
    assert np.allclose(
        binned[binned_mask], blocks.mean(axis=(2, 4))[binned_mask], atol=0.02 * 20
    )


def test_synthetic_pair_recovers_the_transform() -> None:
    widefield, confocal, _ = synthetic_pair(TRUTH)
    # relocation does not know the rotation and is off by ~0.5 um
    initial = PairTransform.from_arrays(np.eye(2), [0.0, 0.9, -0.2])
    result = register_pair(
        widefield,
        confocal,
        widefield_voxel_um=WIDEFIELD_VOXEL,
        confocal_voxel_um=CONFOCAL_VOXEL,
        initial=initial,
    )
    error = transform_difference(
        result.transform,
        TRUTH,
        confocal_shape=confocal.shape,
        confocal_voxel_um=CONFOCAL_VOXEL,
    )
    assert result.accepted, result.reason
    assert error.lateral_rms_um < 0.1 * WIDEFIELD_VOXEL[1]
    assert abs(error.axial_rms_um) < 0.05
    assert abs(error.rotation_deg) < 0.1
    assert result.rotation_deg == pytest.approx(3.0, abs=0.1)
    assert result.aligned_widefield.shape == confocal.shape
    assert result.aligned_widefield.dtype == np.float32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"widefield": np.zeros((64, 64))}, "3D"),
        ({"widefield_voxel_um": (0.25, 0.0, 0.1625)}, "positive"),
        ({"confocal_voxel_um": (0.25, 0.1)}, "three"),
        ({"confocal": np.full((8, 64, 64), np.nan)}, "NaN"),
        ({"initial": "identity"}, "PairTransform"),
        ({"refinements": 0}, "at least 1"),
    ],
)
def test_bad_input_raises_a_clear_error(
    change: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "widefield": np.ones((8, 64, 64), np.float32),
        "confocal": np.ones((8, 64, 64), np.float32),
        "widefield_voxel_um": WIDEFIELD_VOXEL,
        "confocal_voxel_um": CONFOCAL_VOXEL,
        "initial": PairTransform.identity(),
    }
    arguments.update(change)
    with pytest.raises(RegistrationError, match=message):
        register_pair(**arguments)  # type: ignore[arg-type]
    assert issubclass(RegistrationError, ValueError)


# --- simulated scopes -------------------------------------------------------


@pytest.fixture(scope="module")
def pairs() -> dict[str, SimulatedPair]:
    """One simulated pair per wide-field objective (41 x 512 x 512 each)."""
    return {
        "40x": simulate_pair(1, widefield_objective="40x"),
        "63x": simulate_pair(2, widefield_objective="63x"),
    }


@pytest.fixture(params=["40x", "63x"])
def simulated(
    request: pytest.FixtureRequest, pairs: dict[str, SimulatedPair]
) -> SimulatedPair:
    return pairs[request.param]


def test_simulated_pair_matches_ground_truth(simulated: SimulatedPair) -> None:
    pair = simulated
    assert pair.model_error_um < 1e-6  # no tilt/scale errors by default
    result = register_pair(
        pair.widefield.data,
        pair.confocal.data,
        widefield_voxel_um=pair.widefield.voxel_um,
        confocal_voxel_um=pair.confocal.voxel_um,
        initial=pair.initial,
    )
    before = transform_difference(
        pair.initial,
        pair.truth,
        confocal_shape=pair.confocal.data.shape,
        confocal_voxel_um=pair.confocal.voxel_um,
    )
    after = transform_difference(
        result.transform,
        pair.truth,
        confocal_shape=pair.confocal.data.shape,
        confocal_voxel_um=pair.confocal.voxel_um,
    )
    pixel = pair.widefield.voxel_um[1]
    assert result.accepted, result.reason
    assert before.lateral_rms_um > 5 * pixel  # the test starts far from the truth
    assert after.lateral_rms_um < 0.25 * pixel
    assert after.axial_rms_um < 0.1
    assert abs(after.rotation_deg) < 0.1
    # a camera turned counter-clockwise on the stage is a positive (y, x) rotation
    assert abs(result.rotation_deg - pair.camera_rotation_deg) < 0.1
    # the aligned stacks agree where they overlap, better than before
    first, _ = resample_widefield(
        pair.widefield.data,
        pair.widefield.voxel_um,
        pair.initial,
        pair.confocal.data.shape,
        pair.confocal.voxel_um,
    )
    mask = result.overlap_mask
    assert result.confocal.shape == result.aligned_widefield.shape
    after_r = np.corrcoef(result.aligned_widefield[mask], result.confocal[mask])[0, 1]
    before_r = np.corrcoef(first[mask], result.confocal[mask])[0, 1]
    assert after_r > before_r + 0.1


@pytest.mark.parametrize(
    ("confocal_of", "widefield_of"), [("40x", "63x"), ("63x", "40x")]
)
def test_wrong_partner_is_flagged(
    pairs: dict[str, SimulatedPair], confocal_of: str, widefield_of: str
) -> None:
    # a wide-field stack of another cell (another pair), at the place and with
    # the initial estimate the confocal stack's own partner would have had
    mine, other = pairs[confocal_of], pairs[widefield_of]
    result = register_pair(
        other.widefield.data,
        mine.confocal.data,
        widefield_voxel_um=other.widefield.voxel_um,
        confocal_voxel_um=mine.confocal.voxel_um,
        initial=mine.initial,
    )
    assert not result.accepted
    assert result.reason.startswith("flagged")


def test_simulated_wrong_partner_keeps_the_truth_apart() -> None:
    pair = simulate_pair(
        4, widefield_objective="40x", wrong_partner="no_overlap", field_px=128
    )
    assert not pair.overlaps
    # the wide-field stack was taken 150 um away from where the initial says
    assert (
        np.hypot(*(pair.truth.translation_array - pair.initial.translation_array)[1:])
        > 100
    )
    result = register_pair(
        pair.widefield.data,
        pair.confocal.data,
        widefield_voxel_um=pair.widefield.voxel_um,
        confocal_voxel_um=pair.confocal.voxel_um,
        initial=pair.initial,
    )
    assert not result.accepted


def test_no_overlap_is_flagged() -> None:
    rng = np.random.default_rng(3)
    confocal = rng.normal(10.0, 1.0, (16, 128, 128)).astype(np.float32)
    widefield = rng.normal(10.0, 1.0, (16, 96, 96)).astype(np.float32)
    # the initial estimate puts the confocal field 100 um beside the wide field
    initial = PairTransform.from_arrays(np.eye(2), [0.0, 100.0, 0.0])
    result = register_pair(
        widefield,
        confocal,
        widefield_voxel_um=WIDEFIELD_VOXEL,
        confocal_voxel_um=CONFOCAL_VOXEL,
        initial=initial,
    )
    assert not result.accepted
    assert "overlap" in result.reason
    assert result.quality.overlap_fraction < 0.5
