"""One simulated adherent cell, discretised into point emitters.

A cell is a dome of dim cytoplasm over a textured ellipsoidal nucleus with
darker nucleoli, plus actin fibres and focal adhesions (see
:mod:`acquire.sim.cell_fibres`). :func:`build_cell` adds its emitter groups
and returns its :class:`~acquire.sim.cell_truth.CellTruth`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from acquire.sim.cell_fibres import add_fibre
from acquire.sim.cell_truth import (
    AdhesionTruth,
    CellTruth,
    FibreTruth,
    NucleolusTruth,
    NucleusTruth,
    round_um,
    xyz_tuple,
)

if TYPE_CHECKING:
    from acquire.sim.cell_shape import CellShape
    from acquire.sim.emitter_index import EmitterGroups

__all__ = [
    "CYTOPLASM_LATTICE_UM",
    "CYTOPLASM_PHOTONS_PER_MS_PER_UM3",
    "NUCLEUS_LATTICE_UM",
    "NUCLEUS_PHOTONS_PER_MS_PER_UM3",
    "build_cell",
]

FloatArray = NDArray[np.float64]
SurfaceFn = Callable[[FloatArray, FloatArray], FloatArray]

# Brightness: expected detected photons per ms at nominal illumination.
CYTOPLASM_PHOTONS_PER_MS_PER_UM3 = 8.0
NUCLEUS_PHOTONS_PER_MS_PER_UM3 = 120.0

# Discretisation of the emitter cloud.
NUCLEUS_LATTICE_UM = 0.2
CYTOPLASM_LATTICE_UM = 0.4

_OUTLINE_VERTICES = 72
_N_TEXTURE_WAVES = 24
_TEXTURE_CONTRAST = 0.3
_NUCLEOLUS_DARKNESS = 0.6


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


def _nucleus_brightness(
    rng: np.random.Generator,
    shape: CellShape,
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


def _add_cytoplasm(
    shape: CellShape,
    centre_um: tuple[float, float],
    rng: np.random.Generator,
    groups: EmitterGroups,
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
    return groups.add(name, shape.to_sample_xyz(centre_um, local), photons)


def _add_nucleus(
    shape: CellShape,
    centre_um: tuple[float, float],
    rng: np.random.Generator,
    groups: EmitterGroups,
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
    total = groups.add(
        name,
        shape.to_sample_xyz(centre_um, np.column_stack((u, v, h))),
        NUCLEUS_PHOTONS_PER_MS_PER_UM3 * d**3 * factor,
    )
    nucleoli = tuple(
        NucleolusTruth(
            centre_um=xyz_tuple(shape.to_sample_xyz(centre_um, c[None, :])[0]),
            radii_um=xyz_tuple(r),
            darkness=_NUCLEOLUS_DARKNESS,
        )
        for c, r in nucleoli_local
    )
    local_centre = np.array([[*shape.nucleus_uv_um, shape.nucleus_h_um]])
    return NucleusTruth(
        centre_um=xyz_tuple(shape.to_sample_xyz(centre_um, local_centre)[0]),
        semi_axes_um=(na, nb, nc),
        orientation_deg=math.degrees(shape.orientation_rad + shape.nucleus_angle_rad)
        % 360.0,
        bottom_um=shape.nucleus_h_um - nc,
        top_um=shape.nucleus_h_um + nc,
        nucleoli=nucleoli,
        photons_per_ms=total,
    )


def build_cell(
    index: int,
    centre_um: tuple[float, float],
    shape: CellShape,
    rng: np.random.Generator,
    groups: EmitterGroups,
) -> CellTruth:
    """Discretise one cell into emitter groups and return its ground truth.

    Parameters
    ----------
    index : int
        Cell index; names the cell ``C<index>`` and its groups
        ``cells/C<index>/...``.
    centre_um : tuple of float
        Sample (x, y) of the footprint's centre.
    shape : CellShape
        The cell's geometry (from :func:`~acquire.sim.cell_shape.draw_cell_shape`).
    rng : numpy.random.Generator
        The cell's own random stream (the same one that drew ``shape``).
    groups : EmitterGroups
        Receives the cytoplasm, nucleus, fibre and adhesion emitter groups.

    Returns
    -------
    CellTruth
        The cell's ground truth.

    """
    identity = f"C{index:02d}"
    prefix = f"cells/{identity}"
    cytoplasm = _add_cytoplasm(shape, centre_um, rng, groups, f"{prefix}/cytoplasm")
    nucleus = _add_nucleus(shape, centre_um, rng, groups, f"{prefix}/nucleus")

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
        fibre, anchors = add_fibre(
            shape, centre_um, rng, groups, prefix, kind, i, len(adhesions)
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
    return CellTruth(
        index=index,
        identity=identity,
        centre_um=centre_um,
        orientation_deg=math.degrees(shape.orientation_rad),
        semi_axes_um=(shape.semi_major_um, shape.semi_minor_um),
        outline_harmonics=shape.harmonics,
        outline_um=tuple((round_um(x), round_um(y)) for x, y, _ in outline),
        height_um=shape.height_um,
        lamella_height_um=shape.lamella_height_um,
        dome_height_um=shape.dome_height_um,
        nucleus=nucleus,
        fibres=tuple(fibres),
        adhesions=tuple(adhesions),
        cytoplasm_photons_per_ms=cytoplasm,
    )
