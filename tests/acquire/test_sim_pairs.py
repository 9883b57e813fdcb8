"""Simulated wide-field/confocal pairs and their true transform (acquire.sim.pairs).

The truth is checked against what is recomputed here from each scope on its
own: where the specimen's beads really are (the volume cell's ground truth),
the scope's hidden mount, camera geometry and focal shift give each bead's
position in each stack; and the beads are also located in the rendered stacks
themselves (peak of the on-axis profile, lateral centroid) with nothing from
the simulator but the images and the voxel sizes.

The beads are a small volume cell written here: 3x3-voxel discs (one 0.2 um
plane thick, so axially points) at five heights, 3 um apart laterally.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from acquire.hardware import microscope
from acquire.sim import groundtruth
from acquire.sim.focal_shift import focal_shift
from acquire.sim.pairs import (
    CONFOCAL_OBJECTIVE,
    WIDEFIELD_OBJECTIVES,
    SimulatedPair,
    SimulatedStack,
    simulate_pair,
)

FIELD_PX = 256
N_PLANES = 25
Z_STEP_UM = 0.1
CENTRE_UM = 3.0
BEAD_HEIGHT_UM = 2.5
BEAD_VOXEL = (0.2, 0.125, 0.125)
BEADS = ((0, 32, 32), (1, 8, 32), (2, 32, 56), (3, 56, 32), (4, 32, 8))
"""(iz, iy, ix) of each bead in the volume: heights 2.6-3.4 um, a cross."""
YEAST = Path(__file__).resolve().parents[1] / "data" / "yeast_mito_crop.ome.tif"


@pytest.fixture(scope="module")
def bead_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    volume = np.zeros((5, 65, 65), np.float32)
    for iz, iy, ix in BEADS:
        volume[iz, iy - 1 : iy + 2, ix - 1 : ix + 2] = 1000.0
    path = tmp_path_factory.mktemp("beads") / "beads.npy"
    np.save(path, volume)
    return path


def _bead_pair(
    tmp_path_factory: pytest.TempPathFactory,
    bead_file: Path,
    seed: int,
    medium: str | tuple[str, str],
    brightness: float,
) -> tuple[SimulatedPair, Path]:
    workdir = tmp_path_factory.mktemp("pair")
    voxel = ":".join(str(v) for v in BEAD_VOXEL)
    pair = simulate_pair(
        seed,
        field_px=FIELD_PX,
        n_planes=N_PLANES,
        z_step_um=Z_STEP_UM,
        sample_medium=medium,
        volumes=[
            f"{bead_file}@{voxel}@brightness={brightness}@height={BEAD_HEIGHT_UM}"
        ],
        cell="V00",
        stack_centre_height_um=CENTRE_UM,
        workdir=workdir,
    )
    return pair, workdir


@pytest.fixture(scope="module")
def pairs(
    tmp_path_factory: pytest.TempPathFactory, bead_file: Path
) -> dict[str, tuple[SimulatedPair, Path]]:
    # the confocal saturates an index-matched bead at the water brightness
    return {
        "matched": _bead_pair(tmp_path_factory, bead_file, 3, "matched", 4.0),
        "water": _bead_pair(tmp_path_factory, bead_file, 4, "water", 20.0),
        "matched/water": _bead_pair(
            tmp_path_factory, bead_file, 5, ("matched", "water"), 4.0
        ),
    }


# -- recomputation from each scope's own ground truth ---------------------------


def _scope_truth(
    workdir: Path, scope: str, stack: SimulatedStack
) -> tuple[np.ndarray, float, float]:
    """Beads' (z, y, x) in the stack from the scope's mount, camera and F.

    Also the stage Z that focuses CENTRE_UM at the stack's axis, and the
    focal-shift slope there.
    """
    objective = (
        CONFOCAL_OBJECTIVE if scope == "confocal" else WIDEFIELD_OBJECTIVES["40x"]
    )
    core = microscope.open_core(workdir / f"{scope}.cfg")
    try:
        microscope.set_objective(core, objective)
        camera = groundtruth.simulated_camera(core)
        lens = camera.read_scope_state().objective
        shift = focal_shift(camera.optical_setup(lens))
        mount = camera.mount()
        geometry = camera.geometry(lens)
        volume = camera.specimen().volume_cells[0]
    finally:
        microscope.close_core(core)
    local = (np.array(BEADS, np.float64)[:, ::-1] + 0.5) * BEAD_VOXEL[::-1]
    sample = volume.volume_to_sample(local)
    physical = mount.sample_to_physical(sample)
    axes = geometry.pixel_to_stage / geometry.pixel_size_um
    xy = (physical[:, :2] - np.asarray(stack.axis_xy_um)) @ np.linalg.inv(axes).T
    glass = float(mount.surface_height_um(np.asarray(stack.axis_xy_um)))
    focus = glass + shift.nominal_focus_um(sample[:, 2])
    beads = np.column_stack([focus - stack.focus_offset_um, xy[:, 1], xy[:, 0]])
    centre_z = glass + float(shift.nominal_focus_um(CENTRE_UM))
    return (
        beads,
        centre_z,
        float(
            shift.nominal_focus_um(CENTRE_UM + 0.5)
            - shift.nominal_focus_um(CENTRE_UM - 0.5)
        ),
    )


def _nearest(points: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each point, the candidate nearest to it laterally."""
    lateral = np.linalg.norm(candidates[None, :, 1:] - points[:, None, 1:], axis=2)
    nearest: np.ndarray = candidates[np.argmin(lateral, axis=1)]
    return nearest


