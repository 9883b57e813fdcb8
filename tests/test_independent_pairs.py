"""The independent pair renderer (bench/independent_pairs.py) itself.

Its ground truth is checked by locating beads in each stack with a localiser
written here (background-subtracted lateral centroid, axial mean shift on the
per-plane sum of squares), not with anything from the renderer.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import independent_pairs as ip

MODULE = Path(__file__).resolve().parents[1] / "bench" / "independent_pairs.py"


def locate(
    stack: np.ndarray,
    voxel: tuple[float, float, float],
    guess_zyx_um: np.ndarray,
    *,
    half_px: int = 5,
    ring_px: tuple[int, int] = (7, 10),
    window_um: float = 0.5,
) -> np.ndarray:
    """A bead's centred (z, y, x) um near ``guess_zyx_um``."""
    nz, ny, nx = stack.shape
    dz, dy, dx = voxel
    j0 = round(guess_zyx_um[1] / dy + (ny - 1) / 2)
    i0 = round(guess_zyx_um[2] / dx + (nx - 1) / 2)
    r = ring_px[1]
    sub = stack[:, j0 - r : j0 + r + 1, i0 - r : i0 + r + 1].astype(np.float64)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    rr = np.hypot(yy, xx)
    ring = (rr >= ring_px[0]) & (rr <= ring_px[1])
    sub = sub - np.median(sub[:, ring], axis=1)[:, None, None]
    proj = sub.max(axis=0) * (rr <= 3)
    jj, ii = np.unravel_index(np.argmax(proj), proj.shape)
    box = (np.abs(yy - (jj - r)) <= half_px) & (np.abs(xx - (ii - r)) <= half_px)
    s2 = (sub[:, box] ** 2).sum(axis=1)
    z = (np.arange(nz) - (nz - 1) / 2) * dz
    z0 = float(z[np.argmax(s2)])
    for _ in range(40):
        g = np.exp(-((z - z0) ** 2) / (2 * window_um**2))
        z0 = float((z * g * s2).sum() / (g * s2).sum())
    g = np.exp(-((z - z0) ** 2) / (2 * (window_um / 2) ** 2))
    image = (sub * g[:, None, None]).sum(axis=0) * box
    y0 = (image * yy).sum() / image.sum() + j0 - (ny - 1) / 2
    x0 = (image * xx).sum() / image.sum() + i0 - (nx - 1) / 2
    return np.array([z0, y0 * dy, x0 * dx])


def peaks(stack: np.ndarray, voxel: tuple[float, float, float], n: int) -> np.ndarray:
    """Centred (z, y, x) um of the ``n`` brightest isolated maxima."""
    nz, ny, nx = stack.shape
    proj = stack.max(axis=0).astype(np.float64)
    proj -= np.median(proj)
    found = []
    edge = 12
    work = proj.copy()
    work[:edge] = work[-edge:] = 0
    work[:, :edge] = work[:, -edge:] = 0
    for _ in range(n):
        j, i = np.unravel_index(np.argmax(work), work.shape)
        k = int(np.argmax(stack[:, j, i]))
        found.append(
            [
                (k - (nz - 1) / 2) * voxel[0],
                (j - (ny - 1) / 2) * voxel[1],
                (i - (nx - 1) / 2) * voxel[2],
            ]
        )
        work[max(j - 15, 0) : j + 16, max(i - 15, 0) : i + 16] = 0
    return np.array(found)


# --------------------------------------------------------------------------
# Ground truth


