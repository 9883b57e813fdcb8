"""Camera-to-stage calibration: pixel size, rotation and mirror of a camera.

A camera pixel step ``(d_col, d_row)`` corresponds to a stage displacement
``(dx, dy) = M @ (d_col, d_row)`` in um, with ``M`` the 2x2 ``pixel_to_stage``
matrix. ``M`` is measured like Micro-Manager's pixel calibrator does it: move
the stage by known amounts ``D`` and register each image onto a reference. A
stage move by ``D`` moves the image content by ``-inv(M) @ D`` (in col, row
pixels), so the ``(row, col)`` shift that registers the moved image back onto
the reference is ``reversed(inv(M) @ D)``; `fit_pixel_calibration` fits ``M``
to such pairs by least squares.

``M`` factorises as ``pixel_size * R(rotation) @ diag(+-1, 1)``: the pixel size
at the sample, the camera's rotation relative to the stage axes
(counter-clockwise, in degrees) and a left-right mirror when ``det(M) < 0``.
A stage whose X and Y encoders differ in scale makes ``M`` slightly
non-similar; pixel size and rotation are then the closest similarity's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import ArrayLike, NDArray

__all__ = ["PixelCalibration", "fit_pixel_calibration"]

_COLLINEAR_RATIO = 1e-3
"""Smallest / largest singular value of the moves below which they are a line."""
_DICT_KEYS = ("pixel_to_stage", "pixel_size_um", "rotation_deg", "flipped")
_DERIVED_REL_TOL = 1e-6


@dataclass(frozen=True, eq=False)
class PixelCalibration:
    """How camera pixels map onto stage coordinates.

    Build it from the matrix alone; pixel size, rotation and flip are derived.

    Parameters
    ----------
    pixel_to_stage : array_like
        2x2 matrix: ``(d_col, d_row)`` in pixels to ``(dx, dy)`` in stage um.
    residual_px : float, optional
        RMS misfit of the measurements the matrix was fitted to, in pixels.

    Attributes
    ----------
    pixel_to_stage : ndarray
        The 2x2 matrix (read-only float64).
    pixel_size_um : float
        Pixel size at the sample, ``sqrt(|det M|)``, in stage um.
    rotation_deg : float
        Camera rotation relative to the stage axes, counter-clockwise, in
        (-180, 180]: the rotation of the closest similarity to ``M`` after the
        mirror is undone.
    flipped : bool
        ``det(M) < 0``: the image is mirrored relative to the stage
        (a left-right mirror applied before the rotation).
    residual_px : float
        RMS misfit of the fit, in pixels (0 for a matrix given directly).

    Raises
    ------
    ValueError
        If the matrix is not 2x2, not finite, or singular.

    """

    pixel_to_stage: NDArray[np.float64]
    pixel_size_um: float = field(init=False)
    rotation_deg: float = field(init=False)
    flipped: bool = field(init=False)
    residual_px: float = 0.0

    def __post_init__(self) -> None:
        matrix = np.array(self.pixel_to_stage, dtype=np.float64)
        if matrix.shape != (2, 2):
            raise ValueError(
                f"pixel_to_stage must be a 2x2 matrix, got shape {matrix.shape}"
            )
        if not np.all(np.isfinite(matrix)):
            raise ValueError("pixel_to_stage holds NaN or infinite values")
        det = float(np.linalg.det(matrix))
        scale = float(np.abs(matrix).max())
        if scale == 0 or abs(det) <= 1e-12 * scale * scale:
            raise ValueError(
                "pixel_to_stage is singular (the stage moves would not move the "
                f"image along two directions): {matrix.tolist()}"
            )
        if not (math.isfinite(self.residual_px) and self.residual_px >= 0):
            raise ValueError(
                f"residual_px must be a finite number >= 0, got {self.residual_px}"
            )
        matrix.setflags(write=False)
        flipped = det < 0
        # undo the mirror (first column), then take the closest rotation
        unmirrored = matrix * np.array([-1.0 if flipped else 1.0, 1.0])
        angle = math.degrees(
            math.atan2(
                unmirrored[1, 0] - unmirrored[0, 1], unmirrored[0, 0] + unmirrored[1, 1]
            )
        )
        if angle <= -180.0:
            angle += 360.0
        object.__setattr__(self, "pixel_to_stage", matrix)
        object.__setattr__(self, "pixel_size_um", math.sqrt(abs(det)))
        object.__setattr__(self, "rotation_deg", angle)
        object.__setattr__(self, "flipped", bool(flipped))
        object.__setattr__(self, "residual_px", float(self.residual_px))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PixelCalibration):
            return NotImplemented
        return bool(
            np.array_equal(self.pixel_to_stage, other.pixel_to_stage)
            and self.residual_px == other.residual_px
        )

    def __hash__(self) -> int:
        return hash((self.pixel_to_stage.tobytes(), self.residual_px))

    @property
    def stage_to_pixel(self) -> NDArray[np.float64]:
        """Inverse matrix: ``(dx, dy)`` in stage um to ``(d_col, d_row)`` pixels."""
        return np.asarray(np.linalg.inv(self.pixel_to_stage), dtype=np.float64)

    def stage_offset_um(
        self, pixel_rc: ArrayLike, *, shape: tuple[int, int]
    ) -> NDArray[np.float64]:
        """Stage offset of pixel(s) from the image centre.

        Moving the stage by this offset brings what the pixel shows to the
        centre of the image.

        Parameters
        ----------
        pixel_rc : array_like
            ``(row, col)`` of one pixel, or an (N, 2) array of them; sub-pixel
            positions allowed.
        shape : tuple of int
            ``(rows, cols)`` of the image; its centre is pixel
            ``((rows - 1) / 2, (cols - 1) / 2)``.

        Returns
        -------
        ndarray
            ``(dx, dy)`` in stage um, shape (2,) or (N, 2).

        Raises
        ------
        ValueError
            If ``pixel_rc`` does not end in an axis of length 2, or ``shape``
            is not two positive integers.

        """
        points = np.asarray(pixel_rc, dtype=np.float64)
        if points.ndim not in (1, 2) or points.shape[-1] != 2:
            raise ValueError(
                "pixel_rc must be one (row, col) pair or an (N, 2) array of them, "
                f"got shape {points.shape}"
            )
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(
                f"shape must be the image's (rows, cols), got {tuple(shape)}"
            )
        centre_rc = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
        offset_cr = (points - centre_rc)[..., ::-1]
        stage: NDArray[np.float64] = offset_cr @ self.pixel_to_stage.T
        return stage

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: the matrix and, for reading, the derived values.

        Returns
        -------
        dict
            ``pixel_to_stage`` (nested lists), ``pixel_size_um``,
            ``rotation_deg``, ``flipped`` and ``residual_px``.

        """
        return {
            "pixel_to_stage": self.pixel_to_stage.tolist(),
            "pixel_size_um": self.pixel_size_um,
            "rotation_deg": self.rotation_deg,
            "flipped": self.flipped,
            "residual_px": self.residual_px,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PixelCalibration:
        """Rebuild a calibration written by `to_dict`.

        Parameters
        ----------
        data : Mapping
            Needs ``pixel_to_stage``; ``residual_px`` defaults to 0. Derived
            values present (``pixel_size_um``, ``rotation_deg``, ``flipped``)
            must agree with the matrix.

        Returns
        -------
        PixelCalibration
            The calibration.

        Raises
        ------
        ValueError
            If the matrix is missing or invalid, or a derived value disagrees
            with it (an edited file: edit the matrix, or calibrate again).

        """
        if "pixel_to_stage" not in data:
            raise ValueError(
                "a pixel calibration needs a 'pixel_to_stage' entry (2x2 matrix); "
                f"got only {sorted(data)}"
            )
        try:
            matrix = np.array(data["pixel_to_stage"], dtype=np.float64)
            residual = float(data.get("residual_px", 0.0))
        except (TypeError, ValueError):
            raise ValueError(
                "pixel_to_stage must be a 2x2 list of numbers and residual_px a "
                f"number; got {data['pixel_to_stage']!r}, "
                f"{data.get('residual_px')!r}"
            ) from None
        calibration = cls(matrix, residual_px=residual)
        stored = {key: data[key] for key in _DICT_KEYS[1:] if key in data}
        derived = calibration.to_dict()
        for key, value in stored.items():
            if key == "flipped":
                agrees = value is derived[key]
            else:
                agrees = isinstance(value, (int, float)) and math.isclose(
                    float(value), derived[key], rel_tol=_DERIVED_REL_TOL, abs_tol=1e-9
                )
            if not agrees:
                raise ValueError(
                    f"{key} = {value!r} disagrees with pixel_to_stage, which gives "
                    f"{derived[key]!r}; the matrix is what is used: correct it (or "
                    "delete the derived values), or calibrate again"
                )
        return calibration


def fit_pixel_calibration(
    stage_moves_um: ArrayLike,
    image_shifts_px: ArrayLike,
    *,
    fit_offset: bool = False,
) -> PixelCalibration:
    """Fit the pixel-to-stage matrix to stage moves and measured image shifts.

    Parameters
    ----------
    stage_moves_um : array_like
        (N, 2) stage moves ``(dx, dy)`` in um, each relative to the position
        where the reference image was taken.
    image_shifts_px : array_like
        (N, 2) ``(row, col)`` shifts, in pixels, that register each moved image
        onto the reference (as `correlate.stage.image_shift.measure_shift` returns
        them).
    fit_offset : bool, optional
        Also fit a shift common to all images: the reference's own error, e.g.
        where the stage really landed when it was taken. Include the reference
        as a zero move with a zero shift; then at least 3 points not on one
        line are needed.

    Returns
    -------
    PixelCalibration
        The fitted calibration; ``residual_px`` is the RMS length of the
        (row, col) misfits.

    Raises
    ------
    ValueError
        If the arrays are not (N, 2) of equal length and finite, the moves are
        too few or all on one line, or the shifts do not follow the moves.

    """
    moves = np.asarray(stage_moves_um, dtype=np.float64)
    shifts = np.asarray(image_shifts_px, dtype=np.float64)
    for name, array in (("stage_moves_um", moves), ("image_shifts_px", shifts)):
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(
                f"{name} must be an (N, 2) array, one row per move, "
                f"got shape {array.shape}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} holds NaN or infinite values")
    if len(moves) != len(shifts):
        raise ValueError(
            f"{len(moves)} stage moves but {len(shifts)} image shifts; "
            "give one shift per move"
        )
    needed = 3 if fit_offset else 2
    if len(moves) < needed:
        raise ValueError(
            f"{len(moves)} move(s) cannot determine a 2D calibration; give at "
            f"least {needed} moves in different directions"
            + (" (the reference counts as one zero move)" if fit_offset else "")
        )
    spread = moves - moves.mean(axis=0) if fit_offset else moves
    singular = np.linalg.svd(spread, compute_uv=False)
    if singular[0] == 0 or singular[1] < _COLLINEAR_RATIO * singular[0]:
        raise ValueError(
            "the stage moves lie on one line, so they cannot tell the image's X "
            "from its Y; add moves in a second direction (e.g. +x and +y)"
        )

    shifts_cr = shifts[:, ::-1]
    design = np.column_stack([moves, np.ones(len(moves))]) if fit_offset else moves
    # shifts_cr = moves @ inv(M).T (+ offset)
    solution, *_ = np.linalg.lstsq(design, shifts_cr, rcond=None)
    stage_to_pixel = solution[:2].T
    misfit = shifts_cr - design @ solution
    residual = float(np.sqrt(np.mean(np.sum(misfit**2, axis=1))))
    det = float(np.linalg.det(stage_to_pixel))
    norm = float(np.abs(stage_to_pixel).max())
    if norm == 0 or abs(det) <= 1e-9 * norm * norm:
        raise ValueError(
            "the image shifts do not follow the stage moves in two directions "
            "(they are zero or along one line): check that the XY stage really "
            "moves and that the camera sees a structured, in-focus sample"
        )
    return PixelCalibration(np.linalg.inv(stage_to_pixel), residual_px=residual)
