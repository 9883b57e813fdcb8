"""Simple emitter sources: calibration targets and test objects.

The renderer only needs something with ``emitters_in_box``; besides the full
procedural :class:`~acquire.sim.specimen.Specimen`, a fixed cloud of points
serves for beads, fluorescent layers and resolution targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from acquire.sim.emitters import Emitters

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray


class EmitterSource(Protocol):
    """Anything that can list its emitters inside a sample-coordinate box."""

    def emitters_in_box(
        self, x_min_um: float, x_max_um: float, y_min_um: float, y_max_um: float
    ) -> Emitters:
        """Emitters whose (x, y) lie in the box."""
        ...


class PointCloud:
    """A fixed set of point emitters.

    Parameters
    ----------
    xyz_um : array_like
        (N, 3) sample coordinates x, y, h in um.
    photons_per_ms : array_like
        (N,) brightness of each point.

    """

    def __init__(self, xyz_um: ArrayLike, photons_per_ms: ArrayLike) -> None:
        xyz = np.atleast_2d(np.asarray(xyz_um, dtype=np.float32))
        photons = np.broadcast_to(
            np.asarray(photons_per_ms, dtype=np.float32), (xyz.shape[0],)
        ).copy()
        if xyz.shape[1] != 3:
            raise ValueError("xyz_um must have shape (N, 3)")
        self._emitters = Emitters(xyz, photons)

    def emitters_in_box(
        self, x_min_um: float, x_max_um: float, y_min_um: float, y_max_um: float
    ) -> Emitters:
        """Emitters whose (x, y) lie in the box."""
        xyz = self._emitters.xyz_um
        keep = (
            (xyz[:, 0] >= x_min_um)
            & (xyz[:, 0] <= x_max_um)
            & (xyz[:, 1] >= y_min_um)
            & (xyz[:, 1] <= y_max_um)
        )
        return Emitters(xyz[keep], self._emitters.photons_per_ms[keep])


def bead(
    x_um: float = 0.0,
    y_um: float = 0.0,
    h_um: float = 0.05,
    photons_per_ms: float = 300.0,
) -> PointCloud:
    """A single sub-resolution bead."""
    return PointCloud([[x_um, y_um, h_um]], [photons_per_ms])


def fluorescent_layer(
    half_width_um: float,
    *,
    h_um: float = 0.0,
    spacing_um: float = 0.05,
    photons_per_ms_per_um2: float = 10.0,
) -> PointCloud:
    """A thin uniform fluorescent layer, a square of side ``2 * half_width_um``.

    Returns
    -------
    PointCloud
        Points on a square lattice at height ``h_um``.

    """
    axis = np.arange(-half_width_um, half_width_um + 1e-9, spacing_um)
    xx, yy = np.meshgrid(axis, axis)
    xyz: NDArray[np.float64] = np.column_stack(
        [xx.ravel(), yy.ravel(), np.full(xx.size, h_um)]
    )
    return PointCloud(xyz, photons_per_ms_per_um2 * spacing_um**2)