@pytest.mark.parametrize(
    ("psf", "widefield_pixel_um", "axial_scale", "rotation_deg", "lateral_scale"),
    [
        ("gaussian", 0.1625, 0.93, 4.5, 1.01),
        ("gaussian", 0.103, 1.07, -5.0, 0.99),
        ("debye", 0.1625, 1.05, -3.0, 0.995),
        ("debye", 0.103, 0.95, 2.0, 1.0),
    ],
)
def test_truth_maps_confocal_beads_onto_widefield_beads(
    psf: str,
    widefield_pixel_um: float,
    axial_scale: float,
    rotation_deg: float,
    lateral_scale: float,
) -> None:
    pair = ip.render_pair(
        11,
        psf=psf,
        specimen="beads",
        beads=8,
        field_px=192,
        widefield_pixel_um=widefield_pixel_um,
        axial_scale=axial_scale,
        rotation_deg=rotation_deg,
        lateral_scale=lateral_scale,
        spherical_waves=(0.0, 0.0),
        snr="none",
    )
    assert pair.truth_axial_scale == pytest.approx(axial_scale)
    assert pair.truth_matrix == pytest.approx(
        lateral_scale * ip._rotation(rotation_deg), abs=1e-12
    )
    # Find the beads in the confocal stack, locate them there, map them with
    # the truth, locate them in the wide-field stack near where it says.
    found = peaks(pair.confocal, pair.confocal_voxel_um, 8)
    confocal = np.array(
        [locate(pair.confocal, pair.confocal_voxel_um, p) for p in found]
    )
    mapped = pair.truth_apply(confocal)
    widefield = np.array(
        [locate(pair.widefield, pair.widefield_voxel_um, p) for p in mapped]
    )
    error = np.abs(mapped - widefield)
    assert error[:, 0].max() < 0.05, error
    assert error[:, 1:].max() < 0.03, error
    # Each stack also agrees with where the geometry put the beads.
    known_c = np.array(pair.description["beads_confocal_zyx_um"])
    known_w = np.array(pair.description["beads_widefield_zyx_um"])
    nearest = np.argmin(
        np.linalg.norm(confocal[:, None, 1:] - known_c[None, :, 1:], axis=2), axis=1
    )
    assert sorted(nearest.tolist()) == list(range(8))
    assert np.abs(confocal - known_c[nearest]).max() < 0.03
    assert np.abs(widefield - known_w[nearest]).max() < 0.05
    assert np.abs(pair.truth_apply(known_c) - known_w).max() < 1e-9


def test_truth_agrees_with_pair_transform_convention() -> None:
    from correlate.registration import PairTransform, transform_difference

    pair = ip.render_pair(
        5, field_px=128, rotation_deg=3.0, lateral_scale=1.008, snr="none"
    )
    fields = {f.name for f in dataclasses.fields(PairTransform)}
    points = np.random.default_rng(0).uniform(-6, 6, (50, 3))
    if "axial_scale" in fields:
        truth = PairTransform.from_arrays(
            pair.truth_matrix, pair.truth_translation_um, pair.truth_axial_scale
        )
        assert truth.apply(points) == pytest.approx(pair.truth_apply(points), abs=1e-12)
    else:  # older PairTransform: z_w = z_c + tz; compare laterally
        truth = PairTransform.from_arrays(pair.truth_matrix, pair.truth_translation_um)
        assert truth.apply(points)[:, 1:] == pytest.approx(
            pair.truth_apply(points)[:, 1:], abs=1e-12
        )
    assert truth.rotation_deg == pytest.approx(3.0, abs=1e-9)
    assert truth.scale == pytest.approx(1.008, abs=1e-12)
    same = transform_difference(
        truth,
        truth,
        confocal_shape=pair.confocal.shape,
        confocal_voxel_um=pair.confocal_voxel_um,
    )
    assert same.lateral_max_um == 0.0


def test_stack_geometry_round_trip() -> None:
    pair = ip.render_pair(2, field_px=96, snr="none")
    geometry = pair.description["geometry"]
    conf = ip.StackGeometry(
        tuple(geometry["confocal"]["shape"]),
        tuple(geometry["confocal"]["voxel_um"]),
        np.array(geometry["confocal"]["lateral_matrix"]),
        np.array(geometry["confocal"]["origin_uv_um"]),
        geometry["confocal"]["height_mid_um"],
        geometry["confocal"]["axial_stretch"],
    )
    wf = ip.StackGeometry(
        tuple(geometry["widefield"]["shape"]),
        tuple(geometry["widefield"]["voxel_um"]),
        np.array(geometry["widefield"]["lateral_matrix"]),
        np.array(geometry["widefield"]["origin_uv_um"]),
        geometry["widefield"]["height_mid_um"],
        geometry["widefield"]["axial_stretch"],
    )
    sample = np.random.default_rng(1).uniform([-1, -20, -20], [8, 20, 20], (40, 3))
    assert pair.truth_apply(conf.to_stack(sample)) == pytest.approx(
        wf.to_stack(sample), abs=1e-10
    )


# --------------------------------------------------------------------------
# Physics


def _single_bead(
    optics: ip.Optics, *, px: int = 160, pixel: float = 0.1, dz: float = 0.2
) -> np.ndarray:
    geometry = ip.StackGeometry(
        shape=(41, px, px),
        voxel_um=(dz, pixel, pixel),
        lateral=np.eye(2),
        origin_uv_um=np.zeros(2),
        height_mid_um=3.0,
        axial_stretch=1.0,
    )
    bead = ip.bead_specimen(np.array([[3.0, 0.0, 0.0]]))
    signal, _ = ip.render_signal(bead, geometry, optics)
    return signal


