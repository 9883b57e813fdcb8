"""Register a wide-field stack to its confocal partner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from correlate.registration.alignment import (
    AlignmentMeasurement,
    PreparedStacks,
    field_correction,
    largest_motion_um,
    measure_alignment,
    prepare_stacks,
)
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
    masked_band_pass,
)
from correlate.registration.quality import QualityGate, RegistrationQuality, assess
from correlate.registration.rotation import estimate_rotation
from correlate.registration.transform import PairTransform, rotation_matrix
from correlate.registration.translation import correlation_peak

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

    from correlate.registration.tiles import TileSpectrum


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


@dataclass(frozen=True)
class AlignmentAssessment:
    """The quality gate's verdict on a transform (see `assess_alignment`).

    Attributes
    ----------
    quality : RegistrationQuality
        Scores and predicted error measured at the transform.
    accepted : bool
        Whether the gate accepts it.
    reason : str
        Why (every failing criterion named).

    """

    quality: RegistrationQuality
    accepted: bool
    reason: str


def _judge(
    stacks: PreparedStacks,
    transform: PairTransform,
    gate: QualityGate,
    *,
    estimate_axial_scale: bool,
    prior_scale: float = 0.0,
    prior_axial_scale: float = 0.0,
    lateral_scale_trusted: bool = True,
    cache: dict[tuple[int, ...], TileSpectrum] | None = None,
) -> AlignmentAssessment:
    measured = measure_alignment(
        stacks,
        transform,
        min_tile_score=gate.min_tile_score,
        allow_scale=True,
        allow_axial_scale=estimate_axial_scale,
        prior_scale=prior_scale,
        prior_axial_scale=prior_axial_scale,
        lateral_scale_trusted=lateral_scale_trusted,
        cache=cache,
    )
    quality = assess(stacks, measured)
    accepted, reason = gate.judge(quality)
    return AlignmentAssessment(quality, accepted, reason)


def assess_alignment(
    widefield: ArrayLike,
    confocal: ArrayLike,
    *,
    widefield_voxel_um: Sequence[float],
    confocal_voxel_um: Sequence[float],
    transform: PairTransform,
    working_pixel_um: float = 0.2,
    tiles_per_axis: int = 4,
    band: BandPass | None = None,
    gate: QualityGate | None = None,
) -> AlignmentAssessment:
    """Judge how well a given transform aligns a pair, without changing it.

    The same measurement and gate `register_pair` ends with: the tiles'
    residual shift field at ``transform`` and how well it is known. Use it to
    re-check a stored pair, or a transform that came from elsewhere.

    Parameters
    ----------
    widefield, confocal : array_like
        (z, y, x) stacks.
    widefield_voxel_um, confocal_voxel_um : sequence of float
        (dz, dy, dx) of each stack, um.
    transform : PairTransform
        Confocal-to-wide-field transform to judge.
    working_pixel_um : float
        Lateral pixel of the grid the measurement runs on.
    tiles_per_axis : int
        Tiles per lateral axis (their size: the field over this).
    band : BandPass, optional
        Band-pass applied before correlating.
    gate : QualityGate, optional
        Acceptance thresholds.

    Returns
    -------
    AlignmentAssessment
        Quality, verdict and reason.

    Raises
    ------
    RegistrationError
        Bad stacks, voxel sizes or transform.

    """
    if not isinstance(transform, PairTransform):
        raise RegistrationError(
            f"transform must be a PairTransform, got {type(transform).__name__}"
        )
    wf = check_stack(widefield, "widefield")
    cf = check_stack(confocal, "confocal")
    wf_voxel = check_voxel(widefield_voxel_um, "widefield_voxel_um")
    cf_voxel = check_voxel(confocal_voxel_um, "confocal_voxel_um")
    band = band or BandPass()
    stacks = prepare_stacks(
        wf,
        wf_voxel,
        cf,
        cf_voxel,
        transform,
        bin_factor=_bin_factor(cf_voxel, working_pixel_um),
        tiles_per_axis=tiles_per_axis,
        band=band,
    )
    return _judge(stacks, transform, gate or QualityGate(), estimate_axial_scale=True)


def _shift_refinement(shift_zyx_um: NDArray[np.float64]) -> PairTransform:
    """``q -> q - s``: corrects a measured ``confocal(p + s) ~ widefield(p)``."""
    return PairTransform.from_arrays(np.eye(2), -np.asarray(shift_zyx_um))


RUNAWAY_RATIO = 0.6
"""Successive growths of the total lateral scale shrinking by less than this
mean the measurement does not respond to its correction."""


def _scale_runs_away(history: list[float], error: float) -> bool:
    """Whether the total lateral scale keeps growing after corrections.

    A scale difference of the geometry is found again once corrected: the
    total converges (each round adds a fraction of the last round's change,
    as the tiles' slight pull towards zero shift wears off). A measurement
    that does not respond to its correction (a difference between the two
    microscopes' images, not the geometry) adds about as much every round.
    """
    if len(history) < 3:
        return False
    a, b, c = (abs(v) for v in history[-3:])
    same_sign = len({np.sign(v) for v in history[-3:]}) == 1
    first, second = b - a, c - b
    return bool(
        same_sign
        and first > error
        and second > RUNAWAY_RATIO * first
        and c - a > 1.5 * error
    )


def _unscaled(refinement: PairTransform) -> PairTransform:
    """The step that takes a refinement's lateral scale back to 1."""
    factor = 1.0 / refinement.scale
    return PairTransform.from_arrays(np.eye(2) * factor, [0.0, 0.0, 0.0])


def _bin_factor(
    confocal_voxel_um: tuple[float, float, float], working_um: float
) -> int:
    return max(1, round(working_um / max(confocal_voxel_um[1:])))


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
    refinements: int = 4,
    convergence_um: float = 0.01,
    band: BandPass | None = None,
    gate: QualityGate | None = None,
    estimate_axial_scale: bool = True,
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
    estimate_axial_scale : bool
        Whether an axial scale change may be measured. It is applied only
        where the structure's heights spread enough to measure it to
        ``1.5 %`` (systematic allowance included); otherwise the initial
        estimate's axial scale is kept and the reason says so.

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
    cf_coarse = masked_band_pass(bin_lateral(cf_work, coarse), None, coarse_voxel, band)
    moving, mask = resample_widefield(
        wf,
        wf_voxel,
        initial.then_before(refinement),
        cf.shape,
        cf_voxel,
        bin_factor=b * coarse,
    )
    wf_coarse = masked_band_pass(moving, mask, coarse_voxel, band)
    # zero-padded along z: a linear correlation within the search window
    padded = (
        scipy.fft.next_fast_len(shape[0] + int(np.ceil(axial_px)) + 1, real=False),
        *cf_coarse.shape[1:],
    )
    peak = correlation_peak(
        scipy.fft.rfftn(cf_coarse, s=padded, workers=FFT_WORKERS),
        scipy.fft.rfftn(wf_coarse, s=padded, workers=FFT_WORKERS),
        padded,
        max_shift_px=(axial_px, 3.0, 3.0),
        upsample=1,
    )
    refinement = refinement.then_before(
        _shift_refinement(peak.shift_px * np.asarray(coarse_voxel))
    )

    # 3. give the confocal the wide field's axial blur, place tiles on its
    # structure (correlate.registration.alignment)
    stacks = prepare_stacks(
        wf,
        wf_voxel,
        cf,
        cf_voxel,
        initial.then_before(refinement),
        bin_factor=b,
        tiles_per_axis=tiles_per_axis,
        band=band,
    )

    # 4. rounds of tiles for shift, rotation, scale and axial scale
    cache: dict[tuple[int, ...], TileSpectrum] = {}
    converged: AlignmentMeasurement | None = None
    scale_allowed = True
    scale_history: list[float] = []
    rounds = refinements
    round_index = 0
    while round_index < rounds:
        round_index += 1
        measured = measure_alignment(
            stacks,
            initial.then_before(refinement),
            min_tile_score=gate.min_tile_score,
            allow_scale=scale_allowed and round_index >= 2,
            allow_axial_scale=estimate_axial_scale and round_index >= 2,
            # in the field's units: a step applies 1 / (1 + a)
            prior_scale=1.0 / refinement.scale - 1.0,
            prior_axial_scale=1.0 / refinement.axial_scale - 1.0,
            lateral_scale_trusted=scale_allowed,
            cache=cache,
        )
        fit = measured.fit
        if fit is None:
            break
        if fit.scale_fitted:
            scale_history.append(fit.lateral_scale_total)
            if _scale_runs_away(scale_history, fit.lateral_scale_error):
                # a real scale difference is measured the same after it was
                # corrected; one that keeps growing is the images' own
                # difference (a dome seen through two axial responses), not
                # the geometry's: take it back and stop fitting it
                scale_allowed = False
                refinement = refinement.then_before(_unscaled(refinement))
                rounds += 2  # to settle the shift and rotation without it
                continue
        refinement = refinement.then_before(field_correction(fit))
        motion = largest_motion_um(measured.tiles, fit)
        if round_index >= 2 and motion < convergence_um:
            # what this round measured is what the gate would: its step
            # moved nothing by more than convergence_um
            converged = measured
            break

    # 5. the gate judges what is left at the final transform
    transform = initial.then_before(refinement)
    if converged is not None:
        quality = assess(stacks, converged)
        accepted, reason = gate.judge(quality)
    else:
        verdict = _judge(
            stacks,
            transform,
            gate,
            estimate_axial_scale=estimate_axial_scale,
            prior_scale=1.0 / refinement.scale - 1.0,
            prior_axial_scale=1.0 / refinement.axial_scale - 1.0,
            lateral_scale_trusted=scale_allowed,
            cache=cache,
        )
        quality, accepted, reason = verdict.quality, verdict.accepted, verdict.reason
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
