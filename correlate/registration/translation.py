"""Translation between two volumes on one grid: band-passed cross-correlation.

Plain (not phase-normalised) cross-correlation of band-passed volumes: phase
normalisation whitens the spectrum and lets aliased high frequencies of an
undersampled wide-field camera pull the peak. The integer peak is searched
within a window, then refined by a matrix DFT evaluated on an upsampled grid
around it (Guizar-Sicairos et al. 2008) and a parabola through the finest
samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft

from correlate.registration.preprocess import FFT_WORKERS

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass(frozen=True)
class Peak:
    """A cross-correlation peak.

    Attributes
    ----------
    shift_px : ndarray
        Sub-voxel shift ``s`` with ``fixed(p + s) ~ moving(p)``, voxels.
    score : float
        Correlation at the peak over the product of the volume norms (an NCC
        of the band-passed volumes).
    sharpness : float
        Peak over the largest correlation outside its neighbourhood.
    curvature_px : ndarray
        (ndim, ndim) minus the Hessian of the correlation at the peak over the
        peak value, per squared voxel: how sharply the peak falls along each
        direction (an elongated peak, e.g. of a fibre, is flat along it).
    at_window_edge : bool
        Whether the peak lies on the edge of the search window (the true
        shift may be beyond it).

    """

    shift_px: NDArray[np.float64]
    score: float
    sharpness: float
    curvature_px: NDArray[np.float64]
    at_window_edge: bool = False


def _rfft_weights(n_last: int, n_half: int) -> NDArray[np.float64]:
    """Multiplicity of each rfft column in the full spectrum."""
    weights = np.full(n_half, 2.0)
    weights[0] = 1.0
    if n_last % 2 == 0:
        weights[-1] = 1.0
    return weights


def _spectral_norm(spectrum: NDArray[np.complex64], n_last: int) -> float:
    power = np.abs(spectrum) ** 2
    total = float(
        np.tensordot(power, _rfft_weights(n_last, spectrum.shape[-1]), 1).sum()
    )
    return total


def local_correlation(
    cross_power: NDArray[np.complex64],
    shape: tuple[int, ...],
    centre_px: NDArray[np.float64],
    *,
    upsample: int,
    half_width_px: float,
) -> tuple[NDArray[np.float64], list[NDArray[np.float64]]]:
    """Evaluate the correlation (inverse rfft) on a fine grid around a point.

    Parameters
    ----------
    cross_power : ndarray of complex
        rfftn-layout cross-power spectrum.
    shape : tuple of int
        Real-space shape.
    centre_px : ndarray
        Centre of the evaluation grid, voxels.
    upsample : int
        Grid points per voxel.
    half_width_px : float
        Half extent of the grid along each axis, voxels.

    Returns
    -------
    values : ndarray
        Correlation on the grid.
    axes : list of ndarray
        Grid coordinates per axis, voxels.

    """
    ndim = len(shape)
    steps = round(half_width_px * upsample)
    offsets = np.arange(-steps, steps + 1) / upsample
    # frequencies the band-pass left (next to) nothing in add nothing: skip them
    magnitude = np.abs(cross_power)
    kept = []
    for axis in range(ndim):
        others = tuple(a for a in range(ndim) if a != axis)
        profile = magnitude.max(axis=others)
        kept.append(np.flatnonzero(profile >= 1e-3 * profile.max()))
    out: NDArray[np.complex64] = cross_power[np.ix_(*kept)].astype(np.complex64)
    axes = []
    for axis in range(ndim):
        n = shape[axis]
        points = centre_px[axis] + offsets
        axes.append(points)
        if axis == ndim - 1:
            k = np.arange(cross_power.shape[-1], dtype=np.float64)
            weight = _rfft_weights(n, cross_power.shape[-1])
        else:
            k = np.fft.fftfreq(n).astype(np.float64) * n
            weight = np.ones(n)
        k, weight = k[kept[axis]], weight[kept[axis]]
        kernel = (
            np.exp(2j * np.pi * np.outer(k, points) / n) * weight[:, None]
        ).astype(np.complex64)
        # contracting axis 0 each time appends the new axis at the end
        out = np.tensordot(out, kernel, axes=([0], [0]))
    values = out.real.astype(np.float64) / float(np.prod(shape))
    return values, axes


def _parabola_vertex(
    values: NDArray[np.float64], index: tuple[int, ...]
) -> list[float]:
    """Sub-sample vertex offset along each axis from 3-point parabolas."""
    vertex = []
    for axis, i in enumerate(index):
        if 0 < i < values.shape[axis] - 1:
            lo = list(index)
            hi = list(index)
            lo[axis] -= 1
            hi[axis] += 1
            a, b, c = values[tuple(lo)], values[index], values[tuple(hi)]
            denominator = a - 2 * b + c
            vertex.append(0.5 * (a - c) / denominator if denominator < 0 else 0.0)
        else:
            vertex.append(0.0)
    return vertex


def _curvature(
    values: NDArray[np.float64], index: tuple[int, ...], step_px: float
) -> NDArray[np.float64]:
    """Minus the Hessian of sampled values at ``index`` over their value there.

    Central differences on the sampling grid; an axis where ``index`` lies on
    the grid's edge gets a one-sided estimate (the next sample inwards).
    """
    ndim = values.ndim
    centre = float(values[index])
    hessian = np.zeros((ndim, ndim))

    def at(offsets: dict[int, int]) -> float:
        point = list(index)
        for axis, offset in offsets.items():
            point[axis] = min(max(point[axis] + offset, 0), values.shape[axis] - 1)
        return float(values[tuple(point)])

    for a in range(ndim):
        inner = 1 if index[a] < values.shape[a] - 1 else -1
        if 0 < index[a] < values.shape[a] - 1:
            hessian[a, a] = at({a: 1}) - 2 * centre + at({a: -1})
        else:  # one side only: a curvature of at least the fall to the next sample
            hessian[a, a] = 2 * (at({a: inner}) - centre)
        for b in range(a + 1, ndim):
            mixed = (
                at({a: 1, b: 1})
                - at({a: 1, b: -1})
                - at({a: -1, b: 1})
                + at({a: -1, b: -1})
            ) / 4
            hessian[a, b] = hessian[b, a] = mixed
    if centre <= 0:
        return np.zeros((ndim, ndim))
    curvature: NDArray[np.float64] = -hessian / (centre * step_px**2)
    return curvature


MIN_SHARED = 0.7
"""Least relative shared energy `OverlapNorm` divides by."""


class OverlapNorm:
    """How much energy two stacks share at each axial lag (zero-padded in z).

    ``norm(s) = sqrt(sum_p e_f(p + s) * sum_p e_m(p))`` over the planes ``p``
    where both ``p`` and ``p + s`` lie in the stacks, with ``e`` the energy of
    each plane; linear between integer lags, 1 where the stacks share none.

    Parameters
    ----------
    fixed_energy, moving_energy : ndarray
        (nz,) energy of each plane of the fixed and the moving volume.

    """

    def __init__(
        self, fixed_energy: NDArray[np.float64], moving_energy: NDArray[np.float64]
    ) -> None:
        nz = len(fixed_energy)
        lags = np.arange(-(nz - 1), nz)
        fixed_cum = np.concatenate([[0.0], np.cumsum(fixed_energy)])
        moving_cum = np.concatenate([[0.0], np.cumsum(moving_energy)])
        start = np.maximum(0, -lags)  # p from here ...
        stop = np.minimum(nz, nz - lags)  # ... to here (exclusive)
        fixed = fixed_cum[stop + lags] - fixed_cum[start + lags]
        moving = moving_cum[stop] - moving_cum[start]
        norm = np.sqrt(np.maximum(fixed * moving, 0.0))
        reference = float(norm[nz - 1]) if norm[nz - 1] > 0 else 1.0
        self._lags = lags.astype(np.float64)
        # a lag where the stacks share little energy would divide noise by
        # next to nothing: the correction stops at MIN_SHARED of it
        self._norm = np.maximum(norm / reference, MIN_SHARED)

    def __call__(self, lags_px: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """The relative shared energy at (fractional) lags, in planes."""
        values: NDArray[np.float64] = np.interp(
            lags_px, self._lags, self._norm, left=MIN_SHARED, right=MIN_SHARED
        )
        return values


def correlation_peak(
    fixed_spectrum: NDArray[np.complex64],
    moving_spectrum: NDArray[np.complex64],
    shape: tuple[int, ...],
    *,
    max_shift_px: tuple[float, ...],
    upsample: int = 4,
    overlap: OverlapNorm | None = None,
) -> Peak:
    """Sub-voxel peak of the cross-correlation of two band-passed volumes.

    Parameters
    ----------
    fixed_spectrum, moving_spectrum : ndarray of complex
        ``rfftn`` of the two (already band-passed) volumes.
    shape : tuple of int
        Their real-space shape.
    max_shift_px : tuple of float
        Search window half-width per axis, voxels.
    upsample : int
        Upsampling of the refinement grid (1 for a parabola on the voxel grid).
    overlap : OverlapNorm, optional
        Divide the correlation at each axial lag by the energy the two volumes
        share there (see `OverlapNorm`): two zero-padded stacks overlap over
        fewer planes the further one is shifted, which pulls a broad axial
        peak towards zero shift.

    Returns
    -------
    Peak
        Shift, normalised score and sharpness.

    """
    cross_power = fixed_spectrum * np.conj(moving_spectrum)
    correlation = scipy.fft.irfftn(cross_power, s=shape, workers=FFT_WORKERS)
    if overlap is not None:
        lags = np.fft.fftfreq(shape[0]) * shape[0]
        correlation = correlation / overlap(lags).reshape(-1, *([1] * (len(shape) - 1)))
    window = np.zeros(shape, dtype=bool)
    inside = tuple(
        np.abs(np.fft.fftfreq(n) * n) <= limit
        for n, limit in zip(shape, max_shift_px, strict=True)
    )
    window[np.ix_(*inside)] = True
    searched = np.where(window, correlation, -np.inf)
    flat = int(np.argmax(searched))
    index = np.unravel_index(flat, shape)
    at_edge = any(
        abs(i if i <= n // 2 else i - n) >= np.floor(limit)
        for i, n, limit in zip(index, shape, max_shift_px, strict=True)
    )
    integer = np.array(
        [i if i <= n // 2 else i - n for i, n in zip(index, shape, strict=True)],
        dtype=np.float64,
    )
    peak_value = float(correlation[index])
    # sharpness: peak against the best correlation away from it
    near = np.ix_(
        *(np.arange(i - 2, i + 3) % n for i, n in zip(index, shape, strict=True))
    )
    away = searched.copy()
    away[near] = -np.inf
    second = float(np.max(away)) if np.isfinite(away).any() else 0.0
    norm = np.sqrt(
        _spectral_norm(fixed_spectrum, shape[-1])
        * _spectral_norm(moving_spectrum, shape[-1])
    ) / float(np.prod(shape))
    score = peak_value / norm if norm > 0 else 0.0
    sharpness = peak_value / second if second > 0 else float("inf")
    if upsample > 1:
        values, axes = local_correlation(
            cross_power, shape, integer, upsample=upsample, half_width_px=0.75
        )
        if overlap is not None:
            values = values / overlap(axes[0]).reshape(-1, *([1] * (len(shape) - 1)))
        best = np.unravel_index(int(np.argmax(values)), values.shape)
        vertex = _parabola_vertex(values, tuple(int(i) for i in best))
        shift = np.array(
            [axes[a][best[a]] + vertex[a] / upsample for a in range(len(shape))]
        )
        curvature = _curvature(values, tuple(int(i) for i in best), 1.0 / upsample)
    else:
        around = np.ix_(
            *(np.arange(i - 1, i + 2) % n for i, n in zip(index, shape, strict=True))
        )
        vertex = _parabola_vertex(correlation[around], (1,) * len(shape))
        shift = integer + np.array(vertex)
        curvature = _curvature(correlation[around], (1,) * len(shape), 1.0)
    return Peak(
        shift_px=shift,
        score=float(score),
        sharpness=float(sharpness),
        curvature_px=curvature,
        at_window_edge=bool(at_edge),
    )
