"""The confocal-to-wide-field stack transform and how far two of them disagree."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from correlate.registration.errors import RegistrationError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class PairTransform:
    """Map confocal stack coordinates to wide-field stack coordinates.

    ``[y_w, x_w] = M @ [y_c, x_c] + [ty, tx]`` and ``z_w = s_z z_c + tz``, all
    in um in the centred stack coordinates of :mod:`correlate.registration`.

    The axial scale ``s_z`` is how much longer the same object looks along z
    on the wide-field scope: the two scopes' focal shifts differ when the
    sample medium is not matched to their immersion (or when a z drive is
    miscalibrated).

    Attributes
    ----------
    matrix : tuple of tuple of float
        ``M``, 2x2 in (y, x) order; may hold a rotation, a scale and a flip.
    translation_um : tuple of float
        ``(tz, ty, tx)``.
    axial_scale : float
        ``s_z`` (1 when both scopes see the same axial lengths).

    """

    matrix: tuple[tuple[float, float], tuple[float, float]]
    translation_um: tuple[float, float, float]
    axial_scale: float = 1.0

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        t = np.asarray(self.translation_um, dtype=np.float64)
        if m.shape != (2, 2) or t.shape != (3,):
            raise RegistrationError(
                "PairTransform needs a 2x2 matrix and 3 translations (tz, ty, tx); "
                f"got shapes {m.shape} and {t.shape}"
            )
        if not (np.isfinite(m).all() and np.isfinite(t).all()):
            raise RegistrationError("PairTransform values must be finite")
        if abs(np.linalg.det(m)) < 1e-9:
            raise RegistrationError(f"PairTransform matrix {m.tolist()} is singular")
        if not (math.isfinite(self.axial_scale) and 0.5 <= self.axial_scale <= 2.0):
            raise RegistrationError(
                f"PairTransform axial_scale {self.axial_scale!r} must lie in "
                "[0.5, 2]: focal shifts and z drives differ by a few percent"
            )

    @classmethod
    def from_arrays(
        cls, matrix: ArrayLike, translation_um: ArrayLike, axial_scale: float = 1.0
    ) -> PairTransform:
        """Build from a 2x2 array, a (tz, ty, tx) array and the axial scale."""
        m = np.asarray(matrix, dtype=np.float64).reshape(2, 2)
        t = np.asarray(translation_um, dtype=np.float64).reshape(3)
        return cls(
            ((float(m[0, 0]), float(m[0, 1])), (float(m[1, 0]), float(m[1, 1]))),
            (float(t[0]), float(t[1]), float(t[2])),
            float(axial_scale),
        )

    @classmethod
    def identity(cls) -> PairTransform:
        """The transform of two stacks centred on the same point, same axes."""
        return cls(((1.0, 0.0), (0.0, 1.0)), (0.0, 0.0, 0.0))

    @property
    def matrix_array(self) -> NDArray[np.float64]:
        """``M`` as a (2, 2) array."""
        return np.asarray(self.matrix, dtype=np.float64)

    @property
    def translation_array(self) -> NDArray[np.float64]:
        """``(tz, ty, tx)`` as a (3,) array."""
        return np.asarray(self.translation_um, dtype=np.float64)

    @property
    def flipped(self) -> bool:
        """Whether ``M`` mirrors (negative determinant)."""
        return bool(np.linalg.det(self.matrix_array) < 0)

    @property
    def scale(self) -> float:
        """Mean scale of ``M`` (square root of the absolute determinant)."""
        return float(math.sqrt(abs(np.linalg.det(self.matrix_array))))

    @property
    def rotation_deg(self) -> float:
        """Rotation of ``M`` (after undoing a flip of the x axis), degrees.

        Positive angles turn the +y axis towards +x (see `rotation_matrix`).
        """
        m = self.matrix_array
        if self.flipped:
            m = m @ np.diag([1.0, -1.0])
        return float(np.degrees(math.atan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1])))

    def apply(self, points_zyx_um: ArrayLike) -> NDArray[np.float64]:
        """Wide-field coordinates of confocal points ``(..., 3)`` in (z, y, x) um."""
        p = np.asarray(points_zyx_um, dtype=np.float64)
        out = np.empty(p.shape, dtype=np.float64)
        out[..., 0] = self.axial_scale * p[..., 0] + self.translation_um[0]
        out[..., 1:] = p[..., 1:] @ self.matrix_array.T + self.translation_array[1:]
        return out

    def then_before(self, inner: PairTransform) -> PairTransform:
        """The composition ``self(inner(p))``."""
        m = self.matrix_array @ inner.matrix_array
        t_yx = (
            self.matrix_array @ inner.translation_array[1:]
            + (self.translation_array[1:])
        )
        tz = self.axial_scale * inner.translation_um[0] + self.translation_um[0]
        return PairTransform.from_arrays(
            m, [tz, t_yx[0], t_yx[1]], self.axial_scale * inner.axial_scale
        )

    def inverse(self) -> PairTransform:
        """The wide-field-to-confocal transform."""
        inv = np.linalg.inv(self.matrix_array)
        t_yx = -inv @ self.translation_array[1:]
        tz = -self.translation_um[0] / self.axial_scale
        return PairTransform.from_arrays(inv, [tz, *t_yx], 1.0 / self.axial_scale)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe representation (see `from_dict`)."""
        return {
            "matrix": [list(self.matrix[0]), list(self.matrix[1])],
            "translation_um": list(self.translation_um),
            "axial_scale": self.axial_scale,
            "convention": "[y_w,x_w] = M [y_c,x_c] + [ty,tx]; "
            "z_w = axial_scale z_c + tz; centred stack coordinates in um",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairTransform:
        """Rebuild from `to_dict` output (an older one without ``axial_scale`` too)."""
        try:
            return cls.from_arrays(
                data["matrix"], data["translation_um"], data.get("axial_scale", 1.0)
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RegistrationError(
                f"not a PairTransform dict ({exc}); expected keys 'matrix' (2x2) "
                "and 'translation_um' (tz, ty, tx)"
            ) from exc


def rotation_matrix(angle_deg: float) -> NDArray[np.float64]:
    """2x2 rotation in (y, x) order; positive angles turn +y towards +x."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


@dataclass(frozen=True)
class TransformDifference:
    """How far two transforms map the same confocal points apart.

    Attributes
    ----------
    lateral_rms_um, lateral_max_um : float
        RMS and largest lateral distance in the wide-field stack, um.
    axial_rms_um : float
        RMS axial distance over the confocal stack's planes, um.
    axial_max_um : float
        Largest axial distance (at the top or bottom plane), um.
    rotation_deg : float
        Rotation between the two matrices, degrees.
    axial_scale_ratio : float
        Axial scale of the estimate over the reference's (1 when they agree).

    """

    lateral_rms_um: float
    lateral_max_um: float
    axial_rms_um: float
    rotation_deg: float
    axial_max_um: float = 0.0
    axial_scale_ratio: float = 1.0


def transform_difference(
    estimate: PairTransform,
    reference: PairTransform,
    *,
    confocal_shape: tuple[int, int, int],
    confocal_voxel_um: tuple[float, float, float],
    samples: int = 33,
    planes: slice | None = None,
) -> TransformDifference:
    """Distances between where two transforms put the confocal field.

    Parameters
    ----------
    estimate, reference : PairTransform
        The transforms to compare.
    confocal_shape : tuple of int
        (nz, ny, nx) of the confocal stack.
    confocal_voxel_um : tuple of float
        (dz, dy, dx) of the confocal stack.
    samples : int
        Points per lateral axis of the evaluation grid over the field.
    planes : slice, optional
        Confocal planes the axial distances are taken over (all by default;
        e.g. only those that hold the specimen).

    Returns
    -------
    TransformDifference
        RMS/maximum lateral and axial distances, the rotation and the axial
        scale ratio between them. Lateral distances do not depend on z in
        this model; axial ones are taken over every confocal plane.

    """
    nz, ny, nx = confocal_shape
    dz, dy, dx = confocal_voxel_um
    ys = (np.linspace(0, ny - 1, samples) - (ny - 1) / 2) * dy
    xs = (np.linspace(0, nx - 1, samples) - (nx - 1) / 2) * dx
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    points = np.column_stack([np.zeros(yy.size), yy.ravel(), xx.ravel()])
    a = estimate.apply(points)
    b = reference.apply(points)
    lateral = np.hypot(a[:, 1] - b[:, 1], a[:, 2] - b[:, 2])
    zs = ((np.arange(nz) - (nz - 1) / 2) * dz)[planes or slice(None)]
    if zs.size == 0:
        raise RegistrationError(f"planes {planes} select none of {nz} planes")
    axial = (estimate.axial_scale - reference.axial_scale) * zs + (
        estimate.translation_um[0] - reference.translation_um[0]
    )
    relative = PairTransform.from_arrays(
        np.linalg.inv(reference.matrix_array) @ estimate.matrix_array, [0, 0, 0]
    )
    return TransformDifference(
        lateral_rms_um=float(np.sqrt(np.mean(lateral**2))),
        lateral_max_um=float(lateral.max()),
        axial_rms_um=float(np.sqrt(np.mean(axial**2))),
        rotation_deg=relative.rotation_deg,
        axial_max_um=float(np.abs(axial).max()),
        axial_scale_ratio=estimate.axial_scale / reference.axial_scale,
    )
