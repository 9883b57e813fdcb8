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

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import independent_pairs as ip

MODULE = Path(__file__).resolve().parents[2] / "bench" / "independent_pairs.py"


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
        lateral_scale * ip.rotation(rotation_deg), abs=1e-12
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
    third_party = names - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= {"numpy", "scipy", "tifffile"}, third_party


# --------------------------------------------------------------------------
# Real volumes as specimens (crops in tests/data, see REAL_VOLUMES_LICENSE.md)

DATA = Path(__file__).resolve().parents[1] / "data"
YEAST = DATA / "yeast_mito_crop.ome.tif"  # OME voxel 0.25, 0.0655, 0.0655 um
NEURON = DATA / "neuron_crop.tif"  # no voxel size recorded


def brightest_blob(
    stack: np.ndarray, voxel: tuple[float, float, float], radius_um: float = 0.6
) -> np.ndarray:
    """Centred (z, y, x) um of the brightest compact blob of a noise-free stack.

    Per-plane median off, light smoothing, 3D maximum, then the centroid of
    what exceeds half that maximum within ``radius_um`` laterally and 1 um
    axially.
    """
    from scipy import ndimage

    s = stack.astype(np.float64)
    s = s - np.median(s, axis=(1, 2), keepdims=True)
    s = ndimage.gaussian_filter(s, (0.5, 0.15 / voxel[1], 0.15 / voxel[2]))
    k, j, i = np.unravel_index(np.argmax(s), s.shape)
    z, y, x = (
        (np.arange(n) - (n - 1) / 2) * v for n, v in zip(s.shape, voxel, strict=True)
    )
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    near = ((yy - y[j]) ** 2 + (xx - x[i]) ** 2 <= radius_um**2) & (
        np.abs(zz - z[k]) <= 1.0
    )
    w = np.where(near, np.clip(s - 0.5 * s[k, j, i], 0, None), 0.0)
    return np.array([(w * zz).sum(), (w * yy).sum(), (w * xx).sum()]) / w.sum()


def confocal_through_truth(pair: ip.IndependentPair) -> np.ndarray:
    """The confocal stack resampled on the wide-field grid via the truth (NaN out)."""
    from scipy import ndimage

    z, y, x = (
        (np.arange(n) - (n - 1) / 2) * v
        for n, v in zip(pair.widefield.shape, pair.widefield_voxel_um, strict=True)
    )
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    tz, ty, tx = pair.truth_translation_um
    yx = np.stack([yy - ty, xx - tx], axis=-1) @ np.linalg.inv(pair.truth_matrix).T
    zc = (zz - tz) / pair.truth_axial_scale
    cz, cy, cx = pair.confocal.shape
    dz, dy, dx = pair.confocal_voxel_um
    index = np.stack(
        [
            zc / dz + (cz - 1) / 2,
            yx[..., 0] / dy + (cy - 1) / 2,
            yx[..., 1] / dx + (cx - 1) / 2,
        ]
    )
    return ndimage.map_coordinates(
        pair.confocal.astype(np.float64), index, order=1, cval=np.nan
    )


def lateral_correlation_peak(pair: ip.IndependentPair, reach: int = 2) -> np.ndarray:
    """(y, x) wide-field pixels of the peak of the wide field's normalised
    cross-correlation with the confocal stack resampled through the truth."""
    c = confocal_through_truth(pair)
    valid = np.isfinite(c)
    c = np.where(valid, c - np.nanmedian(c), 0.0)
    w = pair.widefield.astype(np.float64)
    w = w - np.median(w, axis=(1, 2), keepdims=True)
    _, ny, nx = w.shape
    core = c[:, reach : ny - reach, reach : nx - reach]
    inside = valid[:, reach : ny - reach, reach : nx - reach]
    score = np.zeros((2 * reach + 1, 2 * reach + 1))
    for a in range(-reach, reach + 1):
        for b in range(-reach, reach + 1):
            shifted = w[:, reach + a : ny - reach + a, reach + b : nx - reach + b]
            score[a + reach, b + reach] = (shifted * core).sum() / math.sqrt(
                (shifted[inside] ** 2).sum()
            )
    j, i = np.unravel_index(np.argmax(score), score.shape)
    assert 0 < j < 2 * reach and 0 < i < 2 * reach, score
    out = []
    for y0, y1, y2 in (score[j - 1 : j + 2, i], score[j, i - 1 : i + 2]):
        out.append(0.5 * (y0 - y2) / (y0 - 2 * y1 + y2))
    return np.array([j - reach + out[0], i - reach + out[1]])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_volume_truth_maps_a_real_feature(seed: int) -> None:
    # One yeast copy (a mitochondrial ring and a bright compact blob), the
    # whole of it inside both stacks; noise free.
    pair = ip.render_pair(
        seed,
        field_px=128,
        specimen="volume",
        volume_path=YEAST,
        volume_copies=1,
        placement="centred",
        confocal_planes=31,
        widefield_planes=31,
        confocal_dz_um=0.25,
        widefield_dz_um=0.25,
        snr="none",
    )
    assert pair.description["confocal_z"]["specimen_fraction_inside"] == 1.0
    wf_px = pair.widefield_voxel_um[1]
    # The blob, found in each stack on its own, lands where the truth says.
    confocal = brightest_blob(pair.confocal, pair.confocal_voxel_um)
    widefield = brightest_blob(pair.widefield, pair.widefield_voxel_um)
    error = widefield - pair.truth_apply(confocal)
    assert np.abs(error[1:]).max() < 0.5 * wf_px, error
    assert abs(error[0]) < 0.8 * pair.widefield_voxel_um[0], error
    # The whole confocal stack resampled through the truth correlates best
    # with the wide field at zero lateral shift.
    peak = lateral_correlation_peak(pair)
    assert np.abs(peak).max() < 0.25, peak


