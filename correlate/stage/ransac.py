"""Outlier rejection for stage-to-stage fits: RANSAC and a leave-one-out test.

:func:`find_consensus` runs RANSAC over minimal subsets of 3 marks. Each subset
gives an exact affine hypothesis; a hypothesis whose linear part is further from
a similarity than real stages can be (:func:`~correlate.stage.linear_fits.distortion`
above ``max_distortion``) is discarded, which is what lets 4 marks expose a
false detection: with 4 marks any 3 of them fit an affine exactly, but a
hypothesis built on a misplaced mark is distorted by about
``offset / mark distance``. Marks within ``threshold_um`` of a hypothesis are
its inliers; the largest inlier set wins, ties going to the set whose refit is
consistent with the expected localisation error, then to the one closest to a
similarity. The winner's inliers are refitted and re-thresholded until stable.

:func:`leave_one_out` then catches a single misplaced mark below the threshold.
When the fit of all marks is inconsistent with the expected localisation error
(chi-square at ``ALPHA``), each mark is predicted from a fit of the others and
its externally studentised residual is tested (F-test, the noise taken from the
other marks' residuals pooled with the prior, see
:func:`~correlate.stage.tre.pooled_sigma`). A mark is rejected only if it is the one
significant mark; if several are (with 4 marks an affine cannot tell which one
is off) none is rejected.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import chi2
from scipy.stats import f as f_dist

from correlate.stage.linear_fits import LateralFit, design_rows, distortion, fit_affine
from correlate.stage.linear_fits import spread_ratio as _spread_ratio
from correlate.stage.tre import PRIOR_DOF, pooled_sigma

__all__ = ["Consensus", "LeaveOneOut", "find_consensus", "leave_one_out"]

#: Fit function: matched scope-A and scope-B positions (n, 2) in, fit out.
FitFunction = Callable[[NDArray[np.float64], NDArray[np.float64]], LateralFit]

#: Most minimal subsets tried; beyond that, random subsets.
MAX_HYPOTHESES = 2000
#: Significance level of the consistency and leave-one-out tests.
ALPHA = 1e-3


@dataclass(frozen=True)
class Consensus:
    """Result of :func:`find_consensus`.

    Attributes
    ----------
    inliers : tuple of int
        Indices of the consensus marks (sorted).
    distortion : float
        :func:`~correlate.stage.linear_fits.distortion` of the winning set's refit.
    alternatives : tuple of (tuple of int, float)
        Other inlier sets as large as the winner's and as consistent, with
        their distortion: equally supported explanations (the misplaced mark
        is then ambiguous; the winner is the most plausible of them).

    """

    inliers: tuple[int, ...]
    distortion: float
    alternatives: tuple[tuple[tuple[int, ...], float], ...]


@dataclass(frozen=True)
class LeaveOneOut:
    """Result of :func:`leave_one_out`.

    Attributes
    ----------
    rejected : int or None
        Index of the rejected mark, or None.
    candidates : tuple of int
        Marks whose studentised deleted residual is significant; more than one
        means the misplaced mark cannot be told apart.
    consistent : bool
        Whether the fit of all marks is consistent with the localisation error.

    """

    rejected: int | None
    candidates: tuple[int, ...]
    consistent: bool


def _subsets(n: int, rng: np.random.Generator | None) -> Sequence[tuple[int, int, int]]:
    if math.comb(n, 3) <= MAX_HYPOTHESES:
        return list(itertools.combinations(range(n), 3))
    gen = rng if rng is not None else np.random.default_rng()
    picks: set[tuple[int, int, int]] = set()
    for _ in range(MAX_HYPOTHESES):
        i, j, k = sorted(int(i) for i in gen.choice(n, 3, replace=False))
        picks.add((i, j, k))
    return sorted(picks)


def find_consensus(
    xy_a_um: NDArray[np.float64],
    xy_b_um: NDArray[np.float64],
    refit: FitFunction,
    *,
    threshold_um: float,
    max_distortion: float,
    sigma_um: float,
    min_spread: float,
    rng: np.random.Generator | None,
) -> Consensus | None:
    """RANSAC over 3-mark affine hypotheses.

    Parameters
    ----------
    xy_a_um, xy_b_um : ndarray, shape (n, 2)
        Matched lateral positions, ``n >= 3``.
    refit : callable
        Fit used to rank and refine consensus sets (the requested model).
    threshold_um : float
        A mark farther than this from a hypothesis is an outlier to it.
    max_distortion : float
        Hypotheses with a larger :func:`~correlate.stage.linear_fits.distortion` are
        implausible and discarded.
    sigma_um : float
        Expected localisation error per coordinate: consensus sets whose refit
        residuals exceed it significantly rank below consistent ones.
    min_spread : float
        Subsets (and consensus sets) with a smaller
        :func:`~correlate.stage.linear_fits.spread_ratio` are degenerate and skipped.
    rng : numpy Generator or None
        Used only when there are more subsets than :data:`MAX_HYPOTHESES`.

    Returns
    -------
    Consensus or None
        None when no subset gives a plausible hypothesis.

    Notes
    -----
    Among the distinct inlier sets of plausible hypotheses, the largest wins;
    ties go to the set whose refit is consistent with ``sigma_um`` (or least
    inconsistent), then to the refit closest to a similarity (least distortion).

    """
    sets: set[tuple[int, ...]] = set()
    for subset in _subsets(len(xy_a_um), rng):
        idx = list(subset)
        if _spread_ratio(xy_a_um[idx]) < min_spread:
            continue
        hypothesis = fit_affine(xy_a_um[idx], xy_b_um[idx])
        if not distortion(hypothesis.matrix) <= max_distortion:
            continue
        miss = np.linalg.norm(xy_b_um - hypothesis.predict(xy_a_um), axis=1)
        inliers = tuple(int(i) for i in np.flatnonzero(miss < threshold_um))
        if len(inliers) >= 3 and _spread_ratio(xy_a_um[list(inliers)]) >= min_spread:
            sets.add(inliers)
    if not sets:
        return None
    top = max(len(s) for s in sets)
    ranked = sorted(
        (*_rank(xy_a_um, xy_b_um, s, refit, sigma_um), s) for s in sets if len(s) == top
    )
    excess, winner_distortion, winner = ranked[0]
    inliers = _refine(xy_a_um, xy_b_um, winner, refit, threshold_um, min_spread)
    return Consensus(
        inliers=inliers,
        distortion=winner_distortion,
        alternatives=tuple((s, e) for x, e, s in ranked[1:] if x == excess == 0),
    )


def _rank(
    xy_a_um: NDArray[np.float64],
    xy_b_um: NDArray[np.float64],
    inliers: tuple[int, ...],
    refit: FitFunction,
    sigma_um: float,
) -> tuple[float, float]:
    """Inconsistency (0 if consistent) and distortion of a refit inlier set."""
    idx = list(inliers)
    fit = refit(xy_a_um[idx], xy_b_um[idx])
    excess = 0.0
    if fit.dof > 0:
        excess = max(0.0, fit.rss_um2 / sigma_um**2 - chi2.ppf(1 - ALPHA, fit.dof))
    return excess, distortion(fit.matrix)


def _refine(
    xy_a_um: NDArray[np.float64],
    xy_b_um: NDArray[np.float64],
    inliers: tuple[int, ...],
    refit: FitFunction,
    threshold_um: float,
    min_spread: float,
) -> tuple[int, ...]:
    """Refit on the inliers and re-threshold all marks until the set is stable."""
    seen = {inliers}
    for _ in range(10):
        idx = list(inliers)
        fit = refit(xy_a_um[idx], xy_b_um[idx])
        miss = np.linalg.norm(xy_b_um - fit.predict(xy_a_um), axis=1)
        new = tuple(int(i) for i in np.flatnonzero(miss < threshold_um))
        if (
            new in seen
            or len(new) < 3
            or _spread_ratio(xy_a_um[list(new)]) < min_spread
        ):
            break
        seen.add(new)
        inliers = new
    return inliers


def leave_one_out(
    xy_a_um: NDArray[np.float64],
    xy_b_um: NDArray[np.float64],
    fit: FitFunction,
    *,
    sigma_um: float,
    min_spread: float,
) -> LeaveOneOut:
    """Test whether exactly one mark is inconsistent with the others.

    Parameters
    ----------
    xy_a_um, xy_b_um : ndarray, shape (n, 2)
        Matched lateral positions of the current inliers.
    fit : callable
        The model to test with.
    sigma_um : float
        Expected localisation error per coordinate: the consistency test's
        noise level and the prior of the studentised residuals' noise.
    min_spread : float
        Exclusions that leave a degenerate layout are not tried.

    Returns
    -------
    LeaveOneOut

    """
    n = len(xy_a_um)
    var = sigma_um**2
    full = fit(xy_a_um, xy_b_um)
    if full.dof == 0:
        return LeaveOneOut(None, (), True)
    consistent = full.rss_um2 / var <= chi2.ppf(1 - ALPHA, full.dof)
    if consistent:
        return LeaveOneOut(None, (), True)
    candidates = []
    for k in range(n):
        keep = [i for i in range(n) if i != k]
        if _spread_ratio(xy_a_um[keep]) < min_spread:
            continue
        sub = fit(xy_a_um[keep], xy_b_um[keep])
        # Externally studentised: the noise comes from the other marks (pooled
        # with the prior), so a mark is judged against the scatter of the rest.
        sub_var = pooled_sigma(sub.rss_um2, sub.dof, prior_sigma_um=sigma_um) ** 2
        miss = xy_b_um[k] - sub.predict(xy_a_um[k : k + 1])[0]
        rows = design_rows(sub.design, xy_a_um[k : k + 1] - sub.centre_um)[0]
        cov = sub_var * (np.eye(2) + rows @ sub.cofactor @ rows.T)
        stat = float(miss @ np.linalg.solve(cov, miss)) / 2
        if stat > f_dist.ppf(1 - ALPHA, 2, sub.dof + PRIOR_DOF):
            candidates.append(k)
    rejected = candidates[0] if len(candidates) == 1 else None
    return LeaveOneOut(rejected, tuple(candidates), False)
