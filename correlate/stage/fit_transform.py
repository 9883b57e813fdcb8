"""Stage-to-stage transform between two microscopes, with predicted errors.

The same fiducial marks are found on scope A and scope B, each giving a stage
position ``(x, y, z)`` in um under an identity. :func:`fit_stage_transform`
matches them by identity, rejects misdetections, fits the lateral map and a z
plane, and returns a :class:`~correlate.stage.transform.StageTransform` that
maps targets recorded in A's stage coordinates to B's and predicts the error at
each target.

Lateral model (``xy_B = matrix @ [x_A, y_A, 1]``)
    ``"similarity"``: rotation (any angle: the fit is linear in
    ``s cos(theta)``, ``s sin(theta)``, no small-angle assumption), one scale,
    translation; a mirrored stage axis is detected and fitted too.
    ``"affine"``: also per-axis stage scale errors and axis skew.
    ``"auto"`` keeps the similarity unless the data show the affine terms: the
    affine is chosen when ``(RSS_sim - RSS_aff) / sigma^2`` exceeds 5.99, the
    95 % point of chi-square with 2 dof, where ``sigma`` is the larger of
    ``fiducial_sigma_um`` and the affine's own residual estimate. The expected
    localisation error, not the affine residuals alone, sets the scale because
    with 4 marks the affine keeps only 2 residual dof (an F-test would need a
    19-fold improvement, and AICc with 4 marks never picks the affine) and with
    3 marks none; taking the larger of the two makes noisy marks keep the
    simpler model. Stage scale errors of 0.5 % per axis are detected from about
    0.05 % anisotropy over a 2.6 mm layout, below which the similarity's bias
    (about ``anisotropy * distance``) stays under the noise.

Axial model
    ``z_B = z_A + a + b x_B + c y_B``: focus offset plus the tilt difference of
    the two mountings, fitted by least squares on the inliers' focus heights
    (exact, with residuals that cannot be estimated, for 3 marks).

Outliers
    RANSAC over 3-mark subsets with ``ransac_threshold_um``, then a
    leave-one-out test for a single misplaced mark below the threshold (see
    :mod:`correlate.stage.ransac`). Rejected marks, marks found on one scope only and
    ambiguous cases are reported in the result.

Predicted errors
    Exact linear error propagation of the least-squares fits (see
    :mod:`correlate.stage.tre`), with the localisation error estimated from the
    residuals, dof-corrected, and pooled with the prior ``fiducial_sigma_um``
    / ``focus_sigma_um`` (worth 4 residual dof), so that an exact or nearly
    exact fit falls back to the prior.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

from correlate.stage import ransac
from correlate.stage.linear_fits import (
    LateralFit,
    PlaneFit,
    distortion,
    fit_affine,
    fit_plane,
    fit_similarity,
    spread_ratio,
)
from correlate.stage.transform import StageTransform, TransformError
from correlate.stage.tre import pooled_sigma

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "MODELS",
    "fit_stage_transform",
]

#: Accepted values of ``model``.
MODELS = ("auto", "similarity", "affine")
#: Marks spread across their main direction less than this fraction of their
#: spread along it are degenerate (collinear) for a lateral fit.
MIN_SPREAD_RATIO = 0.02
#: Significance level at which ``"auto"`` switches to the affine.
AUTO_ALPHA = 0.05
#: Significance level of the residual consistency notes.
NOTE_ALPHA = 1e-3

_Positions = NDArray[np.float64]


def fit_stage_transform(
    marks_a: Mapping[str, ArrayLike],
    marks_b: Mapping[str, ArrayLike],
    *,
    model: str = "auto",
    ransac_threshold_um: float = 5.0,
    min_marks: int = 3,
    rng: int | None = 0,
    fiducial_sigma_um: float = 0.3,
    focus_sigma_um: float = 0.3,
    max_distortion: float = 0.02,
) -> StageTransform:
    """Fit the map from scope-A to scope-B stage coordinates on fiducial marks.

    Parameters
    ----------
    marks_a, marks_b : mapping of str to array_like, shape (3,)
        Stage position ``(x, y, z)`` in um of each mark on scope A and B, by
        identity. Marks present on one scope only are reported as unmatched.
    model : {"auto", "similarity", "affine"}
        Lateral model; ``"auto"`` chooses from the data (module docstring).
    ransac_threshold_um : float
        A mark farther than this from where the other marks place it is an
        outlier.
    min_marks : int
        Fewest marks to fit on (at least 3).
    rng : int or None
        Seed for RANSAC's random subsets, used only with more than
        :data:`correlate.stage.ransac.MAX_HYPOTHESES` subsets (about 23 marks).
    fiducial_sigma_um : float
        Expected lateral localisation error per coordinate (both scopes
        together): the outlier tests' noise level and the prior of the
        predicted errors.
    focus_sigma_um : float
        The same for the difference of the marks' focus heights.
    max_distortion : float
        Largest plausible relative difference of the principal scales of the
        lateral map (per-axis stage scale errors and axis skew of both scopes
        together; see :func:`~correlate.stage.linear_fits.distortion`). RANSAC
        hypotheses beyond it are discarded, and among equally supported inlier
        sets the one closest to a similarity wins.

    Returns
    -------
    StageTransform

    Raises
    ------
    TransformError
        Too few common (or consistent) marks, a collinear layout, non-finite or
        malformed positions, or an unknown option value.

    """
    _check_options(
        model,
        ransac_threshold_um=ransac_threshold_um,
        min_marks=min_marks,
        fiducial_sigma_um=fiducial_sigma_um,
        focus_sigma_um=focus_sigma_um,
        max_distortion=max_distortion,
    )
    ids, pos_a, pos_b, unmatched = _match(marks_a, marks_b, min_marks)
    xy_a, xy_b = pos_a[:, :2], pos_b[:, :2]
    _check_layout(ids, xy_a)

    consensus = ransac.find_consensus(
        xy_a,
        xy_b,
        fit_similarity if model == "similarity" else fit_affine,
        threshold_um=ransac_threshold_um,
        max_distortion=max_distortion,
        sigma_um=fiducial_sigma_um,
        min_spread=MIN_SPREAD_RATIO,
        rng=np.random.default_rng(rng),
    )
    if consensus is None:
        raise TransformError(
            f"no 3 of the {len(ids)} common marks ({', '.join(ids)}) fit a "
            f"stage-to-stage transform with distortion <= {max_distortion:.1%}: "
            "marks are misdetected or their identities mixed up on one scope; "
            "check them, or raise max_distortion if the stages are that far "
            "out of calibration"
        )
    keep = list(consensus.inliers)
    how = {i: "RANSAC" for i in range(len(ids)) if i not in keep}
    notes = _ambiguity_notes(ids, consensus)
    _check_enough_agree(ids, keep, min_marks, ransac_threshold_um)

    while len(keep) > min_marks:
        loo = _leave_one_out(model, xy_a[keep], xy_b[keep], fiducial_sigma_um)
        if loo.rejected is None:
            if len(loo.candidates) > 1:
                names = ", ".join(ids[keep[k]] for k in loo.candidates)
                notes.append(
                    "residuals exceed the expected localisation error and each "
                    f"of {names} stands out from a fit of the others: the "
                    "misplaced mark cannot be identified, none was rejected"
                )
            break
        how[keep.pop(loo.rejected)] = "leave-one-out"
    _check_layout([ids[i] for i in keep], xy_a[keep])

    fit, model_note = _select_model(model, xy_a[keep], xy_b[keep], fiducial_sigma_um)
    plane = fit_plane(xy_b[keep], pos_b[keep, 2] - pos_a[keep, 2])
    notes = [model_note, *notes]
    miss = np.linalg.norm(xy_b - fit.predict(xy_a), axis=1)
    for i, method in sorted(how.items()):
        notes.append(
            f"{ids[i]} rejected ({method}): {miss[i]:.2f} um from where the "
            "inliers place it"
        )
    notes += _residual_notes(fit, plane, fiducial_sigma_um, focus_sigma_um)
    n = len(keep)
    return StageTransform(
        model="affine" if fit.design == "affine" else "similarity",
        matrix=fit.matrix,
        z_plane=plane.coefficients,
        residual_rms_um=math.sqrt(fit.rss_um2 / n),
        z_residual_rms_um=math.sqrt(plane.rss_um2 / n),
        inliers=tuple(ids[i] for i in keep),
        rejected=tuple(ids[i] for i in sorted(how)),
        fiducial_sigma_um=pooled_sigma(
            fit.rss_um2, fit.dof, prior_sigma_um=fiducial_sigma_um
        ),
        focus_sigma_um=pooled_sigma(
            plane.rss_um2, plane.dof, prior_sigma_um=focus_sigma_um
        ),
        unmatched=unmatched,
        residual_dof=fit.dof,
        z_residual_dof=plane.dof,
        centre_a_um=fit.centre_um,
        cofactor=fit.cofactor,
        z_centre_b_um=plane.centre_um,
        z_cofactor=plane.cofactor,
        notes=tuple(notes),
    )


def _check_options(
    model: str,
    *,
    ransac_threshold_um: float,
    min_marks: int,
    fiducial_sigma_um: float,
    focus_sigma_um: float,
    max_distortion: float,
) -> None:
    if model not in MODELS:
        raise TransformError(f"model must be one of {MODELS}, got {model!r}")
    if isinstance(min_marks, bool) or not isinstance(min_marks, int) or min_marks < 3:
        raise TransformError(f"min_marks must be an integer >= 3, got {min_marks!r}")
    positive = {
        "ransac_threshold_um": ransac_threshold_um,
        "fiducial_sigma_um": fiducial_sigma_um,
        "focus_sigma_um": focus_sigma_um,
        "max_distortion": max_distortion,
    }
    for name, value in positive.items():
        if not (math.isfinite(value) and value > 0):
            raise TransformError(f"{name} must be a positive number, got {value!r}")


def _position(mark: str, xyz: ArrayLike, scope: str) -> NDArray[np.float64]:
    try:
        pos = np.asarray(xyz, dtype=np.float64)
    except (TypeError, ValueError):
        raise TransformError(
            f"mark {mark} on scope {scope} is not a position: {xyz!r}"
        ) from None
    if pos.shape != (3,):
        raise TransformError(
            f"mark {mark} on scope {scope} must be (x, y, z) in um, "
            f"got shape {pos.shape}"
        )
    if not np.all(np.isfinite(pos)):
        raise TransformError(
            f"mark {mark} on scope {scope} has non-finite coordinates "
            f"{tuple(float(v) for v in pos)}"
        )
    return pos


def _match(
    marks_a: Mapping[str, ArrayLike], marks_b: Mapping[str, ArrayLike], min_marks: int
) -> tuple[list[str], _Positions, _Positions, tuple[str, ...]]:
    """Common identities (in scope-A order), their positions, and the unmatched."""
    a = {str(k): _position(str(k), v, "A") for k, v in marks_a.items()}
    b = {str(k): _position(str(k), v, "B") for k, v in marks_b.items()}
    ids = [k for k in a if k in b]
    only_a = [k for k in a if k not in b]
    only_b = [k for k in b if k not in a]
    if len(ids) < min_marks:
        found = f" ({', '.join(ids)})" if ids else ""
        missing = []
        if only_a:
            missing.append(f"{', '.join(only_a)} only on scope A")
        if only_b:
            missing.append(f"{', '.join(only_b)} only on scope B")
        where = f" ({'; '.join(missing)})" if missing else ""
        mark = "mark" if len(ids) == 1 else "marks"
        raise TransformError(
            f"found {len(ids)} common {mark}{found}; at least {min_marks} are "
            f"needed: find {min_marks - len(ids)} more of the fiducial marks on "
            f"both scopes, under the same identity{where}"
        )
    pos_a = np.array([a[k] for k in ids])
    pos_b = np.array([b[k] for k in ids])
    return ids, pos_a, pos_b, (*only_a, *only_b)


def _check_layout(ids: list[str], xy_a: _Positions) -> None:
    """Reject (nearly) collinear marks, across which a lateral fit is undefined."""
    ratio = spread_ratio(xy_a)
    if ratio < MIN_SPREAD_RATIO:
        s = np.linalg.svd(xy_a - xy_a.mean(axis=0), compute_uv=False)
        raise TransformError(
            f"the marks {', '.join(ids)} lie (nearly) on a line: their spread "
            f"across it is {s[-1]:.3g} um against {s[0]:.3g} um along it (ratio "
            f"{ratio:.2g}, at least {MIN_SPREAD_RATIO} needed), so the transform "
            "across the line is undefined; use marks spread over the sample, "
            "e.g. at the corners of the holder"
        )


def _check_enough_agree(
    ids: list[str], keep: list[int], min_marks: int, threshold_um: float
) -> None:
    if len(keep) < min_marks:
        agree = ", ".join(ids[i] for i in keep)
        raise TransformError(
            f"only {len(keep)} of the {len(ids)} common marks ({agree}) agree "
            f"within ransac_threshold_um={threshold_um}; at least {min_marks} "
            "are needed: check the marks' detections and identities"
        )


def _ambiguity_notes(ids: list[str], consensus: ransac.Consensus) -> list[str]:
    notes = []
    chosen = set(consensus.inliers)
    for others, dist in consensus.alternatives:
        instead = ", ".join(ids[i] for i in sorted(set(range(len(ids))) - set(others)))
        kept = ", ".join(ids[i] for i in sorted(set(range(len(ids))) - chosen))
        notes.append(
            f"ambiguous: rejecting {instead} instead of {kept} fits as well "
            f"(distortion {dist:.2%} against {consensus.distortion:.2%}); the "
            "choice closer to a similarity was kept: check the marks or add one"
        )
    return notes


def _leave_one_out(
    model: str, xy_a: _Positions, xy_b: _Positions, sigma_um: float
) -> ransac.LeaveOneOut:
    """Leave-one-out test with the requested model.

    For ``"auto"`` the affine is tried first: only if the affine of all marks
    is inconsistent with the localisation error (anisotropic stage scales are
    then ruled out as the cause) and cannot tell which mark is off, as with 4
    marks, is a similarity without one mark tried.
    """
    fits = {
        "similarity": [fit_similarity],
        "affine": [fit_affine],
        "auto": [fit_affine, fit_similarity],
    }[model]
    results = []
    for fit in fits:
        result = ransac.leave_one_out(
            xy_a, xy_b, fit, sigma_um=sigma_um, min_spread=MIN_SPREAD_RATIO
        )
        if result.rejected is not None or result.consistent:
            return result
        results.append(result)
    # Nothing identified: report the test that narrowed it down to several marks.
    return max(results, key=lambda r: len(r.candidates))


def _select_model(
    model: str, xy_a: _Positions, xy_b: _Positions, prior_sigma_um: float
) -> tuple[LateralFit, str]:
    """The lateral fit of the requested model, and a note on the choice."""
    sim, aff = fit_similarity(xy_a, xy_b), fit_affine(xy_a, xy_b)
    var = prior_sigma_um**2
    if aff.dof > 0:
        var = max(var, aff.rss_um2 / aff.dof)
    stat = (sim.rss_um2 - aff.rss_um2) / var
    crit = float(chi2.ppf(1 - AUTO_ALPHA, 2))
    s = np.linalg.svd(aff.matrix[:, :2], compute_uv=False)
    scales = (
        f"affine principal scales {s[0]:.5f} and {s[1]:.5f} "
        f"(distortion {distortion(aff.matrix):.2%})"
    )
    test = f"lack-of-fit chi^2 {stat:.3g} {'>' if stat > crit else '<='} {crit:.3g}"
    mirrored = ", with one stage axis mirrored" if sim.design.endswith("ed") else ""
    if model == "affine":
        return aff, f"model 'affine' (requested): {scales}"
    if model == "similarity":
        extra = "; the affine terms are significant" if stat > crit else ""
        return sim, f"model 'similarity' (requested{mirrored}): {test}{extra}"
    if stat > crit:
        return aff, f"model 'auto' chose affine: {test} of the similarity; {scales}"
    return sim, f"model 'auto' chose similarity{mirrored}: {test}"


def _residual_notes(
    fit: LateralFit, plane: PlaneFit, sigma_um: float, focus_sigma_um: float
) -> list[str]:
    notes = []
    checks = (
        ("lateral", fit.rss_um2, fit.dof, sigma_um, "fiducial_sigma_um"),
        ("z", plane.rss_um2, plane.dof, focus_sigma_um, "focus_sigma_um"),
    )
    for what, rss, dof, prior, name in checks:
        if dof == 0:
            notes.append(
                f"the {what} fit is exact (no residual dof): its residuals cannot "
                f"estimate the localisation error; predicted errors use the prior "
                f"{name}={prior}"
            )
        elif rss / prior**2 > chi2.ppf(1 - NOTE_ALPHA, dof):
            notes.append(
                f"{what} residuals (sigma {math.sqrt(rss / dof):.3g} um over {dof} "
                f"dof) exceed the expected {name}={prior} (p < {NOTE_ALPHA}): "
                "check the marks; predicted errors use the residuals, pooled with it"
            )
    return notes
