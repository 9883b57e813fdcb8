"""Tests of the procedurally generated simulated specimen."""

from __future__ import annotations

import itertools
import json
import math
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
from skimage import measure

from acquire.sim.emitters import Emitters
from acquire.sim.specimen import Specimen, build_specimen, generate_specimen

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

# Analytic areas (um^2) of the manufactured marks, written out independently
# of the implementation's constants.
MARK_AREAS_UM2 = {
    "disc": math.pi * 10.0**2,
    "ring": math.pi * (15.0**2 - 10.0**2),
    "cross": 2 * 30.0 * 6.0 - 6.0**2,
    "triangle": math.sqrt(3) / 4 * 30.0**2,
    "square": 20.0**2,
    "double-disc": 2 * math.pi * 6.0**2,
    "L": 30.0 * 7.0 + 23.0 * 7.0,
    "bar": 36.0 * 8.0,
}


@pytest.fixture(scope="module")
def spec() -> Specimen:
    return generate_specimen(0)


@pytest.fixture(scope="module")
def eight_marks() -> Specimen:
    return build_specimen(5, n_cells=0, n_fiducials=8)


def _brute_force(e: Emitters, box: tuple[float, float, float, float]) -> Emitters:
    x = e.xyz_um[:, 0].astype(np.float64)
    y = e.xyz_um[:, 1].astype(np.float64)
    keep = (x >= box[0]) & (x <= box[1]) & (y >= box[2]) & (y <= box[3])
    return Emitters(e.xyz_um[keep], e.photons_per_ms[keep])


def _total(e: Emitters) -> float:
    return float(np.sum(e.photons_per_ms, dtype=np.float64))


def _sorted_rows(a: NDArray[np.float32]) -> NDArray[np.float32]:
    return a[np.lexsort(a.T[::-1])]


def _polyline_length(path: NDArray[np.float64]) -> float:
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())


def _distance_to_polyline(
    points: NDArray[np.float64], path: NDArray[np.float64]
) -> NDArray[np.float64]:
    a, b = path[:-1], path[1:]
    ab = b - a
    t = np.einsum("psk,sk->ps", points[:, None, :] - a[None], ab) / np.einsum(
        "sk,sk->s", ab, ab
    )
    closest = a[None] + np.clip(t, 0.0, 1.0)[..., None] * ab[None]
    return np.asarray(np.linalg.norm(points[:, None, :] - closest, axis=2).min(axis=1))


# -- caching and determinism ----------------------------------------------


def test_generate_is_cached_for_equal_arguments(spec: Specimen) -> None:
    assert generate_specimen(seed=0) is spec
    assert generate_specimen(0, n_cells=40, width_um=3000, height_um=3000.0) is spec
    assert generate_specimen(0, n_cells=3) is not spec


def test_same_seed_gives_identical_specimen() -> None:
    a = build_specimen(11, n_cells=3)
    b = build_specimen(11, n_cells=3)
    assert a is not b
    ea, eb = a.all_emitters(), b.all_emitters()
    np.testing.assert_array_equal(ea.xyz_um, eb.xyz_um)
    np.testing.assert_array_equal(ea.photons_per_ms, eb.photons_per_ms)
    assert json.dumps(a.ground_truth()) == json.dumps(b.ground_truth())


def test_different_seed_gives_different_specimen() -> None:
    a = build_specimen(11, n_cells=3)
    c = build_specimen(12, n_cells=3)
    assert a.cells[0].centre_um != c.cells[0].centre_um
    assert a.fiducials[0].centre_um != c.fiducials[0].centre_um
    assert a.n_emitters != c.n_emitters or not np.array_equal(
        a.all_emitters().xyz_um, c.all_emitters().xyz_um
    )


def test_cells_do_not_depend_on_cell_count(spec: Specimen) -> None:
    few = build_specimen(0, n_cells=3)
    assert few.cells == spec.cells[:3]
    assert few.fiducials == spec.fiducials
    np.testing.assert_array_equal(few.beads_xyz_um, spec.beads_xyz_um)


# -- contents ----------------------------------------------------------------


