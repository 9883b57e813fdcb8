"""Real 3D volumes as cells of the simulated specimen (acquire.sim.volume_cells).

The two crops in tests/data are real acquisitions (see
tests/data/REAL_VOLUMES_LICENSE.md): yeast mitochondria with an OME voxel size,
and a Purkinje neuron's soma without one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
import zarr
from acquire_helpers import pairscope
from scipy import ndimage

from acquire.config.bundled import bundled_config
from acquire.hardware import microscope
from acquire.sim import groundtruth
from acquire.sim.specimen import Specimen, build_specimen, generate_specimen
from acquire.sim.volume_cells import (
    MAX_EMITTERS,
    VOLUME_PEAK_PHOTONS_PER_MS_PER_UM3,
    VolumeCellTruth,
    VolumeRequest,
    VolumeSpecimenError,
    load_volume_cell,
    parse_volume_property,
    read_volume,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

DATA = Path(__file__).resolve().parents[1] / "data"
YEAST = DATA / "yeast_mito_crop.ome.tif"
NEURON = DATA / "neuron_crop.tif"
YEAST_VOXEL = (0.25, 0.0655, 0.0655)
NEURON_VOXEL = (0.5, 0.4, 0.4)  # not recorded in the file; given by the tests
SEED = 7


def _sorted_rows(a: NDArray[np.float32]) -> NDArray[np.float32]:
    return a[np.lexsort(a.T[::-1])]


def _group(spec: Specimen, name: str) -> NDArray[np.float32]:
    """A group's emitters as sorted (x, y, h, photons) rows (index ties vary)."""
    e = spec.emitters_of(name)
    return _sorted_rows(np.column_stack((e.xyz_um, e.photons_per_ms)))


@pytest.fixture(scope="module")
def volumes() -> tuple[VolumeRequest, ...]:
    return (
        VolumeRequest(YEAST, rotation_deg=30.0),
        VolumeRequest(
            NEURON, voxel_um=NEURON_VOXEL, brightness=0.5, lattice_um=(0.25, 0.2)
        ),
    )


@pytest.fixture(scope="module")
def plain() -> Specimen:
    return build_specimen(SEED, n_cells=6)


@pytest.fixture(scope="module")
def with_volumes(volumes: tuple[VolumeRequest, ...]) -> Specimen:
    return build_specimen(SEED, n_cells=6, volumes=volumes)


# -- reading ---------------------------------------------------------------------


def test_ome_tiff_voxel_size_is_read() -> None:
    data, voxel, origin = read_volume(YEAST)
    assert data.shape == (17, 76, 136) and data.dtype == np.uint16
    assert voxel == pytest.approx(YEAST_VOXEL) and origin == "file"
    # an explicit voxel size overrides the file's
    _, given, origin = read_volume(YEAST, (0.3, 0.1, 0.1))
    assert given == (0.3, 0.1, 0.1) and origin == "given"


def test_ome_tiff_units_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "nm.ome.tif"
    metadata = {
        "axes": "TCZYX",
        "PhysicalSizeX": 65.5,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 65.5,
        "PhysicalSizeYUnit": "nm",
        "PhysicalSizeZ": 0.25,
        "PhysicalSizeZUnit": "µm",
    }
    tifffile.imwrite(
        path, np.ones((1, 1, 4, 8, 9), np.uint16), ome=True, metadata=metadata
    )
    data, voxel, _ = read_volume(path)
    assert data.shape == (4, 8, 9)  # singleton t and c dropped
    assert voxel == pytest.approx((0.25, 0.0655, 0.0655))


