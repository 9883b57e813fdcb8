"""Defocus-dependent optical transfer functions on one frame's Fourier grid.

For each tabulated defocus the PSF kernel is wrapped onto the (periodic) render
grid and Fourier transformed once. Out of focus, a wide-field OTF only keeps low
frequencies and a confocal one fades altogether, so each OTF is stored cropped
to the frequencies where it exceeds a small threshold: summing a layer's
contribution then costs only the area that matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.typing import NDArray

from acquire.sim.psf import DZ_FINE_UM, OpticalSetup, psf_kernels


@dataclass(frozen=True)
class OTFBlock:
    """An OTF cropped to ``|row frequency| <= rows`` and ``column <= cols``.

    ``low`` holds rfft rows ``0..rows`` and ``high`` rows ``ny-rows..ny-1`` (empty
    when the crop covers every row, then ``low`` is the full array).
    """

    rows: int
    cols: int
    low: NDArray[np.float32]
    high: NDArray[np.float32]

    @property
    def is_empty(self) -> bool:
        """True when nothing of this OTF exceeds the threshold."""
        return self.low.size == 0


def _wrap_kernel(
    kernel: NDArray[np.float32], shape: tuple[int, int]
) -> NDArray[np.float64]:
    """Place a centred kernel with its centre at index (0, 0), folding periodically."""
    ny, nx = shape
    size_y, size_x = kernel.shape
    rows = (np.arange(size_y) - size_y // 2) % ny
    cols = (np.arange(size_x) - size_x // 2) % nx
    out = np.zeros(shape, np.float64)
    np.add.at(out, (rows[:, None], cols[None, :]), kernel)
    return out


def _crop(otf: NDArray[np.float64], threshold: float) -> OTFBlock:
    """Crop to where ``|otf| > threshold``, always keeping the zero frequency.

    The zero frequency carries a layer's total flux; even when a far layer's
    structure is negligible its haze is not, so it stays unless it is tiny.
    """
    ny = otf.shape[0]
    above = np.abs(otf) > threshold
    above[0, 0] = abs(otf[0, 0]) > threshold * 1e-3
    if not above.any():
        empty = np.zeros((0, 0), np.float32)
        return OTFBlock(0, -1, empty, empty)
    row_freq = np.abs(scipy.fft.fftfreq(ny, 1.0 / ny)).astype(int)
    rows = int(row_freq[above.any(axis=1)].max())
    cols = int(np.flatnonzero(above.any(axis=0)).max())
    if 2 * rows + 1 >= ny:
        return OTFBlock(
            ny,
            cols,
            otf[:, : cols + 1].astype(np.float32),
            np.zeros((0, 0), np.float32),
        )
    low = otf[: rows + 1, : cols + 1].astype(np.float32)
    high = (
        otf[ny - rows :, : cols + 1].astype(np.float32)
        if rows
        else np.zeros((0, cols + 1), np.float32)
    )
    return OTFBlock(rows, cols, low, high)


def _zero_frequency_only(block: OTFBlock) -> OTFBlock:
    """The block reduced to its zero frequency: uniform haze of the same flux."""
    empty = np.zeros((0, 0), np.float32)
    if block.is_empty:
        return block
    return OTFBlock(0, 0, block.low[:1, :1].copy(), empty)


class DefocusOTF:
    """Cropped OTFs of one optical setup on one render grid.

    Parameters
    ----------
    setup : OpticalSetup
        Optics and pixel size.
    grid_shape : tuple of int
        (ny, nx) of the padded render grid.
    threshold : float, optional
        Relative magnitude (to the in-focus zero frequency) below which an OTF
        value is dropped.

    """

    def __init__(
        self,
        setup: OpticalSetup,
        grid_shape: tuple[int, int],
        *,
        threshold: float = 5e-3,
    ) -> None:
        self.setup = setup
        self.grid_shape = grid_shape
        dz_values, kernels = psf_kernels(setup)
        self.dz_um = dz_values
        otfs = [scipy.fft.rfft2(_wrap_kernel(k, grid_shape)).real for k in kernels]
        reference = abs(otfs[0][0, 0])
        self.blocks = tuple(_crop(otf, threshold * reference) for otf in otfs)
        self.in_focus_dc = reference
        self.haze = _zero_frequency_only(self.blocks[-1])

    def terms(self, dz_um: float) -> list[tuple[float, OTFBlock]]:
        """The weighted table entries whose sum is the OTF at defocus ``dz_um``.

        Exactly tabulated defocus values give one term; others interpolate
        linearly between the two neighbours. Beyond the table only the zero
        frequency of the last entry remains: uniform haze of the right flux.
        """
        distance = abs(dz_um)
        table = self.dz_um
        if distance >= table[-1]:
            return [(1.0, self.haze)]
        upper = int(np.searchsorted(table, distance - 1e-9))
        if abs(table[upper] - distance) < 1e-6 * DZ_FINE_UM:
            return [(1.0, self.blocks[upper])]
        lower = upper - 1
        t = (distance - table[lower]) / (table[upper] - table[lower])
        return [(1.0 - t, self.blocks[lower]), (t, self.blocks[upper])]
