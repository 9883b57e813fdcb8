"""A CARE-like residual 3-D U-Net.

Two ``conv - ReLU`` layers per level, max pooling down, transposed convolution
(kernel = stride = pooling factor) up, skip connections by concatenation, no
normalisation layers (so a tile's output never depends on other tiles). With
``residual=True`` the network predicts a correction: ``output = input +
net(input)``, both in normalised intensity units (Weigert et al., Nat. Methods
15, 1090, 2018). With several input channels (the wide-field stack and its
learned linear filtering, :mod:`enhance.transfer`) the correction is added to
the last channel.

``pool_z=False`` pools only in y and x, for stacks with few planes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from enhance.errors import CheckpointError, EnhanceError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["UNet3D", "UNetConfig", "unet_with_weights"]


#: Widest first level a U-Net may have, and widest level at its bottom: far
#: beyond any model this project trains (8-16 channels at the top), small
#: enough that a checkpoint's metadata cannot ask for more than a few hundred
#: megabytes of weights (depth 4 from 64 channels: 90 M weights, 360 MB).
MAX_BASE_CHANNELS = 256
MAX_LEVEL_CHANNELS = 1024


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet3D`.

    Attributes
    ----------
    depth : int
        Number of pooling steps (0 gives a plain convolutional network).
    base_channels : int
        Feature channels at full resolution; doubled at every level.
    kernel_size : int
        Odd edge length of the convolution kernels.
    pool_z : bool
        Pool along z too (``False``: only along y and x).
    residual : bool
        Add the input (its last channel) to the network output.
    in_channels : int
        Input channels: 1 (the wide-field stack) or 2 (it and its filtering
        by a learned transfer function, in that order) for the fine network;
        one more (the fine prediction) for a coarse stage
        (:mod:`enhance.coarse`).

    """

    depth: int = 2
    base_channels: int = 16
    kernel_size: int = 3
    pool_z: bool = True
    residual: bool = True
    in_channels: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.in_channels <= 8:
            raise EnhanceError(f"in_channels {self.in_channels} outside 1..8")
        if not 0 <= self.depth <= 5:
            raise EnhanceError(f"U-Net depth {self.depth} outside 0..5")
        if not 1 <= self.base_channels <= MAX_BASE_CHANNELS:
            raise EnhanceError(
                f"base_channels {self.base_channels} outside 1..{MAX_BASE_CHANNELS}"
            )
        widest = self.base_channels * 2**self.depth
        if widest > MAX_LEVEL_CHANNELS:
            raise EnhanceError(
                f"base_channels {self.base_channels} at depth {self.depth} gives "
                f"{widest} channels at the bottom, more than {MAX_LEVEL_CHANNELS}"
            )
        if not 1 <= self.kernel_size <= 9 or self.kernel_size % 2 == 0:
            raise EnhanceError(f"kernel_size {self.kernel_size} must be odd, 1..9")

    @property
    def pool_factor(self) -> tuple[int, int, int]:
        """Pooling factor of one level along (z, y, x)."""
        return (2 if self.pool_z else 1, 2, 2)

    @property
    def shape_multiple(self) -> tuple[int, int, int]:
        """Input sizes along (z, y, x) must be multiples of these."""
        return (
            self.pool_factor[0] ** self.depth,
            2**self.depth,
            2**self.depth,
        )

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        """Voxels beyond which an input cannot change an output, per axis.

        Sum over all convolutions of their half width times the pooling scale
        of their level, plus the offset a pooling grid can add.
        """
        half = self.kernel_size // 2
        radius = []
        for factor in self.pool_factor:
            scales = [factor**level for level in range(self.depth)]
            conv = half * (4 * sum(scales) + 2 * factor**self.depth)
            radius.append(conv + factor**self.depth - 1)
        return (radius[0], radius[1], radius[2])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``EnhanceError``."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise EnhanceError(f"unknown U-Net settings {sorted(unknown)}")
        return cls(**data)


def _conv_block(in_ch: int, out_ch: int, kernel_size: int) -> nn.Sequential:
    pad = kernel_size // 2
    return nn.Sequential(
        nn.Conv3d(in_ch, out_ch, kernel_size, padding=pad),
        nn.ReLU(inplace=True),
        nn.Conv3d(out_ch, out_ch, kernel_size, padding=pad),
        nn.ReLU(inplace=True),
    )


class UNet3D(nn.Module):
    """3-D U-Net from ``(batch, in_channels, z, y, x)`` to ``(batch, 1, z, y, x)``.

    Parameters
    ----------
    config : UNetConfig
        Architecture.

    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        k, c = config.kernel_size, config.base_channels
        pool = config.pool_factor
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        self.decode = nn.ModuleList()
        channels = [c * 2**level for level in range(config.depth + 1)]
        previous = config.in_channels
        for level in range(config.depth):
            self.down.append(_conv_block(previous, channels[level], k))
            previous = channels[level]
        self.pool = nn.MaxPool3d(pool, stride=pool)
        self.bottom = _conv_block(previous, channels[config.depth], k)
        for level in reversed(range(config.depth)):
            self.up.append(
                nn.ConvTranspose3d(
                    channels[level + 1], channels[level], pool, stride=pool
                )
            )
            self.decode.append(_conv_block(2 * channels[level], channels[level], k))
        self.head = nn.Conv3d(channels[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhanced stack(s) in normalised units."""
        multiple = self.config.shape_multiple
        if any(s % m for s, m in zip(x.shape[2:], multiple, strict=True)):
            raise EnhanceError(
                f"input shape {tuple(x.shape[2:])} is not a multiple of {multiple}",
                "pad the input (enhance.predict does this)",
            )
        skips = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for up, block in zip(self.up, self.decode, strict=True):
            h = up(h)
            h = block(torch.cat([h, skips.pop()], dim=1))
        out: torch.Tensor = self.head(h)
        return x[:, -1:] + out if self.config.residual else out

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())


def unet_with_weights(
    config: UNetConfig,
    state_dict: Mapping[str, torch.Tensor],
    device: torch.device | str = "cpu",
    *,
    what: str = "weights",
) -> UNet3D:
    """A :class:`UNet3D` with ``state_dict`` loaded, in eval mode, on ``device``.

    Raises
    ------
    CheckpointError
        If the weights do not fit the architecture (``what`` names them).

    """
    model = UNet3D(config)
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"the {what} do not fit the recorded architecture ({first})",
            "the file was edited or written by a different program; re-train",
        ) from exc
    return model.to(device).eval()
