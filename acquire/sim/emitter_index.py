"""Spatial index of a specimen's point emitters, for fast box queries.

Emitters are collected group by group (each group with a source name) in an
:class:`EmitterGroups`, then handed to an :class:`EmitterIndex`, which sorts
them into strips of y, ordered by x within each strip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from acquire.sim.emitters import Emitters

__all__ = ["EmitterGroups", "EmitterIndex"]

FloatArray = NDArray[np.float64]

# Emitters are grouped in strips of y, sorted by x in a strip.
_STRIP_UM = 5.0
_STRIP_EPS_UM = 1e-3


@dataclass
class EmitterGroups:
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


class EmitterIndex:
    """Emitters grouped in strips of y, sorted by x within each strip.

    A box query binary-searches x in each strip it overlaps, so it costs
    about the size of its result; only the two edge strips need a y test.

    Parameters
    ----------
    groups : EmitterGroups
        The emitters; the index takes them over and empties the group arrays.
    y0_um : float
        Lower y edge of the first strip.
    height_um : float
        Extent in y that the strips cover; emitters outside it go into the
        first or last strip.

    Attributes
    ----------
    xyz_um : numpy.ndarray
        Read-only float32 positions, shape (N, 3), in index order.
    photons_per_ms : numpy.ndarray
        Read-only float32 brightness of each emitter, shape (N,).
    source_ids : numpy.ndarray
        Read-only int32 index into :attr:`sources` of each emitter.
    sources : tuple of str
        Names of the groups, in the order they were added.

    """

    def __init__(self, groups: EmitterGroups, y0_um: float, height_um: float) -> None:
        counts = np.array([p.size for p in groups.photons], dtype=np.int64)
        xyz = np.concatenate(groups.xyz) if groups.xyz else np.empty((0, 3), np.float32)
        photons = (
            np.concatenate(groups.photons)
            if groups.photons
            else np.empty(0, np.float32)
        )
        # Free the per-group copies before sorting to keep the peak down.
        groups.xyz.clear()
        groups.photons.clear()
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
        self.sources = tuple(groups.names)
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
        """Memory held by the emitter arrays and the index, in bytes."""
        return int(
            self.xyz_um.nbytes
            + self.photons_per_ms.nbytes
            + self.source_ids.nbytes
            + self.x_um.nbytes
            + self.starts.nbytes
        )

    def box(self, x_min: float, x_max: float, y_min: float, y_max: float) -> Emitters:
        """Copy of the emitters whose (x, y) lie in a box, bounds inclusive.

        Parameters
        ----------
        x_min, x_max, y_min, y_max : float
            Box bounds in micrometres, not NaN; an empty box (min > max)
            selects nothing.

        Returns
        -------
        Emitters
            The selected emitters, in index order.

        """
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
