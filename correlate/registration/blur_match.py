"""Give the confocal stack the wide field's axial blur before comparing them.

A wide-field stack sees each structure over a longer stretch of z than a
confocal one (no optical sectioning, a longer point spread function). Two
volumes that differ like this, compared over a finite stack or cut into
slabs, do not correlate best where they are aligned: the part of the wide
field's longer response that a stack end or a slab boundary cuts away pulls
the peak (measured: 0.04-0.1 um per slab, and 5 % of axial scale, on pairs
from an independent renderer). Blurring the confocal stack along z until it
correlates best with the aligned wide-field stack makes the two responses
alike, and the pull cancels. The blur is chosen from the data, so nothing is
assumed about either microscope's optics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from correlate.registration.preprocess import blur_separable

if TYPE_CHECKING:
    from numpy.typing import NDArray

AXIAL_SIGMAS_UM = (0.0, 0.2, 0.35, 0.5, 0.7, 0.9, 1.2, 1.6, 2.0, 2.5, 3.2)
"""Axial Gaussian blurs tried (um); the best is refined by a parabola."""


def blur_axially(
    volume: NDArray[np.float32], sigma_um: float, dz_um: float
) -> NDArray[np.float32]:
    """``volume`` convolved along z with a Gaussian (zero beyond its ends).

    Parameters
    ----------
    volume : ndarray
        (z, y, x) band-passed volume (zero mean, so zero is its neutral value
        beyond the stack).
    sigma_um : float
        Gaussian sigma along z, um (0: unchanged).
    dz_um : float
        Plane spacing, um.

    Returns
    -------
    ndarray of float32
        The blurred volume.

    """
    if sigma_um <= 0:
        return volume
    return blur_separable(np.asarray(volume, np.float32), (sigma_um / dz_um, 0.0, 0.0))


def _ncc(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Normalised correlation of two zero-mean volumes (b zero outside its mask)."""
    x = a.ravel()
    y = b.ravel()
    denominator = float(np.sqrt(float(x @ x) * float(y @ y)))
    return float(x @ y) / denominator if denominator > 0 else 0.0


def matching_axial_blur_um(
    confocal: NDArray[np.float32],
    widefield: NDArray[np.float32],
    mask: NDArray[np.bool_],
    dz_um: float,
    *,
    sigmas_um: tuple[float, ...] = AXIAL_SIGMAS_UM,
) -> float:
    """The axial blur of the confocal stack that best matches the wide field.

    Parameters
    ----------
    confocal, widefield : ndarray
        (z, y, x) band-passed volumes on one grid, roughly aligned.
    mask : ndarray of bool
        Voxels the wide-field volume covers.
    dz_um : float
        Plane spacing, um.
    sigmas_um : tuple of float
        Increasing blurs to try.

    Returns
    -------
    float
        Gaussian sigma along z (um) maximising the normalised correlation of
        the blurred confocal and the wide-field volume over ``mask``.

    """
    if not mask.any():
        return 0.0
    # every other row and column: the blur is along z, and a quarter of the
    # voxels judge the correlation as well
    inside = np.ascontiguousarray(mask[:, ::2, ::2], dtype=np.float32)
    sub_confocal = np.ascontiguousarray(confocal[:, ::2, ::2])
    sub_widefield = np.ascontiguousarray(widefield[:, ::2, ::2]) * inside
    scores = np.array(
        [
            _ncc(blur_axially(sub_confocal, s, dz_um) * inside, sub_widefield)
            for s in sigmas_um
        ]
    )
    best = int(np.argmax(scores))
    if 0 < best < len(sigmas_um) - 1:
        s0, s1, s2 = sigmas_um[best - 1 : best + 2]
        y0, y1, y2 = scores[best - 1 : best + 2]
        # vertex of the parabola through three unevenly spaced points
        denominator = (s0 - s1) * (s0 - s2) * (s1 - s2)
        a = (s2 * (y1 - y0) + s1 * (y0 - y2) + s0 * (y2 - y1)) / denominator
        b = (s2**2 * (y0 - y1) + s1**2 * (y2 - y0) + s0**2 * (y1 - y2)) / denominator
        if a < 0:
            return float(np.clip(-b / (2 * a), s0, s2))
    return float(sigmas_um[best])
