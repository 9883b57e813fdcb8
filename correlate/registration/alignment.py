"""Measure how a transform aligns two stacks: the tiles' residual shift field.

`prepare_stacks` does once what every measurement needs (the confocal stack on
the working grid, band-passed, its copy given the wide field's axial blur,
and tiles placed on its structure); `measure_alignment` resamples the
wide-field stack with a transform and fits the shift field that is left.
Registration repeats it until nothing is left; the quality gate judges the
last one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from correlate.registration.blur_match import blur_axially, matching_axial_blur_um
from correlate.registration.grid import Voxel, bin_lateral, resample_widefield
from correlate.registration.preprocess import BandPass, masked_band_pass
from correlate.registration.shift_field import ShiftField, fit_shift_field
from correlate.registration.tiles import (
    TileShifts,
    TileSpectrum,
    lateral_given_axial,
    measure_tiles,
    place_tiles,
)
from correlate.registration.transform import PairTransform

if TYPE_CHECKING:
    from numpy.typing import NDArray

MAX_TILE_SHIFT_PX = (4.0, 3.0, 3.0)
"""Search window of a tile's correlation (z, y, x), working-grid voxels."""


SIGNAL_FRACTION = 0.95
"""Share of the confocal stack's band-passed signal the 'signal planes' hold."""


def signal_planes(
    confocal_band: NDArray[np.float32], fraction: float = SIGNAL_FRACTION
) -> slice:
    """The planes that hold the central ``fraction`` of the stack's signal.

    Planes above and below the specimen hold no structure to align; an axial
    error there costs a training pair nothing, and no measurement can see it.

    Parameters
    ----------
    confocal_band : ndarray
        (z, y, x) band-passed confocal volume.
    fraction : float
        Share of the signal energy kept (its tails are cut equally).

    Returns
    -------
    slice
        ``[start, stop)`` planes.

    """
    energy = np.einsum("zyx,zyx->z", confocal_band, confocal_band, dtype=np.float64)
    total = float(energy.sum())
    if total <= 0:
        return slice(0, confocal_band.shape[0])
    cumulative = np.cumsum(energy) / total
    tail = (1.0 - fraction) / 2
    start = int(np.searchsorted(cumulative, tail))
    stop = int(np.searchsorted(cumulative, 1.0 - tail)) + 1
    return slice(start, min(max(stop, start + 1), confocal_band.shape[0]))


def _contrast(band: NDArray[np.float32], raw: NDArray[np.float32]) -> float:
    """RMS of a band-passed stack over the raw stack's mean absolute value."""
    level = float(np.mean(np.abs(raw)))
    return float(np.sqrt(np.mean(np.square(band, dtype=np.float64)))) / max(
        level, 1e-30
    )


def _bounds(planes: slice) -> tuple[int, int]:
    return int(planes.start), int(planes.stop)


