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
* sparse 100 nm beads adsorbed on the glass.

For rendering, everything is discretised into weighted point emitters (float32),
ordered by a spatial index so that :meth:`Specimen.emitters_in_box` returns
a field of view quickly.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from acquire.sim.emitters import Emitters
from acquire.sim.fiducial_marks import (
    SHAPE_ORDER,
    SHAPES,
    FiducialMark,
    mark_lattice_xy,
    nominal_mark_positions,
)

__all__ = [
    "ADHESION_PHOTONS_PER_MS",
    "BEAD_PHOTONS_PER_MS",
    "CYTOPLASM_PHOTONS_PER_MS_PER_UM3",
    "FIBRE_PHOTONS_PER_MS_PER_UM",
    "FIDUCIAL_PHOTONS_PER_MS_PER_UM2",
    "NUCLEUS_PHOTONS_PER_MS_PER_UM3",
    "AdhesionTruth",
    "CellTruth",
    "Emitters",
    "FibreTruth",
    "FiducialMark",
    "NucleolusTruth",
    "NucleusTruth",
    "Specimen",
    "build_specimen",
    "generate_specimen",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
SurfaceFn = Callable[[FloatArray, FloatArray], FloatArray]

# Brightness: expected detected photons per ms at nominal illumination.
FIDUCIAL_PHOTONS_PER_MS_PER_UM2 = 300.0
CYTOPLASM_PHOTONS_PER_MS_PER_UM3 = 8.0
NUCLEUS_PHOTONS_PER_MS_PER_UM3 = 120.0
FIBRE_PHOTONS_PER_MS_PER_UM = 400.0
ADHESION_PHOTONS_PER_MS = 800.0
BEAD_PHOTONS_PER_MS = 300.0

BEAD_DIAMETER_UM = 0.1
BEAD_HEIGHT_UM = 0.05
FIDUCIAL_THICKNESS_UM = 0.3
#: Two emitter layers, at the centres of the halves of the mark's thickness.
FIDUCIAL_LAYER_HEIGHTS_UM = (0.25 * FIDUCIAL_THICKNESS_UM, 0.75 * FIDUCIAL_THICKNESS_UM)

# Discretisation of the emitter cloud.
FIDUCIAL_LATTICE_UM = 0.1
NUCLEUS_LATTICE_UM = 0.2
CYTOPLASM_LATTICE_UM = 0.4
FIBRE_SPACING_UM = 0.05

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

# Cell anatomy (micrometres unless stated).
_NUCLEUS_CLEARANCE_UM = 0.5  # cytoplasm between the nucleus top and the cell top
_NUCLEUS_SKIRT = 0.5  # width of the membrane's fall beside the nucleus / its radius
# Fibre paths in the ground truth: a vertex at least every 1 um, and within
# 0.01 um of the fibre everywhere.
_FIBRE_PATH_STEP_UM = 1.0
_FIBRE_PATH_TOLERANCE_UM = 0.01
_DENSE_FIBRE_SAMPLES = 1500
_MAX_FIBRE_ATTEMPTS = 200  # ~3 % of proposals leave the footprint
_OUTLINE_VERTICES = 72
_HARMONIC_ORDERS = (2, 3, 4, 5)
_HARMONIC_MAX_AMPLITUDES = (0.03, 0.025, 0.015, 0.01)
_N_TEXTURE_WAVES = 24
_TEXTURE_CONTRAST = 0.3
_NUCLEOLUS_DARKNESS = 0.6
_ADHESION_THICKNESS_UM = 0.2
_ADHESION_HEIGHT_UM = 0.1
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

# Spatial index: emitters are grouped in strips of y, sorted by x in a strip.
_STRIP_UM = 5.0
_STRIP_EPS_UM = 1e-3
_CACHE_SIZE = 4


@dataclass(frozen=True)
class NucleolusTruth:
    """A darker nucleolus inside the nucleus.

    Attributes
    ----------
    centre_um : tuple of float
        Sample (x, y, h).
    radii_um : tuple of float
        Semi-axes (lateral, lateral, axial).
    darkness : float
        Fractional brightness reduction at its centre.

    """

    centre_um: tuple[float, float, float]
    radii_um: tuple[float, float, float]
    darkness: float


@dataclass(frozen=True)
class NucleusTruth:
    """Ellipsoidal nucleus with chromatin texture.

    Attributes
    ----------
    centre_um : tuple of float
        Sample (x, y, h) of the ellipsoid's centre.
    semi_axes_um : tuple of float
        Two lateral semi-axes and the axial semi-axis.
    orientation_deg : float
        Direction of the first lateral semi-axis, counter-clockwise from +x.
    bottom_um, top_um : float
        Heights of the nucleus' lowest and highest points.
    nucleoli : tuple of NucleolusTruth
        The darker nucleoli.
    photons_per_ms : float
        Summed brightness of the nucleus' emitters.

    """

    centre_um: tuple[float, float, float]
    semi_axes_um: tuple[float, float, float]
    orientation_deg: float
    bottom_um: float
    top_um: float
    nucleoli: tuple[NucleolusTruth, ...]
    photons_per_ms: float


@dataclass(frozen=True)
class FibreTruth:
    """One actin fibre.

    Attributes
    ----------
    index : int
        Fibre index within its cell.
    kind : str
        ``"ventral"`` (along the glass, adhesions at both ends), ``"dorsal"``
        (rising from a peripheral adhesion over the nucleus) or ``"cap"``
        (perinuclear actin cap arching over the nucleus, adhesions at both
        ends).
    path_um : tuple of tuple of float
        Sample (x, y, h) along the fibre, every ~0.5 um, ends included.
    length_um : float
        Arc length of the fibre.
    photons_per_ms_per_um : float
        Linear brightness.
    adhesions : tuple of int
        Indices (within the cell) of the adhesions at its ends.

    """

    index: int
    kind: str
    path_um: tuple[tuple[float, float, float], ...]
    length_um: float
    photons_per_ms_per_um: float
    adhesions: tuple[int, ...]


@dataclass(frozen=True)
class AdhesionTruth:
    """A focal adhesion: an elongated Gaussian blob on the glass.

    Attributes
    ----------
    index : int
        Adhesion index within its cell.
    fibre : int
        Index of the fibre it anchors.
    centre_um : tuple of float
        Sample (x, y, h).
    orientation_deg : float
        Direction of its long axis (along the fibre, pointing outwards).
    fwhm_um : tuple of float
        Full widths at half maximum: length, width, thickness.
    photons_per_ms : float
        Summed brightness.

    """

    index: int
    fibre: int
    centre_um: tuple[float, float, float]
    orientation_deg: float
    fwhm_um: tuple[float, float, float]
    photons_per_ms: float


@dataclass(frozen=True)
class CellTruth:
    """Ground truth of one adherent cell.

    The footprint is an ellipse (``semi_axes_um``, rotated by
    ``orientation_deg``) whose radius is modulated by
    ``1 + sum(a * cos(k * theta + phase))`` over ``outline_harmonics``
    (``(k, a, phase_rad)``), theta measured from the major axis.

    Attributes
    ----------
    index : int
        Cell index.
    identity : str
        Unique name, e.g. ``"C07"``.
    centre_um : tuple of float
        Sample (x, y) of the footprint's centre.
    orientation_deg : float
        Direction of the major axis, counter-clockwise from +x.
    semi_axes_um : tuple of float
        Major and minor semi-axes of the unmodulated ellipse.
    outline_harmonics : tuple of tuple
        ``(order, relative amplitude, phase in radians)``.
    outline_um : tuple of tuple of float
        Sample (x, y) of the footprint's outline polygon.
    height_um : float
        Highest point of the cell (above the nucleus' top).
    lamella_height_um : float
        Thickness of the cell at its edge.
    dome_height_um : float
        Peak of the cytoplasm's dome, not counting the bulge over the nucleus.
    nucleus : NucleusTruth
        The nucleus.
    fibres : tuple of FibreTruth
        Actin fibres.
    adhesions : tuple of AdhesionTruth
        Focal adhesions.
    cytoplasm_photons_per_ms : float
        Summed brightness of the cytoplasm's emitters.

    """

    index: int
    identity: str
    centre_um: tuple[float, float]
    orientation_deg: float
    semi_axes_um: tuple[float, float]
    outline_harmonics: tuple[tuple[int, float, float], ...]
    outline_um: tuple[tuple[float, float], ...]
    height_um: float
    lamella_height_um: float
    dome_height_um: float
    nucleus: NucleusTruth
    fibres: tuple[FibreTruth, ...]
    adhesions: tuple[AdhesionTruth, ...]
    cytoplasm_photons_per_ms: float


# --------------------------------------------------------------------------
# Cell geometry (in the cell's local frame: u along the major axis, v across)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _CellShape:
    """Vectorised geometry of one cell in its local frame."""

    semi_major_um: float
    semi_minor_um: float
    orientation_rad: float  # of the major axis in the sample frame
    harmonic_amplitudes: tuple[float, ...]
    harmonic_phases: tuple[float, ...]
    height_um: float
    lamella_height_um: float
    dome_height_um: float
    nucleus_uv_um: tuple[float, float]
    nucleus_axes_um: tuple[float, float, float]
    nucleus_h_um: float  # height of the nucleus' centre
    nucleus_angle_rad: float  # in the local frame

    @property
    def max_radius_um(self) -> float:
        return self.semi_major_um * (1.0 + sum(self.harmonic_amplitudes))

    def boundary_radius(self, theta: FloatArray) -> FloatArray:
        """Footprint radius along local polar angle ``theta``."""
        a, b = self.semi_major_um, self.semi_minor_um
        r_ellipse = a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)
        modulation = np.ones_like(theta)
        for k, amp, phase in zip(
            _HARMONIC_ORDERS,
            self.harmonic_amplitudes,
            self.harmonic_phases,
            strict=True,
        ):
            modulation += amp * np.cos(k * theta + phase)
        return np.asarray(r_ellipse * modulation, dtype=np.float64)

    def rho(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Normalised footprint radius: 1 on the outline, < 1 inside."""
        # Same as hypot(u, v) / boundary_radius(arctan2(v, u)) without trig:
        # cos/sin of k*theta follow from cos/sin theta by angle addition.
        r = np.hypot(u, v)
        safe = np.where(r > 0.0, r, 1.0)
        c1, s1 = np.where(r > 0.0, u / safe, 1.0), v / safe
        ck, sk = c1, s1
        modulation = np.ones_like(r)
        order = 1
        for k, amp, phase in zip(
            _HARMONIC_ORDERS,
            self.harmonic_amplitudes,
            self.harmonic_phases,
            strict=True,
        ):
            while order < k:
                ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
                order += 1
            modulation += amp * (ck * math.cos(phase) - sk * math.sin(phase))
        ellipse = np.sqrt((u / self.semi_major_um) ** 2 + (v / self.semi_minor_um) ** 2)
        return np.asarray(ellipse / modulation)

    def nucleus_frame(
        self, u: FloatArray, v: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Coordinates along the nucleus' lateral semi-axes."""
        du = u - self.nucleus_uv_um[0]
        dv = v - self.nucleus_uv_um[1]
        c, s = math.cos(self.nucleus_angle_rad), math.sin(self.nucleus_angle_rad)
        return du * c + dv * s, -du * s + dv * c

    def _nucleus_lateral_q(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Squared normalised lateral radius in the nucleus' outline (1 on it)."""
        p, q = self.nucleus_frame(u, v)
        na, nb, _ = self.nucleus_axes_um
        return np.asarray((p / na) ** 2 + (q / nb) ** 2)

    def nucleus_half_thickness(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Half the nucleus' vertical extent at (u, v); NaN outside it."""
        q = self._nucleus_lateral_q(u, v)
        with np.errstate(invalid="ignore"):
            return np.where(q < 1.0, self.nucleus_axes_um[2] * np.sqrt(1.0 - q), np.nan)

    def nucleus_top(self, u: FloatArray, v: FloatArray) -> FloatArray:
        return self.nucleus_h_um + self.nucleus_half_thickness(u, v)

    def nucleus_bottom(self, u: FloatArray, v: FloatArray) -> FloatArray:
        return self.nucleus_h_um - self.nucleus_half_thickness(u, v)

    def inside_nucleus(self, u: FloatArray, v: FloatArray, h: FloatArray) -> BoolArray:
        q = self._nucleus_lateral_q(u, v)
        w = (h - self.nucleus_h_um) / self.nucleus_axes_um[2]
        return np.asarray(q + w * w <= 1.0)

    def nucleus_envelope(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Continuous surface draping the nucleus (0 far from it).

        0.5 um above the nucleus' top over it; outside, a skirt falling from
        0.5 um above the nucleus' equator to 0 over half a nucleus radius, so
        the membrane has no vertical walls.
        """
        q = self._nucleus_lateral_q(u, v)
        rim = self.nucleus_h_um + _NUCLEUS_CLEARANCE_UM
        over = rim + self.nucleus_axes_um[2] * np.sqrt(np.clip(1.0 - q, 0.0, None))
        fall = np.clip(1.0 - (np.sqrt(q) - 1.0) / _NUCLEUS_SKIRT, 0.0, 1.0)
        return np.where(q < 1.0, over, rim * fall * fall)

    def thickness(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Height of the cell's upper surface at (u, v); 0 outside the footprint.

        The higher of a dome (thin lamella at the edge) and the envelope over
        the nucleus, so the nucleus is always covered by 0.5 um of cytoplasm
        and the maximum is ``height_um``.
        """
        rho = self.rho(u, v)
        dome = self.lamella_height_um + (
            self.dome_height_um - self.lamella_height_um
        ) * (np.clip(1.0 - rho * rho, 0.0, 1.0) ** 1.5)
        top = np.maximum(dome, self.nucleus_envelope(u, v))
        return np.where(rho <= 1.0, top, 0.0)

    def to_sample_xyz(
        self, centre_um: tuple[float, float], local: FloatArray
    ) -> FloatArray:
        """Local (u, v, h) rows to sample (x, y, h) for the cell at ``centre_um``."""
        c, s = math.cos(self.orientation_rad), math.sin(self.orientation_rad)
        u, v = local[:, 0], local[:, 1]
        return np.column_stack(
            (centre_um[0] + u * c - v * s, centre_um[1] + u * s + v * c, local[:, 2])
        )


def _draw_cell_shape(rng: np.random.Generator) -> _CellShape:
    """Draw a cell's shape parameters (everything that placement depends on)."""
    a = rng.uniform(17.0, 27.5)
    b = rng.uniform(17.0, a)
    amps = tuple(float(m * rng.uniform()) for m in _HARMONIC_MAX_AMPLITUDES)
    phases = tuple(
        float(p) for p in rng.uniform(0.0, 2 * math.pi, len(_HARMONIC_ORDERS))
    )
    orientation = rng.uniform(0.0, 2 * math.pi)
    height = rng.uniform(3.0, 8.0)
    lamella = rng.uniform(0.5, 0.8)
    na = rng.uniform(5.0, 9.0)
    nb = rng.uniform(4.0, na)
    bottom = rng.uniform(0.3, 0.8)
    top = height - _NUCLEUS_CLEARANCE_UM
    offset_r = rng.uniform(0.0, 3.0)
    offset_t = rng.uniform(0.0, 2 * math.pi)
    nucleus_angle = rng.normal(0.0, math.radians(15.0))
    dome = float(np.clip(rng.uniform(0.35, 0.55) * height, lamella + 0.3, height - 0.5))
    return _CellShape(
        semi_major_um=float(a),
        semi_minor_um=float(b),
        orientation_rad=float(orientation),
        harmonic_amplitudes=amps,
        harmonic_phases=phases,
        height_um=float(height),
        lamella_height_um=float(lamella),
        dome_height_um=dome,
        nucleus_uv_um=(offset_r * math.cos(offset_t), offset_r * math.sin(offset_t)),
        nucleus_axes_um=(float(na), float(nb), (top - bottom) / 2),
        nucleus_h_um=(top + bottom) / 2,
        nucleus_angle_rad=float(nucleus_angle),
    )


# --------------------------------------------------------------------------
# Discretisation helpers
# --------------------------------------------------------------------------


def _jittered_lattice(
    rng: np.random.Generator,
    centre_uv: tuple[float, float],
    half_extent_um: float,
    spacing_um: float,
    lower: SurfaceFn,
    upper: SurfaceFn,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Candidate points of a jittered cubic lattice between two surfaces.

    One uniformly random point is drawn in every lattice cell of every column
    whose height range (``lower`` to ``upper``, NaN outside the object) may
    overlap the object; the caller masks the candidates exactly. Each kept
    point therefore stands for ``spacing_um**3`` of volume without bias.
    """
    d = spacing_um
    iu = np.arange(
        math.floor((centre_uv[0] - half_extent_um) / d),
        math.ceil((centre_uv[0] + half_extent_um) / d),
    )
    iv = np.arange(
        math.floor((centre_uv[1] - half_extent_um) / d),
        math.ceil((centre_uv[1] + half_extent_um) / d),
    )
    gu, gv = np.meshgrid((iu + 0.5) * d, (iv + 0.5) * d, indexing="xy")
    cu, cv = gu.ravel(), gv.ravel()
    # The surfaces at the column centre and corners bound them over the column.
    offsets = (
        (0.0, 0.0),
        (-d / 2, -d / 2),
        (-d / 2, d / 2),
        (d / 2, -d / 2),
        (d / 2, d / 2),
    )
    lo = np.fmin.reduce([lower(cu + ou, cv + ov) for ou, ov in offsets])
    hi = np.fmax.reduce([upper(cu + ou, cv + ov) for ou, ov in offsets])
    valid = np.isfinite(lo) & np.isfinite(hi)
    cu, cv, lo, hi = cu[valid], cv[valid], lo[valid], hi[valid]
    k_lo = np.maximum(np.floor(lo / d).astype(np.int64) - 1, 0)
    k_hi = np.ceil(hi / d).astype(np.int64) + 1
    counts = np.maximum(k_hi - k_lo, 0)
    total = int(counts.sum())
    column = np.repeat(np.arange(cu.size), counts)
    first = np.cumsum(counts) - counts
    layer = k_lo[column] + np.arange(total) - first[column]
    u = cu[column] + rng.uniform(-d / 2, d / 2, total)
    v = cv[column] + rng.uniform(-d / 2, d / 2, total)
    h = (layer + rng.uniform(0.0, 1.0, total)) * d
    return u, v, h


def _truncated_normal(
    rng: np.random.Generator, n: int, sigma: float, lo: float, hi: float
) -> FloatArray:
    """Normal(0, sigma) samples restricted to [lo, hi] (rejection, vectorised)."""
    out = np.empty(0)
    while out.size < n:
        draw = rng.normal(0.0, sigma, 4 * n)
        out = np.concatenate((out, draw[(draw >= lo) & (draw <= hi)]))
    return out[:n]


def _bezier(controls: FloatArray, t: FloatArray) -> FloatArray:
    """Cubic Bezier curve through 4 control points (4, 3) at parameters t."""
    s = 1.0 - t
    basis = np.stack((s**3, 3 * s * s * t, 3 * s * t * t, t**3), axis=1)
    return np.asarray(basis @ controls)


def _arc_length(points: FloatArray) -> FloatArray:
    """Cumulative arc length along a polyline, starting at 0."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.concatenate(([0.0], np.cumsum(seg)))


def _resample(points: FloatArray, s: FloatArray, at: FloatArray) -> FloatArray:
    """Points of a polyline (cumulative length ``s``) at arc lengths ``at``."""
    return np.column_stack(
        [np.interp(at, s, points[:, i]) for i in range(points.shape[1])]
    )


def _segment_distances(points: FloatArray, keep: NDArray[np.intp]) -> FloatArray:
    """Distance of each polyline point to the chord between its kept neighbours."""
    seg = np.clip(
        np.searchsorted(keep, np.arange(len(points)), side="right") - 1,
        0,
        len(keep) - 2,
    )
    a, b = points[keep[seg]], points[keep[seg + 1]]
    ab = b - a
    t = np.einsum("ij,ij->i", points - a, ab) / np.maximum(
        np.einsum("ij,ij->i", ab, ab), 1e-30
    )
    closest = a + np.clip(t, 0.0, 1.0)[:, None] * ab
    return np.asarray(np.linalg.norm(points - closest, axis=1))


def _simplify_polyline(
    points: FloatArray, s: FloatArray, tolerance_um: float
) -> FloatArray:
    """Subset of a dense polyline's vertices that stays within ``tolerance_um`` of it.

    Starts from vertices every :data:`_FIBRE_PATH_STEP_UM` of arc length and
    adds, per pass, the worst vertex of every chord that is off by more than
    the tolerance (a vectorised Ramer-Douglas-Peucker refinement).
    """
    marks = np.arange(0.0, s[-1], _FIBRE_PATH_STEP_UM)
    keep = np.unique(np.concatenate((np.searchsorted(s, marks), [len(points) - 1])))
    while True:
        dist = _segment_distances(points, keep)
        seg = np.clip(
            np.searchsorted(keep, np.arange(len(points)), side="right") - 1,
            0,
            len(keep) - 2,
        )
        worst = np.full(len(keep) - 1, -1.0)
        np.maximum.at(worst, seg, dist)
        bad = np.flatnonzero((dist > tolerance_um) & (dist == worst[seg]))
        if bad.size == 0:
            return np.asarray(points[keep], dtype=np.float64)
        keep = np.union1d(keep, bad)


def _ray_exit_um(shape: _CellShape, origin: FloatArray, direction: FloatArray) -> float:
    """Distance from ``origin`` (inside) to the footprint's outline along a ray."""
    t = np.arange(0.0, 2.0 * shape.max_radius_um + 0.05, 0.05)
    rho = shape.rho(origin[0] + t * direction[0], origin[1] + t * direction[1])
    return float(t[int(np.argmax(rho >= 1.0))])


def _point_at(shape: _CellShape, theta: float, fraction: float) -> FloatArray:
    r = fraction * float(shape.boundary_radius(np.array([theta]))[0])
    return np.array([r * math.cos(theta), r * math.sin(theta)])


def _unit(angle_rad: float) -> FloatArray:
    return np.array([math.cos(angle_rad), math.sin(angle_rad)])


# --------------------------------------------------------------------------
# Cell content
# --------------------------------------------------------------------------


@dataclass
class _Chunks:
    """Accumulates emitter groups, each with a source name."""

    names: list[str] = field(default_factory=list)
    xyz: list[NDArray[np.float32]] = field(default_factory=list)
    photons: list[NDArray[np.float32]] = field(default_factory=list)

    def add(self, name: str, xyz_um: FloatArray, photons_per_ms: FloatArray) -> float:
        """Store one group; returns its summed photons per ms (float32 weights)."""
        ph = np.asarray(photons_per_ms, dtype=np.float32)
        self.names.append(name)
        self.xyz.append(np.asarray(xyz_um, dtype=np.float32).reshape(-1, 3))
        self.photons.append(ph)
        return float(np.sum(ph, dtype=np.float64))


def _fibre_controls(
    rng: np.random.Generator, shape: _CellShape, kind: str
) -> tuple[FloatArray, bool, bool]:
    """Cubic Bezier control points (4, 3) in the local frame of one fibre.

    Returns the controls and whether the start and the end are anchored by an
    adhesion.
    """
    nuc = np.array(shape.nucleus_uv_um)
    n_min = min(shape.nucleus_axes_um[:2])
    if kind == "ventral":
        # Mostly along the major axis (stress fibres align with the cell).
        if rng.uniform() < 0.8:
            angle = float(
                rng.normal(0.0, math.radians(12.0)) + math.pi * rng.integers(0, 2)
            )
        else:
            angle = float(rng.uniform(0.0, math.pi))
        d = _unit(angle)
        origin = np.array(
            [
                rng.uniform(-0.35, 0.35) * shape.semi_major_um,
                rng.uniform(-0.7, 0.7) * shape.semi_minor_um,
            ]
        )
        p0 = origin - rng.uniform(0.78, 0.9) * _ray_exit_um(shape, origin, -d) * d
        p2 = origin + rng.uniform(0.78, 0.9) * _ray_exit_um(shape, origin, d) * d
        length = float(np.linalg.norm(p2 - p0))
        normal = np.array([-d[1], d[0]])
        mid = (p0 + p2) / 2 + rng.normal(0.0, 0.05 * length) * normal
        h0, h2 = rng.uniform(0.2, 0.3, 2)
        hm = rng.uniform(0.4, 0.9)
        q0 = np.array([*p0, h0])
        qm = np.array([*mid, hm])
        q2 = np.array([*p2, h2])
        controls = np.stack((q0, q0 + 2 / 3 * (qm - q0), q2 + 2 / 3 * (qm - q2), q2))
        return controls, True, True
    if kind == "dorsal":
        theta = rng.uniform(0.0, 2 * math.pi)
        e = _point_at(shape, theta, rng.uniform(0.78, 0.88))
        towards = (e - nuc) / max(float(np.linalg.norm(e - nuc)), 1e-9)
        i = nuc + 0.5 * n_min * towards
        h_e = rng.uniform(0.2, 0.3)
        h_i = float(shape.thickness(i[:1], i[1:])[0]) - 0.2
        normal = np.array([-towards[1], towards[0]])
        bow = rng.normal(0.0, 0.05 * float(np.linalg.norm(i - e))) * normal
        c1 = e + (i - e) / 3 + bow
        c2 = e + 2 * (i - e) / 3 + bow
        controls = np.array(
            [[*e, h_e], [*c1, h_e + 0.5 * (h_i - h_e)], [*c2, h_i + 0.5], [*i, h_i]]
        )
        return controls, True, False
    # Perinuclear cap fibre: along the cell, over the nucleus, both ends anchored.
    cap_angle = rng.normal(0.0, math.radians(15.0)) + math.pi * rng.integers(0, 2)
    d = _unit(float(cap_angle))
    origin = nuc + rng.uniform(-0.6, 0.6) * n_min * np.array([-d[1], d[0]])
    a = origin - rng.uniform(0.78, 0.88) * _ray_exit_um(shape, origin, -d) * d
    b = origin + rng.uniform(0.78, 0.88) * _ray_exit_um(shape, origin, d) * d
    high = shape.height_um + 2.0
    controls = np.array(
        [
            [*a, rng.uniform(0.2, 0.3)],
            [*(a + (b - a) / 3), high],
            [*(a + 2 * (b - a) / 3), high],
            [*b, rng.uniform(0.2, 0.3)],
        ]
    )
    return controls, True, True


def _fibre_path(
    shape: _CellShape, controls: FloatArray, kind: str
) -> FloatArray | None:
    """Dense local-frame path of a fibre kept inside the cell, or None if it leaves it.

    Ventral fibres stay on the glass below the nucleus; dorsal and cap fibres
    are pressed under the cell's upper surface and over the nucleus.
    """
    path = _bezier(controls, np.linspace(0.0, 1.0, _DENSE_FIBRE_SAMPLES))
    u, v, h = path[:, 0], path[:, 1], path[:, 2]
    if float(np.max(shape.rho(u, v))) > 0.95:
        return None
    if float(np.linalg.norm(path[-1, :2] - path[0, :2])) < 8.0:
        return None
    top = shape.thickness(u, v)
    if kind == "ventral":
        h = np.minimum(h, top - 0.1)
        bottom = shape.nucleus_bottom(u, v)
        h = np.where(np.isfinite(bottom), np.minimum(h, bottom - 0.1), h)
    else:
        # Between the membrane and the (continuous) envelope of the nucleus,
        # i.e. at least 0.15 um above the nucleus' top where over it.
        lower = shape.nucleus_envelope(u, v) - (_NUCLEUS_CLEARANCE_UM - 0.15)
        h = np.minimum(np.maximum(h, lower), top - 0.15)
    path[:, 2] = np.maximum(h, 0.15)
    return path


def _adhesion_points(
    rng: np.random.Generator,
    centre_uv: FloatArray,
    angle: float,
    fwhm: tuple[float, float, float],
) -> FloatArray:
    """Points of a truncated 3D Gaussian blob (local frame), long axis at ``angle``."""
    n = int(rng.integers(30, 61))
    sl, sw, st = (f / _FWHM_PER_SIGMA for f in fwhm)
    along = _truncated_normal(rng, n, sl, -2.5 * sl, 2.5 * sl)
    across = _truncated_normal(rng, n, sw, -2.5 * sw, 2.5 * sw)
    dh = _truncated_normal(
        rng, n, st, -_ADHESION_HEIGHT_UM, min(2.5 * st, _ADHESION_HEIGHT_UM)
    )
    c, s = math.cos(angle), math.sin(angle)
    return np.column_stack(
        (
            centre_uv[0] + along * c - across * s,
            centre_uv[1] + along * s + across * c,
            _ADHESION_HEIGHT_UM + dh,
        )
    )


def _nucleus_brightness(
    rng: np.random.Generator,
    shape: _CellShape,
    u: FloatArray,
    v: FloatArray,
    h: FloatArray,
) -> tuple[FloatArray, list[tuple[FloatArray, FloatArray]]]:
    """Chromatin texture (relative brightness) and the nucleoli (local frame).

    Returns the per-point factor and, for each nucleolus, its local (u, v, h)
    centre and semi-axes.
    """
    waves = rng.normal(size=(_N_TEXTURE_WAVES, 3))
    waves /= np.linalg.norm(waves, axis=1, keepdims=True)
    waves *= (2 * math.pi / rng.uniform(0.8, 2.5, _N_TEXTURE_WAVES))[:, None]
    phases = rng.uniform(0.0, 2 * math.pi, _N_TEXTURE_WAVES)
    # float32 is ample for a texture and halves the cost on ~50k points/cell.
    du = (u - shape.nucleus_uv_um[0]).astype(np.float32)
    dv = (v - shape.nucleus_uv_um[1]).astype(np.float32)
    dh = (h - shape.nucleus_h_um).astype(np.float32)
    field_ = np.zeros(du.size, dtype=np.float32)
    for (kx, ky, kz), phase in zip(waves.astype(np.float32), phases, strict=True):
        field_ += np.cos(kx * du + ky * dv + kz * dh + np.float32(phase))
    field_ *= np.float32(_TEXTURE_CONTRAST / math.sqrt(_N_TEXTURE_WAVES / 2))
    factor = np.clip(1.0 + field_, 0.3, 1.8).astype(np.float64)

    na, nb, nc = shape.nucleus_axes_um
    ca, sa = math.cos(shape.nucleus_angle_rad), math.sin(shape.nucleus_angle_rad)
    nucleoli = []
    for _ in range(int(rng.integers(1, 4))):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        pos = direction * rng.uniform(0.0, 0.5) * np.array([na, nb, 0.5 * nc])
        centre = np.array(
            [
                shape.nucleus_uv_um[0] + pos[0] * ca - pos[1] * sa,
                shape.nucleus_uv_um[1] + pos[0] * sa + pos[1] * ca,
                shape.nucleus_h_um + pos[2],
            ]
        )
        r_lat = rng.uniform(0.7, 1.5)
        radii = np.array([r_lat, r_lat, min(r_lat, 0.45 * nc)])
        # The dimming exp(-q2**2) is below 1e-35 beyond q2 = 9: skip those points.
        near = np.flatnonzero(
            (np.abs(u - centre[0]) < 3 * radii[0])
            & (np.abs(v - centre[1]) < 3 * radii[1])
            & (np.abs(h - centre[2]) < 3 * radii[2])
        )
        q2 = (
            ((u[near] - centre[0]) / radii[0]) ** 2
            + ((v[near] - centre[1]) / radii[1]) ** 2
            + ((h[near] - centre[2]) / radii[2]) ** 2
        )
        factor[near] *= 1.0 - _NUCLEOLUS_DARKNESS * np.exp(-(q2**2))
        nucleoli.append((centre, radii))
    return factor, nucleoli


def _xyz_tuple(values: FloatArray) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def _r(x: float | np.floating[Any]) -> float:
    """Round a coordinate to 0.1 nm for compact ground truth."""
    return round(float(x), 4)


def _add_cytoplasm(
    shape: _CellShape,
    centre_um: tuple[float, float],
    rng: np.random.Generator,
    chunks: _Chunks,
    name: str,
) -> float:
    """Dim cytoplasm filling the volume under the cell's surface, minus the nucleus."""

    def lower(u: FloatArray, v: FloatArray) -> FloatArray:
        return np.where(shape.rho(u, v) <= 1.0, 0.0, np.nan)

    def upper(u: FloatArray, v: FloatArray) -> FloatArray:
        t = shape.thickness(u, v)
        return np.where(t > 0.0, t, np.nan)

    d = CYTOPLASM_LATTICE_UM
    u, v, h = _jittered_lattice(
        rng, (0.0, 0.0), shape.max_radius_um + d, d, lower, upper
    )
    keep = (h <= shape.thickness(u, v)) & ~shape.inside_nucleus(u, v, h)
    local = np.column_stack((u[keep], v[keep], h[keep]))
    photons = np.full(local.shape[0], CYTOPLASM_PHOTONS_PER_MS_PER_UM3 * d**3)
    return chunks.add(name, shape.to_sample_xyz(centre_um, local), photons)


def _add_nucleus(
    shape: _CellShape,
    centre_um: tuple[float, float],
    rng: np.random.Generator,
    chunks: _Chunks,
    name: str,
) -> NucleusTruth:
    """Textured ellipsoidal nucleus; returns its ground truth."""
    d = NUCLEUS_LATTICE_UM
    na, nb, nc = shape.nucleus_axes_um
    u, v, h = _jittered_lattice(
        rng,
        shape.nucleus_uv_um,
        max(na, nb) + d,
        d,
        shape.nucleus_bottom,
        shape.nucleus_top,
    )
    keep = shape.inside_nucleus(u, v, h)
    u, v, h = u[keep], v[keep], h[keep]
    factor, nucleoli_local = _nucleus_brightness(rng, shape, u, v, h)
    total = chunks.add(
        name,
        shape.to_sample_xyz(centre_um, np.column_stack((u, v, h))),
        NUCLEUS_PHOTONS_PER_MS_PER_UM3 * d**3 * factor,
    )
    nucleoli = tuple(
        NucleolusTruth(
            centre_um=_xyz_tuple(shape.to_sample_xyz(centre_um, c[None, :])[0]),
            radii_um=_xyz_tuple(r),
            darkness=_NUCLEOLUS_DARKNESS,
        )
        for c, r in nucleoli_local
    )
    local_centre = np.array([[*shape.nucleus_uv_um, shape.nucleus_h_um]])
    return NucleusTruth(
        centre_um=_xyz_tuple(shape.to_sample_xyz(centre_um, local_centre)[0]),
        semi_axes_um=(na, nb, nc),
        orientation_deg=math.degrees(shape.orientation_rad + shape.nucleus_angle_rad)
        % 360.0,
        bottom_um=shape.nucleus_h_um - nc,
        top_um=shape.nucleus_h_um + nc,
        nucleoli=nucleoli,
        photons_per_ms=total,
    )


def _add_fibre(
    shape: _CellShape,
    centre_um: tuple[float, float],
    rng: np.random.Generator,
    chunks: _Chunks,
    prefix: str,
    kind: str,
    fibre_index: int,
    first_adhesion: int,
) -> tuple[FibreTruth, list[AdhesionTruth]]:
    """One actin fibre and the adhesions anchoring it; returns their ground truth."""
    for _ in range(_MAX_FIBRE_ATTEMPTS):
        controls, anchor_start, anchor_end = _fibre_controls(rng, shape, kind)
        path = _fibre_path(shape, controls, kind)
        if path is not None:
            break
    else:
        raise RuntimeError(f"could not route a {kind} fibre inside {prefix}")
    s = _arc_length(path)
    length = float(s[-1])
    n_pts = math.ceil(length / FIBRE_SPACING_UM)
    step = length / n_pts
    pts = _resample(path, s, (np.arange(n_pts, dtype=np.float64) + 0.5) * step)
    density = FIBRE_PHOTONS_PER_MS_PER_UM * float(rng.uniform(0.8, 1.2))
    chunks.add(
        f"{prefix}/fibre{fibre_index:02d}",
        shape.to_sample_xyz(centre_um, pts),
        np.full(n_pts, density * step),
    )

    adhesions: list[AdhesionTruth] = []
    ends = ((path[0], path[1]), (path[-1], path[-2]))
    for (tip, inner), anchored in zip(ends, (anchor_start, anchor_end), strict=True):
        if not anchored:
            continue
        angle = math.atan2(tip[1] - inner[1], tip[0] - inner[0])
        fwhm = (
            float(rng.uniform(1.2, 1.8)),
            float(rng.uniform(0.4, 0.6)),
            _ADHESION_THICKNESS_UM,
        )
        blob = _adhesion_points(rng, tip[:2], angle, fwhm)
        photons = ADHESION_PHOTONS_PER_MS * float(rng.uniform(0.8, 1.2))
        index = first_adhesion + len(adhesions)
        total = chunks.add(
            f"{prefix}/adhesion{index:02d}",
            shape.to_sample_xyz(centre_um, blob),
            np.full(blob.shape[0], photons / blob.shape[0]),
        )
        tip_xyz = shape.to_sample_xyz(
            centre_um, np.array([[tip[0], tip[1], _ADHESION_HEIGHT_UM]])
        )
        adhesions.append(
            AdhesionTruth(
                index=index,
                fibre=fibre_index,
                centre_um=_xyz_tuple(tip_xyz[0]),
                orientation_deg=(math.degrees(shape.orientation_rad + angle)) % 360.0,
                fwhm_um=fwhm,
                photons_per_ms=total,
            )
        )

    coarse = shape.to_sample_xyz(
        centre_um, _simplify_polyline(path, s, _FIBRE_PATH_TOLERANCE_UM)
    )
    fibre = FibreTruth(
        index=fibre_index,
        kind=kind,
        path_um=tuple((_r(p[0]), _r(p[1]), _r(p[2])) for p in coarse),
        length_um=length,
        photons_per_ms_per_um=density,
        adhesions=tuple(a.index for a in adhesions),
    )
    return fibre, adhesions


def _build_cell(
    index: int,
    centre_um: tuple[float, float],
    shape: _CellShape,
    rng: np.random.Generator,
    chunks: _Chunks,
) -> CellTruth:
    """Discretise one cell into emitter groups and return its ground truth."""
    identity = f"C{index:02d}"
    prefix = f"cells/{identity}"
    cytoplasm = _add_cytoplasm(shape, centre_um, rng, chunks, f"{prefix}/cytoplasm")
    nucleus = _add_nucleus(shape, centre_um, rng, chunks, f"{prefix}/nucleus")

    n_fibres = int(rng.integers(10, 26))
    n_dorsal = round(n_fibres * float(rng.uniform(0.15, 0.3)))
    n_cap = round(n_fibres * float(rng.uniform(0.1, 0.2)))
    kinds = (
        ["ventral"] * (n_fibres - n_dorsal - n_cap)
        + ["dorsal"] * n_dorsal
        + ["cap"] * n_cap
    )
    fibres: list[FibreTruth] = []
    adhesions: list[AdhesionTruth] = []
    for i, kind in enumerate(kinds):
        fibre, anchors = _add_fibre(
            shape, centre_um, rng, chunks, prefix, kind, i, len(adhesions)
        )
        fibres.append(fibre)
        adhesions.extend(anchors)

    theta = np.linspace(0.0, 2 * math.pi, _OUTLINE_VERTICES, endpoint=False)
    radius = shape.boundary_radius(theta)
    outline = shape.to_sample_xyz(
        centre_um,
        np.column_stack(
            (radius * np.cos(theta), radius * np.sin(theta), np.zeros_like(theta))
        ),
    )
    harmonics = zip(
        _HARMONIC_ORDERS, shape.harmonic_amplitudes, shape.harmonic_phases, strict=True
    )
    return CellTruth(
        index=index,
        identity=identity,
        centre_um=centre_um,
        orientation_deg=math.degrees(shape.orientation_rad),
        semi_axes_um=(shape.semi_major_um, shape.semi_minor_um),
        outline_harmonics=tuple(harmonics),
        outline_um=tuple((_r(x), _r(y)) for x, y, _ in outline),
        height_um=shape.height_um,
        lamella_height_um=shape.lamella_height_um,
        dome_height_um=shape.dome_height_um,
        nucleus=nucleus,
        fibres=tuple(fibres),
        adhesions=tuple(adhesions),
        cytoplasm_photons_per_ms=cytoplasm,
    )


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
) -> list[tuple[float, float]]:
    """Dart-throw non-overlapping cell centres clear of the border and the marks.

    Raises
    ------
    ValueError
        If a cell finds no free spot in :data:`_MAX_PLACEMENT_ATTEMPTS` throws.

    """
    mark_xy = np.array([m.centre_um for m in marks])
    mark_r = np.array([m.radius_um for m in marks])
    placed = np.empty((0, 2))
    placed_r = np.empty(0)

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
                f"could not place cell {i} of {len(radii_um)} in a "
                f"{width_um:g} x {height_um:g} um region; "
                "use fewer cells or a larger region"
            )
        placed = np.vstack((placed, centre))
        placed_r = np.append(placed_r, r)
    return [(float(x), float(y)) for x, y in placed]


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
# Spatial index
# --------------------------------------------------------------------------


def _f32_at_least(value: float) -> np.float32:
    """Smallest float32 >= value, so float32 comparisons equal exact ones."""
    f = np.float32(value)
    if float(f) < value:
        f = np.nextafter(f, np.float32(np.inf))
    return f


def _f32_at_most(value: float) -> np.float32:
    """Largest float32 <= value."""
    f = np.float32(value)
    if float(f) > value:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


def _strip_x_key(
    strip: NDArray[np.int64], x_um: NDArray[np.float32]
) -> NDArray[np.uint64]:
    """Integer key ordering by strip, then exactly by float32 x.

    The float32 bit pattern is made monotonic (negatives flipped, sign bit set
    on positives) and put below the strip index, so one integer argsort
    replaces a two-key lexsort at a third of the cost.
    """
    bits = np.ascontiguousarray(x_um, dtype=np.float32).view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(np.bool_)
    monotonic = np.where(negative, ~bits, bits | np.uint32(0x80000000))
    return (strip.astype(np.uint64) << np.uint64(32)) | monotonic.astype(np.uint64)


class _EmitterIndex:
    """Emitters grouped in strips of y, sorted by x within each strip.

    A box query binary-searches x in each strip it overlaps, so it costs
    about the size of its result; only the two edge strips need a y test.
    """

    def __init__(self, chunks: _Chunks, y0_um: float, height_um: float) -> None:
        """Take over the emitters of ``chunks`` (its arrays are released)."""
        counts = np.array([p.size for p in chunks.photons], dtype=np.int64)
        xyz = np.concatenate(chunks.xyz) if chunks.xyz else np.empty((0, 3), np.float32)
        photons = (
            np.concatenate(chunks.photons)
            if chunks.photons
            else np.empty(0, np.float32)
        )
        # Free the per-group copies before sorting to keep the peak down.
        chunks.xyz.clear()
        chunks.photons.clear()
        source = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
        self.n_strips = max(1, math.ceil(height_um / _STRIP_UM))
        self.y0_um = y0_um
        strip = self._strips_of(xyz[:, 1].astype(np.float64))
        order = np.argsort(_strip_x_key(strip, xyz[:, 0]))
        self.starts = np.searchsorted(strip[order], np.arange(self.n_strips + 1))
        del strip
        self.xyz_um = xyz[order]
        del xyz
        self.photons_per_ms = photons[order]
        self.source_ids = source[order]
        self.x_um = np.ascontiguousarray(self.xyz_um[:, 0])
        self.sources = tuple(chunks.names)
        for arr in (
            self.xyz_um,
            self.photons_per_ms,
            self.source_ids,
            self.x_um,
            self.starts,
        ):
            arr.setflags(write=False)

    def _strips_of(self, y_um: FloatArray) -> NDArray[np.int64]:
        s = np.floor((y_um - self.y0_um) / _STRIP_UM)
        return np.clip(s, 0, self.n_strips - 1).astype(np.int64)

    def _strip_of(self, y_um: float) -> int:
        s = min(max((y_um - self.y0_um) / _STRIP_UM, 0.0), float(self.n_strips - 1))
        return math.floor(s)

    @property
    def nbytes(self) -> int:
        return int(
            self.xyz_um.nbytes
            + self.photons_per_ms.nbytes
            + self.source_ids.nbytes
            + self.x_um.nbytes
            + self.starts.nbytes
        )

    def box(self, x_min: float, x_max: float, y_min: float, y_max: float) -> Emitters:
        empty = Emitters(np.empty((0, 3), np.float32), np.empty(0, np.float32))
        if x_min > x_max or y_min > y_max:
            return empty
        x_lo, x_hi = _f32_at_least(x_min), _f32_at_most(x_max)
        y_lo, y_hi = _f32_at_least(y_min), _f32_at_most(y_max)
        xyz_parts: list[NDArray[np.float32]] = []
        ph_parts: list[NDArray[np.float32]] = []
        last = self.n_strips - 1
        for j in range(self._strip_of(y_min), self._strip_of(y_max) + 1):
            a, b = int(self.starts[j]), int(self.starts[j + 1])
            if a == b:
                continue
            xs = self.x_um[a:b]
            i0 = a + int(np.searchsorted(xs, x_lo, side="left"))
            i1 = a + int(np.searchsorted(xs, x_hi, side="right"))
            if i0 >= i1:
                continue
            strip_lo = self.y0_um + j * _STRIP_UM
            inside = (
                0 < j < last
                and strip_lo - _STRIP_EPS_UM >= y_min
                and strip_lo + _STRIP_UM + _STRIP_EPS_UM <= y_max
            )
            if inside:
                xyz_parts.append(self.xyz_um[i0:i1])
                ph_parts.append(self.photons_per_ms[i0:i1])
            else:
                y = self.xyz_um[i0:i1, 1]
                sel = np.flatnonzero((y >= y_lo) & (y <= y_hi)) + i0
                xyz_parts.append(self.xyz_um[sel])
                ph_parts.append(self.photons_per_ms[sel])
        if not xyz_parts:
            return empty
        return Emitters(np.concatenate(xyz_parts), np.concatenate(ph_parts))


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
        Ground truth of every cell.
    beads_xyz_um : ndarray of float64, shape (M, 3)
        Bead centres.

    """

    seed: int
    width_um: float
    height_um: float
    bead_density_per_mm2: float
    fiducials: tuple[FiducialMark, ...]
    cells: tuple[CellTruth, ...]
    beads_xyz_um: FloatArray
    _index: _EmitterIndex = field(repr=False)

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

        Groups: ``fiducials/<identity>``, ``beads``, and per cell
        ``cells/<identity>/cytoplasm``, ``.../nucleus``, ``.../fibreNN`` and
        ``.../adhesionNN`` (numbered as in :class:`CellTruth`).
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

    def ground_truth(self) -> dict[str, Any]:
        """The specimen's ground truth as JSON-serialisable data.

        Returns
        -------
        dict
            ``seed``, ``parameters`` (the generation arguments), ``coordinates``
            (frame description), ``brightness`` (emitter densities),
            ``fiducials`` (with areas and radii), ``cells``, ``beads`` and
            emitter totals.

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
            },
            "fiducials": fiducials,
            "cells": [asdict(c) for c in self.cells],
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


def build_specimen(
    seed: int = 0,
    *,
    n_cells: int = 40,
    width_um: float = 3000.0,
    height_um: float = 3000.0,
    n_fiducials: int = 4,
    bead_density_per_mm2: float = 150.0,
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

    Returns
    -------
    Specimen
        A new specimen.

    Raises
    ------
    ValueError
        If an argument is out of range or the cells do not fit.

    """
    _validate(seed, n_cells, width_um, height_um, n_fiducials, bead_density_per_mm2)
    root = np.random.SeedSequence(int(seed))
    mark_seq, layout_seq, bead_seq, cells_seq = root.spawn(4)
    fiducials = _make_fiducials(
        np.random.default_rng(mark_seq), width_um, height_um, n_fiducials
    )
    cell_rngs = [np.random.default_rng(s) for s in cells_seq.spawn(n_cells)]
    shapes = [_draw_cell_shape(rng) for rng in cell_rngs]
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

    chunks = _Chunks()
    for mark in fiducials:
        chunks.add(f"fiducials/{mark.identity}", *_mark_emitters(mark))
    chunks.add("beads", beads, np.full(beads.shape[0], BEAD_PHOTONS_PER_MS))
    cells = tuple(
        _build_cell(i, centre, shape, rng, chunks)
        for i, (centre, shape, rng) in enumerate(
            zip(centres, shapes, cell_rngs, strict=True)
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
        _index=_EmitterIndex(chunks, -height_um / 2, height_um),
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_specimen(
    seed: int,
    n_cells: int,
    width_um: float,
    height_um: float,
    n_fiducials: int,
    bead_density_per_mm2: float,
) -> Specimen:
    return build_specimen(
        seed,
        n_cells=n_cells,
        width_um=width_um,
        height_um=height_um,
        n_fiducials=n_fiducials,
        bead_density_per_mm2=bead_density_per_mm2,
    )


def generate_specimen(
    seed: int = 0,
    *,
    n_cells: int = 40,
    width_um: float = 3000.0,
    height_um: float = 3000.0,
    n_fiducials: int = 4,
    bead_density_per_mm2: float = 150.0,
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

    Returns
    -------
    Specimen
        The (shared, read-only) specimen.

    Raises
    ------
    ValueError
        If an argument is out of range or the cells do not fit.

    """
    _validate(seed, n_cells, width_um, height_um, n_fiducials, bead_density_per_mm2)
    return _cached_specimen(
        int(seed),
        int(n_cells),
        float(width_um),
        float(height_um),
        int(n_fiducials),
        float(bead_density_per_mm2),
    )
