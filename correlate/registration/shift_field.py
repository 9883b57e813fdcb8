"""The shift field a pair transform predicts, fitted to tile shifts.

Between two stacks already close to aligned, the residual shift of the
confocal content at ``p = (z, y, x)`` is modelled as

``s_y = a y - c x + b_y``, ``s_x = c y + a x + b_x`` (a small similarity) and
``s_z = g z + b_z`` (an axial offset and an axial scale change).

Each tile's shift is weighted by how sharply its correlation peak falls along
each direction (the peak's curvature tensor) times its signal-to-noise ratio:
a tile whose structure runs along one direction (a stress fibre, an edge)
measures the shift across it and next to nothing along it. The fit is
repeated without the tiles that disagree with it (by Mahalanobis distance);
its covariance, scaled by the scatter of the tiles that agree, is the
registration's predicted error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from correlate.registration.tiles import peak_snr

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from correlate.registration.tiles import TileShifts

SCALE_SIGNIFICANCE = 3.0
"""A scale change is applied only beyond this many standard errors."""
_CHI2_OUTLIER = {1: 10.83, 2: 13.82, 3: 16.27}
"""Squared Mahalanobis distance beyond which a tile is an outlier (chi2 with
1-3 degrees of freedom, p = 0.001), in units of the robust variance."""
_CHI2_MEDIAN = {1: 0.455, 2: 1.386, 3: 2.366}
"""Medians of the chi-squared distributions with 1-3 degrees of freedom."""
MIN_AXIAL_LEVER_UM = 1.0
"""Least spread of signal heights (2 standard deviations) over which an axial
scale change is measured."""
MIN_SCALE_AGREEMENT = 0.75
"""Least fraction of usable lateral tiles that must agree for a lateral scale
change to be applied."""
MIN_SCALE_PLACES = 8
"""Fewest tile places a lateral scale change is measured from."""
AXIAL_SYSTEMATIC_UM = 0.02
"""Systematic error allowed in one tile's axial shift (um): what was left at
the true transform after the blur matching, on pairs from our simulator and
from the independent renderer (0.00-0.035 um)."""
PARAMETER_NAMES = (
    "lateral_scale",
    "rotation",
    "shift_y",
    "shift_x",
    "axial_scale",
    "shift_z",
)
"""What `ShiftField.parameters` hold, in order: ``(a, c, b_y, b_x, g, b_z)``."""
N_PARAMETERS = len(PARAMETER_NAMES)
_A, _C, _BY, _BX, _G, _BZ = range(N_PARAMETERS)


@dataclass(frozen=True)
class ShiftField:
    """Shift field fitted to tiles, with its uncertainty.

    Attributes
    ----------
    parameters : ndarray
        (6,) ``(a, c, b_y, b_x, g, b_z)`` (um and um/um).
    covariance : ndarray
        (6, 6) covariance of ``parameters``, from the free fit (the scale
        terms' uncertainty is kept even when they are held at 0).
    usable : ndarray of bool
        Tiles with enough structure to be used.
    inliers : ndarray of bool
        Usable tiles kept by the robust fit.
    scale_fitted : bool
        Whether the lateral scale term ``a`` was applied (else held at 0).
    axial_scale_fitted : bool
        Whether ``g`` was applied (else held at 0).
    axial_scale_error : float
        Standard error of ``g`` (inf when it cannot be measured: every tile
        at one height).
    lateral_residual_um, axial_residual_um : float
        RMS residual of the inliers along their best-measured directions.
    sigma_scale : float
        Square root of the fit's variance factor: how much the tiles scatter
        beyond what their peaks' curvatures predict.
    lateral_scale_measurable : bool
        Whether enough tile places were measured to fit a lateral scale.
    lateral_scale_trusted : bool
        False when an earlier round found the scale measurement not responding
        to its correction (then it also counts as not measurable).
    lateral_scale_total, lateral_scale_error : float
        The lateral scale change as a whole (earlier rounds' and this one's,
        in the field's units) and its standard error.
    axial_scale_measurable : bool
        Whether the axial tiles' signal heights spread enough to fit one.
    axial_lever_um : float
        That spread (twice the standard deviation of the heights).
    axial_pivot_um : float
        Mean signal height of the axial tiles: where ``b_z`` is best known.

    """

    parameters: NDArray[np.float64]
    covariance: NDArray[np.float64]
    usable: NDArray[np.bool_]
    inliers: NDArray[np.bool_]
    scale_fitted: bool
    axial_scale_fitted: bool
    axial_scale_error: float
    lateral_residual_um: float
    axial_residual_um: float
    sigma_scale: float
    lateral_scale_measurable: bool = True
    lateral_scale_trusted: bool = True
    lateral_scale_total: float = 0.0
    lateral_scale_error: float = float("inf")
    axial_scale_measurable: bool = True
    axial_lever_um: float = 0.0
    axial_pivot_um: float = 0.0

    @property
    def matrix(self) -> NDArray[np.float64]:
        """(2, 2) lateral part ``[[a, -c], [c, a]]`` in (y, x) order."""
        a, c = self.parameters[_A], self.parameters[_C]
        return np.array([[a, -c], [c, a]])

    @property
    def axial_gain(self) -> float:
        """``g``: the axial scale change."""
        return float(self.parameters[_G])

    @property
    def offset_zyx_um(self) -> NDArray[np.float64]:
        """``(b_z, b_y, b_x)`` at the stack's centre.

        ``b_z`` is fitted at `axial_pivot_um` and carried to z = 0 here.
        """
        p = self.parameters
        return np.array([p[_BZ] - p[_G] * self.axial_pivot_um, p[_BY], p[_BX]])

    def shift_at(self, points_zyx_um: NDArray[np.float64]) -> NDArray[np.float64]:
        """Shift the field predicts at (n, 3) points."""
        points = np.asarray(points_zyx_um, dtype=np.float64).reshape(-1, 3)
        shifts: NDArray[np.float64] = (
            _design(points, self.axial_pivot_um) @ self.parameters
        )
        return shifts

    def lateral_error_um(
        self,
        points_yx_um: NDArray[np.float64],
        covariance: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """1-sigma lateral error (distance) of the field at (n, 2) points.

        ``covariance`` replaces the fit's own (e.g. with priors joined).
        """
        p = np.asarray(points_yx_um, dtype=np.float64).reshape(-1, 2)
        design = _design(np.column_stack([np.zeros(len(p)), p]), self.axial_pivot_um)
        cov = self.covariance if covariance is None else covariance
        var = np.einsum("nij,jk,nik->ni", design, cov, design)
        error: NDArray[np.float64] = np.sqrt(np.maximum(var[:, 1] + var[:, 2], 0.0))
        return error

    def axial_error_um(
        self,
        z_um: NDArray[np.float64],
        covariance: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """1-sigma axial error of the field at heights ``z_um``.

        ``covariance`` replaces the fit's own (e.g. with priors joined).
        """
        z = np.asarray(z_um, dtype=np.float64).ravel()
        design = _design(
            np.column_stack([z, np.zeros((len(z), 2))]), self.axial_pivot_um
        )
        cov = self.covariance if covariance is None else covariance
        var = np.einsum("nij,jk,nik->ni", design, cov, design)
        error: NDArray[np.float64] = np.sqrt(np.maximum(var[:, 0], 0.0))
        return error

    def with_priors(
        self,
        lateral_scale_sigma: float,
        axial_scale_sigma: float,
        *,
        calibration: float = 1.0,
    ) -> NDArray[np.float64]:
        """The covariance once Gaussian priors on the two scales are joined.

        A scale the tiles measure poorly (or not at all) is then as uncertain
        as the prior says, and one they measure well is barely changed.

        Parameters
        ----------
        lateral_scale_sigma, axial_scale_sigma : float
            Prior standard deviations of ``a`` and ``g``.
        calibration : float
            Factor on the fit's standard errors before the priors join.

        Returns
        -------
        ndarray
            (6, 6) posterior covariance.

        """
        information = np.linalg.pinv(calibration**2 * self.covariance)
        for index, sigma, measurable in (
            (_A, lateral_scale_sigma, self.lateral_scale_measurable),
            (_G, axial_scale_sigma, self.axial_scale_measurable),
        ):
            if not measurable:  # what the fit says of it is not a measurement
                information[index, :] = 0.0
                information[:, index] = 0.0
            information[index, index] += 1.0 / sigma**2
        posterior: NDArray[np.float64] = np.linalg.pinv(information)
        return posterior


def _design(
    points_zyx: NDArray[np.float64], axial_pivot_um: float = 0.0
) -> NDArray[np.float64]:
    """(n, 3, 6): each point's (z, y, x) shift as a function of the parameters.

    The axial scale term is taken about ``axial_pivot_um``, where the tiles'
    signal is: ``b_z`` is then the shift there, known best.
    """
    n = len(points_zyx)
    z, y, x = points_zyx[:, 0], points_zyx[:, 1], points_zyx[:, 2]
    design = np.zeros((n, 3, N_PARAMETERS))
    design[:, 0, _G] = z - axial_pivot_um
    design[:, 0, _BZ] = 1.0
    design[:, 1, _A] = y
    design[:, 1, _C] = -x
    design[:, 1, _BY] = 1.0
    design[:, 2, _A] = x
    design[:, 2, _C] = y
    design[:, 2, _BX] = 1.0
    return design


def tile_weights(tiles: TileShifts) -> NDArray[np.float64]:
    """(n, 3, 3) information matrix of each tile's shift (relative units).

    The peak's curvature tensor times the tile's signal-to-noise ratio
    (``r^2 / (1 - r^2)`` for a normalised correlation ``r``).
    """
    snr = peak_snr(tiles.scores)
    curvature = tiles.curvature_per_um2
    # a saddle or a negative curvature carries no information along it
    values, vectors = np.linalg.eigh(
        0.5 * (curvature + np.transpose(curvature, (0, 2, 1)))
    )
    values = np.maximum(values, 0.0)
    positive = np.einsum("nij,nj,nkj->nik", vectors, values, vectors)
    used = tiles.used_components.astype(np.float64)
    weights: NDArray[np.float64] = (
        positive * snr[:, None, None] * used[:, :, None] * used[:, None, :]
    )
    return weights


def _solve(
    design: NDArray[np.float64],
    shifts: NDArray[np.float64],
    weights: NDArray[np.float64],
    columns: list[int],
    fixed: dict[int, float] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Block-weighted least squares: parameters, unscaled covariance, misfits.

    Parameters not in ``columns`` are held at their value in ``fixed`` (0 by
    default).
    """
    params = np.zeros(N_PARAMETERS)
    for column, value in (fixed or {}).items():
        params[column] = value
    held = shifts - design @ params
    sub = design[:, :, columns]
    normal = np.einsum("nia,nij,njb->ab", sub, weights, sub)
    rhs = np.einsum("nia,nij,nj->a", sub, weights, held)
    inverse = np.linalg.pinv(normal)
    params[columns] = inverse @ rhs
    covariance = np.zeros((N_PARAMETERS, N_PARAMETERS))
    covariance[np.ix_(columns, columns)] = inverse
    misfit = shifts - design @ params
    return params, covariance, misfit


def _agreeing(
    misfit: NDArray[np.float64],
    weights: NDArray[np.float64],
    used: NDArray[np.bool_],
    inliers: NDArray[np.bool_],
    floor_um: float,
) -> NDArray[np.bool_]:
    """Tiles whose misfit is within the spread of their kind (same components).

    Each kind of tile (lateral shifts, axial shifts, all three) is judged
    against the robust spread of the current inliers of its kind, in units of
    the chi-squared distribution with as many degrees of freedom.
    """
    d2 = _mahalanobis2(misfit, weights)
    distance = np.sqrt(np.sum((misfit * used) ** 2, axis=1))
    agree = distance <= floor_um
    kinds, kind_of = np.unique(used, axis=0, return_inverse=True)
    kind_of = kind_of.ravel()
    for k, kind in enumerate(kinds):
        members = kind_of == k
        dof = int(kind.sum())
        reference = d2[members & inliers]
        if reference.size == 0:
            continue
        variance = float(np.median(reference)) / _CHI2_MEDIAN[dof]
        agree |= members & (d2 <= _CHI2_OUTLIER[dof] * variance)
    result: NDArray[np.bool_] = np.asarray(agree, dtype=bool)
    return result


def _mahalanobis2(
    misfit: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    d2: NDArray[np.float64] = np.einsum("ni,nij,nj->n", misfit, weights, misfit)
    return d2


def _directional_rms(
    misfit: NDArray[np.float64], weights: NDArray[np.float64], axes: slice
) -> float:
    """Information-weighted RMS of the misfit's components along ``axes``."""
    w = weights[:, axes, axes]
    m = misfit[:, axes]
    total = float(np.einsum("nii->", w))
    if total <= 0:
        return float("inf")
    return float(np.sqrt(np.einsum("ni,nij,nj->", m, w, m) / total))


def _height_lever_um(tiles: TileShifts, idx: NDArray[np.intp]) -> float:
    """Spread of the axial tiles' signal heights: twice their standard deviation."""
    heights = tiles.centres_zyx_um[idx[tiles.used_components[idx, 0]], 0]
    return float(2.0 * heights.std()) if heights.size > 1 else 0.0


def _cluster_covariance(
    design: NDArray[np.float64],
    weights: NDArray[np.float64],
    misfit: NDArray[np.float64],
    unscaled: NDArray[np.float64],
    centres_yx: NDArray[np.float64],
    dof: int,
    n_params: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sandwich covariance with the tiles of one lateral place as one cluster.

    A tile's lateral and axial measurements look at the same structure, so
    their errors are not independent; neither are the peak curvatures exact
    weights. The cluster-robust ("sandwich") estimator takes the scatter the
    fit actually left, place by place, and is never smaller than the model
    covariance scaled by that scatter.

    Returns the covariance with the model scaled by each kind of component's
    own scatter (lateral shifts on the lateral parameters, axial on the
    axial: the predicted error), and with one scatter for all (larger when
    the axial shifts scatter more: what a scale change must exceed to be
    applied).
    """
    _, cluster = np.unique(np.round(centres_yx, 6), axis=0, return_inverse=True)
    score = np.einsum("nia,nij,nj->na", design, weights, misfit)
    n_clusters = int(cluster.max()) + 1
    summed = np.zeros((n_clusters, design.shape[2]))
    np.add.at(summed, cluster.ravel(), score)
    meat = summed.T @ summed
    correction = n_clusters / max(n_clusters - n_params, 1)
    sandwich = correction * (unscaled @ meat @ unscaled)
    # the model covariance, scaled by the scatter of each kind of component
    # (lateral shifts, axial shifts) on its own parameters: a noisy axial
    # measurement says nothing of the lateral one's quality
    lateral_w = weights.copy()
    lateral_w[:, 0, :] = 0.0
    lateral_w[:, :, 0] = 0.0
    axial_w = weights - lateral_w
    used_lateral = int(np.count_nonzero(np.einsum("nii->n", lateral_w[:, 1:, 1:])))
    used_axial = int(np.count_nonzero(axial_w[:, 0, 0]))
    var_lateral = float(np.sum(_mahalanobis2(misfit, lateral_w))) / max(
        2 * used_lateral - 4, 1
    )
    var_axial = float(np.sum(_mahalanobis2(misfit, axial_w))) / max(used_axial - 2, 1)
    factor = np.sqrt(np.array([var_lateral] * 4 + [var_axial] * 2)[: design.shape[2]])
    per_kind = _at_least(sandwich, unscaled * np.outer(factor, factor))
    variance = float(np.sum(_mahalanobis2(misfit, weights))) / max(dof, 1)
    joint = _at_least(sandwich, variance * unscaled)
    return per_kind, joint


def _at_least(
    sandwich: NDArray[np.float64], model: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The sandwich covariance, its diagonal raised to the model's where larger."""
    scale = np.sqrt(
        np.maximum(np.diag(model), 0.0) / np.maximum(np.diag(sandwich), 1e-300)
    )
    scale = np.maximum(scale, 1.0)
    covariance: NDArray[np.float64] = sandwich * np.outer(scale, scale)
    return covariance


def fit_shift_field(
    tiles: TileShifts,
    *,
    min_tile_score: float,
    min_tiles: int = 4,
    allow_scale: bool = True,
    allow_axial_scale: bool = True,
    floor_um: float = 0.02,
    max_axial_scale_error: float = 0.015,
    prior_scale: float = 0.0,
    prior_axial_scale: float = 0.0,
    lateral_scale_trusted: bool = True,
) -> ShiftField | None:
    """Robust, curvature-weighted fit of the shift field through tile shifts.

    Parameters
    ----------
    tiles : TileShifts
        Measured tiles.
    min_tile_score : float
        Tiles with a lower correlation peak (empty background) are not used;
        nor are peaks on the edge of the search window.
    min_tiles : int
        Fewer agreeing tiles than this: no fit.
    allow_scale, allow_axial_scale : bool
        Whether a significant lateral / axial scale change may be applied.
    floor_um : float
        A tile never counts as an outlier for disagreeing by less than this.
    max_axial_scale_error : float
        The axial scale is applied when its standard error (systematic
        allowance included) is at most this; otherwise it is held at 1: the
        signal's two halves are too close in z to measure it.
    prior_scale, prior_axial_scale : float
        Lateral and axial scale changes already applied by earlier rounds,
        in the field's units (a refinement of scale ``s`` is ``1 / s - 1``):
        a scale that is not significant as a whole is taken back to 1.
    lateral_scale_trusted : bool
        False when an earlier round found the lateral scale measurement not
        responding to its correction: it is then held and counted as not
        measured.

    Returns
    -------
    ShiftField or None
        The fit, or None if too few tiles agree.

    """
    n = len(tiles)
    if n < min_tiles:
        return None
    usable = (tiles.scores >= min_tile_score) & ~tiles.at_window_edge
    weights = tile_weights(tiles)
    axial_tiles = np.flatnonzero(usable & tiles.used_components[:, 0])
    pivot = (
        float(tiles.centres_zyx_um[axial_tiles, 0].mean()) if axial_tiles.size else 0.0
    )
    design = _design(tiles.centres_zyx_um, pivot)
    shifts = tiles.shifts_zyx_um
    offsets_only = [_C, _BY, _BX, _BZ]
    used = tiles.used_components
    inliers = usable.copy()
    for _ in range(8):
        idx = np.flatnonzero(inliers)
        if idx.size < min_tiles:
            return None
        params, _, _ = _solve(design[idx], shifts[idx], weights[idx], offsets_only)
        keep = usable & _agreeing(
            shifts - design @ params, weights, used, inliers, floor_um
        )
        if np.array_equal(keep, inliers):
            break
        inliers = keep
    idx = np.flatnonzero(inliers)
    if idx.size < min_tiles:
        return None
    d, s, w = design[idx], shifts[idx], weights[idx]
    axial_idx = idx[tiles.used_components[idx, 0]]
    axial_measurable = (
        axial_idx.size > 2 and _height_lever_um(tiles, axial_idx) >= MIN_AXIAL_LEVER_UM
    )
    free_columns = [_A, _C, _BY, _BX] + ([_G] if axial_measurable else []) + [_BZ]
    free, unscaled, misfit = _solve(d, s, w, free_columns)
    dof = int(used[idx].sum()) - len(free_columns)
    variance = float(np.sum(_mahalanobis2(misfit, w))) / max(dof, 1)
    covariance, decisive = _cluster_covariance(
        d, w, misfit, unscaled, tiles.centres_yx_um[idx], dof, len(free_columns)
    )
    error = np.sqrt(np.maximum(np.diag(decisive), 0.0))
    columns = [_C, _BY, _BX, _BZ]
    # a scale is judged as a whole (what earlier rounds applied plus what is
    # left), so one that was applied on weak evidence can be taken back
    places = len(np.unique(np.round(tiles.centres_yx_um[idx], 6), axis=0))
    if not lateral_scale_trusted:
        places = 0
    lateral_used = usable & tiles.used_components[:, 1]
    agreeing = float(np.sum(inliers & lateral_used)) / max(int(lateral_used.sum()), 1)
    # a scale that only some tiles show is the images' doing (a cell's
    # dome seen through two axial responses), not the geometry's
    scale_error = float(np.sqrt(max(covariance[_A, _A], 0.0)))
    scale_fitted = (
        allow_scale
        and places >= MIN_SCALE_PLACES
        and agreeing >= MIN_SCALE_AGREEMENT
        and abs(prior_scale + free[_A]) > SCALE_SIGNIFICANCE * scale_error
    )
    # tiles' axial shifts carry a systematic part their scatter does not
    # show: an allowance for it, over the spread of the tiles' heights, joins
    # the axial scale's error
    if axial_measurable:
        lever_um = _height_lever_um(tiles, idx)
        systematic = (
            AXIAL_SYSTEMATIC_UM * np.sqrt(2.0) / lever_um if lever_um > 0 else np.inf
        )
        covariance[_G, _G] += systematic**2
        error[_G] = float(np.sqrt(error[_G] ** 2 + systematic**2))
    axial_scale_fitted = (
        allow_axial_scale and axial_measurable and error[_G] <= max_axial_scale_error
    )
    fixed = {}
    if scale_fitted:
        columns.append(_A)
    else:
        fixed[_A] = -prior_scale
    if axial_scale_fitted:
        columns.append(_G)
    elif axial_measurable or not allow_axial_scale:
        fixed[_G] = -prior_axial_scale
    params, _, misfit = _solve(d, s, w, sorted(columns), fixed)
    return ShiftField(
        parameters=params,
        covariance=covariance,
        usable=usable,
        inliers=inliers,
        scale_fitted=bool(scale_fitted),
        axial_scale_fitted=bool(axial_scale_fitted),
        axial_scale_error=float(error[_G]) if axial_measurable else float("inf"),
        lateral_residual_um=_directional_rms(misfit, w, slice(1, 3)),
        axial_residual_um=_directional_rms(misfit, w, slice(0, 1)),
        sigma_scale=float(np.sqrt(variance)),
        lateral_scale_measurable=places >= MIN_SCALE_PLACES,
        lateral_scale_trusted=lateral_scale_trusted,
        lateral_scale_total=float(prior_scale + free[_A]),
        lateral_scale_error=scale_error,
        axial_scale_measurable=bool(axial_measurable),
        axial_lever_um=_height_lever_um(tiles, idx),
        axial_pivot_um=pivot,
    )
