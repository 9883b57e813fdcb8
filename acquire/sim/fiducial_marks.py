"""Fiducial marks of the simulated coverslip: where each manufactured mark sits.

The shapes themselves (geometry, areas, the holder's nominal layout) live in
:mod:`correlate.fiducials.marks`, so that mark detection can use them without importing
the simulator; this module places them on the coverslip and fills them with
emitters. Its names from :mod:`correlate.fiducials.marks` are re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from correlate.fiducials.marks import (
    SHAPES,
    mark_contains,
)

__all__ = [
    "FiducialMark",
    "mark_lattice_xy",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class FiducialMark:
    """One fiducial mark on the coverslip, in sample coordinates.

    Attributes
    ----------
    index : int
        Mark index, 0..n-1 (0-3 at the corners, 4-7 at edge midpoints).
    identity : str
        Unique name, e.g. ``"F0-disc"``.
    shape : str
        Shape name, a key of :data:`SHAPES`.
    centre_um : tuple of float
        True (x, y) of the shape's area centroid.
    nominal_centre_um : tuple of float
        The holder's nominal (x, y); ``centre_um`` differs from it by the
        manufacturing jitter (at most 5 um).
    size_um : float
        Outer extent (diameter, side or length).
    orientation_deg : float
        Counter-clockwise rotation of the shape from its reference pose.

    """

    index: int
    identity: str
    shape: str
    centre_um: tuple[float, float]
    nominal_centre_um: tuple[float, float]
    size_um: float
    orientation_deg: float

    @property
    def area_um2(self) -> float:
        """Analytic area of the mark in square micrometres."""
        return SHAPES[self.shape].area_um2

    @property
    def radius_um(self) -> float:
        """Largest distance of any part of the mark from ``centre_um``."""
        return SHAPES[self.shape].radius_um

    def contains(self, x_um: FloatArray, y_um: FloatArray) -> BoolArray:
        """Test which sample-plane points lie on the mark.

        Parameters
        ----------
        x_um, y_um : ndarray
            Sample x and y coordinates in micrometres (broadcastable).

        Returns
        -------
        ndarray of bool
            True where the point lies inside the shape.

        """
        return mark_contains(
            self.shape,
            x_um,
            y_um,
            centre_um=self.centre_um,
            orientation_deg=self.orientation_deg,
        )


def mark_lattice_xy(mark: FiducialMark, spacing_um: float) -> FloatArray:
    """Points of a square lattice that fall on the mark.

    The lattice is aligned with the sample axes (points at odd multiples of
    half the spacing), so every mark orientation gets the same areal density.

    Parameters
    ----------
    mark : FiducialMark
        The mark to fill.
    spacing_um : float
        Lattice spacing in micrometres.

    Returns
    -------
    ndarray of float64, shape (n, 2)
        Sample (x, y) of the lattice points inside the mark.

    """
    r = mark.radius_um + spacing_um
    cx, cy = mark.centre_um
    ix = np.arange(
        math.floor((cx - r) / spacing_um), math.ceil((cx + r) / spacing_um) + 1
    )
    iy = np.arange(
        math.floor((cy - r) / spacing_um), math.ceil((cy + r) / spacing_um) + 1
    )
    xs = (ix + 0.5) * spacing_um
    ys = (iy + 0.5) * spacing_um
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    inside = mark.contains(gx, gy)
    return np.column_stack((gx[inside], gy[inside]))