def test_defaults(spec: Specimen) -> None:
    assert spec.width_um >= 3000 and spec.height_um >= 3000
    assert len(spec.cells) >= 30
    assert len(spec.fiducials) >= 4
    shapes = [m.shape for m in spec.fiducials]
    assert len(set(shapes)) == len(shapes)
    identities = [m.identity for m in spec.fiducials]
    assert len(set(identities)) == len(identities)
    assert len({c.identity for c in spec.cells}) == len(spec.cells)
    # One corner mark per quadrant, 200 um in from the edges.
    quadrants = set()
    for m in spec.fiducials[:4]:
        nx, ny = m.nominal_centre_um
        assert abs(abs(nx) - (spec.width_um / 2 - 200)) < 1e-9
        assert abs(abs(ny) - (spec.height_um / 2 - 200)) < 1e-9
        quadrants.add((nx > 0, ny > 0))
        assert math.dist(m.centre_um, m.nominal_centre_um) <= 5.0
        assert 20.0 <= m.size_um <= 40.0
    assert len(quadrants) == 4
    assert spec.nbytes < 200e6


def test_eight_marks_at_corners_and_edge_midpoints(eight_marks: Specimen) -> None:
    marks = eight_marks.fiducials
    assert [m.index for m in marks] == list(range(8))
    assert len({m.shape for m in marks}) == 8
    for m in marks[4:]:
        nx, ny = m.nominal_centre_um
        assert min(abs(nx), abs(ny)) == 0.0
        assert math.dist(m.centre_um, m.nominal_centre_um) <= 5.0


def test_marks_distinguishable_by_rotation_invariant_descriptors(
    eight_marks: Specimen,
) -> None:
    """Image each mark at 0.2 um pixels in an 80 um field and compare shapes."""
    pixel = 0.2
    descriptors = {}
    for m in eight_marks.fiducials:
        cx, cy = m.nominal_centre_um
        e = eight_marks.emitters_in_box(cx - 40, cx + 40, cy - 40, cy + 40)
        edges_x = np.arange(cx - 40, cx + 40 + pixel / 2, pixel)
        edges_y = np.arange(cy - 40, cy + 40 + pixel / 2, pixel)
        image, _, _ = np.histogram2d(
            e.xyz_um[:, 1], e.xyz_um[:, 0], [edges_y, edges_x], weights=e.photons_per_ms
        )
        mask = image > 0.5 * 300.0 * pixel**2
        labels = measure.label(mask)
        regions = measure.regionprops(labels)
        area = sum(r.area for r in regions) * pixel**2
        assert area == pytest.approx(MARK_AREAS_UM2[m.shape], rel=0.03)
        perimeter = sum(r.perimeter for r in regions) * pixel
        biggest = max(regions, key=lambda r: r.area)
        descriptors[m.shape] = (
            len(regions),
            int(measure.euler_number(mask)),
            perimeter**2 / area,
            float(biggest.eccentricity),
        )
    for a, b in itertools.combinations(descriptors, 2):
        da, db = descriptors[a], descriptors[b]
        distinct = (
            da[:2] != db[:2]
            or abs(da[2] - db[2]) > 0.08 * (da[2] + db[2]) / 2
            or abs(da[3] - db[3]) > 0.3
        )
        assert distinct, (a, da, b, db)


def test_cell_geometry(spec: Specimen) -> None:
    for cell in spec.cells:
        assert 3.0 <= cell.height_um <= 8.0
        outline = np.array(cell.outline_um)
        extent = np.max(np.linalg.norm(outline[:, None] - outline[None], axis=2))
        assert 30.0 <= extent <= 60.0
        nuc = cell.nucleus
        assert all(4.0 <= r <= 9.0 for r in nuc.semi_axes_um[:2])
        assert 0.3 <= nuc.bottom_um <= 0.8
        assert nuc.top_um == pytest.approx(cell.height_um - 0.5)
        assert 10 <= len(cell.fibres) <= 25
        assert {f.kind for f in cell.fibres} >= {"ventral", "dorsal", "cap"}
        assert 1 <= len(nuc.nucleoli) <= 3


