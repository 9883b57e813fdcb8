"""Point spread functions of the simulated microscopes, from ``psfmodels``.

The renderer needs, for every defocus ``dz`` between a focal plane and a layer of
the specimen, the 2-D intensity kernel that layer is blurred with. Kernels are
tabulated at non-negative defocus values (the PSF of an index-matched oil
objective is symmetric in ``dz``): every 0.05 um up to 8 um (so every layer of
a specimen is one table look-up), then every 1 um to 20 um.
Beyond that only a layer's total flux matters (its blur is wider than a field of
view), which the renderer treats as uniform haze.

Wide-field kernels are Aguet's vectorial PSF, integrated over the camera pixel,
normalised so each plane sums to one (a point source's total flux does not
depend on focus). Confocal kernels are the excitation PSF times the detection
PSF convolved with the pinhole, point-sampled at the scan positions and
normalised by the in-focus excitation peak and the emitted flux, so their sum
falls with defocus: optical sectioning.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import psfmodels
from numpy.typing import NDArray

Modality = Literal["widefield", "confocal"]

DZ_FINE_UM = 0.05
"""Table step near focus; focal planes are quantised to this step."""
_FINE_LIMIT_UM = 8.0
_FAR_STEP_UM, _FAR_LIMIT_UM = 1.0, 20.0
_MAX_KERNEL_PX = 511
# a confocal kernel wider than this holds a negligible fraction of its flux
_MAX_CONFOCAL_KERNEL_PX = 255
_CACHE_VERSION = 4


@dataclass(frozen=True)
class OpticalSetup:
    """What determines a PSF table.

    Attributes
    ----------
    modality : {"widefield", "confocal"}
        Imaging mode.
    numerical_aperture : float
        Objective NA.
    immersion_index : float
        Refractive index of immersion, coverslip and (index-matched) mountant.
    emission_wavelength_um : float
        Centre of the detected emission band.
    pixel_size_um : float
        Pixel (or scan step) at the sample.
    excitation_wavelength_um : float
        Laser line; confocal only.
    pinhole_au : float
        Pinhole diameter in Airy units (1 AU = 1.22 lambda_em / NA); confocal only.

    """

    modality: Modality
    numerical_aperture: float
    immersion_index: float
    emission_wavelength_um: float
    pixel_size_um: float
    excitation_wavelength_um: float = 0.488
    pinhole_au: float = 1.0

    def __post_init__(self) -> None:
        if self.modality not in ("widefield", "confocal"):
            raise ValueError(f"unknown modality {self.modality!r}")
        if not 0 < self.numerical_aperture < self.immersion_index:
            raise ValueError(
                f"NA {self.numerical_aperture} must lie in (0, {self.immersion_index})"
            )
        if self.pixel_size_um <= 0 or self.emission_wavelength_um <= 0:
            raise ValueError("pixel size and wavelength must be > 0")
        if self.pinhole_au <= 0:
            raise ValueError("pinhole must be > 0 Airy units")

    @property
    def half_angle_tangent(self) -> float:
        """Tan of the objective's half aperture angle in the immersion medium."""
        sin_a = self.numerical_aperture / self.immersion_index
        return float(sin_a / np.sqrt(1.0 - sin_a**2))


def defocus_table_um() -> NDArray[np.float64]:
    """Non-negative defocus values (um) at which kernels are tabulated."""
    fine = np.arange(0.0, _FINE_LIMIT_UM + 1e-9, DZ_FINE_UM)
    far = np.arange(_FINE_LIMIT_UM + _FAR_STEP_UM, _FAR_LIMIT_UM + 1e-9, _FAR_STEP_UM)
    return np.round(np.concatenate([fine, far]), 6)


def _kernel_size_px(setup: OpticalSetup, dz_um: float) -> int:
    """Odd kernel width holding the geometric blur disc plus diffraction rings."""
    radius_um = abs(dz_um) * setup.half_angle_tangent
    radius_um += 6.0 * setup.emission_wavelength_um / setup.numerical_aperture
    half = int(np.ceil(radius_um / setup.pixel_size_um))
    size = 2 * half + 1
    widefield = setup.modality == "widefield"
    largest = _MAX_KERNEL_PX if widefield else _MAX_CONFOCAL_KERNEL_PX
    # few distinct sizes: psfmodels computes a whole group in one call
    for bucket in (31, 63, 127, 255, _MAX_KERNEL_PX):
        if size <= bucket:
            return min(bucket, largest)
    return largest


def _psfmodels_params(setup: OpticalSetup, oversample: int) -> dict[str, float]:
    n = setup.immersion_index
    return {
        "NA": setup.numerical_aperture,
        "ni": n,
        "ni0": n,
        "ns": n,
        "ng": n,
        "ng0": n,
        "sf": oversample,
        "mode": 1,
    }


