"""Rotation-invariant shape descriptors of segmented fiducial marks.

A segmented mark is described by numbers that do not change when the mark is
turned or mirrored (a camera may be flipped): its area, how many parts and
holes it has, its solidity and compactness, and two invariants of its second
moments. :func:`descriptor_distance2` compares two sets of them;
:mod:`correlate.fiducials.matching` uses it to compare an image's object with a
holder's marks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull
from skimage import measure

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]

#: Tolerances of the descriptor comparison (about one standard deviation of
#: the scatter between images of a mark and its reference, each).
TOLERANCES: dict[str, float] = {
    "log_area": 0.05,
    "n_parts": 0.3,
    "n_holes": 0.3,
    "solidity": 0.04,
    "log_compactness": 0.08,
    "anisotropy": 0.05,
    "log_spread": 0.04,
}


@dataclass(frozen=True)
class ShapeDescriptors:
    """Rotation- and mirror-invariant descriptors of a segmented mark.

    Attributes
    ----------
    area_um2 : float
        Area in square micrometres.
    n_parts : int
        Connected parts (8-connectivity).
    n_holes : int
        Holes (parts minus the Euler number).
    solidity : float
        Area over the area of the convex hull of all parts.
    compactness : float
        Perimeter squared over ``4 pi area`` (1 for a disc).
    anisotropy : float
        ``1 - minor / major`` eigenvalue of the second central moments
        (0 for shapes with isotropic moments: disc, square, triangle, cross).
    spread : float
        Trace of the second central moments over the area (scale invariant;
        ``1 / (2 pi)`` for a disc).

    """

    area_um2: float
    n_parts: int
    n_holes: int
    solidity: float
    compactness: float
    anisotropy: float
    spread: float


def describe_mask(
    mask: ArrayLike,
    *,
    pixel_size_um: float,
    field: ArrayLike | None = None,
    level: float = 0.5,
) -> ShapeDescriptors:
    """Descriptors of a segmented mark.

    Parameters
    ----------
    mask : array_like of bool
        2-D mask of one mark (all its parts); it must not be empty.
    pixel_size_um : float
        Pixel size in micrometres.
    field : array_like, optional
        The grey image the mask was thresholded from (same shape). The
        perimeter is then measured along its sub-pixel contour at ``level``
        (following the mask wherever the mask was edited), which unlike a
        pixel-edge perimeter does not depend on how the mark is turned.
    level : float
        Threshold of ``field``.

    Returns
    -------
    ShapeDescriptors
        The descriptors.

    Raises
    ------
    ValueError
        If the mask is empty, not 2-D, or shaped unlike the field.

    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2 or not m.any():
        raise ValueError("mask must be a non-empty 2-D array")
    grey = None if field is None else np.asarray(field, dtype=np.float64)
    if grey is not None and grey.shape != m.shape:
        raise ValueError(f"field {grey.shape} and mask {m.shape} differ in shape")
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    m = np.pad(m[crop], 1)
    n_pixels = int(m.sum())
    _, n_parts = ndi.label(m, structure=np.ones((3, 3)))
    euler = int(measure.euler_number(m, connectivity=2))
    if grey is None:
        perimeter_px = float(measure.perimeter(m))
    else:
        perimeter_px = _contour_length_px(np.pad(grey[crop], 1), m, level)
    rr, cc = np.nonzero(m)
    cov = np.cov(np.vstack((rr, cc)).astype(np.float64), bias=True)
    # a pixel is a square, not a point: add its own second moment
    eig = np.linalg.eigvalsh(cov) + 1.0 / 12.0
    return ShapeDescriptors(
        area_um2=n_pixels * pixel_size_um**2,
        n_parts=int(n_parts),
        n_holes=max(int(n_parts) - euler, 0),
        solidity=min(n_pixels / _hull_area_px(m), 1.0),
        compactness=perimeter_px**2 / (4 * math.pi * n_pixels),
        anisotropy=float(1.0 - eig[0] / eig[1]),
        spread=float((eig[0] + eig[1]) / n_pixels),
    )