def _write_ome_zarr(path: Path, data: NDArray[np.uint16], version: str) -> None:
    """A 5D (t, c, z, y, x) OME-Zarr; z in um, y/x in nm, plus an outer scale."""
    axes = [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space", "unit": "nanometer"},
    ]
    multiscale = {
        "axes": axes,
        "datasets": [
            {
                "path": "0",
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, 1.0, 0.2, 40.0, 50.0]}
                ],
            }
        ],
        "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 1.0, 1.5, 2.0, 2.0]}
        ],
    }
    if version == "0.4":
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        group.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    group.create_array("0", data=data[None, None])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_voxel_size_is_read(tmp_path: Path, version: str) -> None:
    volume = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    path = tmp_path / f"v{version}.ome.zarr"
    _write_ome_zarr(path, volume, version)
    data, voxel, origin = read_volume(path)
    np.testing.assert_array_equal(data, volume)
    assert voxel == pytest.approx((0.3, 0.08, 0.1)) and origin == "file"


def test_npy_needs_a_voxel_size(tmp_path: Path) -> None:
    path = tmp_path / "stack.npy"
    np.save(path, np.zeros((1, 3, 4, 5), np.float32))
    data, voxel, _ = read_volume(path, (1.0, 0.5, 0.5))
    assert data.shape == (3, 4, 5) and voxel == (1.0, 0.5, 0.5)
    with pytest.raises(VolumeSpecimenError, match=r"stack\.npy@"):
        read_volume(path)


# -- conversion ------------------------------------------------------------------


def _revoxelise(
    truth: VolumeCellTruth, spec: Specimen, shape: tuple[int, ...]
) -> NDArray[np.float64]:
    """The cell's emitters summed back onto the file's voxel grid."""
    e = spec.emitters_of(f"volume_cells/{truth.identity}")
    xyz = e.xyz_um.astype(np.float64)
    a = math.radians(truth.rotation_deg)
    back = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    xy = (xyz[:, :2] - truth.centre_um) @ back.T + truth.pivot_um
    z = xyz[:, 2] - truth.height_um
    dz, dy, dx = truth.voxel_um
    index = np.floor(np.column_stack((z / dz, xy[:, 1] / dy, xy[:, 0] / dx)))
    assert index.min() >= 0 and np.all(index.max(axis=0) < np.array(shape))
    grid = np.zeros(shape)
    np.add.at(grid, tuple(index.astype(np.int64).T), e.photons_per_ms)
    return grid


def _structure(
    raw: NDArray[np.generic], background: float, threshold: float
) -> NDArray[np.float64]:
    """Background-subtracted volume above the threshold, without noise specks.

    Specks: touching groups of voxels above the threshold with fewer than 4
    voxels or none above twice the threshold.
    """
    signal = np.clip(raw.astype(np.float64) - background, 0.0, None)
    labels, _ = ndimage.label(signal > threshold, np.ones((3, 3, 3), bool))
    out = np.zeros_like(signal)
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        region = labels[box] == i
        values = signal[box][region]
        if values.size >= 4 and values.max() > 2 * threshold:
            out[box][region] = values
    return out


def _centroid(weights: NDArray[np.float64]) -> NDArray[np.float64]:
    grids = np.meshgrid(*[np.arange(n) for n in weights.shape], indexing="ij")
    return np.array([float((g * weights).sum() / weights.sum()) for g in grids])


@pytest.mark.parametrize(("which", "min_r"), [(0, 0.999), (1, 0.97)])
def test_emitters_reproduce_the_volume(
    with_volumes: Specimen, which: int, min_r: float
) -> None:
    truth = with_volumes.volume_cells[which]
    raw, voxel, _ = read_volume(truth.source, NEURON_VOXEL if which else None)
    assert truth.voxel_um == pytest.approx(voxel)
    expected = _structure(raw, truth.background, truth.threshold)
    scale = (
        truth.brightness
        * VOLUME_PEAK_PHOTONS_PER_MS_PER_UM3
        * math.prod(truth.voxel_um)
        / truth.peak_signal
    )
    got = _revoxelise(truth, with_volumes, raw.shape)
    # total brightness proportional to the background-subtracted volume
    # (exactly for native voxels; interpolation moves the threshold's edge)
    assert got.sum() == pytest.approx(scale * expected.sum(), rel=0.05 * which + 1e-4)
    assert truth.photons_per_ms == pytest.approx(got.sum(), rel=1e-5)
    # same place, to a small fraction of a voxel, and the same shape
    assert np.abs(_centroid(got) - _centroid(expected)).max() < 0.1
    assert float(np.corrcoef(got.ravel(), expected.ravel())[0, 1]) > min_r
    # emitters on the lattice (subdivided voxels for the coarse neuron)
    assert truth.lattice_um == pytest.approx(
        YEAST_VOXEL if which == 0 else (0.25, 0.2, 0.2)
    )
    h = with_volumes.emitters_of(f"volume_cells/{truth.identity}").xyz_um[:, 2]
    assert float(h.min()) >= 0.0 and float(h.max()) <= truth.top_um
    assert truth.top_um == pytest.approx(raw.shape[0] * voxel[0])
    assert truth.n_emitters == h.size