@pytest.mark.parametrize("family", ["gaussian", "debye"])
def test_widefield_has_no_sectioning_and_confocal_does(family: str) -> None:
    wf = _single_bead(ip.Optics(family, "widefield", 1.3, 0.52), pixel=0.1625)
    flux = wf.sum(axis=(1, 2))
    assert flux.max() / flux.min() - 1 < 2e-3
    peak = wf.max(axis=(1, 2))
    assert peak[20] > 10 * peak[0]  # but it does blur out of focus
    cf = _single_bead(ip.Optics(family, "confocal", 1.4, 0.52))
    flux = cf.sum(axis=(1, 2))
    assert int(np.argmax(flux)) == 20
    assert flux[0] < 0.1 * flux[20] and flux[-1] < 0.1 * flux[20]
    assert (np.diff(flux[:21]) > 0).all() and (np.diff(flux[20:]) < 0).all()
    assert flux[20 - 5] == pytest.approx(flux[20 + 5], rel=1e-3)  # symmetric


def test_debye_spherical_aberration_makes_the_psf_asymmetric_in_z() -> None:
    def profile(waves: float) -> np.ndarray:
        optics = ip.Optics("debye", "widefield", 1.4, 0.52, spherical_waves=waves)
        return _single_bead(optics, px=96)[:, 47:50, 47:50].sum(axis=(1, 2))

    plain = profile(0.0)
    aberrated = profile(0.1)
    for p in (plain, aberrated):
        assert int(np.argmax(p)) == 20  # the defocus origin is the peak
    below, above = plain[20 - np.arange(2, 9)], plain[20 + np.arange(2, 9)]
    assert np.abs(below / above - 1).max() < 0.01
    below, above = aberrated[20 - np.arange(2, 9)], aberrated[20 + np.arange(2, 9)]
    assert np.abs(below / above - 1).max() > 0.3


def test_debye_depth_dependent_aberration_renders() -> None:
    pair = ip.render_pair(
        4,
        psf="debye",
        field_px=96,
        spherical_waves=(0.02, -0.02),
        spherical_waves_per_um=0.01,
        snr="none",
    )
    assert pair.description["render"]["widefield"]["otf_nodes"] > 1
    assert np.isfinite(pair.widefield).all() and np.isfinite(pair.confocal).all()


def test_noise_models() -> None:
    noisy = ip.render_pair(6, field_px=96, snr="normal")
    clean = ip.render_pair(6, field_px=96, snr="none")
    assert noisy.widefield.dtype == np.float32 == noisy.confocal.dtype
    assert (noisy.widefield == np.rint(noisy.widefield)).all()
    assert (noisy.confocal >= 0).all()
    # wide field: ~Poisson in electrons, plus per-column offsets
    wf = noisy.description["noise"]["widefield"]
    gain = wf["e_per_adu"]
    residual = (noisy.widefield - clean.widefield).astype(np.float64)
    electrons = (clean.widefield - wf["offset_adu"]) * gain
    ratio = (residual * gain) ** 2 / np.maximum(electrons, 1)
    assert 0.8 < ratio.mean() < 1.3
    column = residual.mean(axis=(0, 1))
    assert column.std() > 0.3
    # confocal: variance above Poisson (gain noise), mean preserved
    cf = noisy.description["noise"]["confocal"]
    excess = cf["excess_noise_factor"]
    g = cf["counts_per_pe"]
    bright = clean.confocal > np.percentile(clean.confocal, 99)
    pe = (clean.confocal[bright] - cf["dark_offset"]) / g
    diff = (noisy.confocal[bright] - clean.confocal[bright]) / g
    assert abs(diff.mean()) < 0.1 * pe.mean()
    assert 0.7 * excess < (diff**2).mean() / pe.mean() < 1.4 * excess


# --------------------------------------------------------------------------
# API, determinism, wrong pairs


