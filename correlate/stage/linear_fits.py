"""Linear least-squares fits of stage-to-stage maps: similarity, affine, z plane.

Every fit works in coordinates centred on the centroid of the fitted marks (for
a well-conditioned normal matrix) and keeps the *cofactor matrix*
``(J^T J)^-1`` of its design matrix ``J``, from which :mod:`correlate.stage.tre`
propagates the fiducial localisation error to any target.

Designs (``u, v``: centred scope-A coordinates of a mark; one row per output
coordinate):

``"similarity"`` (rotation, isotropic scale, translation; 4 parameters)
    ``x_B = a u - b v + t_x``, ``y_B = b u + a v + t_y``, i.e. the linear part
    ``s R(theta)`` with ``a = s cos(theta)``, ``b = s sin(theta)``: linear in the
    parameters for every angle, so no small-angle assumption is made.
``"similarity-mirrored"`` (the same with one stage axis reversed; 4 parameters)
    ``x_B = a u + b v + t_x``, ``y_B = b u - a v + t_y``.
``"affine"`` (6 parameters)
    ``x_B = m00 u + m01 v + t_x``, ``y_B = m10 u + m11 v + t_y``; this also
    absorbs per-axis stage scale errors and axis skew.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "DESIGNS",
    "LateralFit",
    "PlaneFit",
    "design_rows",
    "distortion",
    "fit_affine",
    "fit_lateral",
    "fit_plane",
    "fit_similarity",
    "spread_ratio",
]

#: Number of parameters of each lateral design.
DESIGNS: dict[str, int] = {"similarity": 4, "similarity-mirrored": 4, "affine": 6}


@dataclass(frozen=True, eq=False)
class LateralFit:
    """A lateral least-squares fit ``xy_B = matrix @ [x_A, y_A, 1]``.

    Attributes
    ----------
    design : str
        One of :data:`DESIGNS`.
    matrix : ndarray, shape (2, 3)
        The fitted map in uncentred stage coordinates.
    centre_um : ndarray, shape (2,)
        Centroid of the fitted marks' scope-A positions (origin of the design).
    cofactor : ndarray, shape (k, k)
        ``(J^T J)^-1`` of the centred design matrix.
    residuals_um : ndarray, shape (n, 2)
        ``xy_B - fitted`` of each fitted mark.
    rss_um2 : float
        Residual sum of squares (both coordinates of all marks).
    dof : int
        Residual degrees of freedom, ``2 n - k``.

    """

    design: str
    matrix: NDArray[np.float64]
    centre_um: NDArray[np.float64]
    cofactor: NDArray[np.float64]
    residuals_um: NDArray[np.float64]
    rss_um2: float
    dof: int

    def predict(self, xy_a_um: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map scope-A positions ``(n, 2)`` to scope B."""
        return xy_a_um @ self.matrix[:, :2].T + self.matrix[:, 2]


@dataclass(frozen=True, eq=False)
class PlaneFit:
    """A least-squares plane ``dz = a + b x + c y``.

    Attributes
    ----------
    coefficients : tuple of float
        ``(a, b, c)`` in uncentred coordinates.
    centre_um : ndarray, shape (2,)
        Centroid of the fitted points (origin of the design).
    cofactor : ndarray, shape (3, 3)
        ``(J^T J)^-1`` of the centred design matrix ``[1, x - cx, y - cy]``.
    residuals_um : ndarray, shape (n,)
        ``dz - fitted`` of each point.
    rss_um2 : float
        Residual sum of squares.
    dof : int
        Residual degrees of freedom, ``n - 3``.

    """

    coefficients: tuple[float, float, float]
    centre_um: NDArray[np.float64]
    cofactor: NDArray[np.float64]
    residuals_um: NDArray[np.float64]
    rss_um2: float
    dof: int


