"""A linear wide-field-to-confocal filter learned from the pairs themselves.

Both microscopes are (to first order) linear and shift-invariant, so the
confocal stack is close to a filtered wide-field stack, ``C(k) ~ H(k) W(k)``.
The least-squares ``H`` over the training pairs is the Wiener filter

    H(k) = sum_pairs C(k) conj(W(k)) / (sum_pairs |W(k)|^2 + lambda),

estimated here per bin of axial frequency ``kz`` and lateral radius
``kr = |(ky, kx)|`` (both objectives are rotationally symmetric; z is kept
signed since a PSF need not be symmetric in z). No PSF model enters: the
filter is whatever maps this wide-field scope onto this confocal on the data.
It removes most of the out-of-focus haze at once, which a small U-Net with a
few micrometres of receptive field cannot; the U-Net then learns the
non-linear rest (noise, positivity, the missing cone) from the filtered stack
(see :mod:`enhance.unet`, two input channels).

Stacks are filtered with their mean removed, zero-padded by ``PAD_FRACTION``
of their size (so wrap-around is weak), and the mean is put back multiplied
by the filter's DC gain. Fitting and applying use the same rule, so training
patches and prediction tiles see the same filtered stack.

Units: frequencies in cycles per um; stacks in normalised intensity units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft

from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

__all__ = [
    "PAD_FRACTION",
    "TransferFunction",
    "fit_transfer_function",
    "network_input",
    "padded_shape",
]

PAD_FRACTION = 0.25
"""Zero padding added to each axis before the FFT, as a fraction of its size."""
_FFT_WORKERS = 2
_REGULARISATION = 1e-3
"""``lambda`` as a fraction of the median wide-field power per bin."""


def padded_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The FFT grid a ``(z, y, x)`` stack is filtered on (zero-padded, fast sizes)."""
    nz, ny, nx = shape
    return (
        scipy.fft.next_fast_len(nz + max(2, round(PAD_FRACTION * nz)), real=True),
        scipy.fft.next_fast_len(ny + max(2, round(PAD_FRACTION * ny)), real=True),
        scipy.fft.next_fast_len(nx + max(2, round(PAD_FRACTION * nx)), real=True),
    )


