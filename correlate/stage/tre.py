r"""Predicted target registration error (TRE) of linear least-squares stage maps.

The fits of :mod:`correlate.stage.linear_fits` are linear in their parameters ``p``,
``y = J p + e`` with independent localisation errors ``e`` of standard deviation
``sigma`` per coordinate. The parameter covariance is then exactly
``sigma^2 (J^T J)^-1`` and the error of the mapped position of a target with
design row(s) ``J_t`` has covariance

.. math:: C_t = \sigma^2 J_t (J^T J)^{-1} J_t^T .

The predicted lateral TRE is the RMS length of that error, ``sqrt(trace C_t)``;
the predicted z error is the standard deviation of the fitted plane at the
target. For a similarity fit (centred design, ``J^T J`` diagonal) this reduces
to ``TRE^2 = 2 sigma^2 (1/N + r^2 / sum_i r_i^2)`` with ``r`` the target's
distance from the fiducial centroid and ``r_i`` the fiducials' distances:
Fitzpatrick's behaviour of a floor of ``FLE / sqrt(N)`` growing with distance
from the centroid and shrinking with the fiducials' spread. For an affine fit
the growth is anisotropic (it follows the fiducials' second moments).

What is and is not included:

* ``sigma`` is the per-coordinate scatter of the marks about the fit, i.e. the
  scope-A and scope-B localisation errors together (the A positions are treated
  as exact in ``J``; their error enters through the residuals, which is exact to
  first order because the stage-to-stage scale is close to 1).
* The error of the target's own scope-A position and the repeatability of the
  scope-B stage when driving there are not included; add them in quadrature.
* Model error (e.g. anisotropic stage scale under a similarity fit) is not
  included beyond what it adds to the residuals.

``sigma`` is estimated from the residuals, dof-corrected, and shrunk towards a
prior when the residual degrees of freedom are few (:func:`pooled_sigma`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from correlate.stage.linear_fits import design_rows

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["PRIOR_DOF", "lateral_covariance", "plane_error", "pooled_sigma"]

#: Weight of the prior sigma, in residual degrees of freedom.
PRIOR_DOF = 4.0


def pooled_sigma(
    rss_um2: float, dof: int, *, prior_sigma_um: float, prior_dof: float = PRIOR_DOF
) -> float:
    """Localisation error from residuals, shrunk towards a prior when dof are few.

    ``sigma^2 = (prior_dof * prior_sigma^2 + RSS) / (prior_dof + dof)``: the
    usual dof-corrected estimate ``RSS / dof`` pooled with a prior worth
    ``prior_dof`` residual degrees of freedom (the conjugate scaled
    inverse-chi-square update). With ``dof = 0`` (exact fit) it is the prior;
    with many residual dof it tends to ``RSS / dof``. With 4 marks an affine fit
    has 2 residual dof, whose ``RSS / dof`` alone is off by more than a factor 2
    one time in four.

    Parameters
    ----------
    rss_um2 : float
        Residual sum of squares.
    dof : int
        Residual degrees of freedom (``>= 0``).
    prior_sigma_um : float
        Expected localisation error per coordinate.
    prior_dof : float
        Weight of the prior.

    Returns
    -------
    float
        Sigma in um.

    """
    return math.sqrt((prior_dof * prior_sigma_um**2 + rss_um2) / (prior_dof + dof))


def lateral_covariance(
    design: str,
    cofactor: NDArray[np.float64],
    centre_um: NDArray[np.float64],
    xy_a_um: NDArray[np.float64],
    sigma_um: float,
) -> NDArray[np.float64]:
    """Predicted 2x2 covariance of mapped targets (scope-B x, y).

    The square root of its trace is the target registration error; its
    eigenvectors and eigenvalues give the error ellipse.

    Parameters
    ----------
    design : str
        Design of the fit (see :mod:`correlate.stage.linear_fits`).
    cofactor : ndarray, shape (k, k)
        ``(J^T J)^-1`` of the centred fit.
    centre_um : ndarray, shape (2,)
        The fit's centring (scope-A centroid of its marks).
    xy_a_um : ndarray, shape (n, 2)
        Targets in scope-A coordinates.
    sigma_um : float
        Localisation error per coordinate.

    Returns
    -------
    ndarray, shape (n, 2, 2)
        ``C_t = sigma^2 J_t (J^T J)^-1 J_t^T`` per target, in um^2.

    """
    rows = design_rows(design, xy_a_um - centre_um)  # (n, 2, k)
    covariance = np.einsum("nik,kl,njl->nij", rows, cofactor, rows)
    return np.asarray(sigma_um**2 * covariance, dtype=np.float64)


def plane_error(
    cofactor: NDArray[np.float64],
    centre_um: NDArray[np.float64],
    xy_um: NDArray[np.float64],
    sigma_um: float,
) -> NDArray[np.float64]:
    """Predicted standard deviation of a fitted plane at positions ``(n, 2)``."""
    rows = np.column_stack([np.ones(len(xy_um)), xy_um - centre_um])
    var = np.einsum("nk,kl,nl->n", rows, cofactor, rows)
    return np.asarray(sigma_um * np.sqrt(var), dtype=np.float64)
