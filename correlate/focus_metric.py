"""Image sharpness for software autofocus, and the peak of a focus curve."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray


def sharpness(image: ArrayLike, *, smoothing_px: float = 1.5) -> float:
    """Gradient energy of a smoothed image: highest in focus.

    The image is smoothed first so shot and read noise do not dominate. A
    camera offset or flat background adds nothing (the gradient of a constant
    is zero). It is deliberately not divided by the mean brightness: a
    confocal image out of focus is dark, and dividing its noise by a
    near-zero mean would make it look sharper than the focused mark. (A
    wide-field image of a thin layer keeps its total brightness with defocus,
    so it needs no normalisation.)

    Parameters
    ----------
    image : array_like
        2-D image (any dtype; converted to float here).
    smoothing_px : float, optional
        Gaussian sigma applied before the gradient.

    Returns
    -------
    float
        The sharpness; only comparisons between images of one scene matter.

    """
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"sharpness needs a 2-D image, got shape {data.shape}")
    # no offset subtraction: the smoothing and the gradient ignore a constant
    if smoothing_px > 0:
        data = ndimage.gaussian_filter(data, smoothing_px)
    gy, gx = np.gradient(data)
    return float(np.mean(gx * gx + gy * gy))


def focus_peak(z_um: ArrayLike, metric: ArrayLike) -> tuple[float, bool]:
    """Sub-step position of a focus curve's maximum.

    A parabola is fitted through the best sample and its neighbours (in the
    logarithm of the metric, which makes a Gaussian-like peak a parabola).

    Parameters
    ----------
    z_um : array_like
        Focus positions, increasing.
    metric : array_like
        Sharpness at each position.

    Returns
    -------
    z_peak_um : float
        The estimated best focus.
    interior : bool
        False when the best sample is at either end of the scan: the true
        focus may lie outside it.

    """
    z: NDArray[np.float64] = np.asarray(z_um, dtype=np.float64)
    m: NDArray[np.float64] = np.asarray(metric, dtype=np.float64)
    if z.size != m.size or z.size < 3:
        raise ValueError("a focus curve needs at least 3 samples of z and metric")
    best = int(np.argmax(m))
    if best in (0, z.size - 1):
        return float(z[best]), False
    window = slice(best - 1, best + 2)
    logs = np.log(np.maximum(m[window], np.finfo(float).tiny))
    a, b, _ = np.polyfit(z[window], logs, 2)
    if a >= 0:
        return float(z[best]), True
    peak = -b / (2 * a)
    return float(np.clip(peak, z[best - 1], z[best + 1])), True
