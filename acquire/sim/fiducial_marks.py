"""Fiducial mark shapes of the simulated coverslip.

Each shape is defined in its own frame (u, v), in micrometres, with the area
centroid at the origin and orientation 0. A placed :class:`FiducialMark`
rotates that frame counter-clockwise by ``orientation_deg`` and translates it
to ``centre_um`` in sample coordinates. Because the centre is the area
centroid, an intensity-weighted centroid of a uniformly bright mark recovers
it for every shape, including the asymmetric "L".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
LocalTest = Callable[[FloatArray, FloatArray], BoolArray]

#: Distance of the corner marks' nominal centres from the region's edges.
MARK_INSET_UM = 200.0

# Dimensions of the manufactured marks (micrometres).
_DISC_RADIUS_UM = 10.0
_RING_OUTER_RADIUS_UM = 15.0
_RING_INNER_RADIUS_UM = 10.0
_CROSS_LENGTH_UM = 30.0
_CROSS_ARM_WIDTH_UM = 6.0
_TRIANGLE_SIDE_UM = 30.0
_SQUARE_SIDE_UM = 20.0
_DOUBLE_DISC_RADIUS_UM = 6.0
_DOUBLE_DISC_HALF_SEPARATION_UM = 8.0
_L_ARM_LENGTH_UM = 30.0
_L_ARM_WIDTH_UM = 7.0
_BAR_LENGTH_UM = 36.0
_BAR_WIDTH_UM = 8.0


@dataclass(frozen=True)
class MarkShape:
    """Geometry of one kind of fiducial mark, in its own centroid frame.

    Attributes
    ----------
    name : str
        Shape name, e.g. ``"disc"``.
    size_um : float
        Outer extent (diameter, side or length) in micrometres.
    area_um2 : float
        Analytic area in square micrometres.
    radius_um : float
        Largest distance of any part of the shape from its centroid.
    contains_local : Callable
        ``contains_local(u, v)`` tests membership of local coordinates.

    """

    name: str
    size_um: float
    area_um2: float
    radius_um: float
    contains_local: LocalTest


def _in_disc(u: FloatArray, v: FloatArray) -> BoolArray:
    return u * u + v * v <= _DISC_RADIUS_UM**2


def _in_ring(u: FloatArray, v: FloatArray) -> BoolArray:
    r2 = u * u + v * v
    return (r2 <= _RING_OUTER_RADIUS_UM**2) & (r2 >= _RING_INNER_RADIUS_UM**2)


def _in_cross(u: FloatArray, v: FloatArray) -> BoolArray:
    half_len = _CROSS_LENGTH_UM / 2
    half_w = _CROSS_ARM_WIDTH_UM / 2
    au, av = np.abs(u), np.abs(v)
    return ((au <= half_len) & (av <= half_w)) | ((av <= half_len) & (au <= half_w))


def _in_triangle(u: FloatArray, v: FloatArray) -> BoolArray:
    # Equilateral, apex towards +v; inside when on the inner side of all edges.
    inradius = _TRIANGLE_SIDE_UM / (2 * math.sqrt(3))
    inside = np.ones(np.shape(u), dtype=np.bool_)
    for normal_deg in (-90.0, 30.0, 150.0):
        a = math.radians(normal_deg)
        inside &= u * math.cos(a) + v * math.sin(a) <= inradius
    return inside


def _in_square(u: FloatArray, v: FloatArray) -> BoolArray:
    half = _SQUARE_SIDE_UM / 2
    return (np.abs(u) <= half) & (np.abs(v) <= half)


def _in_double_disc(u: FloatArray, v: FloatArray) -> BoolArray:
    c = _DOUBLE_DISC_HALF_SEPARATION_UM
    r2 = _DOUBLE_DISC_RADIUS_UM**2
    return ((u - c) ** 2 + v * v <= r2) | ((u + c) ** 2 + v * v <= r2)


# The L in its bounding-box frame: a vertical arm on the left (u in [-h, -h+w])
# and a horizontal arm along the bottom (v in [-h, -h+w]), h = half the length.
_L_HALF = _L_ARM_LENGTH_UM / 2
_L_VERTICAL_AREA = _L_ARM_LENGTH_UM * _L_ARM_WIDTH_UM
_L_HORIZONTAL_AREA = (_L_ARM_LENGTH_UM - _L_ARM_WIDTH_UM) * _L_ARM_WIDTH_UM
_L_AREA = _L_VERTICAL_AREA + _L_HORIZONTAL_AREA
# Centroid of the L in the bounding-box frame (symmetric about u = v).
_L_CENTROID = (
    _L_VERTICAL_AREA * (-_L_HALF + _L_ARM_WIDTH_UM / 2)
    + _L_HORIZONTAL_AREA * (_L_ARM_WIDTH_UM / 2)
) / _L_AREA


def _in_l(u: FloatArray, v: FloatArray) -> BoolArray:
    bu = u + _L_CENTROID
    bv = v + _L_CENTROID
    in_box = (np.abs(bu) <= _L_HALF) & (np.abs(bv) <= _L_HALF)
    lim = -_L_HALF + _L_ARM_WIDTH_UM
    return in_box & ((bu <= lim) | (bv <= lim))


def _in_bar(u: FloatArray, v: FloatArray) -> BoolArray:
    return (np.abs(u) <= _BAR_LENGTH_UM / 2) & (np.abs(v) <= _BAR_WIDTH_UM / 2)


def _l_radius() -> float:
    corners = np.array(
        [
            (-_L_HALF, -_L_HALF),
            (_L_HALF, -_L_HALF),
            (_L_HALF, -_L_HALF + _L_ARM_WIDTH_UM),
            (-_L_HALF + _L_ARM_WIDTH_UM, -_L_HALF + _L_ARM_WIDTH_UM),
            (-_L_HALF + _L_ARM_WIDTH_UM, _L_HALF),
            (-_L_HALF, _L_HALF),
        ]
    )
    return float(
        np.max(np.hypot(corners[:, 0] - _L_CENTROID, corners[:, 1] - _L_CENTROID))
    )


#: All mark shapes, in the order they are assigned to mark indices 0..7.
SHAPES: dict[str, MarkShape] = {
    s.name: s
    for s in (
        MarkShape(
            "disc",
            2 * _DISC_RADIUS_UM,
            math.pi * _DISC_RADIUS_UM**2,
            _DISC_RADIUS_UM,
            _in_disc,
        ),
        MarkShape(
            "ring",
            2 * _RING_OUTER_RADIUS_UM,
            math.pi * (_RING_OUTER_RADIUS_UM**2 - _RING_INNER_RADIUS_UM**2),
            _RING_OUTER_RADIUS_UM,
            _in_ring,
        ),
        MarkShape(
            "cross",
            _CROSS_LENGTH_UM,
            2 * _CROSS_LENGTH_UM * _CROSS_ARM_WIDTH_UM - _CROSS_ARM_WIDTH_UM**2,
            math.hypot(_CROSS_LENGTH_UM / 2, _CROSS_ARM_WIDTH_UM / 2),
            _in_cross,
        ),
        MarkShape(
            "triangle",
            _TRIANGLE_SIDE_UM,
            math.sqrt(3) / 4 * _TRIANGLE_SIDE_UM**2,
            _TRIANGLE_SIDE_UM / math.sqrt(3),
            _in_triangle,
        ),
        MarkShape(
            "square",
            _SQUARE_SIDE_UM,
            _SQUARE_SIDE_UM**2,
            _SQUARE_SIDE_UM / math.sqrt(2),
            _in_square,
        ),
        MarkShape(
            "double-disc",
            2 * (_DOUBLE_DISC_HALF_SEPARATION_UM + _DOUBLE_DISC_RADIUS_UM),
            2 * math.pi * _DOUBLE_DISC_RADIUS_UM**2,
            _DOUBLE_DISC_HALF_SEPARATION_UM + _DOUBLE_DISC_RADIUS_UM,
            _in_double_disc,
        ),
        MarkShape("L", _L_ARM_LENGTH_UM, _L_AREA, _l_radius(), _in_l),
        MarkShape(
            "bar",
            _BAR_LENGTH_UM,
            _BAR_LENGTH_UM * _BAR_WIDTH_UM,
            math.hypot(_BAR_LENGTH_UM / 2, _BAR_WIDTH_UM / 2),
            _in_bar,
        ),
    )
}
SHAPE_ORDER: tuple[str, ...] = tuple(SHAPES)


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
        a = math.radians(self.orientation_deg)
        dx = np.asarray(x_um, dtype=np.float64) - self.centre_um[0]
        dy = np.asarray(y_um, dtype=np.float64) - self.centre_um[1]
        u = dx * math.cos(a) + dy * math.sin(a)
        v = -dx * math.sin(a) + dy * math.cos(a)
        return SHAPES[self.shape].contains_local(u, v)


def nominal_mark_positions(
    width_um: float, height_um: float, n_marks: int
) -> list[tuple[float, float]]:
    """Nominal centres of the holder's mark positions.

    Parameters
    ----------
    width_um, height_um : float
        Size of the coverslip region; the origin is at its centre.
    n_marks : int
        Number of marks, 1..8.

    Returns
    -------
    list of tuple of float
        (x, y) of the corners (top-left, top-right, bottom-right, bottom-left)
        followed by the edge midpoints (top, right, bottom, left), each inset
        by :data:`MARK_INSET_UM` from the region's edges.

    """
    xe = width_um / 2 - MARK_INSET_UM
    ye = height_um / 2 - MARK_INSET_UM
    positions = [
        (-xe, ye),
        (xe, ye),
        (xe, -ye),
        (-xe, -ye),
        (0.0, ye),
        (xe, 0.0),
        (0.0, -ye),
        (-xe, 0.0),
    ]
    return positions[:n_marks]


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