# -- locating beads in the images alone -----------------------------------------


def _locate_beads(stack: SimulatedStack, n: int) -> np.ndarray:
    """(z, y, x) in centred stack um of the ``n`` brightest point-like spots.

    Lateral: centroid over +-0.4 um in the three planes about the brightest.
    Axial: vertex of a parabola through the on-axis (3x3 px) profile over the
    nine planes about its maximum (+-0.4 um), as the focal shift defines focus.
    """
    data = stack.data.astype(np.float64)
    data -= np.median(data)
    dz, dy, dx = stack.voxel_um
    nz, ny, nx = data.shape
    smooth = ndimage.gaussian_filter(data, (1, 1.5, 1.5))
    peaks = smooth == ndimage.maximum_filter(smooth, size=(5, 9, 9))
    peaks[:2] = peaks[-2:] = False  # a spot beyond the stack's ends
    found = np.argwhere(peaks)[np.argsort(smooth[peaks])[::-1][:n]]
    r = max(2, round(0.4 / dx))
    offsets = np.mgrid[-r : r + 1, -r : r + 1]
    located = []
    for k, row, col in found:
        window = data[
            max(k - 1, 0) : k + 2, row - r : row + r + 1, col - r : col + r + 1
        ]
        plane = np.clip(window, 0, None).sum(axis=0)
        y = row + (plane * offsets[0]).sum() / plane.sum()
        x = col + (plane * offsets[1]).sum() / plane.sum()
        profile = data[:, row - 1 : row + 2, col - 1 : col + 2].sum(axis=(1, 2))
        top = int(np.argmax(profile))
        near = np.arange(max(top - 4, 0), min(top + 5, nz))
        a, b, _ = np.polyfit(near, profile[near], 2)
        z = -b / (2 * a)
        located.append(
            ((z - (nz - 1) / 2) * dz, (y - (ny - 1) / 2) * dy, (x - (nx - 1) / 2) * dx)
        )
    return np.array(located)


# -- (a) index-matched ------------------------------------------------------------


def test_index_matched_truth_is_the_mounts_geometry(
    pairs: dict[str, tuple[SimulatedPair, Path]],
) -> None:
    pair, workdir = pairs["matched"]
    assert pair.truth.axial_scale == 1.0
    assert pair.initial.axial_scale == 1.0
    assert pair.model_error_um < 1e-9
    confocal, c_centre, c_slope = _scope_truth(workdir, "confocal", pair.confocal)
    widefield, w_centre, w_slope = _scope_truth(workdir, "widefield", pair.widefield)
    assert c_slope == pytest.approx(1.0) and w_slope == pytest.approx(1.0)
    np.testing.assert_allclose(pair.truth.apply(confocal), widefield, atol=1e-6)
    # the stacks are centred where CENTRE_UM is in focus (mounts without scale error)
    assert pair.confocal.stage_um[2] == pytest.approx(c_centre, abs=1e-9)
    assert pair.widefield.stage_um[2] == pytest.approx(w_centre, abs=1e-9)


# -- (b) a mismatched medium --------------------------------------------------------