def test_volume_voxel_from_ome_metadata_or_caller() -> None:
    yeast = ip.volume_emitters(YEAST)
    assert yeast.info["voxel_um"] == pytest.approx([0.25, 0.0655, 0.0655])
    assert yeast.info["voxel_from"] == "OME metadata"
    # binned laterally to 3 x 0.0655 um; sigma 0.55 x pitch: a continuous object
    assert yeast.info["lateral_bin"] == 3
    assert yeast.sigma_lateral_um == pytest.approx(0.55 * 3 * 0.0655)
    assert yeast.sigma_axial_um == pytest.approx(0.55 * 0.25)
    assert yeast.zyx_um[:, 0].min() == pytest.approx(0.125)  # on the glass
    assert yeast.height_um == pytest.approx(yeast.zyx_um[:, 0].max() + 0.125)
    # emitters sit at bin centres: 3 x 0.0655 um apart, offset by the centroid
    frac = (yeast.zyx_um[:, 1] - yeast.zyx_um[0, 1]) / (3 * 0.0655)
    assert np.abs(frac - np.rint(frac)).max() < 1e-9
    given = ip.volume_emitters(YEAST, (0.5, 0.1, 0.1))
    assert given.info["voxel_from"] == "caller"
    assert given.info["file_voxel_um"] == pytest.approx([0.25, 0.0655, 0.0655])
    with pytest.raises(ValueError, match=r"neuron_crop\.tif.*volume_voxel_um"):
        ip.volume_emitters(NEURON)
    with pytest.raises(ValueError, match=r"neuron_crop\.tif.*volume_voxel_um"):
        ip.render_pair(0, field_px=64, specimen="volume", volume_path=NEURON)
    neuron = ip.volume_emitters(NEURON, (0.8, 0.8, 0.8))
    assert neuron.info["voxel_from"] == "caller"
    assert neuron.info["file_voxel_um"] is None
    assert "estimate" in neuron.info["voxel_note"]
    assert neuron.info["lateral_bin"] == 1
    assert neuron.sigma_lateral_um == pytest.approx(0.44)


def test_volume_description_copies_and_determinism() -> None:
    kwargs = {
        "field_px": 256,
        "specimen": "volume",
        "volume_path": YEAST,
        "snr": "none",
        "confocal_pixel_um": 0.1,
    }
    a = ip.render_pair(5, **kwargs)
    b = ip.render_pair(5, **kwargs)
    assert np.array_equal(a.widefield, b.widefield)
    assert np.array_equal(a.confocal, b.confocal)
    json.dumps(a.description)
    v = a.description["specimen"]
    assert v["kind"] == "volume"
    assert v["file"] == YEAST.name and Path(v["source"]) == YEAST.resolve()
    assert v["voxel_um"] == pytest.approx([0.25, 0.0655, 0.0655])
    assert v["copies_requested"] == "auto"
    copies = v["copies"]
    assert len(copies) >= 4
    assert v["emitters"] == sum(c["emitters"] for c in copies) <= 300_000
    assert a.description["render"]["widefield"]["emitters_rendered"] <= v["emitters"]
    for c in copies:
        assert set(c) >= {"centroid_uv_um", "rotation_deg", "mirrored", "emitters"}
    assert a.description["specimen_thickness_um"] == pytest.approx(v["height_um"])
    # structure in several places of the confocal field
    assert sum(c["centroid_in_confocal_field"] for c in copies) >= 2
    from scipy import ndimage

    mip = a.confocal.max(axis=0).astype(np.float64)
    mip -= np.median(mip)
    _, n_parts = ndimage.label(
        ndimage.binary_dilation(mip > 0.3 * mip.max(), iterations=3)
    )
    assert n_parts >= 2
    # a given number of copies
    two = ip.render_pair(5, **{**kwargs, "volume_copies": 2, "field_px": 128})
    assert len(two.description["specimen"]["copies"]) == 2