@dataclass(frozen=True)
class PreparedStacks:
    """The two stacks as every alignment measurement uses them.

    Attributes
    ----------
    widefield : ndarray of float32
        (z, y, x) wide-field stack as given.
    widefield_voxel_um : tuple of float
        Its (dz, dy, dx).
    confocal_shape : tuple of int
        (nz, ny, nx) of the confocal stack.
    confocal_voxel_um : tuple of float
        Its (dz, dy, dx).
    bin_factor : int
        Lateral binning of the confocal grid that gives the working grid.
    working_voxel_um : tuple of float
        Voxel of the working grid.
    confocal_band : ndarray of float32
        Confocal stack on the working grid, band-passed.
    confocal_alike : ndarray of float32
        ``confocal_band`` blurred along z like the wide-field stack.
    axial_blur_um : float
        That blur's Gaussian sigma.
    corners : list of tuple of int
        Tile corners on the working grid, on the confocal structure.
    tiles_per_axis : int
        Tile size: the working field over this.
    band : BandPass
        The band-pass.
    planes_with_signal : tuple of int
        ``[start, stop)`` of the confocal planes holding the specimen (see
        `signal_planes`); (0, 0) for every plane.
    confocal_contrast : float
        RMS of the band-passed confocal stack over its mean absolute value:
        next to nothing when it holds no structure.

    """

    widefield: NDArray[np.float32]
    widefield_voxel_um: Voxel
    confocal_shape: tuple[int, int, int]
    confocal_voxel_um: Voxel
    bin_factor: int
    working_voxel_um: Voxel
    confocal_band: NDArray[np.float32]
    confocal_alike: NDArray[np.float32]
    axial_blur_um: float
    corners: list[tuple[int, int]]
    tiles_per_axis: int
    band: BandPass
    planes_with_signal: tuple[int, int] = (0, 0)
    confocal_contrast: float = 1.0

    @property
    def signal_slice(self) -> slice:
        """`planes_with_signal` as a slice."""
        start, stop = self.planes_with_signal
        return slice(start, stop) if stop > start else slice(None)

    def resampled(
        self, transform: PairTransform
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_], float]:
        """The wide-field stack on the working grid, band-passed.

        Also its mask and its mean absolute value where it covers the grid.
        """
        moving, mask = resample_widefield(
            self.widefield,
            self.widefield_voxel_um,
            transform,
            self.confocal_shape,
            self.confocal_voxel_um,
            bin_factor=self.bin_factor,
        )
        level = float(np.mean(np.abs(moving[mask]))) if mask.any() else 0.0
        band = masked_band_pass(moving, mask, self.working_voxel_um, self.band)
        return band, mask, level


def prepare_stacks(
    widefield: NDArray[np.float32],
    widefield_voxel_um: Voxel,
    confocal: NDArray[np.float32],
    confocal_voxel_um: Voxel,
    transform: PairTransform,
    *,
    bin_factor: int,
    tiles_per_axis: int,
    band: BandPass,
) -> PreparedStacks:
    """Band-pass the confocal stack, match its axial blur, place the tiles.

    Parameters
    ----------
    widefield, confocal : ndarray of float32
        The (z, y, x) stacks.
    widefield_voxel_um, confocal_voxel_um : tuple of float
        Their (dz, dy, dx).
    transform : PairTransform
        Current estimate (within a few tenths of a um): the axial blur is
        matched on the stacks it aligns.
    bin_factor : int
        Lateral binning of the confocal grid for the working grid.
    tiles_per_axis : int
        Tiles per lateral axis of the working field (their size).
    band : BandPass
        Band-pass applied to both stacks.

    Returns
    -------
    PreparedStacks
        What `measure_alignment` needs.

    """
    working = (
        confocal_voxel_um[0],
        confocal_voxel_um[1] * bin_factor,
        confocal_voxel_um[2] * bin_factor,
    )
    confocal_band = masked_band_pass(
        bin_lateral(confocal, bin_factor), None, working, band
    )
    shape = (confocal.shape[0], confocal.shape[1], confocal.shape[2])
    partial = PreparedStacks(
        widefield=widefield,
        widefield_voxel_um=widefield_voxel_um,
        confocal_shape=shape,
        confocal_voxel_um=confocal_voxel_um,
        bin_factor=bin_factor,
        working_voxel_um=working,
        confocal_band=confocal_band,
        confocal_alike=confocal_band,
        axial_blur_um=0.0,
        corners=[],
        tiles_per_axis=tiles_per_axis,
        band=band,
    )
    widefield_band, mask, _ = partial.resampled(transform)
    blur_um = matching_axial_blur_um(confocal_band, widefield_band, mask, working[0])
    alike = blur_axially(confocal_band, blur_um, working[0])
    tile_shape = (
        confocal_band.shape[1] // tiles_per_axis,
        confocal_band.shape[2] // tiles_per_axis,
    )
    corners = place_tiles(alike, tile_shape, max_tiles=tiles_per_axis**2)
    return replace(
        partial,
        confocal_alike=alike,
        axial_blur_um=blur_um,
        corners=corners,
        planes_with_signal=_bounds(signal_planes(confocal_band)),
        confocal_contrast=_contrast(confocal_band, confocal),
    )


