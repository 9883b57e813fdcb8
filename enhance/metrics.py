"""Image quality metrics of an enhanced stack against its confocal partner.

The three methods compared (raw wide-field, Richardson-Lucy, the model) put
out stacks on different intensity scales. Before scoring, each is matched to
the confocal by the least-squares affine map ``a * prediction + b`` (the best
any global gain and offset could do), so no method wins or loses by its
scale. Then, with ``data_range`` = max - min of the confocal:

- PSNR = 10 log10(data_range^2 / MSE) (scikit-image),
- SSIM = 3-D structural similarity, 7-voxel window (scikit-image),
- NRMSE = RMSE / data_range,
- Pearson r (unaffected by the affine match).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["ImageMetrics", "image_metrics", "match_intensity"]


@dataclass(frozen=True)
class ImageMetrics:
    """Scores of one stack against its reference (higher is better except NRMSE)."""

    psnr_db: float
    ssim: float
    nrmse: float
    pearson_r: float

    def to_dict(self) -> dict[str, float]:
        """JSON-safe dictionary."""
        return asdict(self)


def match_intensity(prediction: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
    """``a * prediction + b`` with ``a, b`` minimising the squared error to ``target``.

    A constant prediction is matched to the target's mean.
    """
    p = np.asarray(prediction, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    p_mean, t_mean = p.mean(), t.mean()
    dp = p - p_mean
    var = float(np.mean(dp * dp))
    gain = float(np.mean(dp * (t - t_mean))) / var if var > 0 else 0.0
    result: NDArray[np.float64] = gain * dp + t_mean
    return result


def image_metrics(
    prediction: ArrayLike, target: ArrayLike, *, match: bool = True
) -> ImageMetrics:
    """PSNR, SSIM, NRMSE and Pearson r of ``prediction`` against ``target``.

    Parameters
    ----------
    prediction, target : array_like
        Stacks of equal shape; for SSIM each axis needs >= 7 voxels.
    match : bool
        Affinely match ``prediction`` to ``target`` first (see module notes).

    Returns
    -------
    ImageMetrics

    Raises
    ------
    EnhanceError
        On shape mismatch, a too-small stack or a constant target.

    """
    t = np.asarray(target, dtype=np.float64)
    p = np.asarray(prediction, dtype=np.float64)
    if p.shape != t.shape:
        raise EnhanceError(f"prediction {p.shape} and target {t.shape} differ in shape")
    if min(t.shape) < 7:
        raise EnhanceError(
            f"stacks of shape {t.shape} are too small for SSIM (7 voxels per axis)"
        )
    data_range = float(t.max() - t.min())
    if data_range <= 0:
        raise EnhanceError("the target stack is constant; no metric is defined")
    if match:
        p = match_intensity(p, t)
    mse = float(np.mean((p - t) ** 2))
    psnr = (
        float(peak_signal_noise_ratio(t, p, data_range=data_range))
        if mse > 0
        else float("inf")
    )
    ssim = float(structural_similarity(t, p, data_range=data_range, channel_axis=None))
    dp, dt = p - p.mean(), t - t.mean()
    denom = float(np.sqrt(np.sum(dp * dp) * np.sum(dt * dt)))
    pearson = float(np.sum(dp * dt) / denom) if denom > 0 else 0.0
    return ImageMetrics(
        psnr_db=psnr,
        ssim=ssim,
        nrmse=float(np.sqrt(mse)) / data_range,
        pearson_r=pearson,
    )
