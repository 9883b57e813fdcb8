"""Depth-dependent PSF tables: a mismatched sample index, or a measured bead stack.

In a mismatched sample the PSF of a point depends on its depth ``d`` (height
above the glass) and not only on the defocus: the best focus moves to the
nominal focus ``F(d)`` (:mod:`acquire.sim.focal_shift`), the PSF is no longer
symmetric about it, and it blurs and dims with depth. Kernels are therefore
tabulated per **depth bin** (every ``DEPTH_BIN_UM`` from the glass, nearest bin,
computed lazily as a field needs them) against the *signed* nominal defocus
``u = zv - F(d_bin)`` from that bin's own best focus: every 0.05 um within
2 um, 0.1 um to 5 um, 0.25 um to 10 um, 1 um to 20 um (beyond that, uniform
haze of the same flux as in the index-matched tables). A layer at depth ``d``
uses its bin's table at ``u = zv - F(d)``: the aberration's *shape* is binned,
the focal position and the brightness are continuous in ``d``.

Wide-field kernels are normalised to unit sum per plane (the collected flux's
fall with depth is applied by the renderer as a weight); confocal kernels are
excitation times emission-through-the-pinhole, both at the bin's depth,
normalised by the in-focus excitation peak and emitted flux of a point *on the
glass* of the same optics, so deep structure dims as it physically does.
Tables are cached on disk (``PAIRSCOPE_CACHE_DIR``) like the index-matched ones,
as quadrants (psfmodels' kernels are mirror-symmetric).

A measured PSF (:mod:`acquire.sim.measured_psf`) is one bin at depth 0 with
``F`` the identity: its planes resampled to the same signed defocus values
(within the stack's z range; beyond it, haze), wide-field ones normalised to
unit sum, confocal ones keeping their relative sums and scaled so the in-focus
plane carries the signal of the computed in-focus confocal kernel.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psfmodels

from acquire.sim.focal_shift import focal_shift
from acquire.sim.measured_psf import MeasuredPSF, resample_planes
from acquire.sim.psf import (
    DZ_FINE_UM,
    OpticalSetup,
    _cache_dir,
    _convolve_same,
    _kernel_size_px,
    _pinhole_disc,
    _psfmodels_params,
    _setup_payload,
    psfmodels_z,
)
from acquire.sim.psfmodels_calls import vectorial_psf_planes

if TYPE_CHECKING:
    from numpy.typing import NDArray

DEPTH_BIN_UM = 1.0
"""Spacing of the depth bins whose kernel tables a mismatched sample uses."""
FINE_HALF_UM = 2.0
"""Within this signed defocus the table steps by DZ_FINE_UM (nearest entry)."""
_STEPS = ((FINE_HALF_UM, DZ_FINE_UM), (5.0, 0.1), (10.0, 0.25), (20.0, 1.0))
_DEPTH_CACHE_VERSION = 1
_PIXEL_INTEGRATED_HALF_UM = 5.0
"""Wide-field kernels within this defocus integrate over the pixel (3x3 samples);
further out they are point-sampled: the blur is many pixels wide (measured: 3.4 %
L1 difference at 5 um, 1.4 % at 10 um) and it costs a quarter of the time."""
_HALO_SIN_FRACTION = 0.95
_TABLE_LOCK = threading.Lock()
_BATCH_PLANES = 16


def signed_defocus_table_um() -> NDArray[np.float64]:
    """Signed defocus values (um, ascending) of a depth bin's kernel table."""
    positive = [np.arange(0.0, FINE_HALF_UM + 1e-9, DZ_FINE_UM)]
    start = FINE_HALF_UM
    for limit, step in _STEPS[1:]:
        positive.append(np.arange(start + step, limit + 1e-9, step))
        start = limit
    half = np.round(np.concatenate(positive), 6)
    return np.concatenate([-half[:0:-1], half])


def depth_bin(depth_um: NDArray[np.float64]) -> NDArray[np.int64]:
    """Index of the nearest depth bin (points below the glass use bin 0)."""
    return np.round(np.maximum(depth_um, 0.0) / DEPTH_BIN_UM).astype(np.int64)