def test_volume_wide_emitters_render_like_narrow_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Emitters wider than the built-in ones (coarse voxels) are rendered on a
    # coarser fine grid and coarser height levels; one zero-weight narrow
    # emitter forces the usual fine grid and levels: same image. (Footprints
    # out to 5 sigmas, so that their truncation, identical in intent but not
    # in pixels, does not dominate the difference.)
    monkeypatch.setattr(ip, "FOOTPRINT_SIGMAS", 5.0)
    neuron = ip.volume_emitters(NEURON, (0.6, 0.6, 0.6))
    h_mid = float(np.median(neuron.zyx_um[:, 0]))
    near = (np.abs(neuron.zyx_um[:, 1:]) < 4.0).all(axis=1) & (
        np.abs(neuron.zyx_um[:, 0] - h_mid) < 2.0
    )
    n = int(near.sum())
    wide = ip.Specimen(
        neuron.zyx_um[near],
        neuron.weight[near],
        np.full(n, neuron.sigma_lateral_um),
        np.full(n, neuron.sigma_axial_um),
        {},
    )
    probe = ip.bead_specimen(np.array([[h_mid, 0.0, 0.0]]), brightness=0.0)
    narrow = ip.Specimen.join([wide, probe], {})
    geometry = ip.StackGeometry(
        shape=(11, 48, 48),
        voxel_um=(0.25, 0.1, 0.1),
        lateral=ip.rotation(20.0),
        origin_uv_um=np.array([0.3, -0.2]),
        height_mid_um=h_mid,
        axial_stretch=1.0,
    )
    for family in ("gaussian", "debye"):
        for modality, na in (("confocal", 1.4), ("widefield", 1.3)):
            optics = ip.Optics(family, modality, na, 0.52)
            coarse, info_c = ip.render_signal(wide, geometry, optics)
            fine, info_f = ip.render_signal(narrow, geometry, optics)
            assert info_c["fine_grid"][0] < info_f["fine_grid"][0] / 2
            assert info_c["level_step_um"] > info_f["level_step_um"]
            error = np.abs(coarse - fine).max() / np.abs(fine).max()
            assert error < 5e-6, (family, modality, error)


def test_volume_renders_a_neuron_with_a_given_voxel() -> None:
    pair = ip.render_pair(
        1,
        field_px=128,
        specimen="volume",
        volume_path=NEURON,
        volume_voxel_um=(0.8, 0.8, 0.8),
        snr="none",
    )
    v = pair.description["specimen"]
    assert v["voxel_from"] == "caller" and v["voxel_um"] == [0.8, 0.8, 0.8]
    assert pair.description["render"]["confocal"]["emitters_rendered"] > 100
    assert np.isfinite(pair.confocal).all() and np.isfinite(pair.widefield).all()
    mip = pair.confocal.max(axis=0).astype(np.float64) - pair.confocal.min()
    # structure (the soma's edge), not a blank or uniform field
    assert np.percentile(mip, 90) > 10 * np.percentile(mip, 10) + 1.0


def test_volume_wrong_pairs_and_bad_arguments() -> None:
    kwargs = {
        "field_px": 96,
        "snr": "none",
        "specimen": "volume",
        "volume_path": YEAST,
    }
    right = ip.render_pair(10, **kwargs)
    other = ip.render_pair(10, wrong="other_specimen", **kwargs)
    assert np.array_equal(other.confocal, right.confocal)
    assert not np.array_equal(other.widefield, right.widefield)
    assert other.truth_translation_um == right.truth_translation_um
    with pytest.raises(ValueError, match="volume_path"):
        ip.render_pair(0, field_px=64, specimen="volume")
    with pytest.raises(ValueError, match="specimen_thickness_um"):
        ip.render_pair(0, specimen_thickness_um=3.0, **kwargs)
    with pytest.raises(ValueError, match="volume_copies"):
        ip.render_pair(0, volume_copies=0, **kwargs)


def test_existing_kinds_render_as_before() -> None:
    # Sums of small noise-free renders recorded before volume specimens were
    # added (the arrays were then checked bit-identical by hash; sums with a
    # tight tolerance survive BLAS/FFT differences between machines).
    common = {
        "field_px": 64,
        "widefield_px": 96,
        "snr": "none",
        "confocal_planes": 9,
        "widefield_planes": 9,
    }
    recorded = {
        "mixture": (
            11,
            {},
            (67770475.7394104, 63715592583.24912, 86155.13537597656),
            (388163.96789586544, 24384605.52378874, 331.5239040851593),
        ),
        "beads": (
            12,
            {"specimen": "beads", "beads": 2},
            (37373810.01635742, 19246109098.263977, 51993.848571777344),
            (204489.52634358406, 20152436.01507442, 170.7015461921692),
        ),
    }
    for seed, extra, wf_sums, conf_sums in recorded.values():
        pair = ip.render_pair(seed, **common, **extra)
        for stack, sums in ((pair.widefield, wf_sums), (pair.confocal, conf_sums)):
            a = stack.astype(np.float64)
            mid = a[a.shape[0] // 2].ravel()[::97]
            got = (a.sum(), (a**2).sum(), mid.sum())
            assert got == pytest.approx(sums, rel=1e-6)