def _pinhole_disc(size: int, radius_px: float) -> NDArray[np.float64]:
    """Top-hat disc with anti-aliased edge (fractional pixel coverage)."""
    sub = 8
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    centre = size // 2
    coords = np.arange(size) - centre
    fine = (coords[:, None] + offsets[None, :]).ravel()
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius_px**2
    coverage: NDArray[np.float64] = inside.reshape(size, sub, size, sub).mean(
        axis=(1, 3)
    )
    return coverage


def _convolve_same(
    image: NDArray[np.float64], kernel: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Linear 'same'-size convolution through the FFT."""
    from scipy.signal import fftconvolve

    return np.asarray(fftconvolve(image, kernel, mode="same"))


def _planes(
    setup: OpticalSetup,
    dz_um: NDArray[np.float64],
    size: int,
    wavelength_um: float,
    *,
    oversample: int,
) -> NDArray[np.float64]:
    """Unnormalised vectorial PSF planes (psfmodels) at the given defocus values."""
    return np.asarray(
        psfmodels.vectorial_psf(
            dz_um.copy(),
            nx=size,
            dxy=setup.pixel_size_um,
            wvl=wavelength_um,
            params=_psfmodels_params(setup, oversample=oversample),
            normalize=False,
        )
    )


def _compute_kernels(setup: OpticalSetup) -> list[NDArray[np.float32]]:
    dz_values = defocus_table_um()
    sizes = np.array([_kernel_size_px(setup, dz) for dz in dz_values])
    groups = [(int(size), np.flatnonzero(sizes == size)) for size in np.unique(sizes)]
    kernels: list[NDArray[np.float32]] = [np.empty(0, np.float32)] * len(dz_values)
    emission_um = setup.emission_wavelength_um
    if setup.modality == "widefield":
        for size, idx in groups:
            stack = _planes(setup, dz_values[idx], size, emission_um, oversample=3)
            for i, plane in zip(idx, stack, strict=True):
                kernels[i] = (plane / plane.sum()).astype(np.float32)
        return kernels

    # confocal: point-sampled at the scan positions; dz = 0 is in the first
    # (smallest) group, so the in-focus normalisation is known from then on
    excitation_um = setup.excitation_wavelength_um
    pinhole_radius_px = (setup.pinhole_au * 0.61 * emission_um) / (
        setup.numerical_aperture * setup.pixel_size_um
    )
    disc = _pinhole_disc(int(2 * np.ceil(pinhole_radius_px) + 3), pinhole_radius_px)
    in_focus_peak = emitted_flux = 0.0
    for size, idx in groups:
        excitation = _planes(setup, dz_values[idx], size, excitation_um, oversample=1)
        emission = _planes(setup, dz_values[idx], size, emission_um, oversample=1)
        if not in_focus_peak:
            in_focus_peak = float(excitation[0].max())
            emitted_flux = float(emission[0].sum())
        for i, ex, em in zip(idx, excitation, emission, strict=True):
            detected = np.clip(_convolve_same(em, disc) / emitted_flux, 0, 1)
            kernels[i] = ((ex / in_focus_peak) * detected).astype(np.float32)
    return kernels


def _cache_dir() -> Path:
    override = os.environ.get("PAIRSCOPE_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("pairscope"))


def _cache_key(setup: OpticalSetup) -> str:
    payload = {
        "setup": asdict(setup),
        "table": defocus_table_um().tolist(),
        "psfmodels": getattr(psfmodels, "__version__", "?"),
        "version": _CACHE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


@lru_cache(maxsize=8)
def psf_kernels(
    setup: OpticalSetup,
) -> tuple[NDArray[np.float64], tuple[NDArray[np.float32], ...]]:
    """Tabulated 2-D PSF kernels for one optical setup.

    Kernels are cached in memory and on local disk (computing a table takes a
    few seconds; nothing is downloaded).

    Parameters
    ----------
    setup : OpticalSetup
        Objective, wavelengths, pixel size and modality.

    Returns
    -------
    dz_um : ndarray
        Non-negative defocus values, increasing.
    kernels : tuple of ndarray
        One odd-sized, centred 2-D kernel (y, x) per defocus value, in
        detected fraction per pixel (see the module docstring).

    """
    dz_values = defocus_table_um()
    path = _cache_dir() / f"psf-{_cache_key(setup)}.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                kernels = tuple(data[f"k{i}"] for i in range(len(dz_values)))
            return dz_values, kernels
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache entry is recomputed below
    kernels = tuple(_compute_kernels(setup))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f"k{i}": k for i, k in enumerate(kernels)})
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs time
    return dz_values, kernels