@dataclass(frozen=True)
class DepthKernels:
    """The kernel table of one depth bin.

    Attributes
    ----------
    depth_um : float
        The bin's depth (height above the glass).
    focus_um : float
        ``F(depth_um)``: the nominal focus the table's defocus is relative to.
    u_um : ndarray
        Signed nominal defocus of each kernel, ascending.
    kernels : tuple of ndarray
        One odd-sized, centred (y, x) float32 kernel per ``u_um``.
    reference_dc : float
        Sum of the in-focus kernel of a point on the glass (OTF thresholds).
    symmetric : bool
        Whether every kernel is mirror-symmetric (its OTF is real).

    """

    depth_um: float
    focus_um: float
    u_um: NDArray[np.float64]
    kernels: tuple[NDArray[np.float32], ...]
    reference_dc: float
    symmetric: bool = True


def _tangent(sin_value: float, index: float) -> float:
    ratio = sin_value / index
    return float(ratio / np.sqrt(1.0 - ratio**2))


def _depth_kernel_size_px(setup: OpticalSetup, u_um: float, depth_um: float) -> int:
    """Odd kernel width: defocus blur, diffraction rings and the aberration halo.

    The halo grows with depth as the marginal rays' transverse aberration: at
    an effective aperture of 95 % of the lower index, |tan(theta_s) -
    tan(theta_i)| per um of depth (measured: it holds about 95 % of the light).
    A confocal kernel is excitation times detection, which squares the halo
    away: it keeps the index-matched window (measured at 8 um in water under
    oil, NA 1.4: 99.7 % of the in-focus kernel within 1 um, 97 % of the one
    5 um out of focus within 8 um).
    """
    if setup.modality == "confocal":
        return _kernel_size_px(setup, u_um)
    ni = setup.immersion_index
    ns = setup.sample_refractive_index
    sin_e = min(setup.numerical_aperture, _HALO_SIN_FRACTION * min(ni, ns))
    halo = abs(_tangent(sin_e, ns) - _tangent(sin_e, ni)) * depth_um
    return _kernel_size_px(setup, abs(u_um) + halo / setup.half_angle_tangent)


def _planes_at_depth(
    setup: OpticalSetup,
    nominal_um: NDArray[np.float64],
    depth_um: float,
    size: int,
    wavelength_um: float,
    *,
    oversample: int,
) -> NDArray[np.float64]:
    return np.asarray(
        vectorial_psf_planes(
            psfmodels_z(setup, nominal_um, depth_um).copy(),
            nx=size,
            dxy=setup.pixel_size_um,
            pz=depth_um,
            wvl=wavelength_um,
            params=_psfmodels_params(setup, oversample=oversample),
            normalize=False,
        )
    )


def _confocal_normalisation(setup: OpticalSetup) -> tuple[float, float, float]:
    """In-focus excitation peak, emitted flux and kernel sum of a point on the glass.

    Computed as the index-matched table does (same kernel window), at depth 0.
    """
    size = _kernel_size_px(setup, 0.0)
    zero = np.zeros(1)
    excitation = _planes_at_depth(
        setup, zero, 0.0, size, setup.excitation_wavelength_um, oversample=1
    )[0]
    emission = _planes_at_depth(
        setup, zero, 0.0, size, setup.emission_wavelength_um, oversample=1
    )[0]
    peak = float(excitation.max())
    flux = float(emission.sum())
    disc = _pinhole_disc_for(setup)
    detected = np.clip(_convolve_same(emission, disc) / flux, 0, 1)
    return peak, flux, float(((excitation / peak) * detected).sum())


def _pinhole_disc_for(setup: OpticalSetup) -> NDArray[np.float64]:
    radius_px = (setup.pinhole_au * 0.61 * setup.emission_wavelength_um) / (
        setup.numerical_aperture * setup.pixel_size_um
    )
    return _pinhole_disc(int(2 * np.ceil(radius_px) + 3), radius_px)


