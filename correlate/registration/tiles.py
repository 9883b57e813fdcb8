"""Local shifts in tiles and the similarity transform that explains them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.typing import NDArray

from correlate.registration.grid import centred_axis
from correlate.registration.preprocess import FFT_WORKERS, BandPass
from correlate.registration.translation import correlation_peak


@dataclass(frozen=True)
class TileShifts:
    """Shifts measured in tiles of the overlap.

    Attributes
    ----------
    centres_yx_um : ndarray
        (n, 2) tile centres in confocal stack coordinates.
    shifts_zyx_um : ndarray
        (n, 3) shift ``s`` with ``confocal(p + s) ~ widefield(p)`` per tile.
    scores : ndarray
        (n,) normalised correlation peak per tile.

    """

    centres_yx_um: NDArray[np.float64]
    shifts_zyx_um: NDArray[np.float64]
    scores: NDArray[np.float64]


@dataclass(frozen=True)
class SimilarityFit:
    """Shift field ``s(p) = A p + b`` (A a scaled rotation) fitted to tiles.

    Attributes
    ----------
    matrix : ndarray
        (2, 2) ``A`` in (y, x) order: ``[[a, -c], [c, a]]``.
    offset_zyx_um : ndarray
        (3,) ``(bz, by, bx)``.
    usable : ndarray of bool
        Tiles with enough structure to be used.
    inliers : ndarray of bool
        Usable tiles kept by the robust fit.
    scale_fitted : bool
        Whether the scale term was significant (else ``a`` is held at 0).
    scale_error : float
        Standard error of the scale term ``a``.
    residual_rms_um : float
        Lateral RMS residual of the inliers.

    """

    matrix: NDArray[np.float64]
    offset_zyx_um: NDArray[np.float64]
    usable: NDArray[np.bool_]
    inliers: NDArray[np.bool_]
    scale_fitted: bool
    scale_error: float
    residual_rms_um: float


def _window(shape: tuple[int, int, int]) -> NDArray[np.float32]:
    nz, ny, nx = shape
    wz = np.ones(nz)
    edge = max(1, nz // 4)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(edge) + 0.5) / edge)
    wz[:edge] = ramp
    wz[-edge:] = ramp[::-1]
    wy = np.hanning(ny + 2)[1:-1]
    wx = np.hanning(nx + 2)[1:-1]
    window: NDArray[np.float32] = (
        wz[:, None, None] * wy[None, :, None] * wx[None, None, :]
    ).astype(np.float32)
    return window


def measure_tiles(
    confocal: NDArray[np.float32],
    widefield: NDArray[np.float32],
    mask: NDArray[np.bool_],
    voxel_um: tuple[float, float, float],
    *,
    tiles_per_axis: int,
    max_shift_px: tuple[float, float, float],
    min_valid_fraction: float = 0.95,
    band: BandPass,
    upsample: int = 4,
    cache: dict[tuple[int, ...], NDArray[np.complex64]] | None = None,
) -> TileShifts:
    """Cross-correlate two volumes tile by tile, band-passed.

    Parameters
    ----------
    confocal, widefield : ndarray
        (z, y, x) volumes on one grid (not band-passed: ``band`` is applied
        tile by tile).
    mask : ndarray of bool
        Where the wide-field volume holds data.
    voxel_um : tuple of float
        Grid voxel (dz, dy, dx).
    tiles_per_axis : int
        Tiles along y and along x.
    max_shift_px : tuple of float
        Search window per axis, voxels.
    min_valid_fraction : float
        Tiles with less of their voxels in ``mask`` are skipped.
    band : BandPass
        Band-pass applied to each windowed tile's spectrum (cheaper than
        filtering the whole volume first, and the same up to the window's
        edge).
    upsample : int
        Upsampling of the peak refinement (see `correlation_peak`).
    cache : dict, optional
        Keeps the confocal tiles' spectra between calls on the same volume.

    Returns
    -------
    TileShifts
        One row per tile measured.

    """
    # only planes the wide-field stack reaches (a z offset empties the ends)
    planes = np.flatnonzero(mask.any(axis=(1, 2)))
    if planes.size < 4:
        return TileShifts(np.zeros((0, 2)), np.zeros((0, 3)), np.zeros(0))
    z0, z1 = int(planes[0]), int(planes[-1]) + 1
    confocal, widefield, mask = confocal[z0:z1], widefield[z0:z1], mask[z0:z1]
    nz, ny, nx = confocal.shape
    size_y, size_x = ny // tiles_per_axis, nx // tiles_per_axis
    window = _window((nz, size_y, size_x))
    # the window takes both z ends to ~0, so zero planes up to a fast FFT
    # length (41 planes is a prime) change the correlation by next to nothing
    padded = (scipy.fft.next_fast_len(nz, real=True), size_y, size_x)
    gain = band.gain(padded, voxel_um)
    yc = centred_axis(ny, voxel_um[1])
    xc = centred_axis(nx, voxel_um[2])
    centres, shifts, scores = [], [], []
    for ty in range(tiles_per_axis):
        for tx in range(tiles_per_axis):
            ys = slice(ty * size_y, (ty + 1) * size_y)
            xs = slice(tx * size_x, (tx + 1) * size_x)
            if mask[:, ys, xs].mean() < min_valid_fraction:
                continue
            w = widefield[:, ys, xs]
            key = (ty, tx, z0, z1)
            fc = cache.get(key) if cache is not None else None
            if fc is None:
                c = confocal[:, ys, xs]
                fc = scipy.fft.rfftn(
                    (c - c.mean()) * window, s=padded, workers=FFT_WORKERS
                )
                fc *= gain
                if cache is not None:
                    cache[key] = fc
            fw = scipy.fft.rfftn((w - w.mean()) * window, s=padded, workers=FFT_WORKERS)
            fw *= gain
            peak = correlation_peak(
                fc, fw, padded, max_shift_px=max_shift_px, upsample=upsample
            )
            centres.append([yc[ys].mean(), xc[xs].mean()])
            shifts.append(peak.shift_px * np.asarray(voxel_um))
            scores.append(peak.score)
    return TileShifts(
        centres_yx_um=np.asarray(centres, dtype=np.float64).reshape(-1, 2),
        shifts_zyx_um=np.asarray(shifts, dtype=np.float64).reshape(-1, 3),
        scores=np.asarray(scores, dtype=np.float64),
    )


SCALE_SIGNIFICANCE = 3.0
"""A scale change is applied only beyond this many standard errors."""


def _solve(
    centres: NDArray[np.float64],
    shifts_yx: NDArray[np.float64],
    scores: NDArray[np.float64],
    with_scale: bool,
) -> tuple[NDArray[np.float64], float]:
    """Weighted least squares for (a, c, by, bx); standard error of ``a``."""
    n = len(scores)
    rows_y = np.column_stack([centres[:, 0], -centres[:, 1], np.ones(n), np.zeros(n)])
    rows_x = np.column_stack([centres[:, 1], centres[:, 0], np.zeros(n), np.ones(n)])
    design = np.vstack([rows_y, rows_x])
    target = np.concatenate([shifts_yx[:, 0], shifts_yx[:, 1]])
    # tiles with clearer structure measure their shift better
    weight = np.tile(scores**2, 2)
    columns = [0, 1, 2, 3] if with_scale else [1, 2, 3]
    weighted = design[:, columns] * weight[:, None]
    solution, *_ = np.linalg.lstsq(weighted, target * weight, rcond=None)
    params = np.zeros(4)
    params[columns] = solution
    dof = len(target) - len(columns)
    if not with_scale or dof <= 0:
        return params, 0.0 if with_scale else float("nan")
    misfit = (design @ params - target) * weight
    variance = float(misfit @ misfit) / dof
    covariance = variance * np.linalg.pinv(weighted.T @ weighted)
    return params, float(np.sqrt(max(covariance[0, 0], 0.0)))


def fit_similarity(
    tiles: TileShifts,
    *,
    inlier_threshold_um: float,
    min_tile_score: float,
    min_tiles: int = 4,
    allow_scale: bool = True,
) -> SimilarityFit | None:
    """Robust least-squares similarity shift field through the tile shifts.

    Parameters
    ----------
    tiles : TileShifts
        Measured tiles.
    inlier_threshold_um : float
        Tiles whose lateral residual exceeds this (and 3 robust sigmas) are
        dropped, and the fit is repeated.
    min_tile_score : float
        Tiles with a lower correlation peak (empty background) are not used.
    min_tiles : int
        Fewer inliers than this: no fit.
    allow_scale : bool
        Whether a (significant) scale change may be fitted.

    Returns
    -------
    SimilarityFit or None
        The fit, or None if too few tiles agree.

    """
    n = len(tiles.scores)
    if n < min_tiles:
        return None
    p = tiles.centres_yx_um
    s = tiles.shifts_zyx_um
    usable = tiles.scores >= min_tile_score
    inliers = usable.copy()
    params = np.zeros(4)
    residual = np.zeros(n)
    for _ in range(4):
        idx = np.flatnonzero(inliers)
        if idx.size < min_tiles:
            return None
        params, _ = _solve(p[idx], s[idx, 1:], tiles.scores[idx], False)
        a, c, by, bx = params
        pred_y = a * p[:, 0] - c * p[:, 1] + by
        pred_x = c * p[:, 0] + a * p[:, 1] + bx
        residual = np.hypot(s[:, 1] - pred_y, s[:, 2] - pred_x)
        spread = 1.4826 * np.median(residual[inliers])
        keep = usable & (residual <= max(inlier_threshold_um, 3 * spread))
        keep &= residual <= 2 * inlier_threshold_um
        if np.array_equal(keep, inliers):
            break
        inliers = keep
    if inliers.sum() < min_tiles:
        return None
    idx = np.flatnonzero(inliers)
    params, scale_error = _solve(p[idx], s[idx, 1:], tiles.scores[idx], True)
    scale_fitted = allow_scale and abs(params[0]) > SCALE_SIGNIFICANCE * scale_error
    if not scale_fitted:
        params, _ = _solve(p[idx], s[idx, 1:], tiles.scores[idx], False)
    a, c, by, bx = params
    pred_y = a * p[:, 0] - c * p[:, 1] + by
    pred_x = c * p[:, 0] + a * p[:, 1] + bx
    residual = np.hypot(s[:, 1] - pred_y, s[:, 2] - pred_x)
    z_weight = tiles.scores[inliers] ** 2
    bz = float(np.sum(s[inliers, 0] * z_weight) / np.sum(z_weight))
    return SimilarityFit(
        matrix=np.array([[a, -c], [c, a]]),
        offset_zyx_um=np.array([bz, by, bx]),
        usable=usable,
        inliers=inliers,
        scale_fitted=bool(scale_fitted),
        scale_error=float(scale_error),
        residual_rms_um=float(np.sqrt(np.mean(residual[inliers] ** 2))),
    )