def test_all_emitters_on_or_above_glass_and_cells_below_their_top(
    spec: Specimen,
) -> None:
    assert float(spec.all_emitters().xyz_um[:, 2].min()) >= 0.0
    for cell in spec.cells:
        h = spec.emitters_of(f"cells/{cell.identity}").xyz_um[:, 2]
        assert float(h.max()) <= cell.height_um + 1e-5
        assert float(h.max()) > cell.height_um - 0.6  # the cell is filled up to its top


def test_nucleus_emitters_fill_the_ellipsoid(spec: Specimen) -> None:
    for cell in spec.cells[:5]:
        nuc = cell.nucleus
        e = spec.emitters_of(f"cells/{cell.identity}/nucleus")
        rel = e.xyz_um.astype(np.float64) - np.array(nuc.centre_um)
        a = math.radians(nuc.orientation_deg)
        p = rel[:, 0] * math.cos(a) + rel[:, 1] * math.sin(a)
        q = -rel[:, 0] * math.sin(a) + rel[:, 1] * math.cos(a)
        na, nb, nc = nuc.semi_axes_um
        r2 = (p / na) ** 2 + (q / nb) ** 2 + (rel[:, 2] / nc) ** 2
        assert float(r2.max()) <= 1.0 + 1e-4
        volume = 4 / 3 * math.pi * na * nb * nc
        assert len(e.xyz_um) * 0.2**3 == pytest.approx(volume, rel=0.03)
        assert _total(e) == pytest.approx(nuc.photons_per_ms, rel=1e-6)
        # Chromatin texture and darker nucleoli modulate the brightness.
        assert float(np.std(e.photons_per_ms)) > 0.1 * float(np.mean(e.photons_per_ms))


def test_layout_clearances(spec: Specimen) -> None:
    centres = np.array([c.centre_um for c in spec.cells])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    assert float(gaps[np.triu_indices(len(centres), 1)].min()) >= 60.0
    cell_xy = spec.emitters_of("cells").xyz_um[:, :2].astype(np.float64)
    outline = np.concatenate([np.array(c.outline_um) for c in spec.cells])
    for m in spec.fiducials:
        for pts in (cell_xy, outline):
            dist = np.linalg.norm(pts - np.array(m.centre_um), axis=1)
            assert float(dist.min()) >= 150.0 + m.radius_um
    assert float(np.abs(outline[:, 0]).max()) <= spec.width_um / 2 - 100.0
    assert float(np.abs(outline[:, 1]).max()) <= spec.height_um / 2 - 100.0


# -- spatial queries -------------------------------------------------------------


def test_emitters_in_box_equals_brute_force(spec: Specimen) -> None:
    every = spec.all_emitters()
    rng = np.random.default_rng(7)
    c = spec.cells[0].centre_um
    some = every.xyz_um[123_457]
    boxes = [
        (c[0] - 75.0, c[0] + 75.0, c[1] - 75.0, c[1] + 75.0),
        # Bounds exactly on emitter coordinates (inclusive) and on strip edges.
        (float(some[0]), float(some[0]) + 30.0, float(some[1]), float(some[1]) + 25.0),
        (c[0] - 40.0, c[0] + 40.0, -5.0, 10.0),
        (-1600.0, 1600.0, -1490.0, -1300.0),
        (2000.0, 2100.0, 0.0, 10.0),
        (10.0, 0.0, 0.0, 10.0),
    ]
    for _ in range(6):
        x0, y0 = rng.uniform(-1500, 1400, 2)
        w, h = rng.uniform(1.0, 200.0, 2)
        boxes.append((float(x0), float(x0 + w), float(y0), float(y0 + h)))
    for box in boxes:
        got = spec.emitters_in_box(*box)
        want = _brute_force(every, box)
        np.testing.assert_array_equal(got.xyz_um, want.xyz_um)
        np.testing.assert_array_equal(got.photons_per_ms, want.photons_per_ms)
        assert got.xyz_um.dtype == np.float32 and got.photons_per_ms.dtype == np.float32
    assert len(spec.emitters_in_box(*boxes[1]).xyz_um) > 0
    whole = spec.emitters_in_box(-math.inf, math.inf, -math.inf, math.inf)
    assert len(whole.xyz_um) == spec.n_emitters


