"""Defocus-dependent optical transfer functions on one frame's Fourier grid.

For each tabulated defocus the PSF kernel is wrapped onto the (periodic) render
grid and Fourier transformed once. Out of focus, a wide-field OTF only keeps low
frequencies and a confocal one fades altogether, so each OTF is stored cropped
to the frequencies where it exceeds a small threshold: summing a layer's
contribution then costs only the area that matters.

:class:`DefocusOTF` serves index-matched optics (a kernel per ``|dz|``);
:class:`DepthOTF` serves a mismatched sample or a measured PSF: per-depth-bin
tables against signed defocus (:mod:`acquire.sim.depth_psf`), transformed when
a field first needs a bin and kept in a size-bounded LRU.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, NDArray

from acquire.sim.depth_psf import DEPTH_BIN_UM, depth_bin, depth_kernels
from acquire.sim.focal_shift import focal_shift
from acquire.sim.psf import DZ_FINE_UM, OpticalSetup, psf_kernels

_NEAREST_STEP_UM = 2 * DZ_FINE_UM
OTFArray: TypeAlias = NDArray[np.inexact[Any]]
"""A cropped OTF: real for mirror-symmetric kernels, complex otherwise."""
DEPTH_OTF_BUDGET_BYTES = 640 * 2**20
"""Memory a DepthOTF may hold in transformed depth bins (least recently used go,
never the bins of the field being rendered)."""


@dataclass(frozen=True)
class OTFBlock:
    """An OTF cropped to ``|row frequency| <= rows`` and ``column <= cols``.

    ``low`` holds rfft rows ``0..rows`` and ``high`` rows ``ny-rows..ny-1`` (empty
    when the crop covers every row, then ``low`` is the full array).
    """

    rows: int
    cols: int
    low: OTFArray
    high: OTFArray

    @property
    def nbytes(self) -> int:
        """Memory held by the block."""
        return int(self.low.nbytes + self.high.nbytes)

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
    if size_y <= ny and size_x <= nx:
        # nothing folds: the same array as below, without np.add.at's cost
        placed = np.zeros(shape, np.float64)
        placed[:size_y, :size_x] = kernel
        return np.roll(placed, (-(size_y // 2), -(size_x // 2)), axis=(0, 1))
    rows = (np.arange(size_y) - size_y // 2) % ny
    cols = (np.arange(size_x) - size_x // 2) % nx
    out = np.zeros(shape, np.float64)
    np.add.at(out, (rows[:, None], cols[None, :]), kernel)
    return out


def _crop(
    otf: NDArray[np.float64] | NDArray[np.complex128], threshold: float
) -> OTFBlock:
    """Crop to where ``|otf| > threshold``, always keeping the zero frequency.

    The zero frequency carries a layer's total flux; even when a far layer's
    structure is negligible its haze is not, so it stays unless it is tiny.
    A complex OTF (a kernel that is not mirror-symmetric) stays complex.
    """
    dtype = np.complex64 if np.iscomplexobj(otf) else np.float32
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
            otf[:, : cols + 1].astype(dtype),
            np.zeros((0, 0), dtype),
        )
    low = otf[: rows + 1, : cols + 1].astype(dtype)
    high = (
        otf[ny - rows :, : cols + 1].astype(dtype)
        if rows
        else np.zeros((0, cols + 1), dtype)
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


@dataclass(frozen=True)
class LayerOptics:
    """Per specimen layer: its depth bin, best-focus nominal position and weight.

    Attributes
    ----------
    bins : ndarray of int
        Depth bin of each layer.
    focus_um : ndarray
        ``F(depth)`` of each layer: the nominal focus (from the glass) at which
        it is in best focus.
    weight : ndarray
        Brightness factor applied to the bin's kernels (collected flux for
        wide-field, the confocal peak relative to the bin's own depth).

    """

    bins: NDArray[np.int64]
    focus_um: NDArray[np.float64]
    weight: NDArray[np.float64]


@dataclass(frozen=True)
class _BinOTF:
    u_um: NDArray[np.float64]
    blocks: tuple[OTFBlock, ...]
    haze_low: OTFBlock
    haze_high: OTFBlock

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks)


class DepthOTF:
    """Cropped OTFs of a mismatched (or measured-PSF) setup, per depth bin.

    Parameters
    ----------
    setup : OpticalSetup
        Optics with ``sample_index`` or ``measured_psf`` set.
    grid_shape : tuple of int
        (ny, nx) of the padded render grid.
    threshold : float, optional
        As :class:`DefocusOTF`, relative to the in-focus zero frequency of a
        point on the glass.
    budget_bytes : int, optional
        Memory for transformed bins; the least recently used are dropped (and
        transformed again from the kernel table when needed), except those
        :meth:`retain` names: a field taller than the budget holds would
        otherwise drop and rebuild bins on every plane.

    """

    def __init__(
        self,
        setup: OpticalSetup,
        grid_shape: tuple[int, int],
        *,
        threshold: float = 5e-3,
        budget_bytes: int = DEPTH_OTF_BUDGET_BYTES,
    ) -> None:
        self.setup = setup
        self.grid_shape = grid_shape
        self.threshold = threshold
        self.budget_bytes = budget_bytes
        self.shift = focal_shift(setup)
        self._bins: OrderedDict[int, _BinOTF] = OrderedDict()
        self._retained: frozenset[int] = frozenset()
        self._lock = threading.Lock()

    def retain(self, bins: ArrayLike) -> None:
        """Keep these bins (the current field's) however far over budget."""
        with self._lock:
            self._retained = frozenset(int(b) for b in np.ravel(bins))

    @property
    def nbytes(self) -> int:
        """Memory held in transformed bins."""
        with self._lock:
            return sum(b.nbytes for b in self._bins.values())

    def layer_optics(self, depth_um: ArrayLike) -> LayerOptics:
        """Bin, best-focus position and brightness of layers at the given depths.

        Parameters
        ----------
        depth_um : array_like
            Height of each layer above the glass (negative: below it).

        """
        depth = np.atleast_1d(np.asarray(depth_um, dtype=np.float64))
        if self.setup.measured_psf is not None:
            bins = np.zeros(depth.shape, np.int64)
        else:
            bins = depth_bin(depth)
        focus = self.shift.nominal_focus_um(depth)
        weight = self.shift.relative_brightness(np.maximum(depth, 0.0))
        if self.setup.modality == "confocal":
            # the bin's kernels already hold its depth's dimming
            weight = weight / self.shift.relative_brightness(bins * DEPTH_BIN_UM)
        return LayerOptics(bins, focus, weight)

    def _bin(self, index: int) -> _BinOTF:
        with self._lock:
            found = self._bins.get(index)
            if found is not None:
                self._bins.move_to_end(index)
                return found
        table = depth_kernels(self.setup, index)
        shape = self.grid_shape
        blocks = []
        for kernel in table.kernels:
            otf = scipy.fft.rfft2(_wrap_kernel(kernel, shape))
            blocks.append(
                _crop(otf.real if table.symmetric else otf, self.threshold
                      * table.reference_dc)
            )  # fmt: skip
        entry = _BinOTF(
            table.u_um,
            tuple(blocks),
            _zero_frequency_only(blocks[0]),
            _zero_frequency_only(blocks[-1]),
        )
        with self._lock:
            self._bins[index] = entry
            self._bins.move_to_end(index)
            total = sum(b.nbytes for b in self._bins.values())
            for old in list(self._bins):
                if total <= self.budget_bytes:
                    break
                if old != index and old not in self._retained:
                    total -= self._bins.pop(old).nbytes
        return entry

    def terms(
        self, bin_index: int, u_um: float, weight: float = 1.0
    ) -> list[tuple[float, OTFBlock]]:
        """The weighted table entries whose sum is the OTF at signed defocus ``u_um``.

        Where the table steps by at most 0.1 um (within 5 um of best focus)
        the nearest entry: a focus error of at most 0.05 um, the focal planes'
        own quantisation near focus, and one OTF product per layer as in the
        index-matched case. Further out, linear interpolation between the two
        neighbours; beyond the table, uniform haze of the outermost entry's
        flux.
        """
        entry = self._bin(bin_index)
        table = entry.u_um
        if u_um < table[0] - 1e-9:
            return [(weight, entry.haze_low)]
        if u_um > table[-1] + 1e-9:
            return [(weight, entry.haze_high)]
        upper = int(np.clip(np.searchsorted(table, u_um), 1, table.size - 1))
        lower = upper - 1
        step = table[upper] - table[lower]
        if step <= _NEAREST_STEP_UM + 1e-9:
            nearest = lower if u_um - table[lower] < table[upper] - u_um else upper
            return [(weight, entry.blocks[nearest])]
        t = float(np.clip((u_um - table[lower]) / step, 0.0, 1.0))
        if t < 1e-9:
            return [(weight, entry.blocks[lower])]
        if t > 1 - 1e-9:
            return [(weight, entry.blocks[upper])]
        return [
            (weight * (1.0 - t), entry.blocks[lower]),
            (weight * t, entry.blocks[upper]),
        ]