def test_volume_to_sample_maps_voxel_centres_onto_emitters(
    with_volumes: Specimen, volumes: tuple[VolumeRequest, ...]
) -> None:
    truth = with_volumes.volume_cells[0]
    cell = load_volume_cell(volumes[0])
    local = cell.local_xyz_um.copy()
    local[:, :2] += cell.pivot_um
    mapped = truth.volume_to_sample(local).astype(np.float32)
    placed = with_volumes.emitters_of("volume_cells/V00").xyz_um
    np.testing.assert_allclose(_sorted_rows(mapped), _sorted_rows(placed), atol=1e-4)
    # native voxels: emitters sit at the voxel centres of the file
    index = local / np.array(truth.voxel_um[::-1]) - 0.5
    np.testing.assert_allclose(index, np.round(index), atol=1e-6)


def test_fine_voxels_are_binned_to_the_lattice() -> None:
    cell = load_volume_cell(VolumeRequest(YEAST, lattice_um=(0.5, 0.15)))
    assert cell.lattice_um == pytest.approx((0.5, 0.131, 0.131))
    native = load_volume_cell(VolumeRequest(YEAST))
    assert cell.n_emitters < native.n_emitters / 3
    # binning keeps the total (the peak is re-measured on the coarser blocks)
    assert float(cell.photons_per_ms.sum()) * cell.peak_signal == pytest.approx(
        float(native.photons_per_ms.sum()) * native.peak_signal, rel=0.1
    )


# -- layout ----------------------------------------------------------------------


def test_procedural_part_is_unchanged_by_volumes(
    plain: Specimen, with_volumes: Specimen
) -> None:
    assert with_volumes.fiducials == plain.fiducials
    assert with_volumes.cells == plain.cells
    np.testing.assert_array_equal(with_volumes.beads_xyz_um, plain.beads_xyz_um)
    for name in ("fiducials", "beads", "cells"):
        np.testing.assert_array_equal(
            _group(with_volumes, name), _group(plain, name), err_msg=name
        )
    assert with_volumes.sources[: len(plain.sources)] == plain.sources
    assert with_volumes.n_emitters == plain.n_emitters + sum(
        v.n_emitters for v in with_volumes.volume_cells
    )
    # a third volume does not move the first two
    more = build_specimen(
        SEED,
        n_cells=6,
        volumes=(*with_volumes.volumes, VolumeRequest(YEAST, brightness=2.0)),
    )
    assert more.volume_cells[:2] == with_volumes.volume_cells
    assert more.cells == plain.cells


