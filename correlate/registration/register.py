"""Register a wide-field stack to its confocal partner."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, NDArray

from correlate.registration.errors import RegistrationError
from correlate.registration.grid import (
    bin_lateral,
    check_stack,
    check_voxel,
    resample_widefield,
)
from correlate.registration.preprocess import (
    FFT_WORKERS,
    BandPass,
    fill_outside,
    filtered,
)
from correlate.registration.quality import QualityGate, RegistrationQuality, assess
from correlate.registration.rotation import estimate_rotation
from correlate.registration.tiles import (
    SimilarityFit,
    TileShifts,
    fit_similarity,
    measure_tiles,
)
from correlate.registration.transform import PairTransform, rotation_matrix
from correlate.registration.translation import correlation_peak


@dataclass(frozen=True)
class PairRegistration:
    """Result of `register_pair`.

    Attributes
    ----------
    transform : PairTransform
        Confocal-to-wide-field transform found.
    initial : PairTransform
        The estimate it started from.
    rotation_deg : float
        Rotation of the refinement (``initial⁻¹ ∘ transform``), degrees.
    scale : float
        Scale of the refinement.
    quality : RegistrationQuality
        Scores the gate judged.
    accepted : bool
        Whether the pair passed the quality gate.
    reason : str
        Why it passed or failed.
    aligned_widefield : ndarray of float32
        The wide-field stack resampled onto the confocal grid (zero outside it).
    confocal : ndarray of float32
        The confocal stack as given.
    overlap_mask : ndarray of bool
        True where ``aligned_widefield`` holds wide-field data.

    """

    transform: PairTransform
    initial: PairTransform
    rotation_deg: float
    scale: float
    quality: RegistrationQuality
    accepted: bool
    reason: str
    aligned_widefield: NDArray[np.float32] = field(repr=False)
    confocal: NDArray[np.float32] = field(repr=False)
    overlap_mask: NDArray[np.bool_] = field(repr=False)


def _shift_refinement(shift_zyx_um: NDArray[np.float64]) -> PairTransform:
    """``q -> q - s``: corrects a measured ``confocal(p + s) ~ widefield(p)``."""
    return PairTransform.from_arrays(np.eye(2), -np.asarray(shift_zyx_um))


def _band_spectrum(
    volume: NDArray[np.float32],
    mask: NDArray[np.bool_],
    voxel_um: tuple[float, float, float],
    band: BandPass,
) -> tuple[NDArray[np.complex64], tuple[int, int, int]]:
    """Band-passed spectrum, z zero-padded to a fast FFT length (mean removed)."""
    filled = fill_outside(volume, mask)
    filled = filled - np.float32(filled.mean())
    nz, ny, nx = filled.shape
    padded = (scipy.fft.next_fast_len(nz, real=True), ny, nx)
    spectrum = scipy.fft.rfftn(filled, s=padded, workers=FFT_WORKERS)
    spectrum *= band.gain(padded, voxel_um)
    return spectrum, padded


def _bin_factor(
    confocal_voxel_um: tuple[float, float, float], working_um: float
) -> int:
    return max(1, round(working_um / max(confocal_voxel_um[1:])))


def _largest_tile_motion_um(tiles: TileShifts, fit: SimilarityFit) -> float:
    """Largest 3-D displacement a fitted shift field gives any tile centre."""
    lateral = tiles.centres_yx_um @ fit.matrix.T + fit.offset_zyx_um[1:]
    motion = np.hypot(np.hypot(lateral[:, 0], lateral[:, 1]), fit.offset_zyx_um[0])
    return float(motion.max()) if motion.size else 0.0


def register_pair(
    widefield: ArrayLike,
    confocal: ArrayLike,
    *,
    widefield_voxel_um: Sequence[float],
    confocal_voxel_um: Sequence[float],
    initial: PairTransform,
    max_rotation_deg: float = 6.0,
    max_shift_um: tuple[float, float] = (1.5, 3.0),
    working_pixel_um: float = 0.2,
    tiles_per_axis: int = 4,
    refinements: int = 3,
    convergence_um: float = 0.01,
    band: BandPass | None = None,
    gate: QualityGate | None = None,
) -> PairRegistration:
    """Find the transform between a wide-field stack and its confocal partner.

    Parameters
    ----------
    widefield : array_like
        (z, y, x) wide-field stack.
    confocal : array_like
        (z, y, x) confocal stack; its grid is the common grid.
    widefield_voxel_um, confocal_voxel_um : sequence of float
        (dz, dy, dx) of each stack, um.
    initial : PairTransform
        Estimate of the confocal-to-wide-field transform (from relocation).
    max_rotation_deg : float
        Largest residual in-plane rotation searched.
    max_shift_um : tuple of float
        Largest residual (axial, lateral) error of ``initial`` searched.
    working_pixel_um : float
        Lateral pixel of the grid the estimation runs on (the confocal grid
        binned to about this).
    tiles_per_axis : int
        Tiles per lateral axis for the local-shift refinement.
    refinements : int
        Most rounds of tile refinement. Each round resamples the wide-field
        stack with the transform so far and measures the tiles again; the
        tile shifts are slightly biased towards zero away from it, so the
        estimate converges over rounds rather than in one.
    convergence_um : float
        Stop refining once a round moves no tile by more than this (after
        at least two rounds: the scale term is allowed from the second).
    band : BandPass, optional
        Band-pass applied before correlating.
    gate : QualityGate, optional
        Acceptance thresholds.

    Returns
    -------
    PairRegistration
        Transform, quality, verdict and both stacks on the confocal grid.

    Raises
    ------
    RegistrationError
        Bad stacks (not 3D, too small, non-finite) or voxel sizes.

    """
    if not isinstance(initial, PairTransform):
        raise RegistrationError(
            f"initial must be a PairTransform, got {type(initial).__name__}; "
            "use PairTransform.identity() when the stacks share centre and axes"
        )
    if refinements < 1:
        raise RegistrationError(
            f"refinements must be at least 1, got {refinements}: the tiles "
            "measure the final shift, rotation and scale"
        )
    wf = check_stack(widefield, "widefield")
    cf = check_stack(confocal, "confocal")
    wf_voxel = check_voxel(widefield_voxel_um, "widefield_voxel_um")
    cf_voxel = check_voxel(confocal_voxel_um, "confocal_voxel_um")
    band = band or BandPass()
    gate = gate or QualityGate()
    b = _bin_factor(cf_voxel, working_pixel_um)
    work_voxel = (cf_voxel[0], cf_voxel[1] * b, cf_voxel[2] * b)
    cf_work = bin_lateral(cf, b)
    shape = cf_work.shape
    axial_px = max_shift_um[0] / work_voxel[0]

    # 1. rotation and lateral shift from maximum projections
    # a coarser grid is enough to find the rotation to a few hundredths of
    # a degree; the tiles refine it
    coarse = 2 if min(shape[1:]) >= 128 and not shape[1] % 2 and not shape[2] % 2 else 1
    rotation = estimate_rotation(
        wf.max(axis=0),
        (wf_voxel[1], wf_voxel[2]),
        bin_lateral(cf_work.max(axis=0)[None], coarse)[0],
        (work_voxel[1] * coarse, work_voxel[2] * coarse),
        initial,
        band=band,
        max_rotation_deg=max_rotation_deg,
        max_shift_um=max_shift_um[1],
    )
    refinement = PairTransform.from_arrays(
        rotation_matrix(rotation.rotation_deg), [0.0, 0.0, 0.0]
    ).then_before(_shift_refinement(np.array([0.0, *rotation.shift_yx_um])))

    # 2. 3D shift on a coarser grid, enough to start the tiles
    coarse_voxel = (work_voxel[0], work_voxel[1] * coarse, work_voxel[2] * coarse)
    cf_coarse = bin_lateral(cf_work, coarse)
    moving, mask = resample_widefield(
        wf,
        wf_voxel,
        initial.then_before(refinement),
        cf.shape,
        cf_voxel,
        bin_factor=b * coarse,
    )
    cf_spectrum, _ = _band_spectrum(cf_coarse, np.ones_like(mask), coarse_voxel, band)
    wf_spectrum, padded = _band_spectrum(moving, mask, coarse_voxel, band)
    peak = correlation_peak(
        cf_spectrum,
        wf_spectrum,
        padded,
        max_shift_px=(axial_px, 3.0, 3.0),
        upsample=1,
    )
    refinement = refinement.then_before(
        _shift_refinement(peak.shift_px * np.asarray(coarse_voxel))
    )

    # 3. tiles for shift, rotation and scale (band-passed tile by tile)
    fit = None
    tiles = None
    tile_spectra: dict[tuple[int, ...], NDArray[np.complex64]] = {}
    for round_index in range(1, refinements + 1):
        moving, mask = resample_widefield(
            wf,
            wf_voxel,
            initial.then_before(refinement),
            cf.shape,
            cf_voxel,
            bin_factor=b,
        )
        filled = fill_outside(moving, mask)
        tiles = measure_tiles(
            cf_work,
            filled,
            mask,
            work_voxel,
            tiles_per_axis=tiles_per_axis,
            max_shift_px=(4.0, 3.0, 3.0),
            band=band,
            cache=tile_spectra,
        )
        fit = fit_similarity(
            tiles,
            inlier_threshold_um=gate.tile_inlier_um,
            min_tile_score=gate.min_tile_score,
            allow_scale=round_index >= 2,
        )
        if fit is None:
            break
        correction = np.linalg.inv(np.eye(2) + fit.matrix)
        step = PairTransform.from_arrays(
            correction, [-fit.offset_zyx_um[0], *(-correction @ fit.offset_zyx_um[1:])]
        )
        refinement = refinement.then_before(step)
        if round_index >= 2 and _largest_tile_motion_um(tiles, fit) < convergence_um:
            break

    transform = initial.then_before(refinement)
    # the gate's NCC on whole band-passed volumes (periodic: no padded edge)
    cf_band = filtered(cf_work, work_voxel, band)
    wf_band = filtered(filled, work_voxel, band)
    quality = assess(cf_band, wf_band, mask, tiles, fit)
    accepted, reason = gate.judge(quality)
    aligned, full_mask = resample_widefield(wf, wf_voxel, transform, cf.shape, cf_voxel)
    return PairRegistration(
        transform=transform,
        initial=initial,
        rotation_deg=refinement.rotation_deg,
        scale=refinement.scale,
        quality=quality,
        accepted=accepted,
        reason=reason,
        aligned_widefield=aligned,
        confocal=cf,
        overlap_mask=full_mask,
    )