def _batches(indices: NDArray[np.intp]) -> list[NDArray[np.intp]]:
    """Split a group of planes so one psfmodels call holds at most ~32 MB."""
    return np.array_split(indices, max(1, int(np.ceil(indices.size / _BATCH_PLANES))))


def _widefield_kernels(
    setup: OpticalSetup,
    depth_um: float,
    focus_um: float,
    u_values: NDArray[np.float64],
    sizes: NDArray[np.int64],
) -> list[NDArray[np.float32]]:
    """Unit-sum wide-field kernels, one per ``u_values``.

    Within ``_PIXEL_INTEGRATED_HALF_UM`` the core (the index-matched kernel's
    window) is integrated over the pixel and the aberration halo around it is
    point-sampled, pasted together (the halo is smooth on the pixel scale);
    further out whole kernels are point-sampled.
    """
    emission_um = setup.emission_wavelength_um
    kernels: list[NDArray[np.float32]] = [np.empty(0, np.float32)] * len(u_values)
    near = np.abs(u_values) <= _PIXEL_INTEGRATED_HALF_UM + 1e-9
    cores = np.array([_kernel_size_px(setup, abs(u)) for u in u_values])
    cores[~near] = 0
    pairs = sorted({(int(a), int(b)) for a, b in zip(sizes, cores, strict=True)})
    for size, core in pairs:
        for idx in _batches(np.flatnonzero((sizes == size) & (cores == core))):
            nominal = focus_um + u_values[idx]
            sampling = 3 if core == size else 1
            stack = _planes_at_depth(
                setup, nominal, depth_um, size, emission_um, oversample=sampling
            )
            if 0 < core < size:
                start = (size - core) // 2
                stack[:, start : start + core, start : start + core] = _planes_at_depth(
                    setup, nominal, depth_um, core, emission_um, oversample=3
                )
            for i, plane in zip(idx, stack, strict=True):
                kernels[i] = (plane / plane.sum()).astype(np.float32)
    return kernels


def _confocal_kernels(
    setup: OpticalSetup,
    depth_um: float,
    focus_um: float,
    u_values: NDArray[np.float64],
    sizes: NDArray[np.int64],
) -> tuple[list[NDArray[np.float32]], float]:
    """Confocal kernels, one per ``u_values``, and the on-glass reference sum."""
    kernels: list[NDArray[np.float32]] = [np.empty(0, np.float32)] * len(u_values)
    peak, flux, reference = _confocal_normalisation(setup)
    disc = _pinhole_disc_for(setup)
    for size in np.unique(sizes):
        for idx in _batches(np.flatnonzero(sizes == size)):
            nominal = focus_um + u_values[idx]
            excitation = _planes_at_depth(
                setup, nominal, depth_um, int(size), setup.excitation_wavelength_um,
                oversample=1,
            )  # fmt: skip
            emission = _planes_at_depth(
                setup, nominal, depth_um, int(size), setup.emission_wavelength_um,
                oversample=1,
            )  # fmt: skip
            for i, ex, em in zip(idx, excitation, emission, strict=True):
                detected = np.clip(_convolve_same(em, disc) / flux, 0, 1)
                kernels[i] = ((ex / peak) * detected).astype(np.float32)
    return kernels, reference


def _compute_depth_kernels(
    setup: OpticalSetup, depth_um: float, focus_um: float
) -> tuple[list[NDArray[np.float32]], float]:
    u_values = signed_defocus_table_um()
    sizes = np.array([_depth_kernel_size_px(setup, u, depth_um) for u in u_values])
    if setup.modality == "widefield":
        return _widefield_kernels(setup, depth_um, focus_um, u_values, sizes), 1.0
    return _confocal_kernels(setup, depth_um, focus_um, u_values, sizes)


def _quadrant(kernel: NDArray[np.float32]) -> NDArray[np.float32]:
    centre = kernel.shape[0] // 2
    return np.ascontiguousarray(kernel[centre:, centre:])