@pytest.mark.parametrize("name", ["water", "matched/water"])
def test_axial_scale_is_the_ratio_of_focal_shift_slopes(
    pairs: dict[str, tuple[SimulatedPair, Path]], name: str
) -> None:
    pair, workdir = pairs[name]
    setups = {}
    for scope, objective in (
        ("confocal", CONFOCAL_OBJECTIVE),
        ("widefield", WIDEFIELD_OBJECTIVES["40x"]),
    ):
        core = microscope.open_core(workdir / f"{scope}.cfg")
        try:
            microscope.set_objective(core, objective)
            camera = groundtruth.simulated_camera(core)
            setups[scope] = camera.optical_setup(camera.read_scope_state().objective)
        finally:
            microscope.close_core(core)
    f_c, f_w = focal_shift(setups["confocal"]), focal_shift(setups["widefield"])
    # the heights the confocal planes look at, and where the WF has them in focus
    nominal_c = (
        float(f_c.nominal_focus_um(CENTRE_UM))
        + (np.arange(N_PLANES) - (N_PLANES - 1) / 2) * Z_STEP_UM
    )
    heights = f_c.depth_um(nominal_c)
    slope = np.polyfit(nominal_c, f_w.nominal_focus_um(heights), 1)[0]
    assert pair.truth.axial_scale == pytest.approx(slope, rel=0.005)
    assert pair.initial.axial_scale == 1.0
    if name == "water":
        assert 0.95 < pair.truth.axial_scale < 1.0  # NA 1.3 WF vs 1.4 confocal
    else:
        assert 1.15 < pair.truth.axial_scale < 1.35  # water under oil vs matched
    assert pair.model_error_um < 0.05


@pytest.mark.parametrize("name", ["matched", "water", "matched/water"])
def test_truth_maps_beads_from_confocal_to_widefield(
    pairs: dict[str, tuple[SimulatedPair, Path]], name: str
) -> None:
    pair, workdir = pairs[name]
    # from each scope's own geometry: exact up to the affine model's error
    confocal, c_centre, _ = _scope_truth(workdir, "confocal", pair.confocal)
    widefield, w_centre, _ = _scope_truth(workdir, "widefield", pair.widefield)
    mapped = pair.truth.apply(confocal)
    assert np.abs(mapped - widefield).max() <= 1.1 * pair.model_error_um + 1e-6
    assert pair.confocal.stage_um[2] == pytest.approx(c_centre, abs=1e-9)
    assert pair.widefield.stage_um[2] == pytest.approx(w_centre, abs=1e-9)
    # from the images alone
    found_c = _nearest(confocal, _locate_beads(pair.confocal, len(BEADS)))
    found_w = _nearest(widefield, _locate_beads(pair.widefield, len(BEADS)))
    assert np.abs(found_c[:, 1:] - confocal[:, 1:]).max() < 0.1  # found them all
    difference = pair.truth.apply(found_c) - found_w
    lateral_px = (
        np.hypot(difference[:, 1], difference[:, 2]) / pair.widefield.voxel_um[1]
    )
    assert lateral_px.max() < 0.3, lateral_px
    # each bead's focus is rendered to about +-0.03 um per stack (focal planes
    # on a 0.05 um grid, landing errors): the mean over five beads within 0.05
    assert abs(difference[:, 0].mean()) < 0.05, difference[:, 0]
    assert np.abs(difference[:, 0]).max() < 0.08, difference[:, 0]


# -- (c) real volumes as cells ------------------------------------------------------


def test_volume_cell_is_imaged_as_a_pair(tmp_path: Path) -> None:
    pair = simulate_pair(
        6,
        field_px=FIELD_PX,
        n_planes=5,
        z_step_um=0.5,
        volumes=[str(YEAST)],
        cell="V00",
        stack_centre_height_um=1.0,
        workdir=tmp_path,
    )
    core = microscope.open_core(tmp_path / "confocal.cfg")
    try:
        specimen = groundtruth.specimen_of(core)
    finally:
        microscope.close_core(core)
    assert specimen.all_cells[pair.cell_index].identity == "V00"
    assert pair.cell_index == len(specimen.cells)
    assert pair.truth.axial_scale == 1.0
    for stack in (pair.confocal, pair.widefield):
        data = stack.data.astype(np.float64)
        background = np.median(data)
        noise = 1.4826 * np.median(np.abs(data - background))
        signal = ndimage.uniform_filter(data, (1, 5, 5)) - background
        assert signal.max() > 20 * max(noise, 1.0), (signal.max(), noise)
        # a structure, not a speck: a few % of the field stands out
        bright = (signal > 5 * max(noise, 1.0)).mean()
        assert 0.005 < bright < 0.9, bright


def test_bad_options_fail_before_acquiring(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sample medium"):
        simulate_pair(0, sample_medium="honey", field_px=FIELD_PX, workdir=tmp_path)
    with pytest.raises(ValueError, match="refractive index"):
        simulate_pair(0, sample_medium=("matched", 0.5), workdir=tmp_path)
    with pytest.raises(ValueError, match="objective"):
        simulate_pair(0, widefield_objective="100x", workdir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="V00"):
        simulate_pair(0, cell="V00", field_px=FIELD_PX, workdir=tmp_path)
    with pytest.raises(IndexError, match="does not exist"):
        simulate_pair(0, cell=10_000, field_px=FIELD_PX, workdir=tmp_path)
