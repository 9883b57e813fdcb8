"""Fiducial marks of a sample holder: shapes, rasterisation and the holder layout.

Each shape is defined in its own frame (u, v), in micrometres, with the area
centroid at the origin and orientation 0. A placed mark rotates that frame
counter-clockwise by ``orientation_deg`` and translates it to its centre in
sample coordinates. Because the centre is the area centroid, an
intensity-weighted centroid of a uniformly bright mark recovers it for every
shape, including the asymmetric "L" and the triangle.

A :class:`Holder` is what a holder's datasheet gives: which marks it carries
and their nominal centres; the manufactured marks sit a few micrometres off
those centres and are turned slightly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

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
    symmetry : int
        Order of rotational symmetry: turning the shape by ``360 / symmetry``
        degrees leaves it unchanged (0 for any angle: disc, ring).

    """

    name: str
    size_um: float
    area_um2: float
    radius_um: float
    contains_local: LocalTest
    symmetry: int = 1


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


#: All mark shapes, in the order a holder assigns them to mark indices 0..7.
SHAPES: dict[str, MarkShape] = {
    s.name: s
    for s in (
        MarkShape(
            "disc",
            2 * _DISC_RADIUS_UM,
            math.pi * _DISC_RADIUS_UM**2,
            _DISC_RADIUS_UM,
            _in_disc,
            symmetry=0,
        ),
        MarkShape(
            "ring",
            2 * _RING_OUTER_RADIUS_UM,
            math.pi * (_RING_OUTER_RADIUS_UM**2 - _RING_INNER_RADIUS_UM**2),
            _RING_OUTER_RADIUS_UM,
            _in_ring,
            symmetry=0,
        ),
        MarkShape(
            "cross",
            _CROSS_LENGTH_UM,
            2 * _CROSS_LENGTH_UM * _CROSS_ARM_WIDTH_UM - _CROSS_ARM_WIDTH_UM**2,
            math.hypot(_CROSS_LENGTH_UM / 2, _CROSS_ARM_WIDTH_UM / 2),
            _in_cross,
            symmetry=4,
        ),
        MarkShape(
            "triangle",
            _TRIANGLE_SIDE_UM,
            math.sqrt(3) / 4 * _TRIANGLE_SIDE_UM**2,
            _TRIANGLE_SIDE_UM / math.sqrt(3),
            _in_triangle,
            symmetry=3,
        ),
        MarkShape(
            "square",
            _SQUARE_SIDE_UM,
            _SQUARE_SIDE_UM**2,
            _SQUARE_SIDE_UM / math.sqrt(2),
            _in_square,
            symmetry=4,
        ),
        MarkShape(
            "double-disc",
            2 * (_DOUBLE_DISC_HALF_SEPARATION_UM + _DOUBLE_DISC_RADIUS_UM),
            2 * math.pi * _DOUBLE_DISC_RADIUS_UM**2,
            _DOUBLE_DISC_HALF_SEPARATION_UM + _DOUBLE_DISC_RADIUS_UM,
            _in_double_disc,
            symmetry=2,
        ),
        MarkShape("L", _L_ARM_LENGTH_UM, _L_AREA, _l_radius(), _in_l),
        MarkShape(
            "bar",
            _BAR_LENGTH_UM,
            _BAR_LENGTH_UM * _BAR_WIDTH_UM,
            math.hypot(_BAR_LENGTH_UM / 2, _BAR_WIDTH_UM / 2),
            _in_bar,
            symmetry=2,
        ),
    )
}
SHAPE_ORDER: tuple[str, ...] = tuple(SHAPES)


def _shape(name: str) -> MarkShape:
    try:
        return SHAPES[name]
    except KeyError:
        raise ValueError(
            f"unknown mark shape {name!r}; known shapes: {', '.join(SHAPE_ORDER)}"
        ) from None