def _frequencies(
    padded: tuple[int, int, int], voxel_size_um: tuple[float, float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Signed kz (nz,) and lateral radius kr (ny, nx // 2 + 1) of an rfftn grid."""
    dz, dy, dx = voxel_size_um
    kz = scipy.fft.fftfreq(padded[0], d=dz)
    ky = scipy.fft.fftfreq(padded[1], d=dy)
    kx = scipy.fft.rfftfreq(padded[2], d=dx)
    kr = np.hypot(ky[:, None], kx[None, :])
    return kz, kr


@dataclass(frozen=True, eq=False)
class TransferFunction:
    """Gain table ``H(kz, kr)``.

    Row ``i`` is kz = (i - n_kz // 2) * kz_step; column ``j`` is kr = j * kr_step.

    Attributes
    ----------
    gain : ndarray of complex64
        ``(n_kz, n_kr)`` gains; ``n_kz`` is odd (kz = 0 in the middle row).
    kz_step_per_um, kr_step_per_um : float
        Bin widths in cycles per um.
    voxel_size_um : tuple of float
        ``(dz, dy, dx)`` of the stacks it was fitted on (and applies to).
    n_pairs : int
        Pairs it was fitted on.

    """

    gain: NDArray[np.complex64]
    kz_step_per_um: float
    kr_step_per_um: float
    voxel_size_um: tuple[float, float, float]
    n_pairs: int

    def __post_init__(self) -> None:
        if self.gain.ndim != 2 or self.gain.shape[0] % 2 != 1:
            raise EnhanceError(
                f"transfer gain table of shape {self.gain.shape} is not (odd, n)"
            )
        if not (self.kz_step_per_um > 0 and self.kr_step_per_um > 0):
            raise EnhanceError("transfer function bin widths must be positive")
        if not np.all(np.isfinite(self.gain)):
            raise EnhanceError("the transfer gain table holds NaN or inf values")

    def gains_on(
        self,
        padded: tuple[int, int, int],
        voxel_size_um: tuple[float, float, float],
    ) -> NDArray[np.complex64]:
        """``H`` sampled (bilinearly in the table) on an ``rfftn`` grid."""
        kz, kr = _frequencies(padded, voxel_size_um)
        n_kz, n_kr = self.gain.shape
        # beyond the table (frequencies the training grid never held): no gain
        table = np.zeros((n_kz + 1, n_kr + 1), dtype=np.complex64)
        table[:n_kz, :n_kr] = self.gain
        row = np.clip(kz / self.kz_step_per_um + n_kz // 2, -1.0, float(n_kz))
        col = np.clip(kr / self.kr_step_per_um, 0.0, float(n_kr))
        # linear in kz: the table's rows resampled at this grid's kz
        r0 = np.floor(row).astype(np.int64)
        fr = (row - r0).astype(np.float32)[:, None]
        by_kz = table[r0] * (1 - fr) + table[np.minimum(r0 + 1, n_kz)] * fr
        # then linear in kr, the same columns and weights on every plane
        c0 = np.floor(col).astype(np.int64)
        fc = (col - c0).astype(np.float32)
        c1 = np.minimum(c0 + 1, n_kr)
        gains: NDArray[np.complex64] = (
            by_kz[:, c0] * (1 - fc) + by_kz[:, c1] * fc
        ).astype(np.complex64, copy=False)
        return gains

    def dc_gain(self) -> float:
        """Gain at zero frequency (real part)."""
        return float(self.gain[self.gain.shape[0] // 2, 0].real)

    def apply(self, stack: NDArray[np.float32]) -> NDArray[np.float32]:
        """Filter a (normalised) wide-field stack on the fitted voxel grid.

        Parameters
        ----------
        stack : ndarray
            ``(z, y, x)`` stack with this function's voxel size.

        Returns
        -------
        ndarray of float32
            The filtered stack, same shape.

        """
        data = np.asarray(stack, dtype=np.float32)
        if data.ndim != 3:
            raise EnhanceError(f"expected a (z, y, x) stack, got shape {data.shape}")
        mean = float(data.mean())
        padded = padded_shape(data.shape)
        spectrum = scipy.fft.rfftn(data - mean, s=padded, workers=_FFT_WORKERS)
        spectrum *= self.gains_on(padded, self.voxel_size_um)
        out = scipy.fft.irfftn(spectrum, s=padded, workers=_FFT_WORKERS)
        nz, ny, nx = data.shape
        filtered = out[:nz, :ny, :nx] + mean * self.dc_gain()
        return np.ascontiguousarray(filtered, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of everything but the gain table."""
        return {
            "kz_step_per_um": self.kz_step_per_um,
            "kr_step_per_um": self.kr_step_per_um,
            "voxel_size_um": list(self.voxel_size_um),
            "n_pairs": self.n_pairs,
            "table_shape": list(self.gain.shape),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], gain: NDArray[Any]) -> TransferFunction:
        """Inverse of :meth:`to_dict` with the gain table; ``EnhanceError`` if bad."""
        try:
            voxel = tuple(float(v) for v in data["voxel_size_um"])
            table = np.asarray(gain).astype(np.complex64)
            if list(table.shape) != [int(n) for n in data["table_shape"]]:
                raise ValueError(
                    f"gain table {table.shape} is not {data['table_shape']}"
                )
            if len(voxel) != 3:
                raise ValueError(f"voxel size {voxel} does not have 3 entries")
            return cls(
                gain=table,
                kz_step_per_um=float(data["kz_step_per_um"]),
                kr_step_per_um=float(data["kr_step_per_um"]),
                voxel_size_um=(voxel[0], voxel[1], voxel[2]),
                n_pairs=int(data["n_pairs"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EnhanceError(f"damaged transfer function record ({exc})") from exc


def fit_transfer_function(
    widefield: Sequence[NDArray[np.float32]],
    confocal: Sequence[NDArray[np.float32]],
    *,
    voxel_size_um: tuple[float, float, float],
    regularisation: float = _REGULARISATION,
) -> TransferFunction:
    """Least-squares linear filter from wide-field to confocal stacks.

    Parameters
    ----------
    widefield, confocal : sequence of ndarray
        Registered ``(z, y, x)`` pairs on one grid, normalised as the model
        sees them (training split only).
    voxel_size_um : tuple of float
        ``(dz, dy, dx)`` of every stack.
    regularisation : float
        ``lambda`` relative to the median wide-field power of the bins.

    Returns
    -------
    TransferFunction
        Bins as fine as the largest padded stack's frequency grid.

    Raises
    ------
    EnhanceError
        No pairs, or a pair whose stacks differ in shape.

    """
    if not widefield or len(widefield) != len(confocal):
        raise EnhanceError(
            f"need matching, non-empty lists of stacks (got {len(widefield)} "
            f"wide-field and {len(confocal)} confocal)"
        )
    shapes = [np.shape(w) for w in widefield]
    for w_shape, c in zip(shapes, confocal, strict=True):
        if len(w_shape) != 3 or w_shape != np.shape(c):
            raise EnhanceError(
                f"a pair's stacks differ in shape or are not 3-D: {w_shape} and "
                f"{np.shape(c)}"
            )
    largest = padded_shape(max(shapes, key=lambda s: int(np.prod(s))))
    kz_step = 1.0 / (largest[0] * voxel_size_um[0])
    kr_step = 1.0 / (max(largest[1] * voxel_size_um[1], largest[2] * voxel_size_um[2]))
    kz_max = 0.5 / voxel_size_um[0]
    kr_max = float(np.hypot(0.5 / voxel_size_um[1], 0.5 / voxel_size_um[2]))
    half_z = int(np.ceil(kz_max / kz_step)) + 1
    n_kz, n_kr = 2 * half_z + 1, int(np.ceil(kr_max / kr_step)) + 2
    cross = np.zeros(n_kz * n_kr, dtype=np.complex128)
    power = np.zeros(n_kz * n_kr, dtype=np.float64)
    mean_cross = mean_power = 0.0
    for w, c in zip(widefield, confocal, strict=True):
        w32 = np.asarray(w, dtype=np.float32)
        c32 = np.asarray(c, dtype=np.float32)
        mean_cross += float(w32.mean()) * float(c32.mean())
        mean_power += float(w32.mean()) ** 2
        padded = padded_shape(w32.shape)
        fw = scipy.fft.rfftn(w32 - w32.mean(), s=padded, workers=_FFT_WORKERS)
        fc = scipy.fft.rfftn(c32 - c32.mean(), s=padded, workers=_FFT_WORKERS)
        kz, kr = _frequencies(padded, voxel_size_um)
        rows = np.rint(kz / kz_step).astype(np.int64) + half_z
        cols = np.rint(kr / kr_step).astype(np.int64)
        index = (rows[:, None, None] * n_kr + cols[None]).ravel()
        # the rfft half-plane holds each (ky, kx != 0) once for two of the full
        # spectrum's points, and (ky, kx = 0) once for one; unweighted sums give
        # the same least-squares ratio up to that weighting
        product = (fc * np.conj(fw)).ravel()
        cross += np.bincount(index, weights=product.real, minlength=cross.size)
        cross += 1j * np.bincount(index, weights=product.imag, minlength=cross.size)
        power += np.bincount(
            index, weights=(np.abs(fw) ** 2).ravel(), minlength=power.size
        )
    filled = power > 0
    damping = regularisation * float(np.median(power[filled])) if filled.any() else 0.0
    gain = np.zeros_like(cross)
    gain[filled] = cross[filled] / (power[filled] + damping)
    # the means were taken out before the FFT; the DC gain maps mean to mean
    gain[half_z * n_kr] = mean_cross / mean_power if mean_power > 0 else 0.0
    return TransferFunction(
        gain=gain.reshape(n_kz, n_kr).astype(np.complex64),
        kz_step_per_um=kz_step,
        kr_step_per_um=kr_step,
        voxel_size_um=(
            float(voxel_size_um[0]),
            float(voxel_size_um[1]),
            float(voxel_size_um[2]),
        ),
        n_pairs=len(widefield),
    )


def network_input(
    stack: NDArray[np.float32], transfer: TransferFunction | None
) -> NDArray[np.float32]:
    """``(channels, z, y, x)`` network input of one normalised wide-field stack.

    Channel 0 is the stack; with a transfer function, channel 1 is its
    filtering (the residual U-Net corrects the last channel).
    """
    data = np.asarray(stack, dtype=np.float32)
    if transfer is None:
        return data[None]
    return np.stack([data, transfer.apply(data)])
