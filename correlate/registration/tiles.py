"""Local 3D shifts in tiles of the overlap of two stacks on one grid.

Tiles are placed on the confocal stack's structure (`place_tiles`) and
correlated each on its own, over every plane both stacks cover. They are
tapered laterally (a Hann window) but not along z: the two stacks end at the
same planes on this grid, and a z taper over structure that sits near one end
of the stack pulls the axial peak (measured: 0.4 um on 41-plane stacks whose
cell filled the lower half). The z axis is zero-padded instead, so the
correlation is linear (no wrap-around) within the search window.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft
from numpy.typing import NDArray

from correlate.registration.grid import centred_axis
from correlate.registration.preprocess import FFT_WORKERS
from correlate.registration.translation import OverlapNorm, correlation_peak

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class TileShifts:
    """Shifts measured in tiles of the overlap.

    Attributes
    ----------
    centres_zyx_um : ndarray
        (n, 3) tile centres in confocal stack coordinates; z is the centroid
        of the tile's band-passed confocal signal along z, the height the
        tile's axial shift refers to.
    shifts_zyx_um : ndarray
        (n, 3) shift ``s`` with ``confocal(p + s) ~ widefield(p)`` per tile.
    scores : ndarray
        (n,) normalised correlation peak per tile.
    sharpness : ndarray
        (n,) peak over the best correlation away from it (1 = no peak).
    curvature_per_um2 : ndarray
        (n, 3, 3) curvature of each tile's correlation peak (see
        `correlation_peak`) in (z, y, x) um^-2: the directions along which
        the tile's structure pins its shift down.
    at_window_edge : ndarray of bool
        (n,) peaks on the edge of the search window.
    components : ndarray of bool
        (n, 3) which of (z, y, x) each tile's shift is used for (see
        `TileShifts.using`).

    """

    centres_zyx_um: NDArray[np.float64]
    shifts_zyx_um: NDArray[np.float64]
    scores: NDArray[np.float64]
    sharpness: NDArray[np.float64]
    curvature_per_um2: NDArray[np.float64]
    at_window_edge: NDArray[np.bool_]
    components: NDArray[np.bool_] | None = None

    @property
    def used_components(self) -> NDArray[np.bool_]:
        """(n, 3) the components used (all when not set)."""
        if self.components is None:
            return np.ones((len(self.scores), 3), dtype=bool)
        return self.components

    def using(self, axes: tuple[int, ...]) -> TileShifts:
        """The same tiles, their shifts used along ``axes`` (0 = z) only."""
        components = np.zeros((len(self.scores), 3), dtype=bool)
        components[:, list(axes)] = True
        return replace(self, components=components)

    @classmethod
    def concatenate(cls, parts: list[TileShifts]) -> TileShifts:
        """All tiles of several measurements, each keeping its components."""
        if not parts:
            return cls.empty()
        return cls(
            centres_zyx_um=np.concatenate([p.centres_zyx_um for p in parts]),
            shifts_zyx_um=np.concatenate([p.shifts_zyx_um for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            sharpness=np.concatenate([p.sharpness for p in parts]),
            curvature_per_um2=np.concatenate([p.curvature_per_um2 for p in parts]),
            at_window_edge=np.concatenate([p.at_window_edge for p in parts]),
            components=np.concatenate([p.used_components for p in parts]),
        )

    @property
    def centres_yx_um(self) -> NDArray[np.float64]:
        """(n, 2) lateral tile centres."""
        return self.centres_zyx_um[:, 1:]

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> TileShifts:
        """No tiles (nothing to correlate)."""
        return cls(
            np.zeros((0, 3)),
            np.zeros((0, 3)),
            np.zeros(0),
            np.zeros(0),
            np.zeros((0, 3, 3)),
            np.zeros(0, bool),
        )


def lateral_given_axial(
    lateral: TileShifts, axial: TileShifts, *, min_score: float
) -> TileShifts:
    """Lateral shifts taken where each tile's axial shift is its axial measurement's.

    Structure tilted in z (the flanks of a cell's dome, an oblique fibre)
    correlates along a ridge in (z, y, x): an axial error of the peak slides
    it sideways. The lateral tiles correlate the confocal stack without the
    wide field's axial blur, so their axial peak is pulled; read off the
    peak's quadratic form (its curvature tensor ``H``) at the axial shift
    of the same tile's blur-matched measurement instead, the lateral shift
    is ``p_yx + H_yx,yx^-1 H_yx,z (p_z - z_axial)``, and its information is
    what is left once the axial measurement's own noise is carried along
    that lever.

    Parameters
    ----------
    lateral, axial : TileShifts
        The same tiles (same order) measured on the two confocal versions.
    min_score : float
        An axial measurement with a lower correlation peak, or on the edge of
        its search window, moves nothing.

    Returns
    -------
    TileShifts
        ``lateral`` with its shifts moved along each peak's ridge and its
        curvature the lateral information that is left.

    """
    if len(lateral) != len(axial) or not len(lateral):
        return lateral
    curvature = lateral.curvature_per_um2
    lateral_block = curvature[:, 1:, 1:]
    coupling = curvature[:, 1:, 0]
    target = axial.shifts_zyx_um[:, 0]
    slide = lateral.shifts_zyx_um[:, 0] - target
    axial_information = peak_snr(axial.scores) * axial.curvature_per_um2[:, 0, 0]
    determinant = np.linalg.det(lateral_block)
    trace = np.einsum("nii->n", lateral_block)
    positive = (
        (determinant > 1e-12 * np.maximum(trace, 1e-30) ** 2)
        & (trace > 0)
        & (axial_information > 0)
        & (axial.scores >= min_score)
        & ~axial.at_window_edge
    )
    moved = lateral.shifts_zyx_um.copy()
    weights = curvature.copy()
    if positive.any():
        block = lateral_block[positive]
        lever = np.linalg.solve(block, coupling[positive][..., None])[..., 0]
        moved[positive, 1:] += lever * slide[positive, None]
        moved[positive, 0] = target[positive]
        # the axial measurement's own noise moves the lateral shift along the
        # same lever: the tile's lateral information shrinks by it
        snr = np.maximum(peak_snr(lateral.scores[positive]), 1e-12)
        covariance = (
            np.linalg.inv(block * snr[:, None, None])
            + np.einsum("ni,nj->nij", lever, lever)
            / axial_information[positive, None, None]
        )
        conditioned = np.zeros((int(positive.sum()), 3, 3))
        conditioned[:, 1:, 1:] = np.linalg.inv(covariance) / snr[:, None, None]
        weights[positive] = conditioned
    return replace(lateral, shifts_zyx_um=moved, curvature_per_um2=weights)


def peak_snr(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Signal-to-noise ratio of normalised correlation peaks ``r``.

    ``r^2 / (1 - r^2)``, with ``r`` clipped to [0, 0.99].
    """
    r = np.clip(scores, 0.0, 0.99)
    snr: NDArray[np.float64] = r**2 / (1.0 - r**2)
    return snr


def _lateral_window(ny: int, nx: int) -> NDArray[np.float32]:
    wy = np.hanning(ny + 2)[1:-1]
    wx = np.hanning(nx + 2)[1:-1]
    window: NDArray[np.float32] = (wy[:, None] * wx[None, :]).astype(np.float32)
    return window


def place_tiles(
    confocal: NDArray[np.float32],
    tile_shape: tuple[int, int],
    *,
    max_tiles: int,
    min_energy_fraction: float = 0.05,
    max_overlap: float = 0.25,
) -> list[tuple[int, int]]:
    """Tile corners on the confocal stack's structure, strongest first.

    A regular grid wastes tiles on empty background when the cells fill only
    part of the field; here each tile is placed where the (band-passed)
    confocal signal is strongest among the places not yet covered, until the
    remaining places hold little signal.

    Parameters
    ----------
    confocal : ndarray
        (z, y, x) band-passed confocal volume.
    tile_shape : tuple of int
        (rows, columns) of a tile.
    max_tiles : int
        Most tiles placed.
    min_energy_fraction : float
        A tile must hold at least this fraction of the strongest tile's
        signal energy.
    max_overlap : float
        Largest fraction of a tile's area another tile may share.

    Returns
    -------
    list of tuple of int
        (row, column) of each tile's first pixel.

    """
    energy = np.einsum("zyx,zyx->yx", confocal, confocal, dtype=np.float64)
    th, tw = tile_shape
    ny, nx = energy.shape
    if ny < th or nx < tw:
        return []
    summed = np.zeros((ny + 1, nx + 1))
    summed[1:, 1:] = energy.cumsum(axis=0).cumsum(axis=1)
    box = summed[th:, tw:] - summed[:-th, tw:] - summed[th:, :-tw] + summed[:-th, :-tw]
    strongest = float(box.max())
    if strongest <= 0:
        return []
    # tiles may not share more than max_overlap of their area with another
    keep_out_y = max(1, int(np.ceil(th * (1 - np.sqrt(max_overlap)))))
    keep_out_x = max(1, int(np.ceil(tw * (1 - np.sqrt(max_overlap)))))
    free = np.ones_like(box, dtype=bool)
    corners: list[tuple[int, int]] = []
    while len(corners) < max_tiles:
        candidates = np.where(free, box, -np.inf)
        flat = int(np.argmax(candidates))
        row, col = divmod(flat, box.shape[1])
        if not np.isfinite(candidates[row, col]):
            break
        if box[row, col] < min_energy_fraction * strongest:
            break
        corners.append((int(row), int(col)))
        free[
            max(0, row - keep_out_y + 1) : row + keep_out_y,
            max(0, col - keep_out_x + 1) : col + keep_out_x,
        ] = False
    return corners


def measure_tiles(
    confocals: Sequence[NDArray[np.float32]],
    widefield: NDArray[np.float32],
    mask: NDArray[np.bool_],
    voxel_um: tuple[float, float, float],
    *,
    tiles_per_axis: int,
    corners: list[tuple[int, int]] | None = None,
    max_shift_px: tuple[float, float, float],
    min_valid_fraction: float = 0.95,
    upsample: int = 4,
    cache: dict[tuple[int, ...], TileSpectrum] | None = None,
    axial_overlap: Sequence[bool] | None = None,
) -> list[TileShifts]:
    """Cross-correlate versions of a confocal volume with a wide-field one.

    Parameters
    ----------
    confocals : sequence of ndarray
        (z, y, x) confocal volumes (already filtered), e.g. the band-passed
        stack and its blur-matched copy; each is correlated with
        ``widefield`` tile by tile (the wide-field tiles' spectra are shared).
    widefield : ndarray
        (z, y, x) wide-field volume on the same grid.
    mask : ndarray of bool
        Where the wide-field volume holds data.
    voxel_um : tuple of float
        Grid voxel (dz, dy, dx).
    tiles_per_axis : int
        Tiles along y and along x (their size: the field over this).
    corners : list of tuple of int, optional
        (row, column) of each tile's first pixel (see `place_tiles`); a
        regular grid by default.
    max_shift_px : tuple of float
        Search window per axis, voxels.
    min_valid_fraction : float
        Tiles with less of their voxels in ``mask`` are skipped.
    upsample : int
        Upsampling of the peak refinement (see `correlation_peak`).
    cache : dict, optional
        Keeps the confocal tiles' spectra (and z centroids) between calls on
        the same volumes.
    axial_overlap : sequence of bool, optional
        Per confocal version: divide its correlation at each axial lag by the
        energy the tiles share there (`OverlapNorm`). Zero-padded stacks
        overlap less the further one is shifted, which pulls a broad axial
        peak (a blur-matched version's) towards zero shift; a sharp one it
        barely moves, and the division only adds noise.

    Returns
    -------
    list of TileShifts
        One per confocal version, one row per tile measured.

    """
    axial_overlap = list(axial_overlap or [False] * len(confocals))
    # only planes the wide-field stack reaches (a z offset empties the ends)
    planes = np.flatnonzero(mask.any(axis=(1, 2)))
    if planes.size < 4:
        return [TileShifts.empty() for _ in confocals]
    z0, z1 = int(planes[0]), int(planes[-1]) + 1
    nz_all, ny, nx = widefield.shape
    size_y, size_x = ny // tiles_per_axis, nx // tiles_per_axis
    if corners is None:
        corners = [
            (ty * size_y, tx * size_x)
            for ty in range(tiles_per_axis)
            for tx in range(tiles_per_axis)
        ]
    lateral = _lateral_window(size_y, size_x)
    zc = centred_axis(nz_all, voxel_um[0])[z0:z1]
    yc = centred_axis(ny, voxel_um[1])
    xc = centred_axis(nx, voxel_um[2])
    nz = z1 - z0
    reach = int(np.ceil(max_shift_px[0])) + 1
    padded = (scipy.fft.next_fast_len(nz + reach, real=True), size_y, size_x)
    to_um = np.diag(1.0 / np.asarray(voxel_um))
    rows: list[list[tuple[Any, ...]]] = [[] for _ in confocals]
    for row, col in corners:
        ys = slice(row, row + size_y)
        xs = slice(col, col + size_x)
        if mask[z0:z1, ys, xs].mean() < min_valid_fraction:
            continue
        w = (widefield[z0:z1, ys, xs] - widefield[z0:z1, ys, xs].mean()) * lateral
        fw = scipy.fft.rfftn(w, s=padded, workers=FFT_WORKERS)
        w_energy = np.einsum("zyx,zyx->z", w, w, dtype=np.float64)
        centre_yx = (float(yc[ys].mean()), float(xc[xs].mean()))
        for version, confocal in enumerate(confocals):
            key = (version, row, col, z0, z1)
            cached = cache.get(key) if cache is not None else None
            if cached is None:
                c = (confocal[z0:z1, ys, xs] - confocal[z0:z1, ys, xs].mean()) * lateral
                fc = scipy.fft.rfftn(c, s=padded, workers=FFT_WORKERS)
                c_energy = np.einsum("zyx,zyx->z", c, c, dtype=np.float64)
                cached = (fc, _centroid(c_energy, zc), c_energy)
                if cache is not None:
                    cache[key] = cached
            fc, centre_z, c_energy = cached
            peak = correlation_peak(
                fc,
                fw,
                padded,
                max_shift_px=max_shift_px,
                upsample=upsample,
                overlap=OverlapNorm(c_energy, w_energy)
                if axial_overlap[version]
                else None,
            )
            rows[version].append(
                (
                    [centre_z, *centre_yx],
                    peak.shift_px * np.asarray(voxel_um),
                    peak.score,
                    peak.sharpness,
                    to_um @ peak.curvature_px @ to_um,
                    peak.at_window_edge,
                )
            )
    return [_tile_shifts(r) for r in rows]


def _tile_shifts(rows: list[tuple[Any, ...]]) -> TileShifts:
    if not rows:
        return TileShifts.empty()
    centres, shifts, scores, sharpness, curvatures, at_edge = zip(*rows, strict=True)
    return TileShifts(
        centres_zyx_um=np.asarray(centres, dtype=np.float64),
        shifts_zyx_um=np.asarray(shifts, dtype=np.float64),
        scores=np.asarray(scores, dtype=np.float64),
        sharpness=np.asarray(sharpness, dtype=np.float64),
        curvature_per_um2=np.asarray(curvatures, dtype=np.float64).reshape(-1, 3, 3),
        at_window_edge=np.asarray(at_edge, dtype=bool),
    )


TileSpectrum = tuple[NDArray[np.complex64], float, NDArray[np.float64]]
"""A confocal tile's spectrum, signal height and per-plane energy."""


def _centroid(energy: NDArray[np.float64], z_um: NDArray[np.float64]) -> float:
    """Height of a tile's signal: its energy-weighted mean plane."""
    total = float(energy.sum())
    return float(energy @ z_um / total) if total > 0 else float(z_um.mean())
