"""Band-pass filtering that makes wide-field and confocal stacks comparable.

A difference of Gaussians removes the wide-field haze and the slowly varying
background (large sigma) and the pixel noise (small sigma); applied in Fourier
space it costs one multiplication on the spectra the correlation needs anyway.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import scipy.fft

if TYPE_CHECKING:
    from numpy.typing import NDArray

FFT_WORKERS = 2


@dataclass(frozen=True)
class BandPass:
    """Difference-of-Gaussians band-pass, sigmas in um as (z, y, x).

    Attributes
    ----------
    fine_sigma_um : tuple of float
        Sigmas of the narrow Gaussian (suppresses noise).
    coarse_sigma_um : tuple of float
        Sigmas of the wide Gaussian (removes haze and background).

    """

    fine_sigma_um: tuple[float, float, float] = (0.25, 0.15, 0.15)
    coarse_sigma_um: tuple[float, float, float] = (1.5, 1.2, 1.2)

    def gain(
        self, shape: tuple[int, ...], voxel_um: tuple[float, ...]
    ) -> NDArray[np.float32]:
        """Gain on an ``rfftn`` grid of a (z, y, x) or (y, x) array (read-only)."""
        return _gain(self, tuple(int(n) for n in shape), tuple(map(float, voxel_um)))


# a registration asks for the same few grids again and again, pair after pair
@functools.lru_cache(maxsize=16)
def _gain(
    band: BandPass, shape: tuple[int, ...], voxel_um: tuple[float, ...]
) -> NDArray[np.float32]:
    ndim = len(shape)
    fine = band.fine_sigma_um[-ndim:]
    coarse = band.coarse_sigma_um[-ndim:]
    freqs = [
        np.fft.fftfreq(n, d).astype(np.float32)
        for n, d in zip(shape, voxel_um, strict=True)
    ]
    freqs[-1] = np.fft.rfftfreq(shape[-1], voxel_um[-1]).astype(np.float32)
    fine_arg = np.zeros([len(f) for f in freqs], np.float32)
    coarse_arg = np.zeros_like(fine_arg)
    for axis, f in enumerate(freqs):
        view = [1] * ndim
        view[axis] = len(f)
        f2 = (2 * np.pi**2) * f.reshape(view) ** 2
        fine_arg = fine_arg + np.float32(fine[axis] ** 2) * f2
        coarse_arg = coarse_arg + np.float32(coarse[axis] ** 2) * f2
    gain: NDArray[np.float32] = np.exp(-fine_arg) - np.exp(-coarse_arg)
    gain.setflags(write=False)  # shared between callers
    return gain


def filtered(
    volume: NDArray[np.float32], voxel_um: tuple[float, ...], band: BandPass
) -> NDArray[np.float32]:
    """``volume`` band-passed (periodic boundaries), float32."""
    spectrum = scipy.fft.rfftn(volume, workers=FFT_WORKERS)
    spectrum *= band.gain(volume.shape, voxel_um)
    out: NDArray[np.float32] = scipy.fft.irfftn(
        spectrum, s=volume.shape, workers=FFT_WORKERS
    ).astype(np.float32, copy=False)
    return out


def fill_outside(
    volume: NDArray[np.float32], mask: NDArray[np.bool_]
) -> NDArray[np.float32]:
    """Replace voxels outside ``mask`` by the mean inside (no false edges)."""
    if mask.all():
        return volume
    inside = volume[mask]
    level = np.float32(inside.mean()) if inside.size else np.float32(0.0)
    return np.where(mask, volume, level).astype(np.float32, copy=False)


def _gaussian_kernel(sigma_px: float) -> NDArray[np.float32]:
    """Normalised 1-D Gaussian, 3 sigma each side (a single 1 for no blur)."""
    if sigma_px <= 1e-3:
        return np.ones(1, np.float32)
    radius = max(1, int(np.ceil(3.0 * sigma_px)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma_px) ** 2)
    result: NDArray[np.float32] = (kernel / kernel.sum()).astype(np.float32)
    return result


def blur_separable(
    volume: NDArray[np.float32], sigma_px: tuple[float, float, float]
) -> NDArray[np.float32]:
    """Separable Gaussian blur of a (z, y, x) volume, zero beyond its edges.

    Parameters
    ----------
    volume : ndarray of float32
        (z, y, x) volume.
    sigma_px : tuple of float
        Gaussian sigma along (z, y, x) in voxels (0: no blur along it).

    Returns
    -------
    ndarray of float32
        The blurred volume (3-sigma kernels, zero padding).

    """
    kz, ky, kx = (_gaussian_kernel(s) for s in sigma_px)
    one = np.ones(1, np.float32)
    nz, ny, nx = volume.shape
    out = np.empty_like(volume)
    for k in range(nz):
        out[k] = cv2.sepFilter2D(volume[k], -1, kx, ky, borderType=cv2.BORDER_CONSTANT)
    if kz.size > 1:
        flat = out.reshape(nz, ny * nx)
        # OpenCV images are at most 2^15 - 1 wide for some filters: in chunks
        for start in range(0, ny * nx, _CHUNK):
            block = np.ascontiguousarray(flat[:, start : start + _CHUNK])
            flat[:, start : start + _CHUNK] = cv2.sepFilter2D(
                block, -1, one, kz, borderType=cv2.BORDER_CONSTANT
            )
    return out


_CHUNK = 16384


def masked_band_pass(
    volume: NDArray[np.float32],
    mask: NDArray[np.bool_] | None,
    voxel_um: tuple[float, float, float],
    band: BandPass,
) -> NDArray[np.float32]:
    """Band-pass of the voxels inside ``mask``, blind to everything outside.

    Each Gaussian of the difference is a normalised convolution: the blurred
    ``volume * mask`` over the blurred ``mask``, with zero padding. The
    stack's own ends and the parts the other stack does not cover then
    neither wrap around nor make an edge (a constant fill does: the band-pass
    turns its step into structure). The Gaussians are separable convolutions
    (OpenCV, planes then along z; 3 sigma kernels), and the mask is taken as
    the product of the planes it covers and of its lateral footprint, as a
    resampled stack's mask is.

    Parameters
    ----------
    volume : ndarray
        (z, y, x) volume.
    mask : ndarray of bool, optional
        Valid voxels (all when None).
    voxel_um : tuple of float
        (dz, dy, dx).
    band : BandPass
        The two Gaussians' sigmas.

    Returns
    -------
    ndarray of float32
        The band-passed volume, zero outside ``mask``.

    """
    nz, ny, nx = volume.shape
    planes: NDArray[np.float32] = np.ones(nz, np.float32)
    footprint: NDArray[np.float32] = np.ones((ny, nx), np.float32)
    if mask is not None:
        planes = np.asarray(mask.any(axis=(1, 2)), dtype=np.float32)
        footprint = np.asarray(mask.any(axis=0), dtype=np.float32)
    data = np.asarray(volume, np.float32) * planes[:, None, None] * footprint
    out = np.zeros(volume.shape, np.float32)
    for sign, sigma_um in ((1.0, band.fine_sigma_um), (-1.0, band.coarse_sigma_um)):
        sigma_px = (
            sigma_um[0] / voxel_um[0],
            sigma_um[1] / voxel_um[1],
            sigma_um[2] / voxel_um[2],
        )
        blurred = blur_separable(data, sigma_px)
        norm_lateral = blur_separable(footprint[None], (0.0, sigma_px[1], sigma_px[2]))[
            0
        ]
        norm_axial = blur_separable(
            planes[:, None, None].copy(), (sigma_px[0], 0.0, 0.0)
        )
        norm = np.maximum(norm_axial * norm_lateral[None], 1e-3)
        out += np.float32(sign) * (blurred / norm).astype(np.float32)
    out *= planes[:, None, None] * footprint
    return out
