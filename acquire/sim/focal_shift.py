"""Focal shift in a sample whose refractive index differs from the immersion's.

A point source at height ``d`` above the coverslip in a medium of index ``ns``,
seen through an objective designed for immersion ``ni``, comes to its best focus
when the stage has moved the nominal focus by ``F(d)`` from the coverslip
surface, not by ``d``: paraxially ``F = d * ni / ns``, and high-NA rays shift it
further and make it depth dependent (water under oil at NA 1.4: ``F/d`` about
1.6 just above the glass, 1.23 at 10 um). ``F`` is found here from the PSF model
itself (psfmodels' vectorial PSF, the same one the kernels come from): the
nominal focus at which the modality's peak signal of a point at depth ``d`` is
largest (wide-field: on-axis intensity; confocal: on-axis excitation times the
emission collected through the pinhole), on a 0.1 um scan refined at 0.02 um
with a parabola, every 0.25 um of depth, linear in between, made monotonic. The
scan window follows the focus found 0.25 um shallower (widened while the
maximum sits on its edge), so the maximum is tracked continuously from the
glass.

The same tabulation gives each modality's brightness against depth relative to
a point on the glass: wide-field, the flux the objective collects (exact, from
Parseval's theorem on psfmodels' pupil function: light beyond the critical
angle only reaches the objective from points within about 100 nm of the glass);
confocal, the on-axis peak at best focus (excitation and detection both
aberrated).

For index-matched optics and measured PSFs ``F`` is the identity and the
brightness 1, and nothing is computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import psfmodels

from acquire.sim.psf import (
    OpticalSetup,
    _cache_dir,
    _pinhole_disc,
    _psfmodels_params,
    psfmodels_z,
)
from acquire.sim.psfmodels_calls import vectorial_psf_planes

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import ArrayLike, NDArray

DEPTH_STEP_UM = 0.25
"""Depth spacing of the tabulated focal shift and brightness."""
_CHUNK_DEPTHS = 16
_COARSE_STEP_UM = 0.1
_FINE_STEP_UM = 0.02
_MAX_DEPTH_UM = 200.0
_FOCUS_VERSION = 1


def collected_flux(setup: OpticalSetup, depth_um: float, wavelength_um: float) -> float:
    """Total flux of psfmodels' vectorial PSF of a point at ``depth_um``.

    The integral of the intensity over a whole focal plane, from the pupil
    function by Parseval's theorem (so independent of focus and of any kernel
    window). Only relative values mean anything.

    Parameters
    ----------
    setup : OpticalSetup
        NA, immersion and sample indices.
    depth_um : float
        Height of the point above the glass.
    wavelength_um : float
        Emission wavelength.

    Returns
    -------
    float
        Flux in psfmodels' (arbitrary) units.

    """
    ni = setup.immersion_index
    ns = setup.sample_refractive_index
    alpha = float(np.arcsin(setup.numerical_aperture / ni))
    theta = np.linspace(0.0, alpha, 4001)[1:]
    sin, cos = np.sin(theta), np.cos(theta)
    ns_root = np.sqrt((ns**2 - (ni * sin) ** 2).astype(np.complex128))
    ng_root = ni * cos + 0j  # coverslip index = immersion index
    ts = 4.0 * ni * cos * ng_root
    tp = ts / ((ni * cos + ng_root) * (ns / ni * ng_root + ni / ns * ns_root))
    ts = ts / ((ni * cos + ng_root) * (ng_root + ns_root))
    base = sin * np.sqrt(cos)
    g0 = base * (ts + tp / ns * ns_root)
    g1 = base * tp * ni / ns * sin
    g2 = base * (ts - tp / ns * ns_root)
    k0 = 2 * np.pi / wavelength_um
    decay = np.exp(-2.0 * k0 * depth_um * np.abs(ns_root.imag))
    density = (abs(g0) ** 2 + 2 * abs(g1) ** 2 + abs(g2) ** 2) * decay
    density /= ni**2 * sin * cos
    return float(np.trapezoid(density, theta) / k0**2)


def _on_axis(
    setup: OpticalSetup, nominal_um: NDArray[np.float64], depth_um: float
) -> NDArray[np.float64]:
    """The modality's peak signal of a point at ``depth_um`` (unnormalised)."""
    params = _psfmodels_params(setup, 1, mode=0)
    z = psfmodels_z(setup, nominal_um, depth_um)

    def intensity(wavelength_um: float, size: int, dxy: float) -> NDArray[np.float64]:
        return np.asarray(
            vectorial_psf_planes(
                z.copy(),
                nx=size,
                dxy=dxy,
                pz=depth_um,
                wvl=wavelength_um,
                params=params,
                normalize=False,
            )
        )

    if setup.modality == "widefield":
        return intensity(setup.emission_wavelength_um, 1, 0.05)[:, 0, 0]
    emission_um = setup.emission_wavelength_um
    radius_um = setup.pinhole_au * 0.61 * emission_um / setup.numerical_aperture
    dxy = radius_um / 4.0
    size = 2 * int(np.ceil(radius_um / dxy)) + 3
    disc = _pinhole_disc(size, radius_um / dxy)
    detected = (intensity(emission_um, size, dxy) * disc).sum(axis=(1, 2))
    excitation = intensity(setup.excitation_wavelength_um, 1, 0.05)[:, 0, 0]
    signal: NDArray[np.float64] = excitation * detected
    return signal


