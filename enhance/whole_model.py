"""The whole enhancement model as one torch module, for one stack shape.

`Enhancer` runs the model as numpy steps around the networks: percentile
normalisation, the learned linear Fourier filter (:mod:`enhance.transfer`),
the fine U-Net tile by tile, the coarse stage's block means, its correction
interpolated back, and the inverse normalisation. `WholeModel` is the same
computation in one torch graph for a fixed ``(z, y, x)`` input shape, so a
single file (TorchScript, see :mod:`enhance.export`) carries the model to
another tool. It runs the fine network on the whole stack at once, which is
what `Enhancer` does with one tile (``tile_shape`` at least the padded
stack): its output equals that within float32 rounding.

What depends on the shape is computed once, when the module is built: the
filter's gains on the padded FFT grid and the reflect padding indices
(numpy's ``mode="reflect"``, which unlike torch's allows pads longer than
the stack).

Units: the input and the output are raw intensities; in between,
normalised units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from enhance.errors import EnhanceError
from enhance.predict import single_tile_padding
from enhance.transfer import padded_shape

if TYPE_CHECKING:
    from enhance.checkpoint import Checkpoint
    from enhance.unet import UNetConfig

__all__ = ["MAX_QUANTILE_VOXELS", "WholeModel"]

MAX_QUANTILE_VOXELS = 2**24
"""Largest stack `torch.quantile` takes (its input size limit)."""


def _reflect_indices(size: int, front: int, back: int) -> torch.Tensor:
    """Indices that pad an axis of ``size`` like ``numpy.pad(mode="reflect")``."""
    index = np.pad(np.arange(size), (front, back), mode="reflect")
    return torch.from_numpy(index.astype(np.int64))


def _edge_indices(size: int, back: int) -> torch.Tensor:
    """Indices that extend an axis at its end by repeating the edge voxel."""
    index = np.concatenate([np.arange(size), np.full(back, size - 1)])
    return torch.from_numpy(index.astype(np.int64))


class _PaddedNetwork(nn.Module):
    """A U-Net run on one whole ``(c, z, y, x)`` stack, as a single tile."""

    index_z: torch.Tensor
    index_y: torch.Tensor
    index_x: torch.Tensor

    def __init__(
        self, network: nn.Module, config: UNetConfig, shape: tuple[int, int, int]
    ) -> None:
        super().__init__()
        self.network = network
        pads = [
            single_tile_padding(size, halo, multiple)
            for size, halo, multiple in zip(
                shape, config.receptive_radius, config.shape_multiple, strict=True
            )
        ]
        z, y, x = (
            _reflect_indices(size, front, back)
            for size, (front, back) in zip(shape, pads, strict=True)
        )
        self.register_buffer("index_z", z)
        self.register_buffer("index_y", y)
        self.register_buffer("index_x", x)
        self.halo = (pads[0][0], pads[1][0], pads[2][0])
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(1, c, z, y, x)`` in, ``(1, 1, z, y, x)`` out."""
        padded = x.index_select(2, self.index_z)
        padded = padded.index_select(3, self.index_y)
        padded = padded.index_select(4, self.index_x)
        out: torch.Tensor = self.network(padded)
        hz, hy, hx = self.halo
        nz, ny, nx = self.shape
        return out[:, :1, hz : hz + nz, hy : hy + ny, hx : hx + nx]


