"""Residual in-plane rotation from 2D projections of the two stacks.

Wide-field and confocal maximum projections (band-passed) are correlated for
a range of trial rotations; the rotation with the highest normalised peak wins,
refined on a finer grid and by a parabola through the scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft
import scipy.ndimage

from correlate.registration.grid import centred_axis
from correlate.registration.preprocess import FFT_WORKERS, BandPass
from correlate.registration.transform import PairTransform, rotation_matrix
from correlate.registration.translation import correlation_peak

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass(frozen=True)
class RotationEstimate:
    """Best trial rotation and the 2D shift found with it.

    Attributes
    ----------
    rotation_deg : float
        Rotation of the refinement (confocal coordinates), degrees.
    shift_yx_um : ndarray
        Shift ``s`` with ``confocal(p + s) ~ widefield_projection(p)`` at it.
    score : float
        Normalised correlation peak at the best rotation.

    """

    rotation_deg: float
    shift_yx_um: NDArray[np.float64]
    score: float


def _sample_projection(
    projection: NDArray[np.float32],
    projection_pixel_um: tuple[float, float],
    transform: PairTransform,
    grid_shape: tuple[int, int],
    grid_pixel_um: tuple[float, float],
    fill: float,
) -> NDArray[np.float32]:
    """The wide-field projection on the (binned) confocal grid, bilinear."""
    ny_w, nx_w = projection.shape
    ny, nx = grid_shape
    dy, dx = grid_pixel_um
    to_index = np.diag([1 / projection_pixel_um[0], 1 / projection_pixel_um[1]])
    matrix = to_index @ transform.matrix_array @ np.diag([dy, dx])
    origin = np.array([centred_axis(ny, dy)[0], centred_axis(nx, dx)[0]])
    offset = to_index @ (
        transform.matrix_array @ origin + transform.translation_array[1:]
    ) + np.array([(ny_w - 1) / 2, (nx_w - 1) / 2])
    out: NDArray[np.float32] = scipy.ndimage.affine_transform(
        projection,
        matrix,
        offset,
        output_shape=grid_shape,
        order=1,
        mode="constant",
        cval=fill,
        prefilter=False,
    )
    return out


def estimate_rotation(
    widefield_projection: NDArray[np.float32],
    widefield_pixel_um: tuple[float, float],
    confocal_projection: NDArray[np.float32],
    confocal_pixel_um: tuple[float, float],
    initial: PairTransform,
    *,
    band: BandPass,
    max_rotation_deg: float,
    max_shift_um: float,
) -> RotationEstimate:
    """Search the residual rotation between two projections.

    Parameters
    ----------
    widefield_projection : ndarray
        (y, x) projection of the wide-field stack.
    widefield_pixel_um : tuple of float
        Its (dy, dx).
    confocal_projection : ndarray
        (y, x) projection of the (binned) confocal stack: the grid searched on.
    confocal_pixel_um : tuple of float
        Its (dy, dx).
    initial : PairTransform
        Transform before the refinement.
    band : BandPass
        Band-pass applied to both projections.
    max_rotation_deg : float
        Rotations within +- this are tried.
    max_shift_um : float
        Lateral search window for the shift, um.

    Returns
    -------
    RotationEstimate
        The rotation with the best correlation, and its shift.

    """
    shape = confocal_projection.shape
    fill = float(np.median(widefield_projection))
    gain = band.gain(shape, confocal_pixel_um)
    fixed = scipy.fft.rfft2(confocal_projection, workers=FFT_WORKERS) * gain
    window_px = (
        max_shift_um / confocal_pixel_um[0],
        max_shift_um / confocal_pixel_um[1],
    )

    def trial(angle: float) -> tuple[float, NDArray[np.float64]]:
        refinement = PairTransform.from_arrays(rotation_matrix(angle), [0, 0, 0])
        moving = _sample_projection(
            widefield_projection,
            widefield_pixel_um,
            initial.then_before(refinement),
            (shape[0], shape[1]),
            confocal_pixel_um,
            fill,
        )
        spectrum = scipy.fft.rfft2(moving, workers=FFT_WORKERS) * gain
        peak = correlation_peak(
            fixed, spectrum, (shape[0], shape[1]), max_shift_px=window_px, upsample=1
        )
        return peak.score, peak.shift_px * np.asarray(confocal_pixel_um)

    scores: dict[float, tuple[float, NDArray[np.float64]]] = {}
    step = 1.0
    centre = 0.0
    half = float(np.ceil(max_rotation_deg))
    for _ in range(3):
        angles = np.round(np.arange(centre - half, centre + half + 1e-9, step), 6)
        for angle in angles:
            if float(angle) not in scores:
                scores[float(angle)] = trial(float(angle))
        centre = max(scores, key=lambda a: scores[a][0])
        half = step
        step /= 4
    best = centre
    ordered = sorted(scores)
    i = ordered.index(best)
    angle = best
    if 0 < i < len(ordered) - 1:
        a0, a1, a2 = ordered[i - 1], best, ordered[i + 1]
        s0, s1, s2 = scores[a0][0], scores[a1][0], scores[a2][0]
        if np.isclose(a1 - a0, a2 - a1):
            denominator = s0 - 2 * s1 + s2
            if denominator < 0:
                angle = a1 + 0.5 * (s0 - s2) / denominator * (a1 - a0)
    return RotationEstimate(
        rotation_deg=float(angle), shift_yx_um=scores[best][1], score=scores[best][0]
    )