def test_emitters_in_box_is_fast(spec: Specimen) -> None:
    times = []
    for cell in spec.cells[:20]:
        x, y = cell.centre_um
        t0 = time.perf_counter()
        spec.emitters_in_box(x - 75.0, x + 75.0, y - 75.0, y + 75.0)
        times.append(time.perf_counter() - t0)
    assert float(np.median(times)) < 0.010


def test_emitters_in_box_rejects_nan(spec: Specimen) -> None:
    with pytest.raises(ValueError, match="NaN"):
        spec.emitters_in_box(math.nan, 1.0, 0.0, 1.0)


def test_shared_arrays_are_read_only(spec: Specimen) -> None:
    e = spec.all_emitters()
    assert not e.xyz_um.flags.writeable
    assert not e.photons_per_ms.flags.writeable
    assert not spec.beads_xyz_um.flags.writeable
    assert spec.emitters_in_box(-100.0, 100.0, -100.0, 100.0).xyz_um.flags.writeable


def test_emitter_groups_partition_the_specimen(spec: Specimen) -> None:
    total = sum(
        len(spec.emitters_of(name).xyz_um) for name in ("fiducials", "beads", "cells")
    )
    assert total == spec.n_emitters
    with pytest.raises(KeyError):
        spec.emitters_of("cells/C9999")


# -- photon budget -----------------------------------------------------------------


def test_fiducial_photons_match_area(eight_marks: Specimen) -> None:
    for m in eight_marks.fiducials:
        e = eight_marks.emitters_of(f"fiducials/{m.identity}")
        expected = 300.0 * MARK_AREAS_UM2[m.shape]
        assert _total(e) == pytest.approx(expected, rel=0.05)
        assert m.area_um2 == pytest.approx(MARK_AREAS_UM2[m.shape], rel=1e-12)
        h = e.xyz_um[:, 2]
        assert float(h.min()) >= 0.0 and float(h.max()) <= 0.3
        r = np.linalg.norm(
            e.xyz_um[:, :2].astype(np.float64) - np.array(m.centre_um), axis=1
        )
        assert float(r.max()) <= m.radius_um + 1e-3


def test_beads(spec: Specimen) -> None:
    beads = spec.beads_xyz_um
    expected = 150.0 * spec.width_um * spec.height_um * 1e-6
    assert abs(len(beads) - expected) < 5 * math.sqrt(expected)
    np.testing.assert_array_equal(beads[:, 2], 0.05)
    e = spec.emitters_of("beads")
    np.testing.assert_array_equal(e.photons_per_ms, np.float32(300.0))
    np.testing.assert_array_equal(
        _sorted_rows(e.xyz_um), _sorted_rows(beads.astype(np.float32))
    )
    # A bead alone in a small box is exactly one 300 photons/ms emitter.
    bx, by = next(
        (x, y)
        for x, y, _ in beads
        if min(math.dist((x, y), c.centre_um) for c in spec.cells) > 100.0
        and np.sum(np.hypot(beads[:, 0] - x, beads[:, 1] - y) < 2.0) == 1
    )
    alone = spec.emitters_in_box(bx - 1.0, bx + 1.0, by - 1.0, by + 1.0)
    assert len(alone.xyz_um) == 1
    assert float(alone.photons_per_ms[0]) == 300.0


def test_fibre_photons_match_length(spec: Specimen) -> None:
    for cell in spec.cells[:4]:
        for fibre in cell.fibres:
            e = spec.emitters_of(f"cells/{cell.identity}/fibre{fibre.index:02d}")
            path = np.array(fibre.path_um)
            length = _polyline_length(path)
            assert length == pytest.approx(fibre.length_um, rel=0.01)
            assert 320.0 <= fibre.photons_per_ms_per_um <= 480.0
            assert _total(e) == pytest.approx(
                fibre.photons_per_ms_per_um * length, rel=0.01
            )
            assert len(e.xyz_um) >= length / 0.05
            dist = _distance_to_polyline(e.xyz_um.astype(np.float64), path)
            assert float(dist.max()) < 0.1
            if fibre.kind == "ventral":
                assert (
                    float(path[:, 2].min()) >= 0.15 and float(path[:, 2].max()) <= 0.6
                )
            else:
                assert float(path[:, 2].max()) > 1.0


