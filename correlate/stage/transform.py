"""The result of a stage-to-stage fit: :class:`StageTransform`.

A frozen record of the fitted lateral map and z plane, with what is needed to
predict errors at targets (the fits' cofactor matrices, see
:mod:`correlate.stage.tre`) and to write it to a session file (:meth:`to_dict`,
:meth:`from_dict`). It is made by
:func:`correlate.stage.fit_transform.fit_stage_transform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from correlate.stage.linear_fits import DESIGNS
from correlate.stage.tre import lateral_covariance, plane_error

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import ArrayLike, NDArray

__all__ = ["FORMAT", "FORMAT_VERSION", "StageTransform", "TransformError"]

#: Identifier of the dictionaries written by :meth:`StageTransform.to_dict`.
FORMAT = "pairscope.stage_transform"
FORMAT_VERSION = 1


class TransformError(ValueError):
    """The marks do not allow a stage-to-stage transform; the message says why."""


def _frozen(a: ArrayLike, shape: tuple[int, ...], name: str) -> NDArray[np.float64]:
    arr = np.array(a, dtype=np.float64)
    if arr.shape != shape:
        raise TransformError(f"{name} must have shape {shape}, got {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class StageTransform:
    """A fitted map from scope-A to scope-B stage coordinates.

    Attributes
    ----------
    model : str
        ``"similarity"`` or ``"affine"``.
    matrix : ndarray, shape (2, 3)
        ``xy_B = matrix @ [x_A, y_A, 1]``.
    z_plane : tuple of float
        ``(a, b, c)`` of ``z_B = z_A + a + b x_B + c y_B``.
    residual_rms_um : float
        Lateral fiducial registration error: RMS length of the inliers'
        residual vectors.
    z_residual_rms_um : float
        RMS of the inliers' z residuals (0 when the plane is exact).
    inliers : tuple of str
        Identities of the marks used.
    rejected : tuple of str
        Common marks rejected as outliers.
    fiducial_sigma_um : float
        Lateral localisation error per coordinate used for the predictions
        (scope A and B together), estimated from the residuals (dof-corrected,
        pooled with the prior when dof are few).
    focus_sigma_um : float
        The same for ``z_B - z_A``.
    unmatched : tuple of str
        Marks found on one scope only.
    residual_dof, z_residual_dof : int
        Residual degrees of freedom of the lateral and the z fit.
    centre_a_um : ndarray, shape (2,)
        Centroid of the inliers on scope A (origin of the lateral design).
    cofactor : ndarray, shape (k, k)
        ``(J^T J)^-1`` of the centred lateral design (k = 4 or 6).
    z_centre_b_um : ndarray, shape (2,)
        Centroid of the inliers on scope B (origin of the plane design).
    z_cofactor : ndarray, shape (3, 3)
        ``(J^T J)^-1`` of the centred plane design.
    notes : tuple of str
        What was decided and why: model choice, rejections, exact fits.

    Notes
    -----
    Instances compare by identity (``eq=False``); their arrays are read-only.

    """

    model: str
    matrix: NDArray[np.float64]
    z_plane: tuple[float, float, float]
    residual_rms_um: float
    z_residual_rms_um: float
    inliers: tuple[str, ...]
    rejected: tuple[str, ...]
    fiducial_sigma_um: float
    focus_sigma_um: float
    unmatched: tuple[str, ...]
    residual_dof: int
    z_residual_dof: int
    centre_a_um: NDArray[np.float64]
    cofactor: NDArray[np.float64]
    z_centre_b_um: NDArray[np.float64]
    z_cofactor: NDArray[np.float64]
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.model not in ("similarity", "affine"):
            raise TransformError(
                f"model must be 'similarity' or 'affine', got {self.model!r}"
            )
        k = DESIGNS[self.model]
        fields = {
            "matrix": (2, 3),
            "centre_a_um": (2,),
            "cofactor": (k, k),
            "z_centre_b_um": (2,),
            "z_cofactor": (3, 3),
        }
        for name, shape in fields.items():
            object.__setattr__(self, name, _frozen(getattr(self, name), shape, name))

    @property
    def design(self) -> str:
        """Lateral design: the model, with mirrored similarities told apart."""
        if self.model == "similarity" and np.linalg.det(self.matrix[:, :2]) < 0:
            return "similarity-mirrored"
        return self.model

    def _xy_b(self, xy_a: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(xy_a @ self.matrix[:, :2].T + self.matrix[:, 2])

    def apply(self, xyz_um: ArrayLike) -> NDArray[np.float64]:
        """Map scope-A stage positions to scope B.

        Parameters
        ----------
        xyz_um : array_like, shape (3,) or (n, 3)
            Positions ``(x, y, z)`` in scope-A stage coordinates, um.

        Returns
        -------
        ndarray, same shape
            Positions in scope-B stage coordinates, um.

        """
        pts, single = _points(xyz_um, (3,))
        xy_b = self._xy_b(pts[:, :2])
        a, b, c = self.z_plane
        z_b = pts[:, 2] + a + b * xy_b[:, 0] + c * xy_b[:, 1]
        out = np.column_stack([xy_b, z_b])
        return out[0] if single else out

    def predicted_tre_um(self, xyz_um: ArrayLike) -> NDArray[np.float64]:
        """Predicted lateral RMS error of the mapped position of each target.

        ``sqrt(trace(C_t))`` with ``C_t = sigma^2 J_t (J^T J)^-1 J_t^T`` (see
        :mod:`correlate.stage.tre`); excludes the target's own localisation error.

        Parameters
        ----------
        xyz_um : array_like, shape (2,), (3,), (n, 2) or (n, 3)
            Targets in scope-A stage coordinates (z is not used), um.

        Returns
        -------
        ndarray, shape () or (n,)
            Predicted lateral error, um.

        """
        covariance = self.predicted_covariance_um2(xyz_um)
        return np.asarray(np.sqrt(np.einsum("...ii->...", covariance)))

    def predicted_covariance_um2(self, xyz_um: ArrayLike) -> NDArray[np.float64]:
        """Predicted 2x2 lateral error covariance of each mapped target.

        Its trace is the square of :meth:`predicted_tre_um`; its eigenvectors
        and eigenvalues give the error ellipse in scope-B stage x, y.

        Parameters
        ----------
        xyz_um : array_like, shape (2,), (3,), (n, 2) or (n, 3)
            Targets in scope-A stage coordinates (z is not used), um.

        Returns
        -------
        ndarray, shape (2, 2) or (n, 2, 2)
            Covariance in um^2.

        """
        pts, single = _points(xyz_um, (2, 3))
        covariance = lateral_covariance(
            self.design,
            self.cofactor,
            self.centre_a_um,
            pts[:, :2],
            self.fiducial_sigma_um,
        )
        return covariance[0] if single else covariance

    def predicted_z_error_um(self, xyz_um: ArrayLike) -> NDArray[np.float64]:
        """Predicted standard deviation of the mapped z of each target.

        The standard deviation of the fitted plane at the target's scope-B
        position (the lateral error's effect through the tilt is negligible).

        Parameters
        ----------
        xyz_um : array_like, shape (2,), (3,), (n, 2) or (n, 3)
            Targets in scope-A stage coordinates (z is not used), um.

        Returns
        -------
        ndarray, shape () or (n,)
            Predicted z error, um.

        """
        pts, single = _points(xyz_um, (2, 3))
        err = plane_error(
            self.z_cofactor,
            self.z_centre_b_um,
            self._xy_b(pts[:, :2]),
            self.focus_sigma_um,
        )
        return err.reshape(()) if single else err

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary (plain lists, floats and strings)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": self.model,
            "matrix": self.matrix.tolist(),
            "z_plane": list(self.z_plane),
            "residual_rms_um": self.residual_rms_um,
            "z_residual_rms_um": self.z_residual_rms_um,
            "inliers": list(self.inliers),
            "rejected": list(self.rejected),
            "fiducial_sigma_um": self.fiducial_sigma_um,
            "focus_sigma_um": self.focus_sigma_um,
            "unmatched": list(self.unmatched),
            "residual_dof": self.residual_dof,
            "z_residual_dof": self.z_residual_dof,
            "centre_a_um": self.centre_a_um.tolist(),
            "cofactor": self.cofactor.tolist(),
            "z_centre_b_um": self.z_centre_b_um.tolist(),
            "z_cofactor": self.z_cofactor.tolist(),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageTransform:
        """Rebuild a transform from :meth:`to_dict` output.

        Raises
        ------
        TransformError
            If the dictionary is not a stage transform of a known version or
            lacks an entry.

        """
        if d.get("format") != FORMAT or d.get("version") != FORMAT_VERSION:
            raise TransformError(
                f"not a {FORMAT} version {FORMAT_VERSION} dictionary "
                f"(format={d.get('format')!r}, version={d.get('version')!r})"
            )
        try:
            a, b, c = (float(v) for v in d["z_plane"])
            return cls(
                model=str(d["model"]),
                matrix=np.asarray(d["matrix"], dtype=np.float64),
                z_plane=(a, b, c),
                residual_rms_um=float(d["residual_rms_um"]),
                z_residual_rms_um=float(d["z_residual_rms_um"]),
                inliers=tuple(str(s) for s in d["inliers"]),
                rejected=tuple(str(s) for s in d["rejected"]),
                fiducial_sigma_um=float(d["fiducial_sigma_um"]),
                focus_sigma_um=float(d["focus_sigma_um"]),
                unmatched=tuple(str(s) for s in d["unmatched"]),
                residual_dof=int(d["residual_dof"]),
                z_residual_dof=int(d["z_residual_dof"]),
                centre_a_um=np.asarray(d["centre_a_um"], dtype=np.float64),
                cofactor=np.asarray(d["cofactor"], dtype=np.float64),
                z_centre_b_um=np.asarray(d["z_centre_b_um"], dtype=np.float64),
                z_cofactor=np.asarray(d["z_cofactor"], dtype=np.float64),
                notes=tuple(str(s) for s in d.get("notes", ())),
            )
        except KeyError as exc:
            raise TransformError(f"stage transform dictionary lacks {exc}") from None


def _points(
    xyz_um: ArrayLike, widths: tuple[int, ...]
) -> tuple[NDArray[np.float64], bool]:
    """Positions as (n, width) float array, and whether one point was given."""
    pts = np.asarray(xyz_um, dtype=np.float64)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    if pts.ndim != 2 or pts.shape[1] not in widths:
        want = " or ".join(f"(n, {w})" for w in widths)
        raise ValueError(f"positions must have shape {want}, got {np.shape(xyz_um)}")
    return pts, single
