"""The coarse stage: a second U-Net that corrects the fine prediction's local means.

The fine U-Net sees about 2 um laterally. A confocal stack of a cell also holds
a faint, diffuse body (cytoplasm) several micrometres deep and tens wide. Its
low lateral frequencies lie in the wide-field OTF's missing cone, so the
wide-field data do not fix its axial extent there; a model has to infer it
from the cell's outline, over a whole cell. The fine prediction renders it too
dim, and SSIM, whose constants are fractions of the confocal's bright maximum,
weighs exactly such faint local means heavily (``enhance/models/README.md``).

The coarse stage works on the stacks block-averaged by ``factor`` (``(1, 4, 4)``
by default: every plane, 4 x 4 pixels per block). Its U-Net takes the
down-sampled wide-field stack, its linear filtering and the fine prediction
(three channels) and, residually, corrects the last: the down-sampled
prediction. The correction is interpolated back onto the full grid (linear
along each axis) and added to the fine prediction, so the stage changes low
spatial frequencies only. At a quarter of the lateral sampling the same
network depth sees four times as far: a depth-3 U-Net covers about 20 um
laterally.

It is trained after the fine network, whose weights stay fixed
(:mod:`enhance.coarse_training`), and travels in the same checkpoint.
Units: normalised intensities throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from enhance.errors import EnhanceError
from enhance.unet import UNet3D, UNetConfig, unet_with_weights

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

__all__ = [
    "CoarseStage",
    "CoarseStageConfig",
    "block_mean",
    "coarse_input",
    "upsample_correction",
]


def _default_unet() -> UNetConfig:
    return UNetConfig(depth=3, base_channels=16, in_channels=3, pool_z=True)


@dataclass(frozen=True)
class CoarseStageConfig:
    """Architecture of a coarse stage.

    Attributes
    ----------
    factor : tuple of int
        Block size ``(z, y, x)`` of the down-sampling, in voxels.
    unet : UNetConfig
        The coarse network; ``in_channels`` must be the fine network's plus 1
        (the fine prediction) and ``residual`` must be on.

    """

    factor: tuple[int, int, int] = (1, 4, 4)
    unet: UNetConfig = field(default_factory=_default_unet)

    def __post_init__(self) -> None:
        if len(self.factor) != 3 or min(self.factor) < 1:
            raise EnhanceError(
                f"coarse factor {self.factor} must be three positive integers"
            )
        if not self.unet.residual:
            raise EnhanceError("the coarse stage's U-Net must be residual")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary."""
        return {"factor": list(self.factor), "unet": self.unet.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CoarseStageConfig:
        """Inverse of :meth:`to_dict`."""
        factor = tuple(int(v) for v in data["factor"])
        if len(factor) != 3:
            raise EnhanceError(f"coarse factor {factor} does not have 3 entries")
        return cls(
            factor=(factor[0], factor[1], factor[2]),
            unet=UNetConfig.from_dict(dict(data["unet"])),
        )


@dataclass(frozen=True, eq=False)
class CoarseStage:
    """A trained coarse stage: architecture, weights and how it was trained.

    Attributes
    ----------
    config : CoarseStageConfig
        Architecture.
    state_dict : mapping of str to torch.Tensor
        Weights (on the CPU).
    training : dict
        JSON-safe record of its training (settings, losses, time, seed).

    """

    config: CoarseStageConfig
    state_dict: Mapping[str, torch.Tensor]
    training: Mapping[str, Any] = field(default_factory=dict)

    def build_model(self, device: torch.device | str = "cpu") -> UNet3D:
        """The coarse network with these weights, in eval mode, on ``device``.

        Raises
        ------
        CheckpointError
            If the weights do not fit the architecture.

        """
        return unet_with_weights(
            self.config.unet, self.state_dict, device, what="coarse stage's weights"
        )

    def metadata(self) -> dict[str, Any]:
        """Everything but the weights, JSON-safe."""
        return {"config": self.config.to_dict(), "training": dict(self.training)}


def block_mean(
    stack: NDArray[np.float32], factor: tuple[int, int, int]
) -> NDArray[np.float32]:
    """Mean over ``factor``-sized blocks of the last three axes.

    Axes whose size is not a multiple of the factor are first extended at the
    end by repeating the edge voxel.

    Parameters
    ----------
    stack : ndarray
        ``([c,] z, y, x)`` array.
    factor : tuple of int
        Block size ``(z, y, x)``.

    Returns
    -------
    ndarray of float32
        ``([c,] ceil(z / fz), ceil(y / fy), ceil(x / fx))``.

    """
    data = np.asarray(stack, dtype=np.float32)
    lead = data.shape[:-3]
    spatial = data.shape[-3:]
    extra = [(-s) % f for s, f in zip(spatial, factor, strict=True)]
    if any(extra):
        data = np.pad(data, [(0, 0)] * len(lead) + [(0, e) for e in extra], mode="edge")
    coarse = [(s + e) // f for s, e, f in zip(spatial, extra, factor, strict=True)]
    blocks = data.reshape(
        *lead,
        coarse[0],
        factor[0],
        coarse[1],
        factor[1],
        coarse[2],
        factor[2],
    )
    n = len(lead)
    means = blocks.mean(axis=(n + 1, n + 3, n + 5), dtype=np.float64)
    return np.ascontiguousarray(means, dtype=np.float32)


def coarse_input(
    network_input: NDArray[np.float32],
    fine: NDArray[np.float32],
    factor: tuple[int, int, int],
) -> NDArray[np.float32]:
    """``(channels + 1, z', y', x')`` input of the coarse network.

    Parameters
    ----------
    network_input : ndarray
        The fine network's ``(channels, z, y, x)`` input.
    fine : ndarray
        The fine network's ``(z, y, x)`` prediction (the last channel here,
        the one the residual coarse network corrects).
    factor : tuple of int
        Block size.

    """
    if network_input.ndim != 4 or network_input.shape[1:] != fine.shape:
        raise EnhanceError(
            f"network input {network_input.shape} and fine prediction "
            f"{fine.shape} do not match"
        )
    return block_mean(np.concatenate([network_input, fine[None]]), factor)


def upsample_correction(
    correction: NDArray[np.float32],
    factor: tuple[int, int, int],
    shape: tuple[int, ...],
) -> NDArray[np.float32]:
    """A coarse ``(z', y', x')`` correction interpolated onto the full grid.

    Linear interpolation along each axis between block centres (edges held
    constant beyond the outermost centres), cut to ``shape``.
    """
    with torch.no_grad():
        tensor = torch.from_numpy(np.ascontiguousarray(correction, np.float32))
        up = F.interpolate(
            tensor[None, None],
            scale_factor=tuple(float(f) for f in factor),
            mode="trilinear",
            align_corners=False,
        )[0, 0]
    nz, ny, nx = shape[-3:]
    return np.ascontiguousarray(up[:nz, :ny, :nx].numpy(), dtype=np.float32)