def _unfold(quadrant: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rebuild a mirror-symmetric kernel from its lower-right quadrant."""
    rows = np.concatenate([quadrant[:0:-1], quadrant], axis=0)
    return np.ascontiguousarray(np.concatenate([rows[:, :0:-1], rows], axis=1))


def _depth_cache_path(setup: OpticalSetup, depth_um: float, focus_um: float) -> str:
    payload = {
        "setup": _setup_payload(setup),
        "depth": round(depth_um, 6),
        "focus": round(focus_um, 6),
        "table": signed_defocus_table_um().tolist(),
        "psfmodels": getattr(psfmodels, "__version__", "?"),
        "version": _DEPTH_CACHE_VERSION,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return os.fspath(_cache_dir() / f"psfdepth-{digest[:24]}.npz")


def _mismatched_kernels(setup: OpticalSetup, bin_index: int) -> DepthKernels:
    depth = bin_index * DEPTH_BIN_UM
    focus = float(focal_shift(setup).nominal_focus_um(depth))
    u_values = signed_defocus_table_um()
    path = _depth_cache_path(setup, depth, focus)
    try:
        with np.load(path) as data:
            kernels = tuple(_unfold(data[f"q{i}"]) for i in range(len(u_values)))
            reference = float(data["reference_dc"])
        return DepthKernels(depth, focus, u_values, kernels, reference)
    except (OSError, KeyError, ValueError):
        pass  # missing or damaged: computed below
    computed, reference = _compute_depth_kernels(setup, depth, focus)
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(
            f"{target.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz"
        )
        arrays: dict[str, NDArray[Any]] = {
            f"q{i}": _quadrant(k) for i, k in enumerate(computed)
        }
        arrays["reference_dc"] = np.array(reference)
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(target)
    except OSError:
        pass  # a read-only cache only costs time
    return DepthKernels(depth, focus, u_values, tuple(computed), reference)


def _measured_kernels(setup: OpticalSetup, measured: MeasuredPSF) -> DepthKernels:
    low, high = measured.z_range_um
    u_all = signed_defocus_table_um()
    # the table within the stack (always including best focus), as far as it goes
    u_values = u_all[(u_all >= low - 1e-9) & (u_all <= high + 1e-9)]
    planes, _ = resample_planes(
        measured,
        setup.pixel_size_um,
        u_values,
        integrate=setup.modality == "widefield",
    )
    in_focus = int(np.argmin(np.abs(u_values)))
    if setup.modality == "widefield":
        sums = planes.sum(axis=(1, 2))
        # a plane with nothing above the background spread its light wider than
        # the stack: uniform over the kernel, same flux
        planes[sums <= 0] = 1.0
        sums = planes.sum(axis=(1, 2))
        kernels = planes / sums[:, None, None]
        reference = 1.0
    else:
        _, _, reference = _confocal_normalisation(setup.model_setup)
        total = float(planes[in_focus].sum())
        kernels = planes * (reference / total if total > 0 else 1.0)
    return DepthKernels(
        0.0,
        0.0,
        u_values,
        tuple(k.astype(np.float32) for k in kernels),
        reference,
        symmetric=measured.symmetrize,
    )


def depth_kernels(setup: OpticalSetup, bin_index: int) -> DepthKernels:
    """The kernel table of one depth bin (computed, or read from the disk cache).

    Parameters
    ----------
    setup : OpticalSetup
        A mismatched setup (``sample_index`` set) or one with a measured PSF.
    bin_index : int
        Depth bin, ``round(depth / DEPTH_BIN_UM)``; a measured PSF has only bin 0.

    Returns
    -------
    DepthKernels
        The table.

    """
    if setup.measured_psf is not None:
        return _measured_kernels(setup, setup.measured_psf)
    if setup.index_matched:
        raise ValueError("index-matched setups use acquire.sim.psf.psf_kernels")
    if bin_index < 0:
        raise ValueError("depth bins start at 0 (the glass)")
    with _TABLE_LOCK:
        return _mismatched_kernels(setup, bin_index)


__all__ = [
    "DEPTH_BIN_UM",
    "FINE_HALF_UM",
    "DepthKernels",
    "depth_bin",
    "depth_kernels",
    "signed_defocus_table_um",
]