class WholeModel(nn.Module):
    """Raw wide-field stack in, enhanced stack out, in one torch graph.

    Parameters
    ----------
    checkpoint : Checkpoint
        The trained model.
    shape : tuple of int
        ``(z, y, x)`` of the stacks it will take (on the model's voxel grid).

    Raises
    ------
    EnhanceError
        A stack too large for `torch.quantile` (`MAX_QUANTILE_VOXELS`).

    """

    gains: torch.Tensor | None
    edge_z: torch.Tensor
    edge_y: torch.Tensor
    edge_x: torch.Tensor

    def __init__(self, checkpoint: Checkpoint, shape: tuple[int, int, int]) -> None:
        super().__init__()
        nz, ny, nx = (int(s) for s in shape)
        if min(nz, ny, nx) < 1:
            raise EnhanceError(f"stack shape {shape} must be positive")
        if nz * ny * nx > MAX_QUANTILE_VOXELS:
            raise EnhanceError(
                f"a {nz} x {ny} x {nx} stack has more than {MAX_QUANTILE_VOXELS} "
                "voxels, torch.quantile's limit for the normalisation",
                "export for a smaller tile of the stack and enhance tile by tile",
            )
        self.shape = (nz, ny, nx)
        norm = checkpoint.normalization
        self.quantiles = (norm.low_percentile / 100.0, norm.high_percentile / 100.0)
        self.min_range = float(norm.min_range)
        transfer = checkpoint.transfer
        self.register_buffer("gains", None)  # a model without the filter
        self.padded = (1, 1, 1)
        self.dc_gain = 0.0
        if transfer is not None:
            padded = padded_shape(self.shape)
            gains = torch.from_numpy(
                np.ascontiguousarray(
                    transfer.gains_on(padded, transfer.voxel_size_um),
                    dtype=np.complex128,
                )
            )
            self.register_buffer("gains", gains)
            self.padded = padded
            self.dc_gain = transfer.dc_gain()
        fine = checkpoint.build_model("cpu").eval()
        self.fine = _PaddedNetwork(fine, checkpoint.unet, self.shape)
        coarse = checkpoint.coarse
        self.coarse: _PaddedNetwork | None
        if coarse is not None:
            factor = coarse.config.factor
            self.factor = (int(factor[0]), int(factor[1]), int(factor[2]))
            extra = [(-s) % f for s, f in zip(self.shape, self.factor, strict=True)]
            self.register_buffer("edge_z", _edge_indices(nz, extra[0]))
            self.register_buffer("edge_y", _edge_indices(ny, extra[1]))
            self.register_buffer("edge_x", _edge_indices(nx, extra[2]))
            coarse_shape = (
                (nz + extra[0]) // self.factor[0],
                (ny + extra[1]) // self.factor[1],
                (nx + extra[2]) // self.factor[2],
            )
            self.coarse = _PaddedNetwork(
                coarse.build_model("cpu").eval(), coarse.config.unet, coarse_shape
            )
        else:
            self.factor = (1, 1, 1)
            self.coarse = None

    def _filtered(self, normalised: torch.Tensor) -> torch.Tensor:
        """The learned linear filter (`TransferFunction.apply`) in torch.

        In float64: ONNX Runtime's DFT on these non-power-of-two lengths
        loses about 1e-4 of the output range in float32.
        """
        data = normalised.double()
        mean = data.mean()
        spectrum = torch.fft.rfftn(data - mean, s=self.padded)
        assert self.gains is not None  # only called for a model with a filter
        out = torch.fft.irfftn(spectrum * self.gains, s=self.padded)
        nz, ny, nx = self.shape
        filtered: torch.Tensor = (out[:nz, :ny, :nx] + mean * self.dc_gain).float()
        return filtered

    def _block_mean(self, x: torch.Tensor) -> torch.Tensor:
        """`enhance.coarse.block_mean` of ``(1, c, z, y, x)``."""
        x = x.index_select(2, self.edge_z)
        x = x.index_select(3, self.edge_y)
        x = x.index_select(4, self.edge_x)
        means: torch.Tensor = F.avg_pool3d(
            x, kernel_size=self.factor, stride=self.factor
        )
        return means

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        """Enhance one stack.

        Parameters
        ----------
        stack : Tensor
            ``(1, 1, z, y, x)`` float32 raw intensities of the built shape.

        Returns
        -------
        Tensor
            ``(1, 1, z, y, x)`` enhanced, on the input's intensity scale.

        """
        raw = stack[0, 0]
        levels = torch.quantile(
            raw.flatten(),
            torch.tensor(self.quantiles, dtype=raw.dtype),
        )
        low = levels[0]
        span = torch.clamp(levels[1] - low, min=self.min_range)
        normalised = (raw - low) / span
        if self.gains is not None:
            channels = torch.stack([normalised, self._filtered(normalised)])
        else:
            channels = normalised[None]
        x = channels[None]
        fine = self.fine(x)
        if self.coarse is not None:
            coarse_in = self._block_mean(torch.cat([x, fine], dim=1))
            corrected = self.coarse(coarse_in)
            correction = F.interpolate(
                corrected - coarse_in[:, -1:],
                scale_factor=(
                    float(self.factor[0]),
                    float(self.factor[1]),
                    float(self.factor[2]),
                ),
                mode="trilinear",
                align_corners=False,
            )
            nz, ny, nx = self.shape
            fine = fine + correction[:, :, :nz, :ny, :nx]
        enhanced: torch.Tensor = fine * span + low
        return enhanced