def _best_focus(
    setup: OpticalSetup, depth_um: float, guess_um: float
) -> tuple[float, float]:
    """Nominal focus of the peak signal of a point at ``depth_um``, and the peak."""
    half_width = 0.4 + 0.02 * depth_um
    low, high = guess_um - half_width, guess_um + half_width
    coarse = np.zeros(0)
    best = 0
    for _ in range(16):
        coarse = np.arange(low, high + 1e-9, _COARSE_STEP_UM, dtype=np.float64)
        values = _on_axis(setup, coarse, depth_um)
        best = int(np.argmax(values))
        if 0 < best < coarse.size - 1:
            break
        width = high - low
        low, high = (low - width, low) if best == 0 else (high, high + width)
    centre = float(coarse[best])
    fine = centre + _FINE_STEP_UM * np.arange(-5, 6, dtype=np.float64)
    values = _on_axis(setup, fine, depth_um)
    best = int(np.argmax(values))
    focus, peak = float(fine[best]), float(values[best])
    if 0 < best < fine.size - 1:
        a, b, c = values[best - 1 : best + 2]
        curvature = a - 2 * b + c
        if curvature < 0:
            offset = float(np.clip(0.5 * (a - c) / curvature, -0.5, 0.5))
            focus += offset * _FINE_STEP_UM
            peak = float(b - 0.25 * (a - c) * offset)
    return focus, peak


def _profile_payload(setup: OpticalSetup) -> dict[str, object]:
    payload: dict[str, object] = {
        "modality": setup.modality,
        "NA": setup.numerical_aperture,
        "ni": setup.immersion_index,
        "ns": setup.sample_refractive_index,
        "emission": setup.emission_wavelength_um,
    }
    if setup.modality == "confocal":
        payload["excitation"] = setup.excitation_wavelength_um
        payload["pinhole"] = setup.pinhole_au
    return payload


