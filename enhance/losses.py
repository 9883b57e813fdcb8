"""Training losses in normalised intensity units.

``"mse"`` and ``"l1"`` are the usual pixel losses. ``"mse+ssim"`` adds
``SSIM_WEIGHT * (1 - SSIM)``, the 3-D structural similarity of scikit-image's
default (7-voxel uniform window, K1 = 0.01, K2 = 0.03), with a fixed data range
in normalised units. SSIM's constants are fractions of the data range, so it
weighs errors in dim structure and background, where a confocal stack is
mostly dark, far more than the squared error does; the evaluation scores SSIM
against the whole confocal range, so the loss is told that range too.

Measured on the demo database (same U-Net, seed and 22 minutes of CPU; 5 test
pairs scored crop first, see ``enhance/models/README.md``): "mse" reached SSIM
0.954, "mse+ssim" only 0.937 (and 0.75 dB less PSNR), so "mse" is the default
of ``pairscope train``. Fine-tuning the bundled
model with ``SSIM_WEIGHT`` 0.05 did not help either (SSIM 0.964 -> 0.961): most
of the remaining SSIM deficit is in the faint cell body's local mean, which the
wide-field data do not determine at low lateral frequency (see
``enhance/models/README.md``). That part is the coarse stage's job
(:mod:`enhance.coarse`), trained with :func:`luminance_weighted_error` on block
means.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "LOSSES",
    "SSIM_WEIGHT",
    "LossName",
    "luminance_weighted_error",
    "make_loss",
    "ssim3d",
]

LossName = Literal["l1", "mse", "mse+ssim"]
LOSSES: tuple[LossName, ...] = ("l1", "mse", "mse+ssim")
SSIM_WEIGHT = 0.01
"""Weight of ``1 - SSIM`` next to the squared error (both ~1e-3 when trained)."""
_WINDOW = 7


def _as_5d(x: torch.Tensor) -> torch.Tensor:
    return x if x.dim() == 5 else x.unsqueeze(1)


def ssim3d(
    prediction: torch.Tensor, target: torch.Tensor, *, data_range: float
) -> torch.Tensor:
    """Mean 3-D SSIM of two batches (``(n, [1,] z, y, x)``), window 7 voxels.

    Only windows wholly inside the patch count (scikit-image crops the border
    the same way). Covariances use the sample (n - 1) normalisation, as
    scikit-image does by default.
    """
    x, y = _as_5d(prediction), _as_5d(target)
    n = _WINDOW**3
    correction = n / (n - 1)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mean_x = F.avg_pool3d(x, _WINDOW, stride=1)
    mean_y = F.avg_pool3d(y, _WINDOW, stride=1)
    var_x = correction * (F.avg_pool3d(x * x, _WINDOW, stride=1) - mean_x * mean_x)
    var_y = correction * (F.avg_pool3d(y * y, _WINDOW, stride=1) - mean_y * mean_y)
    cov = correction * (F.avg_pool3d(x * y, _WINDOW, stride=1) - mean_x * mean_y)
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov + c2)
    denominator = (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean()


def luminance_weighted_error(
    prediction: torch.Tensor, target: torch.Tensor, *, data_range: float
) -> torch.Tensor:
    """Mean squared error weighted as SSIM's luminance term weighs it.

    ``(p - t)^2 / (p^2 + t^2 + C1)`` with ``C1 = (0.01 * data_range)^2``:
    ``1 -`` SSIM's luminance factor of two local means ``p`` and ``t``. The
    weight is not differentiated (it only sets how much each voxel counts),
    so the gradient always points from ``p`` towards ``t``. Meant for local
    means, e.g. block-averaged stacks (:mod:`enhance.coarse_training`).
    """
    c1 = (0.01 * data_range) ** 2
    weight = 1.0 / (prediction.detach() ** 2 + target**2 + c1)
    return (weight * (prediction - target) ** 2).mean()


def make_loss(
    name: LossName, *, ssim_data_range: float = 1.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``(prediction, target) -> scalar`` called ``name``.

    Parameters
    ----------
    name : {"l1", "mse", "mse+ssim"}
        Which loss.
    ssim_data_range : float
        Data range SSIM's constants refer to (normalised units).

    """
    if name == "l1":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss

    def mse_ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ssim = ssim3d(prediction, target, data_range=ssim_data_range)
        return F.mse_loss(prediction, target) + SSIM_WEIGHT * (1 - ssim)

    return mse_ssim
