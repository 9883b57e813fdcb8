"""Procedurally generated simulated specimen: a fixed-cell coverslip.

Coordinates are SAMPLE coordinates in micrometres: x, y in the coverslip
plane with the origin at the centre of the coverslip region, and h, the height
above the coverslip's top surface (the glass surface is h = 0).

The specimen holds, all fluorescing in one channel:

* fiducial marks: a thin bright layer on the glass near the region's corners
  (and edge midpoints), each of a distinct shape;
* adherent fixed cells: a dome of dim cytoplasm, a textured nucleus, curved
  actin stress fibres (ventral, dorsal and perinuclear cap fibres) and focal
  adhesions at the anchored fibre ends;
* sparse 100 nm beads adsorbed on the glass;
* optionally, real measured 3D volumes placed as "volume cells" beside the
  procedural cells (:mod:`acquire.sim.volume_cells`; ``volumes=`` of
  :func:`generate_specimen`).

For rendering, everything is discretised into weighted point emitters (float32),
ordered by a spatial index so that :meth:`Specimen.emitters_in_box` returns
a field of view quickly.

This module lays out the coverslip and assembles the :class:`Specimen`; one
cell's anatomy is in :mod:`acquire.sim.cell_model` (with
:mod:`acquire.sim.cell_shape` and :mod:`acquire.sim.cell_fibres`), its ground
truth in :mod:`acquire.sim.cell_truth`, and the spatial index in
:mod:`acquire.sim.emitter_index`. Their public names are re-exported here.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from acquire.sim.cell_fibres import (
    ADHESION_PHOTONS_PER_MS,
    FIBRE_PHOTONS_PER_MS_PER_UM,
)
from acquire.sim.cell_model import (
    CYTOPLASM_PHOTONS_PER_MS_PER_UM3,
    NUCLEUS_PHOTONS_PER_MS_PER_UM3,
    build_cell,
)
from acquire.sim.cell_shape import draw_cell_shape
from acquire.sim.emitter_index import EmitterGroups, EmitterIndex
from acquire.sim.emitters import Emitters
from acquire.sim.fiducial_marks import FiducialMark, mark_lattice_xy
from acquire.sim.volume_cells import (
    VOLUME_PEAK_PHOTONS_PER_MS_PER_UM3,
    VolumeCellTruth,
    VolumeRequest,
    add_volume_cell,
    file_stamp,
    load_volume_cell,
)
from correlate.fiducials.marks import (
    SHAPE_ORDER,
    SHAPES,
    Holder,
    MarkSpec,
    nominal_mark_positions,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from acquire.sim.cell_truth import (
        CellTruth,
    )

__all__ = [
    "BEAD_PHOTONS_PER_MS",
    "FIDUCIAL_PHOTONS_PER_MS_PER_UM2",
    "Specimen",
    "build_specimen",
    "generate_specimen",
]

FloatArray = NDArray[np.float64]

# Brightness: expected detected photons per ms at nominal illumination (the
# cells' densities are in acquire.sim.cell_model and acquire.sim.cell_fibres).
FIDUCIAL_PHOTONS_PER_MS_PER_UM2 = 300.0
BEAD_PHOTONS_PER_MS = 300.0

BEAD_DIAMETER_UM = 0.1
BEAD_HEIGHT_UM = 0.05
FIDUCIAL_THICKNESS_UM = 0.3
#: Two emitter layers, at the centres of the halves of the mark's thickness.
FIDUCIAL_LAYER_HEIGHTS_UM = (0.25 * FIDUCIAL_THICKNESS_UM, 0.75 * FIDUCIAL_THICKNESS_UM)

# Discretisation of the marks.
FIDUCIAL_LATTICE_UM = 0.1

# Layout rules.
MARK_CLEARANCE_UM = 150.0
BORDER_CLEARANCE_UM = 100.0
MIN_CELL_SEPARATION_UM = 60.0
MAX_MARK_JITTER_UM = 5.0
MAX_MARK_ROTATION_DEG = 2.0
_BEAD_MARK_CLEARANCE_UM = 10.0
_BEAD_BORDER_UM = 5.0
_MAX_BEAD_DENSITY_PER_MM2 = 10_000.0
_MAX_PLACEMENT_ATTEMPTS = 5000

_CACHE_SIZE = 4
#: Spawn key of the volume cells' layout stream: ``root.spawn`` gives the
#: marks, layout, beads and cells streams keys 0-3, so volumes never shift them.
_VOLUME_STREAM_KEY = 4


# --------------------------------------------------------------------------
# Layout: marks, cells, beads
# --------------------------------------------------------------------------


def _make_fiducials(
    rng: np.random.Generator, width_um: float, height_um: float, n_marks: int
) -> tuple[FiducialMark, ...]:
    """Marks of distinct shapes at the holder's nominal positions.

    Manufacturing puts each mark up to :data:`MAX_MARK_JITTER_UM` off its
    nominal centre and turns it by up to :data:`MAX_MARK_ROTATION_DEG`.
    """
    marks = []
    for i, nominal in enumerate(nominal_mark_positions(width_um, height_um, n_marks)):
        shape = SHAPE_ORDER[i]
        r = MAX_MARK_JITTER_UM * math.sqrt(rng.uniform())
        t = rng.uniform(0.0, 2 * math.pi)
        marks.append(
            FiducialMark(
                index=i,
                identity=f"F{i}-{shape}",
                shape=shape,
                centre_um=(nominal[0] + r * math.cos(t), nominal[1] + r * math.sin(t)),
                nominal_centre_um=nominal,
                size_um=SHAPES[shape].size_um,
                orientation_deg=float(
                    rng.uniform(-MAX_MARK_ROTATION_DEG, MAX_MARK_ROTATION_DEG)
                ),
            )
        )
    return tuple(marks)


def _place_cells(
    rng: np.random.Generator,
    radii_um: Sequence[float],
    marks: Sequence[FiducialMark],
    width_um: float,
    height_um: float,
    occupied: tuple[FloatArray, FloatArray] | None = None,
    kind: str = "cell",
) -> list[tuple[float, float]]:
    """Dart-throw non-overlapping cell centres clear of the border and the marks.

    ``occupied`` holds centres (K, 2) and radii (K,) of cells placed before,
    which the new cells keep clear of like of each other.

    Raises
    ------
    ValueError
        If a cell finds no free spot in :data:`_MAX_PLACEMENT_ATTEMPTS` throws.

    """
    mark_xy = np.array([m.centre_um for m in marks])
    mark_r = np.array([m.radius_um for m in marks])
    placed = np.empty((0, 2)) if occupied is None else np.asarray(occupied[0])
    placed_r = np.empty(0) if occupied is None else np.asarray(occupied[1])
    n_before = placed_r.size

    def is_free(c: FloatArray, r: float) -> bool:
        if np.any(np.hypot(*(mark_xy - c).T) < MARK_CLEARANCE_UM + mark_r + r):
            return False
        gaps = np.hypot(*(placed - c).T)
        return not np.any(gaps < np.maximum(MIN_CELL_SEPARATION_UM, placed_r + r + 1.0))

    for i, r in enumerate(radii_um):
        x_half = width_um / 2 - BORDER_CLEARANCE_UM - r
        y_half = height_um / 2 - BORDER_CLEARANCE_UM - r
        centre = None
        if x_half > 0 and y_half > 0:
            for _ in range(_MAX_PLACEMENT_ATTEMPTS):
                c = rng.uniform((-x_half, -y_half), (x_half, y_half))
                if is_free(c, r):
                    centre = c
                    break
        if centre is None:
            raise ValueError(
                f"could not place {kind} {i} of {len(radii_um)} in a "
                f"{width_um:g} x {height_um:g} um region; "
                "use fewer cells or a larger region"
            )
        placed = np.vstack((placed, centre))
        placed_r = np.append(placed_r, r)
    return [(float(x), float(y)) for x, y in placed[n_before:]]


def _place_beads(
    rng: np.random.Generator,
    density_per_mm2: float,
    marks: Sequence[FiducialMark],
    width_um: float,
    height_um: float,
) -> FloatArray:
    """Uniformly scattered beads on the glass, kept off the marks."""
    n = int(rng.poisson(density_per_mm2 * width_um * height_um * 1e-6))
    x = rng.uniform(-width_um / 2 + _BEAD_BORDER_UM, width_um / 2 - _BEAD_BORDER_UM, n)
    y = rng.uniform(
        -height_um / 2 + _BEAD_BORDER_UM, height_um / 2 - _BEAD_BORDER_UM, n
    )
    keep = np.ones(n, dtype=np.bool_)
    for m in marks:
        keep &= (
            np.hypot(x - m.centre_um[0], y - m.centre_um[1])
            > m.radius_um + _BEAD_MARK_CLEARANCE_UM
        )
    return np.column_stack((x[keep], y[keep], np.full(int(keep.sum()), BEAD_HEIGHT_UM)))


def _mark_emitters(mark: FiducialMark) -> tuple[FloatArray, FloatArray]:
    """Lattice emitters of a mark: the in-plane lattice repeated in two layers."""
    xy = mark_lattice_xy(mark, FIDUCIAL_LATTICE_UM)
    layers = len(FIDUCIAL_LAYER_HEIGHTS_UM)
    xyz = np.column_stack(
        (
            np.tile(xy, (layers, 1)),
            np.repeat(np.array(FIDUCIAL_LAYER_HEIGHTS_UM), xy.shape[0]),
        )
    )
    weight = FIDUCIAL_PHOTONS_PER_MS_PER_UM2 * FIDUCIAL_LATTICE_UM**2 / layers
    return xyz, np.full(xyz.shape[0], weight)


# --------------------------------------------------------------------------
# Specimen
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Specimen:
    """A simulated fixed-cell coverslip in sample coordinates (micrometres).

    Build it with :func:`generate_specimen`. Arrays it hands out are
    read-only views shared by every user of the (cached) specimen, except
    the results of :meth:`emitters_in_box` and :meth:`emitters_of`, which are
    fresh copies.

    Attributes
    ----------
    seed : int
        Seed the specimen was generated from.
    width_um, height_um : float
        Size of the coverslip region, centred on the origin.
    bead_density_per_mm2 : float
        Nominal bead density.
    fiducials : tuple of FiducialMark
        The fiducial marks.
    cells : tuple of CellTruth
        Ground truth of every procedural cell.
    beads_xyz_um : ndarray of float64, shape (M, 3)
        Bead centres.
    volumes : tuple of VolumeRequest
        The real volumes asked for (absolute paths).
    volume_cells : tuple of VolumeCellTruth
        Ground truth of each volume placed as a cell (the ``volumes`` in
        order); both kinds of cell have ``identity`` and ``centre_um``, see
        :attr:`all_cells`.

    """

    seed: int
    width_um: float
    height_um: float
    bead_density_per_mm2: float
    fiducials: tuple[FiducialMark, ...]
    cells: tuple[CellTruth, ...]
    beads_xyz_um: FloatArray
    _index: EmitterIndex = field(repr=False)
    volumes: tuple[VolumeRequest, ...] = ()
    volume_cells: tuple[VolumeCellTruth, ...] = ()

    @property
    def all_cells(self) -> tuple[CellTruth | VolumeCellTruth, ...]:
        """Procedural cells, then volume cells: ``all_cells[i].centre_um``."""
        return (*self.cells, *self.volume_cells)

    def cell_centres_um(self) -> list[tuple[float, float]]:
        """Sample (x, y) of every cell, in :attr:`all_cells` order."""
        return [cell.centre_um for cell in self.all_cells]

    @property
    def n_emitters(self) -> int:
        """Number of point emitters in the specimen."""
        return int(self._index.photons_per_ms.size)

    @property
    def nbytes(self) -> int:
        """Memory held by the emitter arrays and their index, in bytes."""
        return self._index.nbytes + int(self.beads_xyz_um.nbytes)

    @property
    def sources(self) -> tuple[str, ...]:
        """Names of the emitter groups, e.g. ``"cells/C03/fibre07"``.

        Groups: ``fiducials/<identity>``, ``beads``, per cell
        ``cells/<identity>/cytoplasm``, ``.../nucleus``, ``.../fibreNN`` and
        ``.../adhesionNN`` (numbered as in :class:`CellTruth`), and per volume
        cell ``volume_cells/<identity>``.
        """
        return self._index.sources

    def emitters_in_box(
        self, x_min_um: float, x_max_um: float, y_min_um: float, y_max_um: float
    ) -> Emitters:
        """Emitters whose (x, y) lie in an axis-aligned box (bounds inclusive).

        Parameters
        ----------
        x_min_um, x_max_um, y_min_um, y_max_um : float
            Box bounds in sample micrometres. An empty box (min > max)
            returns no emitters.

        Returns
        -------
        Emitters
            A copy of the selected emitters, in the same relative order as in
            :meth:`all_emitters`.

        Raises
        ------
        ValueError
            If a bound is NaN.

        """
        bounds = (x_min_um, x_max_um, y_min_um, y_max_um)
        if any(math.isnan(b) for b in bounds):
            raise ValueError(f"box bounds must not be NaN, got {bounds}")
        return self._index.box(*(float(b) for b in bounds))

    def all_emitters(self) -> Emitters:
        """Every emitter of the specimen, as read-only views.

        Returns
        -------
        Emitters
            All emitters, ordered by the spatial index.

        """
        return Emitters(self._index.xyz_um, self._index.photons_per_ms)

    def emitters_of(self, source: str) -> Emitters:
        """Emitters of one group, or of every group under a prefix.

        Parameters
        ----------
        source : str
            A name from :attr:`sources` or a prefix ending at a ``/``
            boundary, e.g. ``"cells/C03"`` (the whole cell), ``"fiducials"``.

        Returns
        -------
        Emitters
            A copy of the matching emitters.

        Raises
        ------
        KeyError
            If no group matches.

        """
        ids = [
            i
            for i, name in enumerate(self.sources)
            if name == source or name.startswith(source + "/")
        ]
        if not ids:
            raise KeyError(f"no emitter group named {source!r}")
        mask = np.isin(self._index.source_ids, np.array(ids, dtype=np.int32))
        return Emitters(self._index.xyz_um[mask], self._index.photons_per_ms[mask])

    def holder(self) -> Holder:
        """The holder's datasheet: mark identities, shapes and NOMINAL centres.

        Returns
        -------
        Holder
            One :class:`~correlate.fiducials.marks.MarkSpec` per fiducial mark, at its
            nominal centre and orientation 0 (not the true, jittered pose).

        """
        return Holder(
            tuple(
                MarkSpec(
                    identity=m.identity,
                    shape=m.shape,
                    size_um=m.size_um,
                    nominal_centre_um=m.nominal_centre_um,
                )
                for m in self.fiducials
            )
        )

    def ground_truth(self) -> dict[str, Any]:
        """The specimen's ground truth as JSON-serialisable data.

        Returns
        -------
        dict
            ``seed``, ``parameters`` (the generation arguments), ``coordinates``
            (frame description), ``brightness`` (emitter densities),
            ``fiducials`` (with areas and radii), ``cells``, ``beads``,
            ``volume_cells`` and emitter totals.

        """
        fiducials = [
            {**asdict(m), "area_um2": m.area_um2, "radius_um": m.radius_um}
            for m in self.fiducials
        ]
        return {
            "seed": self.seed,
            "parameters": {
                "n_cells": len(self.cells),
                "width_um": self.width_um,
                "height_um": self.height_um,
                "n_fiducials": len(self.fiducials),
                "bead_density_per_mm2": self.bead_density_per_mm2,
                "volumes": [v.as_dict() for v in self.volumes],
            },
            "coordinates": {
                "frame": "sample",
                "units": "micrometres",
                "x_y": "coverslip plane, origin at the centre of the region",
                "h": "height above the coverslip's top surface (glass at h = 0)",
            },
            "brightness": {
                "unit": "photons per ms at nominal illumination",
                "fiducial_per_um2": FIDUCIAL_PHOTONS_PER_MS_PER_UM2,
                "cytoplasm_per_um3": CYTOPLASM_PHOTONS_PER_MS_PER_UM3,
                "nucleus_per_um3": NUCLEUS_PHOTONS_PER_MS_PER_UM3,
                "fibre_per_um": FIBRE_PHOTONS_PER_MS_PER_UM,
                "adhesion": ADHESION_PHOTONS_PER_MS,
                "bead": BEAD_PHOTONS_PER_MS,
                "volume_peak_per_um3": VOLUME_PEAK_PHOTONS_PER_MS_PER_UM3,
            },
            "fiducials": fiducials,
            "cells": [asdict(c) for c in self.cells],
            "volume_cells": [asdict(v) for v in self.volume_cells],
            "beads": {
                "diameter_um": BEAD_DIAMETER_UM,
                "photons_per_ms": BEAD_PHOTONS_PER_MS,
                "xyz_um": self.beads_xyz_um.tolist(),
            },
            "n_emitters": self.n_emitters,
            "total_photons_per_ms": float(
                np.sum(self._index.photons_per_ms, dtype=np.float64)
            ),
        }

    def save_ground_truth(self, path: Path) -> None:
        """Write :meth:`ground_truth` as indented JSON.

        Parameters
        ----------
        path : Path
            Destination file; its parent directory must exist.

        """
        Path(path).write_text(
            json.dumps(self.ground_truth(), indent=2), encoding="utf-8"
        )


def _validate(
    seed: int,
    n_cells: int,
    width_um: float,
    height_um: float,
    n_fiducials: int,
    bead_density_per_mm2: float,
) -> None:
    for name, value in (
        ("seed", seed),
        ("n_cells", n_cells),
        ("n_fiducials", n_fiducials),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if n_cells < 0:
        raise ValueError(f"n_cells must be >= 0, got {n_cells}")
    for name, size in (("width_um", width_um), ("height_um", height_um)):
        if not math.isfinite(size) or size < 1000.0:
            raise ValueError(f"{name} must be a finite size >= 1000 um, got {size}")
    if not 4 <= n_fiducials <= len(SHAPE_ORDER):
        raise ValueError(
            f"n_fiducials must be between 4 and {len(SHAPE_ORDER)}, got {n_fiducials}"
        )
    if not (
        math.isfinite(bead_density_per_mm2)
        and 0.0 <= bead_density_per_mm2 <= _MAX_BEAD_DENSITY_PER_MM2
    ):
        raise ValueError(
            "bead_density_per_mm2 must be in "
            f"[0, {_MAX_BEAD_DENSITY_PER_MM2:g}] (sparse beads), "
            f"got {bead_density_per_mm2}"
        )


def _volume_requests(volumes: Sequence[VolumeRequest]) -> tuple[VolumeRequest, ...]:
    """The requests as a tuple with absolute paths (relative to the cwd now)."""
    if isinstance(volumes, (str, VolumeRequest)) or not all(
        isinstance(v, VolumeRequest) for v in volumes
    ):
        raise ValueError(
            f"volumes must be a sequence of VolumeRequest, got {volumes!r}"
        )
    return tuple(v.resolved() for v in volumes)


def build_specimen(
    seed: int = 0,
    *,
    n_cells: int = 40,
    width_um: float = 3000.0,
    height_um: float = 3000.0,
    n_fiducials: int = 4,
    bead_density_per_mm2: float = 150.0,
    volumes: Sequence[VolumeRequest] = (),
) -> Specimen:
    """Generate a specimen without caching; see :func:`generate_specimen`.

    Parameters
    ----------
    seed : int
        Seed for :func:`numpy.random.default_rng` (via independent streams for
        the marks, the layout, the beads and each cell).
    n_cells : int
        Number of cells (>= 0).
    width_um, height_um : float
        Size of the coverslip region (>= 1000 um each).
    n_fiducials : int
        Number of fiducial marks, 4..8.
    bead_density_per_mm2 : float
        Mean number of beads per square millimetre.
    volumes : sequence of VolumeRequest
        Real volumes to add as volume cells, beside the procedural cells
        (placed by their own random stream: the marks, cells and beads do not
        change).

    Returns
    -------
    Specimen
        A new specimen.

    Raises
    ------
    ValueError
        If an argument is out of range or the cells do not fit.
    VolumeSpecimenError
        A volume that cannot be read or converted (a ``ValueError`` too).

    """
    _validate(seed, n_cells, width_um, height_um, n_fiducials, bead_density_per_mm2)
    requests = _volume_requests(volumes)
    volume_cells = [load_volume_cell(r) for r in requests]
    root = np.random.SeedSequence(int(seed))
    mark_seq, layout_seq, bead_seq, cells_seq = root.spawn(4)
    fiducials = _make_fiducials(
        np.random.default_rng(mark_seq), width_um, height_um, n_fiducials
    )
    cell_rngs = [np.random.default_rng(s) for s in cells_seq.spawn(n_cells)]
    shapes = [draw_cell_shape(rng) for rng in cell_rngs]
    centres = _place_cells(
        np.random.default_rng(layout_seq),
        [s.max_radius_um for s in shapes],
        fiducials,
        width_um,
        height_um,
    )
    beads = _place_beads(
        np.random.default_rng(bead_seq),
        bead_density_per_mm2,
        fiducials,
        width_um,
        height_um,
    )
    volume_centres = []
    if volume_cells:
        volume_seq = np.random.SeedSequence(int(seed), spawn_key=(_VOLUME_STREAM_KEY,))
        volume_centres = _place_cells(
            np.random.default_rng(volume_seq),
            [v.radius_um for v in volume_cells],
            fiducials,
            width_um,
            height_um,
            occupied=(
                np.array(centres, dtype=np.float64).reshape(-1, 2),
                np.array([s.max_radius_um for s in shapes], dtype=np.float64),
            ),
            kind="volume cell",
        )

    groups = EmitterGroups()
    for mark in fiducials:
        groups.add(f"fiducials/{mark.identity}", *_mark_emitters(mark))
    groups.add("beads", beads, np.full(beads.shape[0], BEAD_PHOTONS_PER_MS))
    cells = tuple(
        build_cell(i, centre, shape, rng, groups)
        for i, (centre, shape, rng) in enumerate(
            zip(centres, shapes, cell_rngs, strict=True)
        )
    )
    volume_truths = tuple(
        add_volume_cell(cell, i, centre, groups)
        for i, (cell, centre) in enumerate(
            zip(volume_cells, volume_centres, strict=True)
        )
    )
    beads.setflags(write=False)
    return Specimen(
        seed=int(seed),
        width_um=float(width_um),
        height_um=float(height_um),
        bead_density_per_mm2=float(bead_density_per_mm2),
        fiducials=fiducials,
        cells=cells,
        beads_xyz_um=beads,
        _index=EmitterIndex(groups, -height_um / 2, height_um),
        volumes=requests,
        volume_cells=volume_truths,
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_build_specimen(
    seed: int,
    n_cells: int,
    width_um: float,
    height_um: float,
    n_fiducials: int,
    bead_density_per_mm2: float,
    volumes: tuple[VolumeRequest, ...],
    stamps: tuple[tuple[int, ...], ...],
) -> Specimen:
    """build_specimen keyed on normalised arguments and the volume files' stamps.

    generate_specimen always calls it the same way, so equal requests share one
    cache entry; a volume file rewritten on disk gives a new entry.
    """
    del stamps  # cache key only
    return build_specimen(
        seed,
        n_cells=n_cells,
        width_um=width_um,
        height_um=height_um,
        n_fiducials=n_fiducials,
        bead_density_per_mm2=bead_density_per_mm2,
        volumes=volumes,
    )


def generate_specimen(
    seed: int = 0,
    *,
    n_cells: int = 40,
    width_um: float = 3000.0,
    height_um: float = 3000.0,
    n_fiducials: int = 4,
    bead_density_per_mm2: float = 150.0,
    volumes: Sequence[VolumeRequest] = (),
) -> Specimen:
    """Generate (or fetch from a small cache) the simulated specimen.

    Identical arguments return the same :class:`Specimen` object, so several
    simulated microscopes in one process view the same coverslip.

    Parameters
    ----------
    seed : int
        Seed of the procedural generation (>= 0).
    n_cells : int
        Number of cells (>= 0).
    width_um, height_um : float
        Size of the coverslip region (>= 1000 um each), centred on the origin.
    n_fiducials : int
        Number of fiducial marks, 4..8: corners first, then edge midpoints.
    bead_density_per_mm2 : float
        Mean number of 100 nm beads per square millimetre of glass.
    volumes : sequence of VolumeRequest
        Real 3D volumes placed as volume cells beside the procedural cells
        (see :mod:`acquire.sim.volume_cells`); relative paths are relative to
        the current working directory. Their centres are
        ``specimen.volume_cells[i].centre_um`` (or ``specimen.all_cells``).

    Returns
    -------
    Specimen
        The (shared, read-only) specimen.

    Raises
    ------
    ValueError
        If an argument is out of range or the cells do not fit.
    VolumeSpecimenError
        A volume that cannot be read or converted (a ``ValueError`` too).

    """
    _validate(seed, n_cells, width_um, height_um, n_fiducials, bead_density_per_mm2)
    requests = _volume_requests(volumes)
    return _cached_build_specimen(
        int(seed),
        int(n_cells),
        float(width_um),
        float(height_um),
        int(n_fiducials),
        float(bead_density_per_mm2),
        requests,
        tuple(file_stamp(r.path) for r in requests),
    )