def test_volume_cells_are_laid_out_like_cells(with_volumes: Specimen) -> None:
    spec = with_volumes
    assert [v.identity for v in spec.volume_cells] == ["V00", "V01"]
    assert spec.all_cells == (*spec.cells, *spec.volume_cells)
    assert spec.cell_centres_um()[-1] == spec.volume_cells[-1].centre_um
    for v in spec.volume_cells:
        xy = spec.emitters_of(f"volume_cells/{v.identity}").xyz_um[:, :2]
        xy = xy.astype(np.float64)
        assert float(np.hypot(*(xy - v.centre_um).T).max()) <= v.radius_um
        for m in spec.fiducials:
            assert float(np.hypot(*(xy - m.centre_um).T).min()) >= 150 + m.radius_um
        assert float(np.abs(xy[:, 0]).max()) <= spec.width_um / 2 - 100
        assert float(np.abs(xy[:, 1]).max()) <= spec.height_um / 2 - 100
        for c in spec.cells:
            outline = np.array(c.outline_um)
            reach = float(np.hypot(*(outline - c.centre_um).T).max())
            gap = math.dist(c.centre_um, v.centre_um)
            assert gap >= max(60.0, v.radius_um + reach)
    a, b = spec.volume_cells
    assert math.dist(a.centre_um, b.centre_um) >= max(60.0, a.radius_um + b.radius_um)


def test_ground_truth_json(with_volumes: Specimen, tmp_path: Path) -> None:
    path = tmp_path / "truth.json"
    with_volumes.save_ground_truth(path)
    truth = json.loads(path.read_text())
    assert [v["identity"] for v in truth["volume_cells"]] == ["V00", "V01"]
    v1 = truth["volume_cells"][1]
    assert v1["source"] == str(NEURON.resolve())
    assert tuple(v1["voxel_um"]) == NEURON_VOXEL and v1["voxel_from"] == "given"
    assert tuple(v1["centre_um"]) == with_volumes.volume_cells[1].centre_um
    assert truth["parameters"]["volumes"][0]["rotation_deg"] == 30.0
    assert truth["n_emitters"] == with_volumes.n_emitters
    assert truth["brightness"]["volume_peak_per_um3"] == 1000.0


def test_generate_caches_on_requests_and_file_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "mito.ome.tif"
    copy.write_bytes(YEAST.read_bytes())
    monkeypatch.chdir(tmp_path)
    first = generate_specimen(3, n_cells=2, volumes=(VolumeRequest("mito.ome.tif"),))
    again = generate_specimen(3, n_cells=2, volumes=(VolumeRequest(copy),))
    assert again is first
    assert first.volumes[0].path == copy.resolve()
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    rewritten = generate_specimen(3, n_cells=2, volumes=(VolumeRequest(copy),))
    assert rewritten is not first
    assert rewritten.volume_cells == first.volume_cells


# -- the camera property -----------------------------------------------------------


def test_property_syntax(tmp_path: Path) -> None:
    assert parse_volume_property("  ") == ()
    value = "a.tif@0.5:0.4:0.4@rotation=30 ; /abs/b.npy@1,1,1@brightness=2@height=1"
    a, b = parse_volume_property(value, cwd=tmp_path)
    assert a == VolumeRequest(tmp_path / "a.tif", (0.5, 0.4, 0.4), rotation_deg=30)
    assert b.path == Path("/abs/b.npy") and b.voxel_um == (1.0, 1.0, 1.0)
    assert (b.brightness, b.height_um) == (2.0, 1.0)
    (c,) = parse_volume_property("x.tif@lattice=0.5:0.3@voxel=1:2:3", cwd=tmp_path)
    assert c.lattice_um == (0.5, 0.3) and c.voxel_um == (1.0, 2.0, 3.0)
    listing = tmp_path / "sub" / "volumes.json"
    listing.parent.mkdir()
    listing.write_text(json.dumps([{"path": "n.tif", "voxel_um": [1, 2, 3]}]))
    (d,) = parse_volume_property("sub/volumes.json", cwd=tmp_path)
    assert d.path == listing.parent / "n.tif" and d.voxel_um == (1.0, 2.0, 3.0)


def _config(folder: Path, scope: str, extra: dict[str, object], name: str = "") -> Path:
    text = bundled_config(f"demo_{scope}.cfg").read_text()
    text += "\n" + "".join(f"#py Property,Camera,{k},{v}\n" for k, v in extra.items())
    path = folder / f"{name or scope}.cfg"
    path.write_text(text)
    return path


FAST = {
    "RealTiming": "No",
    "SensorWidthPx": 160,
    "SensorHeightPx": 160,
    "SpecimenCellCount": 3,
    "StageRepeatabilityUm": 0,
    "FocusRepeatabilityUm": 0,
    "MountMaxTiltDeg": 0,
}


