"""Polyline helpers: cubic Bezier sampling, arc length, resampling, simplification."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["arc_length", "bezier", "resample", "simplify_polyline"]

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]


def bezier(controls: FloatArray, t: FloatArray) -> FloatArray:
    """Sample a cubic Bezier curve.

    Parameters
    ----------
    controls : numpy.ndarray
        The 4 control points, shape (4, D).
    t : numpy.ndarray
        Curve parameters in [0, 1], shape (N,).

    Returns
    -------
    numpy.ndarray
        Points of the curve, shape (N, D).

    """
    s = 1.0 - t
    basis = np.stack((s**3, 3 * s * s * t, 3 * s * t * t, t**3), axis=1)
    return np.asarray(basis @ controls)


def arc_length(points: FloatArray) -> FloatArray:
    """Cumulative arc length along a polyline.

    Parameters
    ----------
    points : numpy.ndarray
        Vertices, shape (N, D).

    Returns
    -------
    numpy.ndarray
        Length from the first vertex to each vertex, shape (N,), starting at 0.

    """
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.concatenate(([0.0], np.cumsum(seg)))


def resample(points: FloatArray, s: FloatArray, at: FloatArray) -> FloatArray:
    """Points of a polyline at given arc lengths (linear interpolation).

    Parameters
    ----------
    points : numpy.ndarray
        Vertices, shape (N, D).
    s : numpy.ndarray
        Their cumulative arc length (:func:`arc_length`), shape (N,).
    at : numpy.ndarray
        Arc lengths to sample at, shape (M,).

    Returns
    -------
    numpy.ndarray
        The points, shape (M, D).

    """
    return np.column_stack(
        [np.interp(at, s, points[:, i]) for i in range(points.shape[1])]
    )


def _chord_of(keep: IndexArray, n_points: int) -> IndexArray:
    """Index of the chord (between kept vertices) that each vertex falls on."""
    return np.clip(
        np.searchsorted(keep, np.arange(n_points), side="right") - 1,
        0,
        len(keep) - 2,
    )


def _chord_distances(
    points: FloatArray, keep: IndexArray, chord: IndexArray
) -> FloatArray:
    """Distance of each vertex to its chord (see :func:`_chord_of`)."""
    a, b = points[keep[chord]], points[keep[chord + 1]]
    ab = b - a
    t = np.einsum("ij,ij->i", points - a, ab) / np.maximum(
        np.einsum("ij,ij->i", ab, ab), 1e-30
    )
    closest = a + np.clip(t, 0.0, 1.0)[:, None] * ab
    return np.asarray(np.linalg.norm(points - closest, axis=1))


def simplify_polyline(
    points: FloatArray, s: FloatArray, tolerance_um: float, step_um: float
) -> FloatArray:
    """Subset of a dense polyline's vertices that stays within a tolerance of it.

    Starts from a vertex every ``step_um`` of arc length (and the last one)
    and adds, per pass, the worst vertex of every chord that is off by more
    than the tolerance (a vectorised Ramer-Douglas-Peucker refinement).

    Parameters
    ----------
    points : numpy.ndarray
        Vertices of the dense polyline, shape (N, D).
    s : numpy.ndarray
        Their cumulative arc length (:func:`arc_length`), shape (N,).
    tolerance_um : float
        Largest distance allowed between a dropped vertex and its chord.
    step_um : float
        Largest arc length between kept vertices.

    Returns
    -------
    numpy.ndarray
        The kept vertices, in order, shape (K, D).

    """
    marks = np.arange(0.0, s[-1], step_um)
    keep = np.unique(np.concatenate((np.searchsorted(s, marks), [len(points) - 1])))
    while True:
        chord = _chord_of(keep, len(points))
        dist = _chord_distances(points, keep, chord)
        worst = np.full(len(keep) - 1, -1.0)
        np.maximum.at(worst, chord, dist)
        bad = np.flatnonzero((dist > tolerance_um) & (dist == worst[chord]))
        if bad.size == 0:
            return np.asarray(points[keep], dtype=np.float64)
        keep = np.union1d(keep, bad)