def _compute_chunk(
    setup: OpticalSetup, chunk: int, previous: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Nominal focus and relative brightness at the depths of one chunk.

    ``previous`` holds F at the two depths before the chunk (for chunk 0, the
    paraxial values at -0.25 um and 0).
    """
    indices = np.arange(chunk * _CHUNK_DEPTHS, (chunk + 1) * _CHUNK_DEPTHS)
    nominal = np.zeros(indices.size)
    brightness = np.ones(indices.size)
    widefield = setup.modality == "widefield"
    emission_um = setup.emission_wavelength_um
    flux0 = collected_flux(setup, 0.0, emission_um) if widefield else 0.0
    peak0 = 0.0 if widefield else float(_on_axis(setup, np.zeros(1), 0.0)[0])
    before, last = previous
    for i, index in enumerate(indices):
        depth = float(index * DEPTH_STEP_UM)
        if index == 0:
            continue  # F(0) = 0 and brightness 1 by definition
        guess = last + (last - before)
        nominal[i], peak = _best_focus(setup, depth, guess)
        before, last = last, nominal[i]
        if widefield:
            brightness[i] = collected_flux(setup, depth, emission_um) / flux0
        else:
            brightness[i] = peak / peak0
    return nominal, brightness


def _chunk_path(setup: OpticalSetup, chunk: int) -> Path:
    payload = {
        "profile": _profile_payload(setup),
        "chunk": chunk,
        "step": DEPTH_STEP_UM,
        "per_chunk": _CHUNK_DEPTHS,
        "psfmodels": getattr(psfmodels, "__version__", "?"),
        "version": _FOCUS_VERSION,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return _cache_dir() / f"focus-{digest[:24]}.npz"


def _load_chunk(
    setup: OpticalSetup, chunk: int, previous: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    path = _chunk_path(setup, chunk)
    try:
        with np.load(path) as data:
            nominal = np.asarray(data["nominal"], np.float64)
            brightness = np.asarray(data["brightness"], np.float64)
        if nominal.shape == brightness.shape == (_CHUNK_DEPTHS,):
            return nominal, brightness
    except (OSError, KeyError, ValueError):
        pass  # missing or damaged: computed below
    nominal, brightness = _compute_chunk(setup, chunk, previous)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(
            f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz"
        )
        np.savez(tmp, nominal=nominal, brightness=brightness)
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs time
    return nominal, brightness


class FocalShift:
    """The focal-shift function ``F`` of one optical setup, and its inverse.

    Tabulated lazily (and cached on disk) as deeper points are asked for. All
    methods take and return arrays (or scalars as 0-d arrays) and are safe to
    call from several threads.

    Parameters
    ----------
    setup : OpticalSetup
        The optics; pixel size does not matter.

    """

    def __init__(self, setup: OpticalSetup) -> None:
        self.setup = setup
        self.identity = setup.index_matched or setup.measured_psf is not None
        self._lock = threading.Lock()
        self._depth = np.zeros(0)
        self._nominal = np.zeros(0)
        self._brightness = np.zeros(0)
        self._chunks = 0

    def _extend_to_depth(self, depth_um: float) -> None:
        needed = min(depth_um, _MAX_DEPTH_UM) / DEPTH_STEP_UM + 1
        with self._lock:
            while self._chunks * _CHUNK_DEPTHS <= needed:
                if self._nominal.size >= 2:
                    previous = (float(self._nominal[-2]), float(self._nominal[-1]))
                else:
                    ratio = self.setup.immersion_index / (
                        self.setup.sample_refractive_index
                    )
                    previous = (-DEPTH_STEP_UM * ratio, 0.0)
                nominal, brightness = _load_chunk(self.setup, self._chunks, previous)
                self._chunks += 1
                count = self._chunks * _CHUNK_DEPTHS
                self._depth = np.arange(count, dtype=np.float64) * DEPTH_STEP_UM
                # best focus moves on with depth; a flat or noisy step must not
                # break the inverse
                merged = np.concatenate([self._nominal, nominal])
                ramp = np.arange(count) * 1e-9
                self._nominal = np.maximum.accumulate(merged + ramp) - ramp
                self._brightness = np.concatenate([self._brightness, brightness])

    def _extend_to_nominal(self, nominal_um: float) -> None:
        while True:
            with self._lock:
                reached = bool(self._nominal.size) and bool(
                    self._nominal[-1] >= nominal_um
                )
                exhausted = bool(self._depth.size) and bool(
                    self._depth[-1] >= _MAX_DEPTH_UM
                )
            if reached or exhausted:
                return
            deepest = float(self._depth[-1]) if self._depth.size else 0.0
            self._extend_to_depth(deepest + DEPTH_STEP_UM)

    @staticmethod
    def _extrapolated(
        x: NDArray[np.float64], xp: NDArray[np.float64], fp: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """np.interp, continued linearly beyond both ends."""
        out = np.interp(x, xp, fp)
        slope_low = (fp[1] - fp[0]) / (xp[1] - xp[0])
        slope_high = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
        out = np.where(x < xp[0], fp[0] + (x - xp[0]) * slope_low, out)
        result: NDArray[np.float64] = np.where(
            x > xp[-1], fp[-1] + (x - xp[-1]) * slope_high, out
        )
        return result

    def nominal_focus_um(self, depth_um: ArrayLike) -> NDArray[np.float64]:
        """Nominal focus (stage units from the glass) of best focus at each depth.

        Depths below the glass continue the first 0.25 um linearly.
        """
        depth = np.asarray(depth_um, dtype=np.float64)
        if self.identity:
            return depth.copy()
        self._extend_to_depth(float(np.max(depth, initial=0.0)))
        with self._lock:
            table_depth, table_nominal = self._depth, self._nominal
        return self._extrapolated(depth, table_depth, table_nominal)

    def depth_um(self, nominal_focus_um: ArrayLike) -> NDArray[np.float64]:
        """Depth of the point in best focus at each nominal focus (inverse of F)."""
        nominal = np.asarray(nominal_focus_um, dtype=np.float64)
        if self.identity:
            return nominal.copy()
        self._extend_to_depth(DEPTH_STEP_UM)
        self._extend_to_nominal(float(np.max(nominal, initial=0.0)))
        with self._lock:
            table_depth, table_nominal = self._depth, self._nominal
        return self._extrapolated(nominal, table_nominal, table_depth)

    def relative_brightness(self, depth_um: ArrayLike) -> NDArray[np.float64]:
        """Signal of a point at each depth relative to one on the glass.

        Wide-field: collected flux; confocal: peak signal at best focus.
        """
        depth = np.asarray(depth_um, dtype=np.float64)
        if self.identity:
            return np.ones_like(depth)
        self._extend_to_depth(float(np.max(depth, initial=0.0)))
        with self._lock:
            table_depth, table_brightness = self._depth, self._brightness
        result: NDArray[np.float64] = np.interp(depth, table_depth, table_brightness)
        return result


@lru_cache(maxsize=16)
def _focal_shift_for(setup: OpticalSetup) -> FocalShift:
    return FocalShift(setup)


def focal_shift(setup: OpticalSetup) -> FocalShift:
    """The (shared, cached) focal-shift function of a setup's optics.

    Parameters
    ----------
    setup : OpticalSetup
        E.g. ``camera.optical_setup(objective)``. Only the modality, NA,
        indices, wavelengths and pinhole matter (not the pixel size).

    Returns
    -------
    FocalShift
        ``nominal_focus_um(depth)`` (F), ``depth_um(nominal)`` (its inverse) and
        ``relative_brightness(depth)``; the identity (and 1) when index-matched.

    """
    from dataclasses import replace

    canonical = replace(setup.model_setup, pixel_size_um=1.0)
    if setup.modality == "widefield":
        canonical = replace(canonical, excitation_wavelength_um=0.488, pinhole_au=1.0)
    if setup.measured_psf is not None:
        return FocalShift(setup)
    return _focal_shift_for(canonical)