def _snap_at(core: object, xyh: tuple[float, float, float]) -> NDArray[np.float64]:
    stage = groundtruth.stage_position_of(core, xyh)  # type: ignore[arg-type]
    core.setXYPosition(float(stage[0]), float(stage[1]))  # type: ignore[attr-defined]
    core.setPosition(float(stage[2]))  # type: ignore[attr-defined]
    core.waitForSystem()  # type: ignore[attr-defined]
    image = microscope.snap(core).astype(np.float64)  # type: ignore[arg-type]
    return np.asarray(image)


def test_simulated_scopes_image_the_volume_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DATA)  # relative paths are relative to the cwd
    value = "yeast_mito_crop.ome.tif@rotation=20"
    widefield = microscope.open_core(
        _config(tmp_path, "widefield", FAST | {"SpecimenVolumes": value})
    )
    confocal = microscope.open_core(
        _config(tmp_path, "confocal", FAST | {"SpecimenVolumes": value})
    )
    bare = microscope.open_core(_config(tmp_path, "widefield", FAST, "bare"))
    try:
        spec = groundtruth.specimen_of(widefield)
        assert groundtruth.specimen_of(confocal) is spec
        assert widefield.getProperty("Camera", "SpecimenVolumes") == value
        assert [v.identity for v in spec.volume_cells] == ["V00"]
        e = spec.emitters_of("volume_cells/V00")
        centroid = np.average(
            e.xyz_um.astype(np.float64), axis=0, weights=e.photons_per_ms
        )
        target = (float(centroid[0]), float(centroid[1]), float(centroid[2]))
        image = _snap_at(widefield, target)
        empty = _snap_at(bare, target)  # the same field without the volume
        signal = image - empty
        assert float(signal.sum()) > 20 * abs(float((empty - 100.0).sum()))
        # bright structure where the volume's brightness centroid should image
        camera = groundtruth.simulated_camera(widefield)
        geometry = camera.geometry(camera.read_scope_state().objective)
        axis, _ = groundtruth.landed_position(widefield)
        physical = groundtruth.mount_of(widefield).sample_to_physical(centroid)
        d_col_row = np.linalg.solve(geometry.pixel_to_stage, physical[:2] - axis)
        rows, cols = image.shape
        expected = np.array(
            [(rows - 1) / 2 + d_col_row[1], (cols - 1) / 2 + d_col_row[0]]
        )
        r, c = np.indices(image.shape)
        found = np.array(
            [(r * signal).sum() / signal.sum(), (c * signal).sum() / signal.sum()]
        )
        assert np.abs(found - expected).max() * geometry.pixel_size_um < 0.3
        assert float(signal.max()) > 300.0  # well above the noise (read noise ~3)
    finally:
        for core in (widefield, confocal, bare):
            microscope.close_core(core)


def test_bad_property_fails_when_set_and_keeps_the_old_value(tmp_path: Path) -> None:
    core = microscope.open_core(_config(tmp_path, "widefield", FAST))
    try:
        with pytest.raises(VolumeSpecimenError, match=r"neuron_crop\.tif"):
            core.setProperty("Camera", "SpecimenVolumes", str(NEURON))
        assert core.getProperty("Camera", "SpecimenVolumes") == ""
        core.setProperty("Camera", "SpecimenVolumes", f"{NEURON}@0.5:0.4:0.4")
        assert len(groundtruth.specimen_of(core).volume_cells) == 1
    finally:
        microscope.close_core(core)