@dataclass(frozen=True)
class AlignmentMeasurement:
    """The shift field left by a transform, and what it was measured from.

    Attributes
    ----------
    transform : PairTransform
        The transform measured.
    tiles : TileShifts
        Lateral shifts (from the band-passed confocal stack) and axial ones
        (from its blur-matched copy).
    fit : ShiftField or None
        The residual shift field; None when too few tiles agree.
    mask : ndarray of bool
        Working-grid voxels the wide-field stack covers.
    widefield_band : ndarray of float32
        The band-passed wide-field stack on the working grid.
    widefield_raw_level : float
        Mean absolute value of the wide-field stack where it covers the grid.

    """

    transform: PairTransform
    tiles: TileShifts
    fit: ShiftField | None
    mask: NDArray[np.bool_]
    widefield_band: NDArray[np.float32]
    widefield_raw_level: float = 1.0


def measure_alignment(
    stacks: PreparedStacks,
    transform: PairTransform,
    *,
    min_tile_score: float,
    allow_scale: bool,
    allow_axial_scale: bool,
    prior_scale: float = 0.0,
    prior_axial_scale: float = 0.0,
    lateral_scale_trusted: bool = True,
    cache: dict[tuple[int, ...], TileSpectrum] | None = None,
) -> AlignmentMeasurement:
    """Resample the wide-field stack with ``transform`` and fit what is left.

    Parameters
    ----------
    stacks : PreparedStacks
        From `prepare_stacks`.
    transform : PairTransform
        The transform to measure.
    min_tile_score : float
        Least normalised correlation peak of a usable tile.
    allow_scale, allow_axial_scale : bool
        Whether the fit may apply a lateral / axial scale change.
    prior_scale, prior_axial_scale : float
        Scale changes already in ``transform`` (see `fit_shift_field`).
    lateral_scale_trusted : bool
        See `fit_shift_field`.
    cache : dict, optional
        Confocal tile spectra kept between calls.

    Returns
    -------
    AlignmentMeasurement
        Tiles, the fitted residual field and the resampled stack.

    """
    widefield_band, mask, level = stacks.resampled(transform)
    # lateral shifts from the confocal stack as it is (the axial blur costs
    # lateral precision), axial ones from its blur-matched copy
    lateral, axial = measure_tiles(
        [stacks.confocal_band, stacks.confocal_alike],
        widefield_band,
        mask,
        stacks.working_voxel_um,
        tiles_per_axis=stacks.tiles_per_axis,
        corners=stacks.corners,
        max_shift_px=MAX_TILE_SHIFT_PX,
        cache=cache,
        axial_overlap=[False, True],
    )
    lateral = lateral_given_axial(lateral, axial, min_score=min_tile_score)
    tiles = TileShifts.concatenate([lateral.using((1, 2)), axial.using((0,))])
    fit = fit_shift_field(
        tiles,
        min_tile_score=min_tile_score,
        allow_scale=allow_scale,
        allow_axial_scale=allow_axial_scale,
        prior_scale=prior_scale,
        prior_axial_scale=prior_axial_scale,
        lateral_scale_trusted=lateral_scale_trusted,
    )
    return AlignmentMeasurement(
        transform=transform,
        tiles=tiles,
        fit=fit,
        mask=mask,
        widefield_band=widefield_band,
        widefield_raw_level=level,
    )


def field_correction(fit: ShiftField) -> PairTransform:
    """The refinement step that undoes a measured shift field.

    The resampled wide-field stack looks like the confocal one at
    ``q = (I + A) p + b`` (laterally) and ``q_z = (1 + g) p_z + b_z``; the
    step maps ``q`` back to ``p``.

    Parameters
    ----------
    fit : ShiftField
        The measured residual field.

    Returns
    -------
    PairTransform
        The step to compose after the current estimate.

    """
    correction = np.linalg.inv(np.eye(2) + fit.matrix)
    offset = fit.offset_zyx_um
    axial = 1.0 / (1.0 + fit.axial_gain)
    return PairTransform.from_arrays(
        correction, [-offset[0] * axial, *(-correction @ offset[1:])], axial
    )


def largest_motion_um(tiles: TileShifts, fit: ShiftField) -> float:
    """Largest 3-D displacement a fitted field gives any tile centre."""
    motion = np.linalg.norm(fit.shift_at(tiles.centres_zyx_um), axis=1)
    return float(motion.max()) if motion.size else 0.0