def mark_contains(
    shape: str,
    x_um: ArrayLike,
    y_um: ArrayLike,
    *,
    centre_um: tuple[float, float],
    orientation_deg: float = 0.0,
    size_um: float | None = None,
) -> BoolArray:
    """Test which points lie on a placed mark.

    Parameters
    ----------
    shape : str
        Shape name, a key of :data:`SHAPES`.
    x_um, y_um : array_like
        Point coordinates in micrometres (broadcastable).
    centre_um : tuple of float
        (x, y) of the mark's area centroid.
    orientation_deg : float
        Counter-clockwise rotation of the shape from its reference pose.
    size_um : float, optional
        Outer extent of the mark; the shape is scaled from its reference size
        (:attr:`MarkShape.size_um`, also the default).

    Returns
    -------
    ndarray of bool
        True where the point lies inside the mark.

    Raises
    ------
    ValueError
        If the shape is unknown or the size is not positive.

    """
    reference = _shape(shape)
    a = math.radians(orientation_deg)
    dx = np.asarray(x_um, dtype=np.float64) - centre_um[0]
    dy = np.asarray(y_um, dtype=np.float64) - centre_um[1]
    u = dx * math.cos(a) + dy * math.sin(a)
    v = -dx * math.sin(a) + dy * math.cos(a)
    if size_um is not None and size_um != reference.size_um:
        if not size_um > 0:
            raise ValueError(f"size_um must be positive, got {size_um}")
        scale = reference.size_um / size_um
        u, v = u * scale, v * scale
    return reference.contains_local(u, v)


def mark_mask(
    shape: str,
    size_um: float,
    orientation_deg: float = 0.0,
    *,
    pixel_size_um: float,
    supersample: int = 4,
    margin_px: int = 2,
) -> FloatArray:
    """Rasterise a mark: the fraction of each pixel it covers.

    Pixel ``(row, col)`` covers x from ``(col - c - 0.5) * pixel_size_um`` to
    ``(col - c + 0.5) * pixel_size_um`` and likewise y along rows, where
    ``c = (n - 1) / 2`` is the centre of the square ``(n, n)`` output: the
    mark's area centroid lies at the centre of the array.

    Parameters
    ----------
    shape : str
        Shape name, a key of :data:`SHAPES`.
    size_um : float
        Outer extent of the mark (its shape is scaled to it).
    orientation_deg : float
        Counter-clockwise rotation from the reference pose (x along columns,
        y along rows).
    pixel_size_um : float
        Pixel size in micrometres.
    supersample : int
        Sub-samples per pixel along each axis.
    margin_px : int
        Empty pixels kept on every side of the mark.

    Returns
    -------
    ndarray of float64
        (n, n) coverage in [0, 1]; its sum times ``pixel_size_um**2``
        approximates the mark's area.

    Raises
    ------
    ValueError
        If the shape is unknown or a size or count is out of range.

    """
    reference = _shape(shape)
    if not (pixel_size_um > 0 and size_um > 0):
        raise ValueError("pixel_size_um and size_um must be positive")
    if supersample < 1 or margin_px < 0:
        raise ValueError("supersample must be >= 1 and margin_px >= 0")
    radius_px = reference.radius_um * size_um / reference.size_um / pixel_size_um
    half = math.ceil(radius_px + 0.5) + margin_px
    n = 2 * half + 1
    step = 1.0 / supersample
    sub = (np.arange(n * supersample) + 0.5) * step - 0.5 - half
    coords = sub * pixel_size_um
    y, x = np.meshgrid(coords, coords, indexing="ij")
    inside = mark_contains(
        shape,
        x,
        y,
        centre_um=(0.0, 0.0),
        orientation_deg=orientation_deg,
        size_um=size_um,
    )
    coverage = inside.reshape(n, supersample, n, supersample).mean(axis=(1, 3))
    return np.asarray(coverage, dtype=np.float64)


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


MAX_MARK_SIZE_UM = 10_000.0
"""Largest mark a holder may describe (1 cm: any larger is a typo in units)."""