def test_shapes_voxels_and_determinism() -> None:
    kwargs = {
        "field_px": 128,
        "widefield_planes": 25,
        "confocal_planes": 23,
        "confocal_pixel_um": 0.1,
        "confocal_dz_um": 0.25,
        "widefield_dz_um": 0.3,
        "widefield_pixel_um": 0.1625,
    }
    a = ip.render_pair(3, **kwargs)
    b = ip.render_pair(3, **kwargs)
    c = ip.render_pair(4, **kwargs)
    assert a.confocal.shape == (23, 128, 128)
    assert a.widefield.shape[0] == 25 and a.widefield.shape[1] == a.widefield.shape[2]
    assert a.widefield.shape[1] >= 128
    assert a.confocal_voxel_um == (0.25, 0.1, 0.1)
    assert a.widefield_voxel_um == (0.3, 0.1625, 0.1625)
    assert np.array_equal(a.widefield, b.widefield)
    assert np.array_equal(a.confocal, b.confocal)
    assert a.truth_translation_um == b.truth_translation_um
    assert not np.array_equal(a.confocal, c.confocal)
    json.dumps(a.description)
    # the wide-field field covers the confocal field (turned) with a margin
    _, ny, nx = a.confocal.shape
    corners = np.array(
        [
            [0, sy * (ny - 1) / 2 * 0.1, sx * (nx - 1) / 2 * 0.1]
            for sy in (-1, 1)
            for sx in (-1, 1)
        ]
    )
    half_w = (a.widefield.shape[1] - 1) / 2 * 0.1625
    assert np.abs(a.truth_apply(corners)[:, 1:]).max() < half_w - 1.9


def test_drawn_values_stay_in_their_ranges() -> None:
    for seed in range(6):
        pair = ip.render_pair(seed, field_px=64, snr="none", specimen="beads", beads=1)
        d = pair.description
        assert abs(d["rotation_deg"]) <= 5
        assert 0.99 <= d["lateral_scale"] <= 1.01
        assert 0.93 <= pair.truth_axial_scale <= 1.07
        assert abs(pair.truth_translation_um[0]) <= 2.0 + 1e-9
        assert (
            21 <= d["planes"]["confocal"] <= 41 and 21 <= d["planes"]["widefield"] <= 41
        )
        assert 1.5 <= d["specimen_thickness_um"] <= 7.0
        assert d["placement"] != "centred"
        assert abs(d["confocal_z"]["specimen_centre_offset_half_ranges"]) >= 0.25
        assert 0 < d["confocal_z"]["specimen_fraction_inside"] <= 1


def test_starts() -> None:
    exact = ip.render_pair(9, field_px=64, start="exact", snr="none")
    assert np.array_equal(exact.initial_matrix, exact.truth_matrix)
    assert exact.initial_translation_um == exact.truth_translation_um
    assert exact.initial_axial_scale == exact.truth_axial_scale
    identity = ip.render_pair(9, field_px=64, start="identity", snr="none")
    assert np.array_equal(identity.initial_matrix, np.eye(2))
    assert identity.initial_translation_um == (0.0, 0.0, 0.0)
    errors = []
    for seed in range(12):
        pair = ip.render_pair(
            seed, field_px=48, start="relocation", snr="none", specimen="beads", beads=1
        )
        assert np.array_equal(pair.initial_matrix, np.eye(2))
        assert pair.initial_axial_scale == 1.0
        errors.append(
            np.subtract(pair.initial_translation_um, pair.truth_translation_um)
        )
    errors = np.array(errors)
    assert 0.1 < errors[:, 0].std() < 0.6
    assert 0.2 < errors[:, 1:].std() < 1.0


def test_wrong_pairs() -> None:
    kwargs = {"field_px": 96, "snr": "none"}
    right = ip.render_pair(10, **kwargs)
    assert right.overlaps
    other = ip.render_pair(10, wrong="other_specimen", **kwargs)
    assert not other.overlaps
    assert other.initial_translation_um == right.initial_translation_um
    assert other.truth_translation_um == right.truth_translation_um
    assert np.array_equal(other.confocal, right.confocal)
    a = other.widefield - other.widefield.mean()
    b = right.widefield - right.widefield.mean()
    assert abs((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum())) < 0.5
    away = ip.render_pair(10, wrong="no_overlap", **kwargs)
    assert not away.overlaps
    assert away.initial_translation_um == right.initial_translation_um
    centre = away.truth_apply(np.zeros((1, 3)))[0, 1:]
    assert np.linalg.norm(centre) > 140  # the confocal field is 150 um away
    claimed = away.description["claimed_truth"]["translation_um"]
    assert claimed == pytest.approx(right.truth_translation_um)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="psf"):
        ip.render_pair(0, psf="airy")
    with pytest.raises(ValueError, match="cover"):
        ip.render_pair(0, field_px=128, widefield_px=64)
    with pytest.raises(ValueError, match="placement"):
        ip.render_pair(0, field_px=64, placement="middle")


def test_renderer_imports_neither_acquire_nor_correlate() -> None:
    tree = ast.parse(MODULE.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    assert not names & {"acquire", "correlate", "psfmodels"}