def design_rows(design: str, uv_um: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows of the design matrix for centred positions.

    Parameters
    ----------
    design : str
        One of :data:`DESIGNS`.
    uv_um : ndarray, shape (n, 2)
        Centred scope-A positions.

    Returns
    -------
    ndarray, shape (n, 2, k)
        For each position, the rows of its x and y output coordinates.

    """
    u, v = uv_um[:, 0], uv_um[:, 1]
    one, zero = np.ones_like(u), np.zeros_like(u)
    if design == "similarity":
        rows = [[u, -v, one, zero], [v, u, zero, one]]
    elif design == "similarity-mirrored":
        rows = [[u, v, one, zero], [-v, u, zero, one]]
    elif design == "affine":
        rows = [[u, v, one, zero, zero, zero], [zero, zero, zero, u, v, one]]
    else:
        raise ValueError(f"unknown design {design!r}; expected one of {list(DESIGNS)}")
    return np.moveaxis(np.asarray(rows, dtype=np.float64), -1, 0)


def _matrix(design: str, params: NDArray[np.float64]) -> NDArray[np.float64]:
    """The 2x2 linear part and centred translation of a parameter vector."""
    if design == "affine":
        return np.array([params[0:3], params[3:6]])
    a, b, tx, ty = params
    if design == "similarity":
        return np.array([[a, -b, tx], [b, a, ty]])
    return np.array([[a, b, tx], [b, -a, ty]])


def fit_lateral(
    design: str, xy_a_um: NDArray[np.float64], xy_b_um: NDArray[np.float64]
) -> LateralFit:
    """Least-squares fit of one design to matched positions.

    Parameters
    ----------
    design : str
        One of :data:`DESIGNS`.
    xy_a_um, xy_b_um : ndarray, shape (n, 2)
        Matched scope-A and scope-B positions; ``2 n`` must be at least the
        number of parameters and the positions must not be collinear.

    Returns
    -------
    LateralFit

    """
    centre = xy_a_um.mean(axis=0)
    rows = design_rows(design, xy_a_um - centre)
    jac = rows.reshape(-1, rows.shape[-1])
    normal = jac.T @ jac
    cofactor = np.asarray(np.linalg.inv(normal), dtype=np.float64)
    params = cofactor @ (jac.T @ xy_b_um.reshape(-1))
    centred = _matrix(design, params)
    matrix = centred.copy()
    matrix[:, 2] = centred[:, 2] - centred[:, :2] @ centre
    residuals = xy_b_um - (rows @ params)
    return LateralFit(
        design=design,
        matrix=matrix,
        centre_um=centre,
        cofactor=cofactor,
        residuals_um=residuals,
        rss_um2=float(np.sum(residuals**2)),
        dof=jac.shape[0] - jac.shape[1],
    )


def fit_similarity(
    xy_a_um: NDArray[np.float64], xy_b_um: NDArray[np.float64]
) -> LateralFit:
    """Similarity fit, of whichever handedness (plain or mirrored) fits better."""
    fits = [fit_lateral(d, xy_a_um, xy_b_um) for d in DESIGNS if d != "affine"]
    return min(fits, key=lambda fit: fit.rss_um2)


def fit_affine(
    xy_a_um: NDArray[np.float64], xy_b_um: NDArray[np.float64]
) -> LateralFit:
    """Affine fit (6 parameters)."""
    return fit_lateral("affine", xy_a_um, xy_b_um)


def fit_plane(xy_um: NDArray[np.float64], dz_um: NDArray[np.float64]) -> PlaneFit:
    """Least-squares plane ``dz = a + b x + c y`` through at least 3 points.

    Parameters
    ----------
    xy_um : ndarray, shape (n, 2)
        Lateral positions (not collinear).
    dz_um : ndarray, shape (n,)
        Heights to fit.

    Returns
    -------
    PlaneFit

    """
    centre = xy_um.mean(axis=0)
    uv = xy_um - centre
    jac = np.column_stack([np.ones(len(uv)), uv])
    cofactor = np.asarray(np.linalg.inv(jac.T @ jac), dtype=np.float64)
    p = cofactor @ (jac.T @ dz_um)
    residuals = dz_um - jac @ p
    a = float(p[0] - p[1] * centre[0] - p[2] * centre[1])
    return PlaneFit(
        coefficients=(a, float(p[1]), float(p[2])),
        centre_um=centre,
        cofactor=cofactor,
        residuals_um=residuals,
        rss_um2=float(np.sum(residuals**2)),
        dof=len(uv) - 3,
    )


def distortion(matrix: NDArray[np.float64]) -> float:
    """How far the linear part of a 2x3 map is from a similarity.

    Returns ``s_max / s_min - 1`` of the singular values of ``matrix[:, :2]``:
    0 for a similarity, about ``|s_x - s_y|`` for per-axis scale errors ``s_x``,
    ``s_y`` and about ``|skew|`` for non-orthogonal axes; infinite when singular.
    """
    s = np.linalg.svd(matrix[:, :2], compute_uv=False)
    return float(s[0] / s[1] - 1.0) if s[1] > 0 else float("inf")


def spread_ratio(xy_um: NDArray[np.float64]) -> float:
    """Spread of points across their main direction relative to along it.

    The ratio of the smallest to the largest singular value of the centred
    coordinates: 0 for collinear (or coincident) points, 1 for an isotropic
    layout such as the corners of a square.
    """
    s = np.linalg.svd(xy_um - xy_um.mean(axis=0), compute_uv=False)
    return float(s[-1] / s[0]) if len(s) > 1 and s[0] > 0 else 0.0
