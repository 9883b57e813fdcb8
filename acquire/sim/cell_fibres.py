"""Actin fibres of a simulated cell and the focal adhesions anchoring them.

A fibre is a cubic Bezier curve in the cell's local frame, routed inside the
cell (ventral fibres on the glass under the nucleus, dorsal and cap fibres
under the membrane and over the nucleus), then discretised into evenly
spaced point emitters; each anchored end gets an adhesion, a truncated
Gaussian blob of emitters on the glass.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from acquire.sim.cell_shape import NUCLEUS_CLEARANCE_UM, CellShape
from acquire.sim.cell_truth import AdhesionTruth, FibreTruth, round_um, xyz_tuple
from acquire.sim.polyline import arc_length, bezier, resample, simplify_polyline

if TYPE_CHECKING:
    from acquire.sim.emitter_index import EmitterGroups

__all__ = [
    "ADHESION_PHOTONS_PER_MS",
    "FIBRE_PHOTONS_PER_MS_PER_UM",
    "FIBRE_SPACING_UM",
    "add_fibre",
]

FloatArray = NDArray[np.float64]

# Brightness: expected detected photons per ms at nominal illumination.
FIBRE_PHOTONS_PER_MS_PER_UM = 400.0
ADHESION_PHOTONS_PER_MS = 800.0

#: Spacing of a fibre's point emitters along its length.
FIBRE_SPACING_UM = 0.05

# Fibre paths in the ground truth: a vertex at least every 1 um, and within
# 0.01 um of the fibre everywhere.
_FIBRE_PATH_STEP_UM = 1.0
_FIBRE_PATH_TOLERANCE_UM = 0.01
_DENSE_FIBRE_SAMPLES = 1500
_MAX_FIBRE_ATTEMPTS = 200  # ~3 % of proposals leave the footprint
_ADHESION_THICKNESS_UM = 0.2
_ADHESION_HEIGHT_UM = 0.1
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _truncated_normal(
    rng: np.random.Generator, n: int, sigma: float, lo: float, hi: float
) -> FloatArray:
    """Normal(0, sigma) samples restricted to [lo, hi] (rejection, vectorised)."""
    out = np.empty(0)
    while out.size < n:
        draw = rng.normal(0.0, sigma, 4 * n)
        out = np.concatenate((out, draw[(draw >= lo) & (draw <= hi)]))
    return out[:n]


def _ray_exit_um(shape: CellShape, origin: FloatArray, direction: FloatArray) -> float:
    """Distance from ``origin`` (inside) to the footprint's outline along a ray."""
    t = np.arange(0.0, 2.0 * shape.max_radius_um + 0.05, 0.05)
    rho = shape.rho(origin[0] + t * direction[0], origin[1] + t * direction[1])
    return float(t[int(np.argmax(rho >= 1.0))])


def _span_through(
    rng: np.random.Generator,
    shape: CellShape,
    origin: FloatArray,
    direction: FloatArray,
    max_reach: float,
) -> tuple[FloatArray, FloatArray]:
    """Ends of a straight span through ``origin`` (inside) along ``direction``.

    Each end lies a random fraction, 0.78 to ``max_reach``, of the way from
    ``origin`` to the footprint's outline (start backwards, end forwards).
    """
    back = rng.uniform(0.78, max_reach) * _ray_exit_um(shape, origin, -direction)
    start = origin - back * direction
    ahead = rng.uniform(0.78, max_reach) * _ray_exit_um(shape, origin, direction)
    end = origin + ahead * direction
    return start, end


def _point_at(shape: CellShape, theta: float, fraction: float) -> FloatArray:
    r = fraction * float(shape.boundary_radius(np.array([theta]))[0])
    return np.array([r * math.cos(theta), r * math.sin(theta)])


def _unit(angle_rad: float) -> FloatArray:
    return np.array([math.cos(angle_rad), math.sin(angle_rad)])


def _fibre_controls(
    rng: np.random.Generator, shape: CellShape, kind: str
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
        p0, p2 = _span_through(rng, shape, origin, d, 0.9)
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
    a, b = _span_through(rng, shape, origin, d, 0.88)
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


def _fibre_path(shape: CellShape, controls: FloatArray, kind: str) -> FloatArray | None:
    """Dense local-frame path of a fibre kept inside the cell, or None if it leaves it.

    Ventral fibres stay on the glass below the nucleus; dorsal and cap fibres
    are pressed under the cell's upper surface and over the nucleus.
    """
    path = bezier(controls, np.linspace(0.0, 1.0, _DENSE_FIBRE_SAMPLES))
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
        lower = shape.nucleus_envelope(u, v) - (NUCLEUS_CLEARANCE_UM - 0.15)
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


def add_fibre(
    shape: CellShape,
    centre_um: tuple[float, float],
    rng: np.random.Generator,
    groups: EmitterGroups,
    prefix: str,
    kind: str,
    fibre_index: int,
    first_adhesion: int,
) -> tuple[FibreTruth, list[AdhesionTruth]]:
    """Add one actin fibre and the adhesions anchoring it.

    Parameters
    ----------
    shape : CellShape
        Geometry of the cell.
    centre_um : tuple of float
        Sample (x, y) of the cell's centre.
    rng : numpy.random.Generator
        The cell's random stream.
    groups : EmitterGroups
        Receives the groups ``<prefix>/fibreNN`` and ``<prefix>/adhesionNN``.
    prefix : str
        Name of the cell's groups, e.g. ``"cells/C03"``.
    kind : str
        ``"ventral"``, ``"dorsal"`` or ``"cap"`` (see :class:`FibreTruth`).
    fibre_index : int
        Index of the fibre within its cell.
    first_adhesion : int
        Index (within the cell) of the fibre's first adhesion.

    Returns
    -------
    fibre : FibreTruth
        Ground truth of the fibre.
    adhesions : list of AdhesionTruth
        Ground truth of its adhesions (none, one or two).

    Raises
    ------
    RuntimeError
        If no proposed route stays inside the cell.

    """
    for _ in range(_MAX_FIBRE_ATTEMPTS):
        controls, anchor_start, anchor_end = _fibre_controls(rng, shape, kind)
        path = _fibre_path(shape, controls, kind)
        if path is not None:
            break
    else:
        raise RuntimeError(f"could not route a {kind} fibre inside {prefix}")
    s = arc_length(path)
    length = float(s[-1])
    n_pts = math.ceil(length / FIBRE_SPACING_UM)
    step = length / n_pts
    pts = resample(path, s, (np.arange(n_pts, dtype=np.float64) + 0.5) * step)
    density = FIBRE_PHOTONS_PER_MS_PER_UM * float(rng.uniform(0.8, 1.2))
    groups.add(
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
        total = groups.add(
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
                centre_um=xyz_tuple(tip_xyz[0]),
                orientation_deg=(math.degrees(shape.orientation_rad + angle)) % 360.0,
                fwhm_um=fwhm,
                photons_per_ms=total,
            )
        )

    coarse = shape.to_sample_xyz(
        centre_um,
        simplify_polyline(path, s, _FIBRE_PATH_TOLERANCE_UM, _FIBRE_PATH_STEP_UM),
    )
    fibre = FibreTruth(
        index=fibre_index,
        kind=kind,
        path_um=tuple((round_um(p[0]), round_um(p[1]), round_um(p[2])) for p in coarse),
        length_um=length,
        photons_per_ms_per_um=density,
        adhesions=tuple(a.index for a in adhesions),
    )
    return fibre, adhesions