def _contour_length_px(field: FloatArray, mask: BoolArray, level: float) -> float:
    """Length of the sub-pixel ``level`` contour of ``field`` around ``mask``.

    Where the mask disagrees with the field (specks removed, pinholes filled,
    other objects cut away) the field is pushed across the level, so the
    contour follows the mask there and the field's sub-pixel edge elsewhere.
    """
    span = max(float(np.ptp(field)), 1.0)
    inside = np.maximum(field, level + 1e-6 * span)
    outside = np.minimum(field, level - 1e-6 * span)
    guided = np.where(mask, inside, outside)
    guided[[0, -1], :] = level - span
    guided[:, [0, -1]] = level - span
    return float(
        sum(
            np.hypot(*np.diff(contour, axis=0).T).sum()
            for contour in measure.find_contours(guided, level)
        )
    )


def _hull_area_px(mask: BoolArray) -> float:
    """Area of the convex hull of the mask's pixel squares, in pixels."""
    edge = mask & ~ndi.binary_erosion(mask)
    rows, cols = np.nonzero(edge)
    corners = np.concatenate(
        [
            np.column_stack((rows + dr, cols + dc))
            for dr in (-0.5, 0.5)
            for dc in (-0.5, 0.5)
        ]
    )
    return float(ConvexHull(corners).volume)


def descriptor_distance2(a: ShapeDescriptors, b: ShapeDescriptors) -> float:
    """Squared normalised distance between two sets of descriptors.

    Parameters
    ----------
    a, b : ShapeDescriptors
        Descriptors to compare.

    Returns
    -------
    float
        Sum over descriptors of (difference / tolerance) squared, with the
        tolerances of :data:`TOLERANCES`; differences of area, compactness
        and spread are taken between logarithms.

    """
    t = TOLERANCES
    terms = (
        math.log(a.area_um2 / b.area_um2) / t["log_area"],
        (a.n_parts - b.n_parts) / t["n_parts"],
        (a.n_holes - b.n_holes) / t["n_holes"],
        (a.solidity - b.solidity) / t["solidity"],
        math.log(a.compactness / b.compactness) / t["log_compactness"],
        (a.anisotropy - b.anisotropy) / t["anisotropy"],
        math.log(a.spread / b.spread) / t["log_spread"],
    )
    return float(sum(x * x for x in terms))


def interpolate_descriptors(
    a: ShapeDescriptors, b: ShapeDescriptors, t: float
) -> ShapeDescriptors:
    """Descriptors a fraction ``t`` of the way from ``a`` to ``b``.

    Counts (parts, holes) are taken from the nearer end.
    """

    def mix(x: float, y: float) -> float:
        return (1.0 - t) * x + t * y

    near = a if t < 0.5 else b
    return ShapeDescriptors(
        area_um2=mix(a.area_um2, b.area_um2),
        n_parts=near.n_parts,
        n_holes=near.n_holes,
        solidity=mix(a.solidity, b.solidity),
        compactness=mix(a.compactness, b.compactness),
        anisotropy=mix(a.anisotropy, b.anisotropy),
        spread=mix(a.spread, b.spread),
    )


def edge_mean(mask: BoolArray, values: FloatArray) -> float:
    """Mean of ``values`` over the edge pixels of a mask (0 without edge)."""
    edge = mask & ~ndi.binary_erosion(mask)
    return float(np.mean(values[edge])) if edge.any() else 0.0


def gradient_magnitude(field: FloatArray, *, pixel_size_um: float) -> FloatArray:
    """Magnitude of the gradient of a 2-D field, per micrometre."""
    d_rows, d_cols = np.gradient(field)
    magnitude: FloatArray = np.hypot(d_rows, d_cols) / pixel_size_um
    return magnitude


__all__ = [
    "TOLERANCES",
    "ShapeDescriptors",
    "describe_mask",
    "descriptor_distance2",
    "edge_mean",
    "gradient_magnitude",
    "interpolate_descriptors",
]
