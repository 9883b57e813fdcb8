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

All of the above is the index-matched case (sample index = immersion index),
where a kernel depends only on ``|dz|``. A sample of another refractive index
(``OpticalSetup.sample_index``; water, glycerol, a mountant) or a measured bead
stack (``OpticalSetup.measured_psf``) takes the depth-dependent path of
:mod:`acquire.sim.depth_psf` instead; the tables here are untouched by it.

psfmodels' axial coordinate is not the stage position: its ``zv`` is shifted by
``pz * (1 - ni / ns)`` so that the *paraxial* focus of a source at ``pz`` lies at
``zv = pz`` (the constant ``ci`` of Gibson-Lanni/Aguet's optical path
difference). :func:`psfmodels_z` converts a nominal focus (stage units relative
to focusing on the coverslip surface) to it; for index-matched optics the two
coincide.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import psfmodels

from acquire.config.objectives import IMMERSION_INDEX
from acquire.sim.psfmodels_calls import vectorial_psf_planes

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from acquire.sim.measured_psf import MeasuredPSF

Modality = Literal["widefield", "confocal"]

DZ_FINE_UM = 0.05
"""Table step near focus; focal planes are quantised to this step."""
_FINE_LIMIT_UM = 8.0
_FAR_STEP_UM, _FAR_LIMIT_UM = 1.0, 20.0
_MAX_KERNEL_PX = 511
# a confocal kernel wider than this holds a negligible fraction of its flux
_MAX_CONFOCAL_KERNEL_PX = 255
_CACHE_VERSION = 4
_INDEX_MATCH_TOLERANCE = 1e-6

SAMPLE_MEDIUM_INDEX: dict[str, float | None] = {
    "matched": None,
    "water": IMMERSION_INDEX["water"],
    "glycerol": IMMERSION_INDEX["glycerol"],
    "mountant": 1.46,
    "oil": IMMERSION_INDEX["oil"],
}
"""Refractive index of the sample media a camera's ``SampleMedium`` names.

``"matched"`` (None) means whatever the objective is immersed in; ``"mountant"``
is a hardening mountant (ProLong-like, about 1.46 cured). Water and glycerol
use the objective table's values, so a water-immersion objective on a water
sample is index-matched.
"""


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
    sample_index : float or None
        Refractive index of the sample medium the emitters sit in. None (the
        default) means index-matched to the immersion; a value equal to
        ``immersion_index`` is stored as None, so both take the same path.
    measured_psf : MeasuredPSF or None
        A measured bead stack used instead of psfmodels' PSF.

    """

    modality: Modality
    numerical_aperture: float
    immersion_index: float
    emission_wavelength_um: float
    pixel_size_um: float
    excitation_wavelength_um: float = 0.488
    pinhole_au: float = 1.0
    sample_index: float | None = None
    measured_psf: MeasuredPSF | None = None

    def __post_init__(self) -> None:
        if self.modality not in ("widefield", "confocal"):
            raise ValueError(f"unknown modality {self.modality!r}")
        if self.sample_index is not None:
            if not 1.0 <= self.sample_index <= 2.0:
                raise ValueError(
                    f"sample refractive index {self.sample_index} must lie in "
                    "[1.0, 2.0] (water 1.333, glycerol 1.474, mountant about 1.46)"
                )
            if abs(self.sample_index - self.immersion_index) < _INDEX_MATCH_TOLERANCE:
                object.__setattr__(self, "sample_index", None)
        if self.sample_index is not None and self.measured_psf is not None:
            raise ValueError(
                "a measured PSF already holds its sample's aberration: use either a "
                "sample medium other than 'matched' or a measured PSF file, not both"
            )
        if not 0 < self.numerical_aperture < self.immersion_index:
            raise ValueError(
                f"NA {self.numerical_aperture} must lie in (0, {self.immersion_index})"
            )
        if self.pixel_size_um <= 0 or self.emission_wavelength_um <= 0:
            raise ValueError("pixel size and wavelength must be > 0")
        if self.pinhole_au <= 0:
            raise ValueError("pinhole must be > 0 Airy units")

    @property
    def index_matched(self) -> bool:
        """True when the sample has the immersion's index (today's kernel tables)."""
        return self.sample_index is None

    @property
    def model_setup(self) -> OpticalSetup:
        """The setup less its measured PSF: psfmodels' description of the optics."""
        if self.measured_psf is None:
            return self
        return replace(self, measured_psf=None)

    @property
    def sample_refractive_index(self) -> float:
        """Index of the sample medium (the immersion's when index-matched)."""
        return self.immersion_index if self.sample_index is None else self.sample_index

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


def _psfmodels_params(
    setup: OpticalSetup, oversample: int, *, mode: int = 1
) -> dict[str, float]:
    n = setup.immersion_index
    return {
        "NA": setup.numerical_aperture,
        "ni": n,
        "ni0": n,
        "ns": setup.sample_refractive_index,
        "ng": n,
        "ng0": n,
        "sf": oversample,
        "mode": mode,
    }


def psfmodels_z(
    setup: OpticalSetup, nominal_focus_um: ArrayLike, depth_um: float
) -> NDArray[np.float64]:
    """The psfmodels ``zv`` of a nominal focus, for a source ``depth_um`` above glass.

    Parameters
    ----------
    setup : OpticalSetup
        Immersion and sample indices.
    nominal_focus_um : array_like
        Nominal focal-plane positions: how far the stage has moved the focus
        from the coverslip surface (stage units).
    depth_um : float
        Height of the point source above the coverslip.

    Returns
    -------
    ndarray
        The ``zv`` values to pass to ``psfmodels.vectorial_psf`` with
        ``pz = depth_um``.

    """
    ratio = setup.immersion_index / setup.sample_refractive_index
    return np.asarray(nominal_focus_um, dtype=np.float64) + depth_um * (1.0 - ratio)


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
        vectorial_psf_planes(
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


def _setup_payload(setup: OpticalSetup) -> dict[str, object]:
    """The setup's fields for a cache key: those of the index-matched model only.

    The index-matched tables keep the keys they had before ``sample_index`` and
    ``measured_psf`` existed (both are None there).
    """
    payload: dict[str, object] = {
        f.name: getattr(setup, f.name)
        for f in fields(setup)
        if f.name not in ("sample_index", "measured_psf")
    }
    if setup.sample_index is not None:
        payload["sample_index"] = setup.sample_index
    if setup.measured_psf is not None:
        payload["measured_psf"] = setup.measured_psf.digest
    return payload


def cache_key(setup: OpticalSetup) -> str:
    """The name of a setup's PSF in the on-disk cache (24 hex digits).

    It changes with anything that changes the PSF: the setup, the defocus
    table, the psfmodels version and the cache format.
    """
    payload = {
        "setup": _setup_payload(setup),
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

    Raises
    ------
    ValueError
        If the setup is not index-matched or holds a measured PSF (those take
        :func:`acquire.sim.depth_psf.depth_kernels`).

    """
    if not setup.index_matched or setup.measured_psf is not None:
        raise ValueError(
            "psf_kernels tabulates index-matched psfmodels PSFs only; use "
            "acquire.sim.depth_psf.depth_kernels for this setup"
        )
    dz_values = defocus_table_um()
    path = _cache_dir() / f"psf-{cache_key(setup)}.npz"
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