def test_bad_volume_in_a_config_is_one_clear_error(tmp_path: Path) -> None:
    config = _config(tmp_path, "widefield", {"SpecimenVolumes": str(NEURON)})
    result = pairscope("info", "--config", config, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in ("widefield.cfg", "neuron_crop.tif", "no voxel size", "voxel_um="):
        assert needle in lines[0]


# -- bad input -------------------------------------------------------------------


def _bad_inputs(tmp: Path) -> list[tuple[str, VolumeRequest | str, str]]:
    """(case, request or property value, expected words of the fix)."""
    cases: list[tuple[str, VolumeRequest | str, str]] = [
        ("no voxel size", VolumeRequest(NEURON), "voxel_um=("),
        ("missing", VolumeRequest(tmp / "missing.ome.tif"), "check the path"),
        ("voxel", f"{YEAST}@0.25:65.5:65.5", "units"),
        ("format", VolumeRequest(tmp / "volume.png"), "OME-TIFF"),
        ("extent", VolumeRequest(NEURON, voxel_um=(5.0, 5.0, 5.0)), "units"),
        ("emitters", VolumeRequest(NEURON, voxel_um=(5, 3, 3)), "lattice_um="),
    ]
    (tmp / "volume.png").write_bytes(b"\x89PNG")
    truncated = tmp / "truncated.ome.tif"
    truncated.write_bytes(YEAST.read_bytes()[:5000])
    cases.append(("corrupt", VolumeRequest(truncated), "uncorrupted"))
    arrays = {
        "flat.npy": np.zeros((8, 8), np.float32),
        "channels.npy": np.zeros((2, 4, 8, 8), np.float32),
        "nan.npy": np.full((4, 8, 8), np.nan, np.float32),
        "constant.npy": np.full((4, 8, 8), 7.0, np.float32),
        "noise.npy": np.random.default_rng(0).normal(100, 3, (8, 16, 16)),
    }
    for name, array in arrays.items():
        np.save(tmp / name, array)
        fix = {
            "flat.npy": "(z, y, x)",
            "channels.npy": "(z, y, x)",
            "nan.npy": "nan_to_num",
            "constant.npy": "fluorescence z-stack",
            "noise.npy": "stands out",
        }[name]
        cases.append((name, VolumeRequest(tmp / name, voxel_um=(1, 1, 1)), fix))
    plain = tmp / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_array("0", data=np.ones((2, 3, 4)))
    cases.append(("zarr", VolumeRequest(plain), "OME-Zarr"))
    two = tmp / "two_channels.ome.tif"
    tifffile.imwrite(two, np.ones((2, 3, 8, 8), np.uint16), metadata={"axes": "CZYX"})
    cases.append(("tiff channels", VolumeRequest(two, voxel_um=(1, 1, 1)), "channel"))
    cases += [
        ("property option", f"{YEAST}@spin=3", "@rotation=DEG"),
        ("property voxel", f"{NEURON}@0.5:0.4", "@dz:dy:dx"),
        ("request value", f"{NEURON}@brightness=-1", "range"),
    ]
    listing = tmp / "list.json"
    listing.write_text(json.dumps([{"path": "a.tif", "voxel": [1, 1, 1]}]))
    cases.append(("json keys", str(listing), "voxel_um"))
    return cases


def test_each_bad_input_gives_one_clear_error(tmp_path: Path) -> None:
    for case, request, fix in _bad_inputs(tmp_path):
        with pytest.raises(VolumeSpecimenError) as info:
            if isinstance(request, str):
                build_specimen(0, n_cells=0, volumes=parse_volume_property(request))
            else:
                build_specimen(0, n_cells=0, volumes=(request,))
        error = info.value
        message = str(error)
        assert isinstance(error, ValueError), case
        assert "\n" not in message, (case, message)
        name = (
            request.path.name
            if isinstance(request, VolumeRequest)
            else Path(request.split("@")[0]).name
        )
        assert name in message, (case, message)
        assert fix.lower() in message.lower(), (case, message)
        assert error.__cause__ is None, case
        assert error.__context__ is None or error.__suppress_context__, case
    limit_case = next(c for c in _bad_inputs(tmp_path) if c[0] == "emitters")
    with pytest.raises(VolumeSpecimenError, match=f"{MAX_EMITTERS:,}"):
        load_volume_cell(limit_case[1])  # type: ignore[arg-type]