@dataclass(frozen=True)
class MarkSpec:
    """One mark as the holder's datasheet describes it.

    Attributes
    ----------
    identity : str
        Unique name, e.g. ``"F0-disc"``.
    shape : str
        Shape name, a key of :data:`SHAPES`.
    size_um : float
        Outer extent (diameter, side or length) in micrometres.
    nominal_centre_um : tuple of float
        Nominal (x, y) of the mark's area centroid, sample frame.
    orientation_deg : float
        Nominal counter-clockwise rotation from the reference pose.

    """

    identity: str
    shape: str
    size_um: float
    nominal_centre_um: tuple[float, float]
    orientation_deg: float = 0.0

    def __post_init__(self) -> None:
        _shape(self.shape)
        if not self.identity:
            raise ValueError("a mark needs a non-empty identity")
        if not (math.isfinite(self.size_um) and 0 < self.size_um <= MAX_MARK_SIZE_UM):
            raise ValueError(
                f"size_um of mark {self.identity!r} must lie in (0, "
                f"{MAX_MARK_SIZE_UM:g}] um, got {self.size_um}"
            )
        values = (*self.nominal_centre_um, self.orientation_deg)
        if len(self.nominal_centre_um) != 2 or not all(map(math.isfinite, values)):
            raise ValueError(
                f"mark {self.identity!r} needs a finite nominal_centre_um (x, y) and "
                f"orientation_deg, got {self.nominal_centre_um} and "
                f"{self.orientation_deg}"
            )

    @property
    def scale(self) -> float:
        """Size relative to the shape's reference size."""
        return self.size_um / SHAPES[self.shape].size_um

    @property
    def area_um2(self) -> float:
        """Analytic area in square micrometres."""
        return SHAPES[self.shape].area_um2 * self.scale**2

    @property
    def radius_um(self) -> float:
        """Largest distance of any part of the mark from its centroid."""
        return SHAPES[self.shape].radius_um * self.scale

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "identity": self.identity,
            "shape": self.shape,
            "size_um": self.size_um,
            "nominal_centre_um": list(self.nominal_centre_um),
            "orientation_deg": self.orientation_deg,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarkSpec:
        """Inverse of :meth:`to_dict`."""
        x, y = data["nominal_centre_um"]
        return cls(
            identity=str(data["identity"]),
            shape=str(data["shape"]),
            size_um=float(data["size_um"]),
            nominal_centre_um=(float(x), float(y)),
            orientation_deg=float(data.get("orientation_deg", 0.0)),
        )


@dataclass(frozen=True)
class Holder:
    """A sample holder's fiducial marks, as its datasheet gives them.

    Attributes
    ----------
    marks : tuple of MarkSpec
        The marks, with unique identities.

    """

    marks: tuple[MarkSpec, ...]

    def __post_init__(self) -> None:
        identities = [m.identity for m in self.marks]
        if len(set(identities)) != len(identities):
            raise ValueError(f"mark identities must be unique, got {identities}")

    @property
    def identities(self) -> tuple[str, ...]:
        """Identities of the marks, in order."""
        return tuple(m.identity for m in self.marks)

    def mark(self, identity: str) -> MarkSpec:
        """The mark with this identity.

        Raises
        ------
        KeyError
            If the holder has no such mark.

        """
        for m in self.marks:
            if m.identity == identity:
                return m
        raise KeyError(f"holder has no mark {identity!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: ``{"marks": [...]}``."""
        return {"marks": [m.to_dict() for m in self.marks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Holder:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(MarkSpec.from_dict(m) for m in data["marks"]))


__all__ = [
    "MARK_INSET_UM",
    "MAX_MARK_SIZE_UM",
    "SHAPES",
    "SHAPE_ORDER",
    "Holder",
    "MarkShape",
    "MarkSpec",
    "mark_contains",
    "mark_mask",
    "nominal_mark_positions",
]