def test_adhesions(spec: Specimen) -> None:
    for cell in spec.cells[:4]:
        for adhesion in cell.adhesions:
            e = spec.emitters_of(f"cells/{cell.identity}/adhesion{adhesion.index:02d}")
            assert 30 <= len(e.xyz_um) <= 60
            assert _total(e) == pytest.approx(adhesion.photons_per_ms, rel=1e-5)
            assert 640.0 <= adhesion.photons_per_ms <= 960.0
            h = e.xyz_um[:, 2]
            assert float(h.min()) >= 0.0 and float(h.max()) <= 0.2
            centroid = e.xyz_um[:, :2].astype(np.float64).mean(axis=0)
            assert math.dist(centroid, adhesion.centre_um[:2]) < 0.5
            fibre = cell.fibres[adhesion.fibre]
            ends = np.array(fibre.path_um)[[0, -1], :2]
            assert np.min(np.linalg.norm(ends - adhesion.centre_um[:2], axis=1)) < 1e-3
            assert adhesion.index in fibre.adhesions


def test_cytoplasm_is_dim(spec: Specimen) -> None:
    cell = spec.cells[0]
    e = spec.emitters_of(f"cells/{cell.identity}/cytoplasm")
    assert _total(e) == pytest.approx(cell.cytoplasm_photons_per_ms, rel=1e-6)
    np.testing.assert_allclose(e.photons_per_ms, 8.0 * 0.4**3, rtol=1e-6)
    # Volume (photons / 8) lies between a thin sheet and the full prism.
    outline = np.array(cell.outline_um)
    x, y = outline[:, 0], outline[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    volume = _total(e) / 8.0
    assert 0.5 * area < volume < cell.height_um * area


# -- ground truth ----------------------------------------------------------------


def test_ground_truth_round_trips_through_json(spec: Specimen, tmp_path: Path) -> None:
    path = tmp_path / "truth.json"
    spec.save_ground_truth(path)
    loaded = json.loads(path.read_text())
    truth = spec.ground_truth()
    assert loaded == json.loads(json.dumps(truth, allow_nan=False))
    assert loaded["seed"] == 0
    assert loaded["parameters"]["n_cells"] == len(spec.cells)
    assert [f["identity"] for f in loaded["fiducials"]] == [
        m.identity for m in spec.fiducials
    ]
    for f, m in zip(loaded["fiducials"], spec.fiducials, strict=True):
        assert tuple(f["centre_um"]) == m.centre_um
        assert f["shape"] == m.shape and f["size_um"] == m.size_um
    assert loaded["cells"][3]["height_um"] == spec.cells[3].height_um
    assert tuple(loaded["cells"][3]["centre_um"]) == spec.cells[3].centre_um
    np.testing.assert_array_equal(
        np.array(loaded["beads"]["xyz_um"]), spec.beads_xyz_um
    )
    assert loaded["n_emitters"] == spec.n_emitters
    assert path.read_text().startswith("{\n  ")


# -- argument validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_cells": -1}, "n_cells"),
        ({"width_um": 999.0}, "width_um"),
        ({"height_um": 500.0}, "height_um"),
        ({"width_um": math.nan}, "width_um"),
        ({"n_fiducials": 3}, "n_fiducials"),
        ({"n_fiducials": 9}, "n_fiducials"),
        ({"seed": -1}, "seed"),
        ({"bead_density_per_mm2": -1.0}, "bead_density"),
        ({"n_cells": 2.5}, "n_cells"),
        ({"width_um": 1000.0, "height_um": 1000.0, "n_cells": 500}, "could not place"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_specimen(**kwargs)  # type: ignore[arg-type]
