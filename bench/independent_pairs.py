"""Independent renderer of wide-field/confocal z-stack pairs with exact truth.

Written from scratch for the registration benchmark (suite "independent") and
accuracy tests; it shares no code and no modelling choices with the scope
simulator, and it imports neither ``acquire`` nor ``correlate``.

Physical model
--------------
* **Sample frame.** Lateral ``(u, v)`` and height ``h`` above the coverslip
  (``h = 0``), um. The specimen is a set of small 3D Gaussian emitters
  (lateral sigma 0.09-0.12 um, axial sigma 0.09-0.12 um) at exact continuous
  positions: filament networks (persistent random walks), puncta and vesicles,
  nucleus-like ellipsoids (textured interior or bright rim), membrane domes,
  beads on the glass. Nothing is snapped to a grid shared by the two stacks.
* **Real volumes** (``specimen="volume"``): a real 3D fluorescence stack
  (OME-)TIFF is read (voxel from its OME ``PhysicalSize*`` or given by the
  caller), binned laterally, background-subtracted and thresholded; every
  kept voxel (bin) becomes an emitter at its exact centre, sigma 0.55 x its
  pitch per axis (a continuous object), standing on the glass. Copies turned
  by random angles (and mirrored or not) are spread over the wide-field field,
  the first with structure in the confocal field. Emitters wider than the
  built-in ones are rendered on a coarser fine grid and coarser height levels
  (same model, same exact truth).
* **Stack geometry.** Each stack is a regular grid placed in the sample frame:
  centred nominal coordinates ``(z, y, x)`` (the registration convention) map
  to ``(u, v) = A @ (y, x) + o`` with ``A = s R(theta)`` (``s`` the true size of
  one nominal um: a lateral calibration error) and ``h = h_mid + f z`` (``f``
  the scope's focal-shift / z-drive factor). The confocal-to-wide-field truth
  follows exactly: ``M = A_w^-1 A_c``, ``(ty, tx) = A_w^-1 (o_c - o_w)``,
  ``axial_scale = f_c / f_w``, ``tz = (h_mid_c - h_mid_w) / f_w``.
* **Imaging.** For every plane, the image is the specimen convolved with the
  PSF at each emitter's physical defocus ``d = h_emitter - h_focus``. It is
  computed exactly in the lateral Fourier domain: the emitters are gridded
  (their own Gaussian profile, sampled) on fine height levels aligned with the
  stack's planes, each level is Fourier transformed, and every plane is the
  sum over levels of level spectrum x OTF(|f|, d) (the OTF is real and
  radially symmetric; it is tabulated on fine rings of |f|, so it carries no
  phase and cannot move anything). Pixels integrate their area (wide-field:
  ``dy x dx`` box, a sinc in Fourier space) or the fast-scan dwell
  (confocal: ``dx`` along x); planes are point samples in z. The result is
  sampled at pixel centres, aliasing included.
* **PSF families.** ``"gaussian"``: wide-field lateral sigma
  ``s0 sqrt(1 + (d/zR)^2)`` with every plane at the same flux (no sectioning);
  confocal = excitation x detection Gaussian beams (flux falls ~ 1/d^2).
  ``"debye"``: scalar Debye integrals (high NA, ``j0`` quadrature over the
  aperture angle) for the wide-field PSF and for the confocal excitation and
  emission PSFs, the emission PSF convolved with the back-projected pinhole
  (``pinhole_au`` Airy units), with an optional primary spherical aberration
  (Zernike ``sqrt(5)(6 rho^4 - 6 rho^2 + 1)`` in waves, fixed or growing with
  depth) that makes the PSF asymmetric in z. Each PSF's defocus origin is its
  on-axis intensity peak (the truth refers to the peak; with aberration the
  PSF is asymmetric about it).
* **Noise.** Wide field: sCMOS (Poisson photo-electrons on top of a smooth
  autofluorescence background, Gaussian read noise, conversion to ADU,
  offset, per-column fixed-pattern offsets, rounding). Confocal: PMT (Poisson
  photo-electrons plus dark counts, gamma-distributed multiplication gain,
  electronic noise, small dark offset, rounding). ``snr="none"`` gives the
  noise-free expected values (backgrounds and offsets kept, no fixed pattern):
  for one seed, exactly the mean of the ``snr="normal"`` render less its
  column pattern.

Usage::

    python bench/independent_pairs.py [--pairs N] [--psf gaussian|debye]
        [--field-px 512] [--snr normal] [--specimen mixture|beads|volume]
        [--volume-path FILE [--volume-voxel-um DZ DY DX]]

renders a few pairs and prints a summary (shapes, truth, timings).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import functools
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft
from numpy.typing import NDArray
from scipy import special

if TYPE_CHECKING:
    from collections.abc import Iterator

FloatArray = NDArray[np.float64]

# Specimen emitters: smallest lateral sigma (um) and largest sigma (um).
EMITTER_SIGMA_MIN_UM = 0.09
EMITTER_SIGMA_MAX_UM = 0.12
# Fine height levels at most this far apart (um): below the emitter sigma.
# Specimens whose narrowest axial sigma is wider than EMITTER_SIGMA_MAX_UM
# (volume specimens) may use levels up to
# LEVEL_STEP_PER_SIGMA sigmas apart, never more than LEVEL_STEP_CAP_UM (the
# confocal OTF varies along the defocus with up to ~4 cycles/um).
LEVEL_STEP_MAX_UM = 0.08
LEVEL_STEP_PER_SIGMA = 0.85
LEVEL_STEP_CAP_UM = 0.15
# Relative amplitude below which spatial frequencies are dropped (the second
# for specimens made only of emitters wider than EMITTER_SIGMA_MAX_UM).
SPECTRUM_FLOOR = 1e-4
WIDE_SPECTRUM_FLOOR = 1e-6
# The OTF is evaluated exactly at each distinct |f| of the grid below this
# many grid frequency steps, then on rings this many steps wide (interpolated).
EXACT_RINGS = 40
RING_WIDTH = 0.5
# Emitters are gridded out to this many sigmas.
FOOTPRINT_SIGMAS = 3.0
IMMERSION_INDEX = 1.518
WIDEFIELD_EMISSION_UM = 0.52
CONFOCAL_EXCITATION_UM = 0.488
CONFOCAL_EMISSION_UM = 0.52
CONFOCAL_NA = 1.4

# Peak signal (photo-electrons above background) per SNR level.
SNR_LEVELS: dict[str, tuple[float, float]] = {
    # name: (wide-field peak e-, confocal peak photo-electrons)
    "high": (4000.0, 200.0),
    "normal": (1000.0, 40.0),
    "low": (250.0, 10.0),
    "none": (1000.0, 40.0),
}
PLACEMENTS = ("lower", "upper", "below", "above")


# --------------------------------------------------------------------------
# BLAS threads: the renderer runs many small matrix products; OpenBLAS threads
# spinning against other jobs on a loaded machine make them 10-50x slower.


@functools.lru_cache(maxsize=1)
def _openblas_threads() -> tuple[Any, Any] | None:
    """(get, set) of numpy's bundled OpenBLAS thread count, or None."""
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(libs.glob("lib*openblas*.so*")):
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    return get, put
    return None


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with one OpenBLAS thread (a no-op if that can't be set)."""
    handles = _openblas_threads()
    if handles is None:
        yield
        return
    get, put = handles
    before = int(get())
    put(1)
    try:
        yield
    finally:
        put(before)


# --------------------------------------------------------------------------
# Public result


@dataclass(frozen=True)
class IndependentPair:
    """A rendered wide-field/confocal stack pair and its exact ground truth.

    All transforms follow ``correlate.registration``: they map confocal
    centred stack coordinates to wide-field ones,
    ``[y_w, x_w] = M @ [y_c, x_c] + [ty, tx]`` and
    ``z_w = axial_scale * z_c + tz`` (um, ``M`` in (y, x) order).

    Attributes
    ----------
    widefield, confocal : ndarray of float32
        ``(z, y, x)`` stacks (wide-field in ADU, confocal in PMT counts).
    widefield_voxel_um, confocal_voxel_um : tuple of float
        Nominal ``(dz, dy, dx)`` of each stack, um.
    truth_matrix : ndarray
        ``M`` of the true transform, (2, 2).
    truth_translation_um : tuple of float
        ``(tz, ty, tx)`` of the true transform.
    truth_axial_scale : float
        ``axial_scale`` of the true transform.
    initial_matrix, initial_translation_um, initial_axial_scale
        The starting estimate (see ``start`` in `render_pair`).
    overlaps : bool
        False for deliberately wrong pairs (their truth is the stage geometry,
        meaningless for the content).
    description : dict
        How the pair was made: PSF family, optics, noise and SNR, planes,
        rotation, scales, specimen kind and parts, where the specimen sits in
        each stack's z range, the stacks' geometry in the sample frame, ...

    """

    widefield: NDArray[np.float32] = field(repr=False)
    confocal: NDArray[np.float32] = field(repr=False)
    widefield_voxel_um: tuple[float, float, float]
    confocal_voxel_um: tuple[float, float, float]
    truth_matrix: FloatArray
    truth_translation_um: tuple[float, float, float]
    truth_axial_scale: float
    initial_matrix: FloatArray
    initial_translation_um: tuple[float, float, float]
    initial_axial_scale: float
    overlaps: bool
    description: dict[str, Any] = field(repr=False)

    def truth_apply(self, points_zyx_um: Any) -> FloatArray:
        """Wide-field coordinates of confocal points ``(..., 3)``, (z, y, x) um."""
        return _apply(
            self.truth_matrix,
            self.truth_translation_um,
            self.truth_axial_scale,
            points_zyx_um,
        )


def _apply(
    matrix: FloatArray,
    translation: tuple[float, float, float],
    axial_scale: float,
    points_zyx_um: Any,
) -> FloatArray:
    p = np.asarray(points_zyx_um, dtype=np.float64)
    out = np.empty(p.shape, dtype=np.float64)
    out[..., 0] = axial_scale * p[..., 0] + translation[0]
    out[..., 1:] = p[..., 1:] @ np.asarray(matrix).T + np.asarray(translation[1:])
    return out


# --------------------------------------------------------------------------
# Specimen


@dataclass(frozen=True)
class Specimen:
    """Gaussian emitters in the sample frame.

    Attributes
    ----------
    huv_um : ndarray
        ``(n, 3)`` positions ``(h, u, v)``, um.
    weight : ndarray
        ``(n,)`` brightness (photons per emitter, arbitrary scale).
    sigma_lateral_um, sigma_axial_um : ndarray
        ``(n,)`` Gaussian sigmas of each emitter, um.
    parts : dict
        What the specimen is made of.

    """

    huv_um: FloatArray
    weight: FloatArray
    sigma_lateral_um: FloatArray
    sigma_axial_um: FloatArray
    parts: dict[str, Any]

    @staticmethod
    def join(pieces: list[Specimen], parts: dict[str, Any]) -> Specimen:
        """Concatenate emitter sets."""
        pieces = [p for p in pieces if len(p.weight)]
        if not pieces:
            return Specimen(np.zeros((0, 3)), *(np.zeros(0),) * 3, parts=parts)
        return Specimen(
            np.concatenate([p.huv_um for p in pieces]),
            np.concatenate([p.weight for p in pieces]),
            np.concatenate([p.sigma_lateral_um for p in pieces]),
            np.concatenate([p.sigma_axial_um for p in pieces]),
            parts,
        )


def _emitters(
    huv: FloatArray, weight: FloatArray | float, sigma: float | FloatArray
) -> Specimen:
    huv = np.asarray(huv, dtype=np.float64).reshape(-1, 3)
    n = len(huv)
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (n,)).copy()
    s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n,)).copy()
    return Specimen(huv, w, s, s.copy(), {})


def _smooth_field(
    rng: np.random.Generator, points: FloatArray, wavelength_um: tuple[float, float]
) -> FloatArray:
    """A smooth random field in [-1, 1] at ``points`` (n, d): random cosines."""
    n_modes = 8
    d = points.shape[1]
    k = rng.normal(size=(n_modes, d))
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    k *= 2 * np.pi / rng.uniform(*wavelength_um, size=(n_modes, 1))
    phase = rng.uniform(0, 2 * np.pi, n_modes)
    values = np.cos(points @ k.T + phase).sum(axis=1) / math.sqrt(n_modes / 2)
    return np.asarray(np.clip(values / 2.5, -1, 1))


@dataclass(frozen=True)
class _Cell:
    centre: FloatArray  # (u, v)
    radii: tuple[float, float]
    angle: float
    height: float
    power: float

    def local(self, uv: FloatArray) -> FloatArray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        rel = uv - self.centre
        a = (c * rel[:, 0] + s * rel[:, 1]) / self.radii[0]
        b = (-s * rel[:, 0] + c * rel[:, 1]) / self.radii[1]
        return np.column_stack([a, b])

    def rho2(self, uv: FloatArray) -> FloatArray:
        ab = self.local(uv)
        return np.asarray((ab**2).sum(axis=1))

    def surface(self, uv: FloatArray) -> FloatArray:
        rho2 = np.clip(self.rho2(uv), 0.0, 1.0)
        return np.asarray(self.height * (1.0 - rho2) ** self.power)

    def outward(self, uv: FloatArray) -> FloatArray:
        """Unit outward normal of the footprint ellipse's level sets."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        ab = self.local(uv)
        ga = ab[:, 0] / self.radii[0]
        gb = ab[:, 1] / self.radii[1]
        g = np.column_stack([c * ga - s * gb, s * ga + c * gb])
        return np.asarray(
            g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-9)
        )

    def sample_footprint(
        self, rng: np.random.Generator, n: int, rho_max: float = 1.0
    ) -> FloatArray:
        r = rho_max * np.sqrt(rng.uniform(size=n))
        t = rng.uniform(0, 2 * np.pi, n)
        a = r * np.cos(t) * self.radii[0]
        b = r * np.sin(t) * self.radii[1]
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.column_stack([c * a - s * b, s * a + c * b]) + self.centre


def _membrane(rng: np.random.Generator, cell: _Cell, scale: float) -> Specimen:
    density = 18.0 * rng.uniform(0.6, 1.2)  # emitters per um^2 of surface
    area = math.pi * cell.radii[0] * cell.radii[1]
    n_try = int(density * area * 3.0)
    uv = cell.sample_footprint(rng, n_try, rho_max=0.995)
    eps = 0.05
    du = np.array([eps, 0.0])
    dv = np.array([0.0, eps])
    h = cell.surface(uv)
    gu = (cell.surface(uv + du) - cell.surface(uv - du)) / (2 * eps)
    gv = (cell.surface(uv + dv) - cell.surface(uv - dv)) / (2 * eps)
    stretch = np.minimum(np.sqrt(1 + gu**2 + gv**2), 3.0)
    keep = rng.uniform(size=n_try) < stretch / 3.0
    uv, h = uv[keep], h[keep]
    huv = np.column_stack([h, uv])
    w = scale * (1.0 + 0.6 * _smooth_field(rng, huv, (2.0, 8.0)))
    return _emitters(huv, w, EMITTER_SIGMA_MAX_UM)


def _nucleus(
    rng: np.random.Generator, cell: _Cell, scale: float
) -> tuple[Specimen, str]:
    semi = np.array(
        [
            0.3 * cell.height * rng.uniform(0.85, 1.1),
            cell.radii[0] * rng.uniform(0.3, 0.45),
            cell.radii[1] * rng.uniform(0.3, 0.45),
        ]
    )
    centre_uv = cell.centre + rng.normal(0, 0.1, 2) * cell.radii
    centre = np.array([semi[0] + 0.12 * cell.height, *centre_uv])
    style = "rim" if rng.uniform() < 0.4 else "textured"
    volume = 4 / 3 * math.pi * semi.prod()
    angle = rng.uniform(0, np.pi)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if style == "textured":
        n = int(volume * 14.0)
        p = rng.normal(size=(n, 3))
        p *= (rng.uniform(size=(n, 1)) ** (1 / 3)) / np.linalg.norm(p, axis=1)[:, None]
        huv = (p * semi) @ rot.T + centre
        w = 1.0 + 0.8 * _smooth_field(rng, huv, (0.8, 3.0))
        for _ in range(rng.integers(1, 3)):  # nucleoli: dim holes
            centre_n = (rng.uniform(-0.5, 0.5, 3) * semi) @ rot.T + centre
            radius = rng.uniform(0.5, 1.0)
            w[np.linalg.norm(huv - centre_n, axis=1) < radius] *= 0.2
        w = np.clip(w, 0.05, None) * scale * 0.5
    else:
        area = 4 * math.pi * (semi.prod() ** (2 / 3))
        n = int(area * 20.0)
        p = rng.normal(size=(n, 3))
        p /= np.linalg.norm(p, axis=1)[:, None]
        rim = (p * semi) @ rot.T + centre
        n_in = int(volume * 3.0)
        q = rng.normal(size=(n_in, 3))
        q *= (rng.uniform(size=(n_in, 1)) ** (1 / 3)) / np.linalg.norm(q, axis=1)[
            :, None
        ]
        inner = (q * semi * 0.95) @ rot.T + centre
        huv = np.concatenate([rim, inner])
        w = np.concatenate([np.full(n, 1.2), np.full(n_in, 0.25)]) * scale
    huv[:, 0] = np.clip(huv[:, 0], 0.1, None)
    return _emitters(huv, w, EMITTER_SIGMA_MAX_UM), style


def _filaments(rng: np.random.Generator, cell: _Cell, scale: float) -> Specimen:
    n_fil = int(rng.integers(8, 30))
    step = 0.1
    lengths = rng.uniform(5.0, 25.0, n_fil)
    n_steps = int(lengths.max() / step) + 1
    persistence = rng.uniform(3.0, 12.0)
    uv = cell.sample_footprint(rng, n_fil, rho_max=0.8)
    h = rng.uniform(0.2, 0.8, n_fil) * np.maximum(cell.surface(uv), 0.4)
    t = np.column_stack([rng.normal(0, 0.15, n_fil), rng.normal(size=(n_fil, 2))])
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    pos = np.column_stack([h, uv])
    path = np.empty((n_steps, n_fil, 3))
    kick = math.sqrt(2 * step / persistence)
    for i in range(n_steps):
        path[i] = pos
        t = t + kick * rng.normal(size=(n_fil, 3)) * [0.4, 1.0, 1.0]
        top = cell.surface(pos[:, 1:]) - 0.15
        t[:, 0] = np.where(pos[:, 0] < 0.15, np.abs(t[:, 0]), t[:, 0])
        t[:, 0] = np.where(pos[:, 0] > top, -np.abs(t[:, 0]), t[:, 0])
        outside = cell.rho2(pos[:, 1:]) > 0.85
        normal = cell.outward(pos[:, 1:])
        radial = (t[:, 1:] * normal).sum(axis=1)
        t[:, 1:] -= np.where(outside & (radial > 0), 2 * radial, 0.0)[:, None] * normal
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        pos = pos + step * t
    valid = np.arange(n_steps)[:, None] * step <= lengths[None, :]
    brightness = scale * rng.uniform(0.4, 2.0, n_fil)
    w = np.broadcast_to(brightness, (n_steps, n_fil))[valid]
    huv = path[valid]
    huv[:, 0] = np.clip(huv[:, 0], 0.1, None)
    return _emitters(huv, w, EMITTER_SIGMA_MIN_UM)


def _puncta(rng: np.random.Generator, cell: _Cell, scale: float) -> Specimen:
    n = int(rng.integers(20, 150))
    uv = cell.sample_footprint(rng, n, rho_max=0.95)
    top = np.maximum(cell.surface(uv) - 0.15, 0.2)
    h = rng.uniform(0.15, 1.0, n) * top
    radius = rng.uniform(0.05, 0.25, n)
    brightness = scale * rng.uniform(2.0, 10.0, n)
    pieces = []
    single = radius <= 0.12
    pieces.append(
        _emitters(
            np.column_stack([h, uv])[single], brightness[single], EMITTER_SIGMA_MIN_UM
        )
    )
    for i in np.flatnonzero(~single):
        k = int(8 + 40 * (radius[i] / 0.25) ** 2)
        p = rng.normal(size=(k, 3))
        p /= np.linalg.norm(p, axis=1)[:, None]
        if rng.uniform() < 0.5:  # filled punctum, else hollow vesicle
            p *= rng.uniform(size=(k, 1)) ** (1 / 3)
        p *= max(radius[i] - 0.05, 0.02)
        pieces.append(
            _emitters(
                p + np.array([h[i], uv[i, 0], uv[i, 1]]),
                brightness[i] / k,
                EMITTER_SIGMA_MIN_UM,
            )
        )
    return Specimen.join(pieces, {})


def make_specimen(
    rng: np.random.Generator,
    *,
    centre_uv_um: tuple[float, float],
    half_extent_um: float,
    thickness_um: float,
) -> Specimen:
    """A random mixture specimen (cells with their parts, beads on the glass).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    centre_uv_um : tuple of float
        Where the main cell sits, sample frame, um.
    half_extent_um : float
        Half size of the square the other cells and the beads are spread over.
    thickness_um : float
        Height of the main (tallest) cell, um.

    Returns
    -------
    Specimen

    """
    centre = np.asarray(centre_uv_um, dtype=np.float64)
    n_cells = 1 + int(rng.integers(0, 4))
    pieces: list[Specimen] = []
    cells_info = []
    for i in range(n_cells):
        a = rng.uniform(9.0, 16.0)
        cell = _Cell(
            centre=centre
            + (
                rng.normal(0, 3, 2)
                if i == 0
                else rng.uniform(-half_extent_um, half_extent_um, 2)
            ),
            radii=(a, a * rng.uniform(0.6, 1.0)),
            angle=rng.uniform(0, np.pi),
            height=thickness_um if i == 0 else thickness_um * rng.uniform(0.5, 1.0),
            power=rng.uniform(0.4, 0.9),
        )
        parts = {
            "membrane": rng.uniform() < 0.6,
            "nucleus": rng.uniform() < 0.6,
            "filaments": rng.uniform() < 0.8,
            "puncta": rng.uniform() < 0.8,
        }
        if not (parts["membrane"] or parts["nucleus"] or parts["filaments"]):
            parts["filaments"] = True
        info: dict[str, Any] = {
            "centre_uv_um": [round(float(c), 3) for c in cell.centre],
            "height_um": round(cell.height, 3),
        }
        if parts["membrane"]:
            pieces.append(_membrane(rng, cell, rng.uniform(0.3, 1.0)))
            info["membrane"] = len(pieces[-1].weight)
        if parts["nucleus"]:
            nucleus, style = _nucleus(rng, cell, rng.uniform(0.5, 1.5))
            pieces.append(nucleus)
            info["nucleus"] = style
        if parts["filaments"]:
            pieces.append(_filaments(rng, cell, rng.uniform(0.5, 2.0)))
            info["filament_emitters"] = len(pieces[-1].weight)
        if parts["puncta"]:
            pieces.append(_puncta(rng, cell, rng.uniform(0.5, 2.0)))
            info["puncta_emitters"] = len(pieces[-1].weight)
        cells_info.append(info)
    n_beads = int(rng.integers(3, 10)) if rng.uniform() < 0.4 else 0
    if n_beads:
        uv = centre + rng.uniform(-half_extent_um, half_extent_um, (n_beads, 2))
        pieces.append(
            _emitters(
                np.column_stack([np.full(n_beads, 0.1), uv]),
                rng.uniform(30, 100, n_beads),
                EMITTER_SIGMA_MIN_UM,
            )
        )
    return Specimen.join(
        pieces,
        {"kind": "mixture", "cells": cells_info, "beads_on_glass": n_beads},
    )


def bead_specimen(huv_um: FloatArray, brightness: float = 100.0) -> Specimen:
    """Isolated beads (sigma 0.09 um, about a 200 nm bead) at ``(h, u, v)``."""
    huv = np.asarray(huv_um, dtype=np.float64).reshape(-1, 3)
    spec = _emitters(huv, brightness, EMITTER_SIGMA_MIN_UM)
    return Specimen(
        spec.huv_um,
        spec.weight,
        spec.sigma_lateral_um,
        spec.sigma_axial_um,
        {"kind": "beads", "beads": len(huv)},
    )


# --------------------------------------------------------------------------
# Real volumes as specimens

# Emitter sigma per emitter pitch: a sum of Gaussians this wide on this pitch
# ripples by ~1 % (the object is continuous, not a lattice of dots).
VOLUME_SIGMA_PER_PITCH = 0.55
# Most emitters a volume specimen may have (lateral binning grows until it fits).
VOLUME_MAX_EMITTERS = 300_000
# Most copies placed when the caller leaves their number to the renderer.
VOLUME_MAX_AUTO_COPIES = 24
# Mask: smoothing (voxels), noise margin (sigmas of the smoothed background),
# smallest connected part kept (voxels of the binned grid).
VOLUME_SMOOTH_VOXELS = 1.0
VOLUME_NOISE_SIGMAS = 4.0
VOLUME_MIN_PART_VOXELS = 8
_LENGTH_UNITS_UM = {
    "µm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "micrometer": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
}


def read_volume(
    path: str | Path, voxel_um: tuple[float, float, float] | None = None
) -> tuple[NDArray[np.float32], tuple[float, float, float], dict[str, Any]]:
    """A 3D ``(z, y, x)`` TIFF volume, its voxel size and where that came from.

    The voxel is ``voxel_um`` when given, else the OME ``PhysicalSizeZ/Y/X``
    of the file.

    Parameters
    ----------
    path : str or Path
        (OME-)TIFF file holding one 3D volume (singleton axes are dropped).
    voxel_um : tuple of float, optional
        ``(dz, dy, dx)`` um; overrides the file's.

    Returns
    -------
    volume : ndarray of float32
        ``(nz, ny, nx)``.
    voxel_um : tuple of float
        ``(dz, dy, dx)`` used, um.
    info : dict
        ``voxel_from`` ("caller" or "OME metadata") and ``file_voxel_um`` (the
        file's own, or None).

    Raises
    ------
    ValueError
        The file holds no 3D volume, or neither it nor the caller gives the
        voxel size.

    """
    import tifffile  # only volume specimens need it

    path = Path(path)
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes
        file_voxel = _ome_voxel(tif.ome_metadata) if tif.is_ome else None
    keep = [i for i, n in enumerate(data.shape) if n > 1 or axes[i] in "ZYX"]
    data = data.reshape([data.shape[i] for i in keep])
    if data.ndim != 3 or min(data.shape) < 2:
        raise ValueError(
            f"{path}: expected one 3D (z, y, x) volume, got shape "
            f"{series.shape} (axes {axes})"
        )
    if voxel_um is not None:
        voxel = tuple(float(v) for v in voxel_um)
        if len(voxel) != 3 or min(voxel) <= 0:
            raise ValueError(f"volume_voxel_um must be 3 sizes > 0 um; {voxel_um!r}")
        source = "caller"
    elif file_voxel is not None:
        voxel, source = file_voxel, "OME metadata"
    else:
        raise ValueError(
            f"{path}: the file records no voxel size (no OME PhysicalSizeZ/Y/X); "
            "pass volume_voxel_um=(dz, dy, dx) in um, e.g. an estimate such as "
            "(0.8, 0.8, 0.8), and report it as an estimate"
        )
    info: dict[str, Any] = {
        "voxel_from": source,
        "file_voxel_um": None if file_voxel is None else list(file_voxel),
    }
    if file_voxel is None:
        info["voxel_note"] = (
            "the file records no voxel size: the caller's value (an estimate "
            "unless known otherwise)"
        )
    return data.astype(np.float32), (voxel[0], voxel[1], voxel[2]), info


def _ome_voxel(ome_xml: str | None) -> tuple[float, float, float] | None:
    """``(dz, dy, dx)`` um from the first OME ``Pixels`` element, or None."""
    import xml.etree.ElementTree as ET

    if not ome_xml:
        return None
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels")), None)
    if pixels is None:
        return None
    sizes = []
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
        if value is None or unit not in _LENGTH_UNITS_UM:
            return None
        size = float(value) * _LENGTH_UNITS_UM[unit]
        if not size > 0:
            return None
        sizes.append(size)
    return sizes[0], sizes[1], sizes[2]


@dataclass(frozen=True)
class VolumeEmitters:
    """A volume turned into Gaussian emitters, in its own frame.

    Attributes
    ----------
    zyx_um : ndarray
        ``(n, 3)``: height above the glass (the lowest kept plane's voxels
        centred half a voxel up) and lateral ``(y, x)`` about the weighted
        centroid, um; voxel (or bin) centres.
    weight : ndarray
        ``(n,)`` background-subtracted values, scaled so the 99.9th percentile
        is 1.
    sigma_lateral_um, sigma_axial_um : float
        The emitters' Gaussian sigmas.
    height_um : float
        Top of the highest kept plane above the glass.
    footprint_um : tuple of float
        Lateral ``(y, x)`` size of the whole file's field.
    info : dict
        Source, voxel, binning, background, threshold, counts.

    """

    zyx_um: FloatArray
    weight: FloatArray
    sigma_lateral_um: float
    sigma_axial_um: float
    height_um: float
    footprint_um: tuple[float, float]
    info: dict[str, Any]


def volume_emitters(
    path: str | Path,
    voxel_um: tuple[float, float, float] | None = None,
    *,
    lateral_bin: int | None = None,
    threshold: float = 0.05,
) -> VolumeEmitters:
    """Turn a real 3D volume into emitters (background off, small values off).

    The volume is binned laterally by ``lateral_bin`` (mean; default: the
    largest bin whose emitters stay no wider than the built-in ones). The
    background is the median of the volume smoothed by a 1-voxel Gaussian
    (the structures fill few voxels) and the noise is that smoothed volume's
    robust spread below the median; voxels whose smoothed value exceeds the
    background by ``threshold`` x (99.9th percentile - background) and by 4
    noise sigmas, in connected parts of at least 8 voxels, become emitters of
    weight value - background at their voxel centres. Emitter sigma is 0.55 x
    the pitch on each axis (at least the built-in 0.09 um): the object is
    continuous.

    Parameters
    ----------
    path : str or Path
        The volume file (see `read_volume`).
    voxel_um : tuple of float, optional
        ``(dz, dy, dx)`` um when the file has none (or to override it).
    lateral_bin : int, optional
        Lateral binning factor.
    threshold : float
        Fraction of the background-to-bright range below which voxels are off.

    Returns
    -------
    VolumeEmitters

    """
    path = Path(path)
    return _volume_emitters(
        str(path.resolve()),
        path.stat().st_mtime_ns,
        None if voxel_um is None else tuple(float(v) for v in voxel_um),
        lateral_bin,
        float(threshold),
    )


@functools.lru_cache(maxsize=8)
def _volume_emitters(
    path: str,
    mtime_ns: int,
    voxel_um: tuple[float, ...] | None,
    lateral_bin: int | None,
    threshold: float,
) -> VolumeEmitters:
    from scipy import ndimage

    volume, voxel, read_info = read_volume(
        path, None if voxel_um is None else (voxel_um[0], voxel_um[1], voxel_um[2])
    )
    dz, dy, dx = voxel
    pitch = max(dy, dx)
    b = (
        max(1, math.ceil(EMITTER_SIGMA_MIN_UM / (VOLUME_SIGMA_PER_PITCH * pitch)))
        if lateral_bin is None
        else int(lateral_bin)
    )
    if b < 1:
        raise ValueError(f"lateral_bin must be >= 1, got {lateral_bin}")
    nz, ny, nx = volume.shape
    by, bx = ny // b, nx // b
    if by < 2 or bx < 2:
        raise ValueError(f"{path}: a lateral bin of {b} leaves fewer than 2 pixels")
    binned = volume[:, : by * b, : bx * b].reshape(nz, by, b, bx, b).mean(axis=(2, 4))
    smooth = ndimage.gaussian_filter(binned, VOLUME_SMOOTH_VOXELS, mode="nearest")
    p25, background, bright = np.percentile(smooth, [25.0, 50.0, 99.9])
    noise = (background - p25) / 0.6745
    level = background + max(
        threshold * (bright - background), VOLUME_NOISE_SIGMAS * noise
    )
    mask = smooth > level
    labels, _ = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())
    big = sizes >= VOLUME_MIN_PART_VOXELS
    big[0] = False
    mask = big[labels]
    k, j, i = np.nonzero(mask)
    if len(k) == 0:
        raise ValueError(f"{path}: no voxel is above the threshold ({level:.4g})")
    value = np.clip(binned[k, j, i] - background, 0.0, None).astype(np.float64)
    scale = float(np.percentile(value, 99.9))
    weight = value / max(scale, 1e-12)
    # Voxel (bin) centres in original voxel units, then um.
    y = (j * b + (b - 1) / 2) * dy
    x = (i * b + (b - 1) / 2) * dx
    cy = float(np.average(y, weights=weight + 1e-12))
    cx = float(np.average(x, weights=weight + 1e-12))
    k_lo, k_hi = int(k.min()), int(k.max())
    zyx = np.column_stack([(k - k_lo + 0.5) * dz, y - cy, x - cx])
    zyx.setflags(write=False)  # shared by the cache
    weight.setflags(write=False)
    sigma_lateral = max(VOLUME_SIGMA_PER_PITCH * b * pitch, EMITTER_SIGMA_MIN_UM)
    sigma_axial = max(VOLUME_SIGMA_PER_PITCH * dz, EMITTER_SIGMA_MIN_UM)
    radius = float(np.sqrt((zyx[:, 1:] ** 2).sum(axis=1)).max())
    info = {
        "source": path,
        "file": Path(path).name,
        "file_shape_zyx": list(volume.shape),
        "voxel_um": [dz, dy, dx],
        **read_info,
        "lateral_bin": b,
        "emitter_pitch_um": [dz, b * dy, b * dx],
        "emitter_sigma_um": {"lateral": sigma_lateral, "axial": sigma_axial},
        "background": round(float(background), 3),
        "noise_sigma": round(float(noise), 3),
        "threshold_fraction": threshold,
        "threshold_value": round(float(level), 3),
        "weight_scale": round(scale, 3),
        "planes_used": [k_lo, k_hi],
        "parts": int((sizes[1:] >= VOLUME_MIN_PART_VOXELS).sum()),
        "emitters_per_copy": len(k),
        "height_um": (k_hi - k_lo + 1) * dz,
        "structure_radius_um": round(radius, 3),
    }
    return VolumeEmitters(
        zyx_um=zyx,
        weight=weight,
        sigma_lateral_um=sigma_lateral,
        sigma_axial_um=sigma_axial,
        height_um=(k_hi - k_lo + 1) * dz,
        footprint_um=(ny * dy, nx * dx),
        info=info,
    )


# --------------------------------------------------------------------------
# Optics and PSF tables


@dataclass(frozen=True)
class Optics:
    """One scope's imaging model.

    Attributes
    ----------
    family : str
        ``"gaussian"`` or ``"debye"``.
    modality : str
        ``"widefield"`` or ``"confocal"``.
    na : float
        Numerical aperture.
    emission_um : float
        Emission wavelength, um.
    excitation_um : float
        Excitation wavelength (confocal), um.
    pinhole_au : float
        Pinhole diameter in Airy units (confocal).
    spherical_waves : float
        Primary spherical aberration at h = 0, waves (debye).
    spherical_waves_per_um : float
        Its growth with height in the sample, waves per um (debye).
    immersion_index : float
        Refractive index of the immersion medium.

    """

    family: str
    modality: str
    na: float
    emission_um: float
    excitation_um: float = CONFOCAL_EXCITATION_UM
    pinhole_au: float = 1.0
    spherical_waves: float = 0.0
    spherical_waves_per_um: float = 0.0
    immersion_index: float = IMMERSION_INDEX


def _gaussian_widths(na: float, wavelength: float, n: float) -> tuple[float, float]:
    """(lateral sigma at focus, Rayleigh-like range) of a Gaussian beam PSF."""
    s0 = 0.21 * wavelength / na
    z_r = 0.44 * wavelength / (n - math.sqrt(n * n - na * na))
    return s0, z_r


def _band_limit(
    optics: Optics,
    sigma_min_um: float = EMITTER_SIGMA_MIN_UM,
    floor: float = SPECTRUM_FLOOR,
) -> float:
    """Highest lateral frequency (cycles/um, physical) worth rendering.

    ``sigma_min_um`` is the narrowest emitter's lateral sigma, ``floor`` the
    relative amplitude below which frequencies are dropped.
    """
    blob = math.sqrt(math.log(1 / floor) / (2 * math.pi**2)) / sigma_min_um
    if optics.family == "debye":
        cutoff = 2 * optics.na / optics.emission_um
        if optics.modality == "confocal":
            cutoff += 2 * optics.na / optics.excitation_um
        return min(cutoff, blob)
    n = optics.immersion_index
    if optics.modality == "widefield":
        s2 = _gaussian_widths(optics.na, optics.emission_um, n)[0] ** 2
    else:
        sx2 = _gaussian_widths(optics.na, optics.excitation_um, n)[0] ** 2
        sd2 = _detection_sigma2(optics, 0.0)
        s2 = sx2 * sd2 / (sx2 + sd2)
    s2 += sigma_min_um**2
    return math.sqrt(math.log(1 / floor) / (2 * math.pi**2 * s2))


def _detection_sigma2(optics: Optics, d: Any) -> Any:
    s0, z_r = _gaussian_widths(optics.na, optics.emission_um, optics.immersion_index)
    pinhole_radius = optics.pinhole_au * 0.61 * optics.emission_um / optics.na
    return s0**2 * (1 + (np.asarray(d) / z_r) ** 2) + pinhole_radius**2 / 4


def _gaussian_otf(optics: Optics, f: FloatArray, d: FloatArray) -> FloatArray:
    """OTF (f, d) of the Gaussian family; wide-field OTF(0, d) = 1."""
    n = optics.immersion_index
    f2 = (f**2)[:, None]
    if optics.modality == "widefield":
        s0, z_r = _gaussian_widths(optics.na, optics.emission_um, n)
        s2 = s0**2 * (1 + (d / z_r) ** 2)
        return np.asarray(np.exp(-2 * np.pi**2 * s2[None, :] * f2))
    s0x, zx = _gaussian_widths(optics.na, optics.excitation_um, n)
    sx2 = s0x**2 * (1 + (d / zx) ** 2)
    sd2 = _detection_sigma2(optics, d)
    flux = 1.0 / (sx2 + sd2)
    flux0 = 1.0 / (s0x**2 + _detection_sigma2(optics, 0.0))
    s2 = sx2 * sd2 / (sx2 + sd2)
    return np.asarray(
        (flux / flux0)[None, :] * np.exp(-2 * np.pi**2 * s2[None, :] * f2)
    )


def _radial_weights(r: FloatArray) -> FloatArray:
    """Weights for int_0^R g(r) r dr on a uniform grid from 0 (end-corrected)."""
    dr = r[1] - r[0]
    w = r * dr
    w[-1] *= 0.5
    w[0] = dr * dr / 12.0  # Euler-Maclaurin: (r g)'(0) = g(0)
    return w


@functools.lru_cache(maxsize=8)
def _aperture_nodes(na: float, n: float, n_theta: int) -> tuple[FloatArray, FloatArray]:
    alpha = math.asin(na / n)
    x, w = np.polynomial.legendre.leggauss(n_theta)
    theta = (x + 1) * alpha / 2
    amplitude = np.sqrt(np.cos(theta)) * np.sin(theta) * w * alpha / 2
    return theta, amplitude


@functools.lru_cache(maxsize=8)
def _j0_matrix(
    wavelength: float, na: float, n: float, r_max: float, dr: float, n_theta: int
) -> FloatArray:
    theta, _ = _aperture_nodes(na, n, n_theta)
    k = 2 * np.pi * n / wavelength
    r = np.arange(0.0, r_max + dr / 2, dr)
    return np.asarray(special.j0(k * r[:, None] * np.sin(theta)[None, :]))


def _n_theta(wavelength: float, na: float, n: float, r_max: float, d_max: float) -> int:
    alpha = math.asin(na / n)
    k = 2 * np.pi * n / wavelength
    phase = k * (r_max * math.sin(alpha) + d_max * (1 - math.cos(alpha)))
    return int(math.ceil((1.25 * phase / math.pi + 64) / 64) * 64)


def _pupil_phase(theta: FloatArray, na: float, n: float, waves: float) -> FloatArray:
    rho2 = (np.sin(theta) * n / na) ** 2
    return np.asarray(2 * np.pi * waves * math.sqrt(5) * (6 * rho2**2 - 6 * rho2 + 1))


def _debye_amplitude(
    wavelength: float,
    na: float,
    n: float,
    waves: float,
    d: FloatArray,
    r_max: float,
    dr: float,
    n_theta: int,
) -> NDArray[np.complex128]:
    """Scalar Debye amplitude U(r, d) on r = 0, dr, ..., r_max."""
    theta, amplitude = _aperture_nodes(na, n, n_theta)
    k = 2 * np.pi * n / wavelength
    phase = k * np.cos(theta)[:, None] * d[None, :]
    phase = phase + _pupil_phase(theta, na, n, waves)[:, None]
    pupil = amplitude[:, None] * np.exp(1j * phase)
    j = _j0_matrix(wavelength, na, n, r_max, dr, n_theta)
    return np.asarray((j @ pupil.real) + 1j * (j @ pupil.imag))


def _debye_psf(
    wavelength: float,
    optics: Optics,
    waves: float,
    d: FloatArray,
    r_max: float,
    dr: float,
) -> tuple[FloatArray, FloatArray]:
    """(r, PSF(r, d)) with unit flux in every plane."""
    n = optics.immersion_index
    n_theta = _n_theta(wavelength, optics.na, n, r_max, float(np.abs(d).max()))
    u = _debye_amplitude(wavelength, optics.na, n, waves, d, r_max, dr, n_theta)
    psf = np.abs(u) ** 2
    r = np.arange(0.0, r_max + dr / 2, dr)
    flux = 2 * np.pi * (_radial_weights(r) @ psf)
    return r, psf / flux[None, :]


def _hankel(f: FloatArray, r: FloatArray) -> FloatArray:
    """Matrix of the 2D radial Fourier transform from samples on ``r``."""
    return np.asarray(
        2 * np.pi * special.j0(2 * np.pi * f[:, None] * r[None, :]) * _radial_weights(r)
    )


def _confocal_detection(
    optics: Optics, r: FloatArray, psf_em: FloatArray
) -> FloatArray:
    """Emission PSF convolved with the back-projected pinhole (indicator)."""
    r_max = float(r[-1])
    cutoff = 2 * optics.na / optics.emission_um
    g = np.arange(0.0, cutoff + 1 / (4 * r_max), 1 / (4 * r_max))
    spectrum = _hankel(g, r) @ psf_em
    radius = optics.pinhole_au * 0.61 * optics.emission_um / optics.na
    x = 2 * np.pi * g * radius
    pinhole = np.where(
        g > 0, radius * special.j1(x) / np.where(g > 0, g, 1.0), np.pi * radius**2
    )
    return np.asarray(_hankel(r, g) @ (spectrum * pinhole[:, None]))


@functools.lru_cache(maxsize=32)
def _peak_defocus(optics: Optics, waves: float) -> float:
    """Defocus of the PSF's on-axis intensity peak (0 without aberration)."""
    if waves == 0.0 or optics.family != "debye":
        return 0.0
    n = optics.immersion_index

    def on_axis(d: FloatArray) -> FloatArray:
        if optics.modality == "widefield":
            return _axis_intensity(optics.emission_um, optics, waves, d)
        ex = _axis_intensity(optics.excitation_um, optics, waves, d)
        radius = optics.pinhole_au * 0.61 * optics.emission_um / optics.na
        dr = radius / 40
        n_theta = _n_theta(
            optics.emission_um, optics.na, n, radius, float(np.abs(d).max())
        )
        u = _debye_amplitude(
            optics.emission_um, optics.na, n, waves, d, radius, dr, n_theta
        )
        r = np.arange(0.0, radius + dr / 2, dr)
        collected = _radial_weights(r) @ (np.abs(u) ** 2)
        return np.asarray(ex * collected)

    d = np.linspace(-3.0, 3.0, 1201)
    profile = on_axis(d)
    i = int(np.clip(np.argmax(profile), 1, len(d) - 2))
    fine = np.linspace(d[i - 1], d[i + 1], 401)
    profile = on_axis(fine)
    j = int(np.clip(np.argmax(profile), 1, len(fine) - 2))
    y0, y1, y2 = profile[j - 1 : j + 2]
    denom = y0 - 2 * y1 + y2
    step = fine[1] - fine[0]
    offset = 0.5 * (y0 - y2) / denom if denom < 0 else 0.0
    return float(fine[j] + offset * step)


def _axis_intensity(
    wavelength: float, optics: Optics, waves: float, d: FloatArray
) -> FloatArray:
    n = optics.immersion_index
    theta, amplitude = _aperture_nodes(optics.na, n, 512)
    k = 2 * np.pi * n / wavelength
    phase = k * np.cos(theta)[:, None] * d[None, :]
    phase = phase + _pupil_phase(theta, optics.na, n, waves)[:, None]
    u = (amplitude[:, None] * np.exp(1j * phase)).sum(axis=0)
    return np.asarray(np.abs(u) ** 2)


def otf_table(
    optics: Optics, f_um: FloatArray, d_um: FloatArray, waves: float = 0.0
) -> FloatArray:
    """OTF(|f|, d) on physical frequencies ``f_um`` (cycles/um) and defoci (um).

    The wide-field OTF is 1 at f = 0 for every defocus (no sectioning); the
    confocal one is 1 at f = 0, d = 0 and falls with |d|. ``d`` is measured
    from the PSF's on-axis intensity peak.

    Parameters
    ----------
    optics : Optics
        The imaging model.
    f_um : ndarray
        Lateral spatial frequencies, cycles per um.
    d_um : ndarray
        Defoci (emitter height minus focal height), um.
    waves : float
        Primary spherical aberration, waves (debye only).

    Returns
    -------
    ndarray
        ``(len(f_um), len(d_um))``.

    """
    f = np.asarray(f_um, dtype=np.float64)
    d = np.asarray(d_um, dtype=np.float64)
    if optics.family == "gaussian":
        return _gaussian_otf(optics, f, d)
    if optics.family != "debye":
        raise ValueError(f"unknown PSF family {optics.family!r}")
    peak = _peak_defocus(optics, waves)
    d = np.append(d, 0.0) + peak  # the last column: in focus, for normalising
    n = optics.immersion_index
    tan_alpha = math.tan(math.asin(optics.na / n))
    d_max = float(np.abs(d).max())
    r_max = math.ceil((d_max * tan_alpha * 1.1 + 4.0) / 4.0) * 4.0
    if optics.modality == "widefield":
        dr = optics.emission_um / (12 * optics.na)
        r, psf = _debye_psf(optics.emission_um, optics, waves, d, r_max, dr)
        return np.asarray((_hankel(f, r) @ psf)[:, :-1])
    dr = min(optics.excitation_um, optics.emission_um) / (24 * optics.na)
    r, ex = _debye_psf(optics.excitation_um, optics, waves, d, r_max, dr)
    _, em = _debye_psf(optics.emission_um, optics, waves, d, r_max, dr)
    psf = ex * _confocal_detection(optics, r, em)
    otf = _hankel(f, r) @ psf[:, :-1]
    flux0 = 2 * np.pi * (_radial_weights(r) @ psf[:, -1])
    return np.asarray(otf / flux0)


# --------------------------------------------------------------------------
# Stack geometry and rendering


@dataclass(frozen=True)
class StackGeometry:
    """Where a stack's grid sits in the sample frame.

    ``(u, v) = lateral @ (y, x) + origin_uv_um`` and
    ``h = height_mid_um + axial_stretch * z`` for centred nominal stack
    coordinates ``(z, y, x)``.
    """

    shape: tuple[int, int, int]
    voxel_um: tuple[float, float, float]
    lateral: FloatArray
    origin_uv_um: FloatArray
    height_mid_um: float
    axial_stretch: float

    @property
    def lateral_scale(self) -> float:
        return float(math.sqrt(abs(np.linalg.det(self.lateral))))

    def heights(self) -> FloatArray:
        nz = self.shape[0]
        z = (np.arange(nz) - (nz - 1) / 2) * self.voxel_um[0]
        return np.asarray(self.height_mid_um + self.axial_stretch * z)

    def to_stack(self, huv: FloatArray) -> FloatArray:
        """Centred stack coordinates ``(z, y, x)`` of sample points ``(h, u, v)``."""
        huv = np.asarray(huv, dtype=np.float64).reshape(-1, 3)
        out = np.empty_like(huv)
        out[:, 0] = (huv[:, 0] - self.height_mid_um) / self.axial_stretch
        out[:, 1:] = (huv[:, 1:] - self.origin_uv_um) @ np.linalg.inv(self.lateral).T
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "voxel_um": list(self.voxel_um),
            "lateral_matrix": self.lateral.tolist(),
            "origin_uv_um": self.origin_uv_um.tolist(),
            "height_mid_um": self.height_mid_um,
            "axial_stretch": self.axial_stretch,
        }


def pair_truth(
    confocal: StackGeometry, widefield: StackGeometry
) -> tuple[FloatArray, tuple[float, float, float], float]:
    """The exact confocal-to-wide-field transform ``(M, (tz, ty, tx), axial_scale)``."""
    a_inv = np.linalg.inv(widefield.lateral)
    m = a_inv @ confocal.lateral
    t = a_inv @ (confocal.origin_uv_um - widefield.origin_uv_um)
    scale = confocal.axial_stretch / widefield.axial_stretch
    tz = (confocal.height_mid_um - widefield.height_mid_um) / widefield.axial_stretch
    return m, (float(tz), float(t[0]), float(t[1])), float(scale)


def _odd_fast_len(n: int) -> int:
    """Smallest odd ``m >= n`` whose prime factors are 3, 5 and 7."""
    m = n + 1 - n % 2
    while True:
        k = m
        for p in (3, 5, 7):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2


def render_signal(
    specimen: Specimen,
    geometry: StackGeometry,
    optics: Optics,
    *,
    pad_um: float = 4.0,
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """Noise-free image of ``specimen`` through ``optics`` on ``geometry``.

    The field plus ``pad_um`` on every side is one period of a periodic
    computation: emitters in the border blur into the field, and blur that
    leaves the period on one side re-enters it on the other.

    Parameters
    ----------
    specimen : Specimen
        Emitters in the sample frame.
    geometry : StackGeometry
        The stack's grid in the sample frame.
    optics : Optics
        Imaging model (PSF family, modality, NA, ...).
    pad_um : float
        Border rendered around the field, um.

    Returns
    -------
    signal : ndarray of float32
        ``(nz, ny, nx)``, emitter weight per pixel: in wide field an emitter of
        weight ``w`` gives ``w`` summed over every plane; in confocal it gives
        less out of focus.
    info : dict
        Rendering parameters (fine grid, levels, emitters used, seconds).

    """
    clock = [time.perf_counter()]
    nz, ny, nx = geometry.shape
    dz, dy, dx = geometry.voxel_um
    s = geometry.lateral_scale
    # Specimens made only of emitters wider than the built-in ones (volume
    # specimens with coarse voxels) have a narrower band and a coarser grid
    # (cut at a lower floor: their band ignores the debye PSFs).
    sigma_min = EMITTER_SIGMA_MIN_UM
    lateral_sigmas = specimen.sigma_lateral_um
    sigma_lateral_min = float(lateral_sigmas.min()) if len(lateral_sigmas) else 0.0
    if sigma_lateral_min > EMITTER_SIGMA_MAX_UM:
        sigma_min = sigma_lateral_min
        band = _band_limit(optics, sigma_min, WIDE_SPECTRUM_FLOOR)
    else:
        band = _band_limit(optics)
    # One period = the output grid plus padding (odd sizes: no Nyquist bin).
    pad_y = math.ceil(pad_um / (dy * s))
    pad_x = math.ceil(pad_um / (dx * s))
    out_y = _odd_fast_len(ny + 2 * pad_y)
    out_x = _odd_fast_len(nx + 2 * pad_x)
    period_y, period_x = out_y * dy, out_x * dx  # nominal um
    # Fine grid: Nyquist above the band, spacing below the emitter sigma.
    density = max(2.05 * band, 1.0 / sigma_min) * s  # per nominal um
    n_y = scipy.fft.next_fast_len(math.ceil(density * period_y), real=True)
    n_x = scipy.fft.next_fast_len(math.ceil(density * period_x), real=True)
    fine_y, fine_x = period_y / n_y, period_x / n_x
    start_y = (-pad_y - (ny - 1) / 2) * dy
    start_x = (-pad_x - (nx - 1) / 2) * dx

    # Emitters in fine-grid coordinates (inside one period).
    nominal = (specimen.huv_um[:, 1:] - geometry.origin_uv_um) @ np.linalg.inv(
        geometry.lateral
    ).T
    gy = (nominal[:, 0] - start_y) / fine_y
    gx = (nominal[:, 1] - start_x) / fine_x
    keep = (gy >= -0.5) & (gy < n_y - 0.5) & (gx >= -0.5) & (gx < n_x - 0.5)
    order = np.argsort(specimen.huv_um[keep, 0], kind="stable")
    sel = np.flatnonzero(keep)[order]
    h = specimen.huv_um[sel, 0]
    weight = specimen.weight[sel]
    sigma_z = specimen.sigma_axial_um[sel]
    sigma_yx = specimen.sigma_lateral_um[sel] / s  # nominal um
    gy, gx = gy[sel], gx[sel]
    iy = np.rint(gy).astype(np.int64)
    ix = np.rint(gx).astype(np.int64)
    sigma_max = float(specimen.sigma_lateral_um.max(initial=EMITTER_SIGMA_MIN_UM))
    half_y = math.ceil(FOOTPRINT_SIGMAS * sigma_max / (s * fine_y))
    half_x = math.ceil(FOOTPRINT_SIGMAS * sigma_max / (s * fine_x))

    # Lateral footprints: separable sampled Gaussians, indices wrap the period.
    oy = np.arange(-half_y, half_y + 1)
    ox = np.arange(-half_x, half_x + 1)
    ry = (iy[:, None] + oy[None, :] - gy[:, None]) * fine_y
    rx = (ix[:, None] + ox[None, :] - gx[:, None]) * fine_x
    norm_y = fine_y / (math.sqrt(2 * np.pi) * sigma_yx[:, None])
    norm_x = fine_x / (math.sqrt(2 * np.pi) * sigma_yx[:, None])
    wy = np.exp(-(ry**2) / (2 * sigma_yx[:, None] ** 2)) * norm_y
    wx = np.exp(-(rx**2) / (2 * sigma_yx[:, None] ** 2)) * norm_x
    stamp_w = (wy[:, :, None] * wx[:, None, :]).reshape(len(sel), -1)
    stamp_w = stamp_w.astype(np.float32)
    rows = ((iy[:, None] + oy[None, :]) % n_y) * n_x
    cols = (ix[:, None] + ox[None, :]) % n_x
    stamp_i = (rows[:, :, None] + cols[:, None, :]).reshape(len(sel), -1)
    stamp_i = stamp_i.astype(np.int32 if n_y * n_x < 2**31 else np.int64)
    del ry, rx, wy, wx, rows, cols

    # Height levels aligned with the planes: d = (j - m k) * step exactly.
    # Below the narrowest axial sigma (specimens made only of emitters wider
    # than the built-in ones allow coarser levels).
    physical_dz = geometry.axial_stretch * dz
    step_max = LEVEL_STEP_MAX_UM
    sigma_z_min = float(sigma_z.min()) if len(sigma_z) else 0.0
    if sigma_z_min > EMITTER_SIGMA_MAX_UM:
        step_max = max(
            step_max, min(LEVEL_STEP_PER_SIGMA * sigma_z_min, LEVEL_STEP_CAP_UM)
        )
    m = max(1, math.ceil(physical_dz / step_max - 1e-9))
    step = physical_dz / m
    h_plane0 = float(geometry.heights()[0])
    reach = FOOTPRINT_SIGMAS * float(sigma_z.max(initial=EMITTER_SIGMA_MIN_UM))
    if len(sel):
        j_lo = math.floor((h.min() - reach - h_plane0) / step)
        j_hi = math.ceil((h.max() + reach - h_plane0) / step)
    else:
        j_lo = j_hi = 0
    levels = np.arange(j_lo, j_hi + 1)
    n_levels = len(levels)

    # Spectral disc (|f| <= band, physical) and the |f| nodes the OTF is
    # evaluated at: every distinct |f| of the grid below EXACT_RINGS / period
    # (broad, defocused PSFs have narrow OTFs), then fine rings with linear
    # interpolation between them.
    fy = scipy.fft.fftfreq(n_y, fine_y)
    fx = scipy.fft.rfftfreq(n_x, fine_x)
    freq = np.hypot(fy[:, None], fx[None, :]).ravel() / s
    unit = 1.0 / (max(period_y, period_x) * s)  # grid frequency spacing
    inside = np.flatnonzero(freq <= band)
    f_in = freq[inside]
    exact = f_in < EXACT_RINGS * unit
    key = np.round((f_in[exact] / unit) ** 2, 6)
    exact_key, exact_node = np.unique(key, return_inverse=True)
    ring_width = RING_WIDTH * unit
    first_ring = EXACT_RINGS * unit
    n_rings = math.ceil((band - first_ring) / ring_width) + 2
    node_f = np.concatenate(
        [np.sqrt(exact_key) * unit, first_ring + ring_width * np.arange(n_rings)]
    )
    node = np.empty(len(f_in), dtype=np.int64)
    ring_frac = np.zeros(len(f_in))
    node[exact] = exact_node
    position = (f_in[~exact] - first_ring) / ring_width
    node[~exact] = len(exact_key) + np.floor(position).astype(np.int64)
    ring_frac[~exact] = position - np.floor(position)
    by_node = np.argsort(node, kind="stable")
    disc = inside[by_node]
    node = node[by_node]
    ring_frac = ring_frac[by_node]
    node_ids, node_start = np.unique(node, return_index=True)
    node_end = np.append(node_start[1:], len(disc))
    n_disc = len(disc)
    clock.append(time.perf_counter())

    # Level spectra: (disc entry, real/imaginary, level).
    spectra = np.zeros((n_disc, 2, n_levels), dtype=np.float32)
    bottom = h - reach
    top = h + reach
    z_norm = step / (math.sqrt(2 * np.pi) * sigma_z)
    for li, j in enumerate(levels):
        h_level = h_plane0 + j * step
        a = int(np.searchsorted(top, h_level, side="left"))
        b = int(np.searchsorted(bottom, h_level, side="right"))
        if b <= a:
            continue
        dh = h_level - h[a:b]
        c = weight[a:b] * z_norm[a:b] * np.exp(-(dh**2) / (2 * sigma_z[a:b] ** 2))
        c[np.abs(dh) > FOOTPRINT_SIGMAS * sigma_z[a:b]] = 0.0
        image = np.bincount(
            stamp_i[a:b].ravel(),
            weights=(stamp_w[a:b] * c[:, None].astype(np.float32)).ravel(),
            minlength=n_y * n_x,
        )
        spectrum = scipy.fft.rfft2(
            image.astype(np.float32).reshape(n_y, n_x), workers=-1
        ).ravel()[disc]
        spectra[:, 0, li] = spectrum.real
        spectra[:, 1, li] = spectrum.imag
    del stamp_i, stamp_w
    clock.append(time.perf_counter())

    # Defocus table: d = (j - m k) step for all levels j and planes k.
    n_lo = j_lo - m * (nz - 1)
    defocus = np.arange(n_lo, j_hi + 1) * step
    index = levels[None, :] - m * np.arange(nz)[:, None] - n_lo  # (nz, L)
    ring_f = node_f
    waves = optics.spherical_waves
    per_um = optics.spherical_waves_per_um if optics.family == "debye" else 0.0
    level_h = h_plane0 + levels * step
    node_step = 1.5
    if per_um == 0.0 or n_levels == 0:
        tables = [otf_table(optics, ring_f, defocus, waves).astype(np.float32)]
        blend = np.ones((1, n_levels), dtype=np.float32)
    else:
        node_h = np.arange(
            level_h.min(), level_h.max() + node_step, node_step, dtype=np.float64
        )
        tables = [
            otf_table(optics, ring_f, defocus, waves + per_um * max(hn, 0.0)).astype(
                np.float32
            )
            for hn in node_h
        ]
        pos = np.clip((level_h - node_h[0]) / node_step, 0, len(node_h) - 1)
        lo = np.minimum(np.floor(pos).astype(int), len(node_h) - 1)
        frac = (pos - lo).astype(np.float32)
        hi = np.minimum(lo + 1, len(node_h) - 1)
        blend = np.zeros((len(node_h), n_levels), dtype=np.float32)
        blend[lo, np.arange(n_levels)] += 1 - frac
        blend[hi, np.arange(n_levels)] += frac
    clock.append(time.perf_counter())

    # Planes = sum over levels of level spectrum x OTF(|f|, d): per |f| node
    # one matrix product (two where the OTF is interpolated between rings).
    flat = spectra.reshape(2 * n_disc, n_levels)
    mixed = np.empty((2 * n_disc, nz), dtype=np.float32)
    weight2 = np.repeat(ring_frac, 2).astype(np.float32)[:, None]

    def kernel(r: int) -> NDArray[np.float32]:
        k = tables[0][r][index] * blend[0]
        for t in range(1, len(tables)):
            k += tables[t][r][index] * blend[t]
        return np.asarray(k.T, dtype=np.float32)

    for r, first, last in zip(node_ids, node_start, node_end, strict=True):
        rows = slice(2 * first, 2 * last)
        block = flat[rows]
        if r < len(exact_key):
            np.matmul(block, kernel(r), out=mixed[rows])
        else:
            w = weight2[rows]
            mixed[rows] = (block * (1 - w)) @ kernel(r) + (block * w) @ kernel(r + 1)
    del spectra, flat
    planes = mixed.reshape(n_disc, 2, nz)
    clock.append(time.perf_counter())

    # Pixel integration (wide field: the pixel area; confocal: the dwell along
    # x), then sampling at the pixel centres = folding the spectrum onto the
    # pixel grid's frequencies.
    ky = np.rint(fy * period_y).astype(np.int64)
    kx = np.rint(fx * period_x).astype(np.int64)
    ky_d = np.broadcast_to(ky[:, None], (n_y, len(kx))).ravel()[disc]
    kx_d = np.broadcast_to(kx[None, :], (n_y, len(kx))).ravel()[disc]
    pixel = np.sinc(kx_d / period_x * dx)
    if optics.modality == "widefield":
        pixel = pixel * np.sinc(ky_d / period_y * dy)
    n_cols = out_x // 2 + 1
    a_direct, b_direct = ky_d % out_y, kx_d % out_x
    direct = b_direct < n_cols
    a_mirror, b_mirror = (-ky_d) % out_y, (-kx_d) % out_x
    mirror = (kx_d > 0) & (b_mirror < n_cols)
    fold_index = np.concatenate(
        [
            a_direct[direct] * n_cols + b_direct[direct],
            a_mirror[mirror] * n_cols + b_mirror[mirror],
        ]
    )
    fold_source = np.concatenate([np.flatnonzero(direct), np.flatnonzero(mirror)])
    fold_sign = np.concatenate(
        [np.ones(int(direct.sum())), -np.ones(int(mirror.sum()))]
    )
    fold_pixel = pixel[fold_source]
    out = np.empty((nz, ny, nx), dtype=np.float32)
    size = out_y * n_cols
    for k in range(nz):
        re = planes[fold_source, 0, k] * fold_pixel
        im = planes[fold_source, 1, k] * fold_pixel * fold_sign
        folded = np.bincount(fold_index, weights=re, minlength=size) + 1j * np.bincount(
            fold_index, weights=im, minlength=size
        )
        image = scipy.fft.irfft2(
            folded.reshape(out_y, n_cols), s=(out_y, out_x), workers=-1
        )
        out[k] = image[pad_y : pad_y + ny, pad_x : pad_x + nx]
    clock.append(time.perf_counter())
    info = {
        "fine_grid": [n_y, n_x],
        "period_px": [out_y, out_x],
        "band_cycles_per_um": round(band, 3),
        "level_step_um": round(step, 5),
        "levels": n_levels,
        "emitters_rendered": len(sel),
        "otf_nodes": len(tables),
        "frequency_nodes": len(node_f),
        "seconds": dict(
            zip(
                ("setup", "levels", "otf", "mix", "planes"),
                np.round(np.diff(clock), 3).tolist(),
                strict=True,
            )
        ),
    }
    return out, info


# --------------------------------------------------------------------------
# Noise


def widefield_camera(
    signal: NDArray[np.float32], rng: np.random.Generator, snr: str
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """sCMOS model: autofluorescence, Poisson, read noise, ADU, offset, FPN.

    Parameters
    ----------
    signal : ndarray of float32
        Noise-free image (any scale); its bright end is set to the SNR level's
        peak photo-electrons.
    rng : numpy.random.Generator
        Random source.
    snr : str
        A key of `SNR_LEVELS`; ``"none"``: expected values, no fixed pattern.

    Returns
    -------
    adu : ndarray of float32
        The camera's output.
    info : dict
        Noise parameters.

    """
    peak_e, _ = SNR_LEVELS[snr]
    nz, ny, nx = signal.shape
    scale = peak_e / _signal_peak(signal)
    # Smooth autofluorescence: low-order polynomial in (y, x), slow in z.
    y = np.linspace(-1, 1, ny, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, nx, dtype=np.float32)[None, :]
    z = np.linspace(-1, 1, nz, dtype=np.float32)[:, None, None]
    c = rng.normal(0, 0.15, 5).astype(np.float32)
    level = peak_e * float(rng.uniform(0.05, 0.25))
    shape2d = 1 + c[0] * y + c[1] * x + c[2] * y * x + c[3] * (y**2 - 0.33)
    background = np.float32(level) * np.clip(shape2d[None] * (1 + c[4] * z), 0.2, None)
    expected = signal * np.float32(scale) + background
    gain = float(rng.uniform(0.4, 0.6))  # e- per ADU
    read = float(rng.uniform(1.0, 1.8))  # e- rms
    offset = 100.0
    info: dict[str, Any] = {
        "model": "sCMOS",
        "peak_signal_e": peak_e,
        "background_e": round(level, 1),
        "e_per_adu": round(gain, 3),
        "read_noise_e": round(read, 2),
        "offset_adu": offset,
    }
    if snr == "none":
        return (expected / np.float32(gain) + np.float32(offset)).astype(
            np.float32
        ), info
    fpn_sigma = float(rng.uniform(0.5, 2.5))
    columns = rng.normal(0, fpn_sigma, nx).astype(np.float32)
    electrons = rng.poisson(np.maximum(expected, 0)).astype(np.float32)
    electrons += rng.standard_normal(expected.shape, dtype=np.float32) * np.float32(
        read
    )
    electrons *= np.float32(1 / gain)
    electrons += np.float32(offset) + columns
    np.rint(electrons, out=electrons)
    np.clip(electrons, 0, 65535, out=electrons)
    info["column_fpn_adu"] = round(fpn_sigma, 2)
    return electrons, info


def confocal_pmt(
    signal: NDArray[np.float32], rng: np.random.Generator, snr: str
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """PMT model: Poisson photo-electrons, gamma gain noise, dark offset.

    Parameters
    ----------
    signal : ndarray of float32
        Noise-free image (any scale); its bright end is set to the SNR level's
        peak photo-electrons.
    rng : numpy.random.Generator
        Random source.
    snr : str
        A key of `SNR_LEVELS`; ``"none"``: expected values.

    Returns
    -------
    counts : ndarray of float32
        The digitised PMT signal.
    info : dict
        Noise parameters.

    """
    _, peak_pe = SNR_LEVELS[snr]
    scale = peak_pe / _signal_peak(signal)
    expected = signal * np.float32(scale) + np.float32(0.02)  # dark counts
    gain = float(rng.uniform(6.0, 12.0))  # counts per photo-electron
    shape = float(rng.uniform(2.0, 5.0))  # gamma shape: excess noise 1 + 1/shape
    offset = float(rng.uniform(1.0, 4.0))
    info = {
        "model": "PMT",
        "peak_signal_pe": peak_pe,
        "counts_per_pe": round(gain, 2),
        "excess_noise_factor": round(1 + 1 / shape, 3),
        "dark_offset": round(offset, 2),
    }
    if snr == "none":
        return (expected * np.float32(gain) + np.float32(offset)).astype(
            np.float32
        ), info
    pe = rng.poisson(np.maximum(expected, 0))
    counts = np.zeros(pe.shape, dtype=np.float32)
    hit = pe > 0
    counts[hit] = rng.gamma(shape * pe[hit], gain / shape)
    counts += np.float32(offset)
    counts += rng.standard_normal(pe.shape, dtype=np.float32) * np.float32(0.5)
    np.rint(counts, out=counts)
    np.clip(counts, 0, None, out=counts)
    return counts, info


def _signal_peak(signal: NDArray[np.float32]) -> float:
    top = float(signal.max())
    return max(float(np.percentile(signal, 99.9)), 0.25 * top, 1e-12)


# --------------------------------------------------------------------------
# Pairs


def rotation(angle_deg: float) -> FloatArray:
    """2x2 rotation by ``angle_deg`` (counter-clockwise in (u, v))."""
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _draw(rng: np.random.Generator, value: float | None, lo: float, hi: float) -> float:
    drawn = float(rng.uniform(lo, hi))
    return drawn if value is None else float(value)


def _planes(rng: np.random.Generator, value: int | None) -> int:
    drawn = int(rng.integers(21, 42))
    return drawn if value is None else int(value)


def _in_range(geometry: StackGeometry, thickness: float) -> dict[str, float]:
    heights = geometry.heights()
    lo, hi = float(heights.min()), float(heights.max())
    inside = max(0.0, min(hi, thickness) - max(lo, 0.0))
    half = (hi - lo) / 2
    return {
        "stack_heights_um": [round(lo, 3), round(hi, 3)],
        "specimen_fraction_inside": round(inside / thickness, 3),
        "specimen_centre_offset_half_ranges": round(
            (thickness / 2 - geometry.height_mid_um) / half, 3
        ),
    }


def render_pair(
    seed: int,
    *,
    psf: str = "gaussian",
    widefield_pixel_um: float = 0.1625,
    widefield_px: int | None = None,
    widefield_dz_um: float | None = None,
    widefield_planes: int | None = None,
    widefield_na: float | None = None,
    confocal_pixel_um: float | None = None,
    confocal_dz_um: float | None = None,
    confocal_planes: int | None = None,
    field_px: int = 512,
    rotation_deg: float | None = None,
    lateral_scale: float | None = None,
    axial_scale: float | None = None,
    z_offset_um: float | None = None,
    shift_um: tuple[float, float] | None = None,
    specimen_thickness_um: float | None = None,
    placement: str | None = None,
    specimen: str = "mixture",
    beads: int = 12,
    volume_path: str | Path | None = None,
    volume_voxel_um: tuple[float, float, float] | None = None,
    volume_brightness: float = 1.0,
    volume_copies: int | None = None,
    volume_threshold: float = 0.05,
    volume_bin: int | None = None,
    spherical_waves: tuple[float, float] | None = None,
    spherical_waves_per_um: float = 0.0,
    snr: str = "normal",
    wrong: str | None = None,
    start: str = "relocation",
) -> IndependentPair:
    """Render a wide-field/confocal pair of one specimen with its exact truth.

    Every value left ``None`` is drawn from ``seed``; the same arguments give
    the same pair.

    Parameters
    ----------
    seed : int
        Seed of everything random (geometry, specimen, noise).
    psf : str
        ``"gaussian"`` or ``"debye"``.
    widefield_pixel_um : float
        Nominal wide-field pixel (0.1625 for 40x, 0.103 for 63x, ...).
    widefield_px : int, optional
        Wide-field field size (square); default: ``field_px`` or larger, a
        multiple of 32 that covers the turned confocal field, the shift and a
        2 um margin.
    widefield_dz_um, confocal_dz_um : float, optional
        Plane spacing, um (drawn from 0.2-0.3).
    widefield_planes, confocal_planes : int, optional
        Planes per stack (drawn from 21..41, independently).
    widefield_na : float, optional
        Default 1.3 for pixels >= 0.14 um (40x oil), else 1.4 (63x oil).
    confocal_pixel_um : float, optional
        Confocal pixel, um (drawn from 0.08-0.12).
    field_px : int
        Confocal field size (square), pixels.
    rotation_deg : float, optional
        Residual rotation of the truth (drawn from +-5 deg).
    lateral_scale : float, optional
        Scale of the truth's ``M`` (drawn from 1 +- 0.01).
    axial_scale : float, optional
        Truth's axial scale (drawn from 0.93-1.07).
    z_offset_um : float, optional
        Truth's ``tz`` (drawn from +-2 um).
    shift_um : tuple of float, optional
        Truth's ``(ty, tx)`` (drawn, up to 4 um per axis, within what the
        wide-field field allows).
    specimen_thickness_um : float, optional
        Height of the tallest cell (drawn from 1.5-7 um); a volume specimen's
        is its own height (do not give it).
    placement : str, optional
        Where the specimen sits in the confocal stack's z range: ``"lower"``,
        ``"upper"`` (half), ``"below"``, ``"above"`` (partly outside),
        ``"centred"``; drawn from the first four.
    specimen : str
        ``"mixture"`` (random cells), ``"beads"`` (isolated beads in the
        confocal field, at heights inside both stacks; for truth checks) or
        ``"volume"`` (copies of a real 3D volume read from ``volume_path``
        standing on the glass; see `volume_emitters` and `_place_volume`).
    beads : int
        Number of beads for ``specimen="beads"``.
    volume_path : str or Path, optional
        The (OME-)TIFF ``(z, y, x)`` volume for ``specimen="volume"``.
    volume_voxel_um : tuple of float, optional
        ``(dz, dy, dx)`` um of the volume; default: the file's OME
        ``PhysicalSize*`` (a ``ValueError`` when the file has none).
    volume_brightness : float
        Weight of the volume's brightest emitters (99.9th percentile).
    volume_copies : int, optional
        Copies placed (turned, mirrored or not, spread over the wide-field
        field, the first with structure in the confocal field); default: one
        per file footprint of the wide-field field's area, at most 24, and
        never more than 300k emitters in all.
    volume_threshold : float
        Fraction of the volume's background-to-bright range below which voxels
        are dropped.
    volume_bin : int, optional
        Lateral binning of the volume (default: the largest that keeps the
        emitters as narrow as the built-in ones, more if one copy would exceed
        300k emitters).
    spherical_waves : tuple of float, optional
        (wide-field, confocal) primary spherical aberration at the coverslip,
        waves RMS (debye); drawn from 0-0.1 with a random sign (0.1 waves:
        Strehl ~0.67, a clearly asymmetric axial profile).
    spherical_waves_per_um : float
        Growth of the aberration with height, waves per um (both scopes).
    snr : str
        ``"high"``, ``"normal"``, ``"low"`` or ``"none"`` (noise free).
    wrong : str, optional
        ``"other_specimen"`` (wide field of another specimen) or
        ``"no_overlap"`` (wide-field field 150 um away); the initial estimate
        still claims the right place.
    start : str
        ``"relocation"`` (truth without the residual rotation and scales, then
        N(0, 0.5 um) lateral and N(0, 0.3 um) axial errors), ``"identity"``
        (identity matrix, zero translation) or ``"exact"`` (the truth).

    Returns
    -------
    IndependentPair

    """
    started = time.perf_counter()
    if psf not in ("gaussian", "debye"):
        raise ValueError(f"psf must be 'gaussian' or 'debye', got {psf!r}")
    if snr not in SNR_LEVELS:
        raise ValueError(f"snr must be one of {sorted(SNR_LEVELS)}, got {snr!r}")
    if wrong not in (None, "other_specimen", "no_overlap"):
        raise ValueError(
            f"wrong must be None, 'other_specimen' or 'no_overlap'; {wrong!r}"
        )
    if start not in ("relocation", "identity", "exact"):
        raise ValueError(
            f"start must be 'relocation', 'identity' or 'exact'; {start!r}"
        )
    if specimen not in ("mixture", "beads", "volume"):
        raise ValueError(
            f"specimen must be 'mixture', 'beads' or 'volume', got {specimen!r}"
        )
    vol: VolumeEmitters | None = None
    if specimen == "volume":
        if volume_path is None:
            raise ValueError("specimen='volume' needs volume_path")
        if specimen_thickness_um is not None:
            raise ValueError(
                "specimen_thickness_um is set by the volume; leave it None"
            )
        vol = volume_emitters(
            volume_path,
            volume_voxel_um,
            lateral_bin=volume_bin,
            threshold=volume_threshold,
        )
        while volume_bin is None and len(vol.weight) > VOLUME_MAX_EMITTERS:
            vol = volume_emitters(
                volume_path,
                volume_voxel_um,
                lateral_bin=int(vol.info["lateral_bin"]) + 1,
                threshold=volume_threshold,
            )
    root = np.random.SeedSequence(seed)
    geo_rng, spec_rng, wf_noise_rng, conf_noise_rng, start_rng, other_rng = (
        np.random.default_rng(s) for s in root.spawn(6)
    )

    # --- geometry (all draws happen whatever is given: stable streams)
    conf_pixel = _draw(geo_rng, confocal_pixel_um, 0.08, 0.12)
    conf_dz = _draw(geo_rng, confocal_dz_um, 0.2, 0.3)
    wf_dz = _draw(geo_rng, widefield_dz_um, 0.2, 0.3)
    conf_nz = _planes(geo_rng, confocal_planes)
    wf_nz = _planes(geo_rng, widefield_planes)
    rho = _draw(geo_rng, rotation_deg, -5.0, 5.0)
    lat_scale = _draw(geo_rng, lateral_scale, 0.99, 1.01)
    ax_scale = _draw(geo_rng, axial_scale, 0.93, 1.07)
    tz = _draw(geo_rng, z_offset_um, -2.0, 2.0)
    thickness = _draw(geo_rng, specimen_thickness_um, 1.5, 7.0)
    if vol is not None:
        thickness = vol.height_um
    drawn_placement = PLACEMENTS[int(geo_rng.integers(0, len(PLACEMENTS)))]
    where = drawn_placement if placement is None else placement
    offsets = {
        "lower": (-0.6, -0.25),
        "upper": (0.25, 0.6),
        "below": (-1.0, -0.7),
        "above": (0.7, 1.0),
        "centred": (-0.05, 0.05),
    }
    if where not in offsets:
        raise ValueError(f"placement must be one of {sorted(offsets)}, got {where!r}")
    centre_offset = float(geo_rng.uniform(*offsets[where]))
    theta_c = float(geo_rng.uniform(-180.0, 180.0))
    stretch_w = float(geo_rng.uniform(0.85, 1.0))
    shift_draw = geo_rng.uniform(-4.0, 4.0, 2)
    away = float(geo_rng.uniform(0, 2 * np.pi))
    wf_na = (
        widefield_na
        if widefield_na is not None
        else (1.3 if widefield_pixel_um >= 0.14 else 1.4)
    )
    sa_draw = geo_rng.uniform(0.0, 0.1, 2) * geo_rng.choice([-1.0, 1.0], 2)
    sa = (
        (float(sa_draw[0]), float(sa_draw[1]))
        if spherical_waves is None
        else (float(spherical_waves[0]), float(spherical_waves[1]))
    )
    if psf == "gaussian":
        sa = (0.0, 0.0)

    # Confocal: calibrated laterally (s = 1), centred on the sample origin.
    stretch_c = ax_scale * stretch_w
    half_c = stretch_c * conf_dz * (conf_nz - 1) / 2
    conf = StackGeometry(
        shape=(conf_nz, field_px, field_px),
        voxel_um=(conf_dz, conf_pixel, conf_pixel),
        lateral=rotation(theta_c),
        origin_uv_um=np.zeros(2),
        height_mid_um=thickness / 2 - centre_offset * half_c,
        axial_stretch=stretch_c,
    )
    # Wide field: M = A_w^-1 A_c = lat_scale R(rho)  ->  A_w = A_c R(-rho) / lat_scale
    lateral_w = conf.lateral @ rotation(-rho) / lat_scale
    m_true = np.linalg.inv(lateral_w) @ conf.lateral
    half_conf = conf_pixel * (field_px - 1) / 2
    corners = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]]) * half_conf
    extent = np.abs(corners @ m_true.T).max(axis=0)  # (y, x) nominal WF um
    margin = 2.0
    if widefield_px is None:
        need = 2 * (extent.max() + margin + 3.0) / widefield_pixel_um + 1
        wf_px = max(field_px, int(math.ceil(need / 32) * 32))
    else:
        wf_px = int(widefield_px)
    half_w = widefield_pixel_um * (wf_px - 1) / 2
    room = half_w - margin - extent
    if (room < 0).any():
        raise ValueError(
            f"a {wf_px}-px wide-field field at {widefield_pixel_um} um does not "
            f"cover the confocal field ({field_px} px at {conf_pixel:.3f} um) turned "
            f"by {rho:.2f} deg plus {margin} um; use a larger widefield_px"
        )
    t_yx = (
        np.clip(shift_draw, -room, room)
        if shift_um is None
        else np.asarray(shift_um, dtype=np.float64)
    )
    if shift_um is not None and (np.abs(t_yx) > room).any():
        raise ValueError(f"shift {tuple(t_yx)} um leaves the confocal field outside")
    origin_w = conf.origin_uv_um - lateral_w @ t_yx
    height_w = conf.height_mid_um - tz * stretch_w
    wf = StackGeometry(
        shape=(wf_nz, wf_px, wf_px),
        voxel_um=(wf_dz, widefield_pixel_um, widefield_pixel_um),
        lateral=lateral_w,
        origin_uv_um=origin_w,
        height_mid_um=height_w,
        axial_stretch=stretch_w,
    )
    m_ok, t_ok, a_ok = pair_truth(conf, wf)
    wf_ok = wf
    if wrong == "no_overlap":
        direction = np.array([math.cos(away), math.sin(away)])
        wf = StackGeometry(
            wf.shape,
            wf.voxel_um,
            wf.lateral,
            wf.origin_uv_um + 150.0 * direction,
            wf.height_mid_um,
            wf.axial_stretch,
        )
    m_truth, t_truth, a_truth = pair_truth(conf, wf)

    # --- specimen
    wf_half_diag = math.sqrt(2) * half_w * wf.lateral_scale
    if specimen == "mixture":
        spec = make_specimen(
            spec_rng,
            centre_uv_um=(0.0, 0.0),
            half_extent_um=wf_half_diag + 3.0,
            thickness_um=thickness,
        )
    elif vol is not None:
        spec = _place_volume(
            spec_rng, vol, conf, wf_ok, volume_copies, volume_brightness
        )
    else:
        spec = _place_beads(spec_rng, conf, wf, beads, thickness)
    wf_spec = spec
    if wrong is not None and vol is not None:
        wf_spec = _place_volume(
            other_rng, vol, conf, wf_ok, volume_copies, volume_brightness
        )
    elif wrong is not None:
        centre = wf.origin_uv_um
        wf_spec = make_specimen(
            other_rng,
            centre_uv_um=(float(centre[0]), float(centre[1])),
            half_extent_um=wf_half_diag + 3.0,
            thickness_um=float(other_rng.uniform(1.5, 7.0)),
        )

    # --- imaging
    conf_optics = Optics(
        family=psf,
        modality="confocal",
        na=CONFOCAL_NA,
        emission_um=CONFOCAL_EMISSION_UM,
        spherical_waves=sa[1],
        spherical_waves_per_um=spherical_waves_per_um,
    )
    wf_optics = Optics(
        family=psf,
        modality="widefield",
        na=wf_na,
        emission_um=WIDEFIELD_EMISSION_UM,
        spherical_waves=sa[0],
        spherical_waves_per_um=spherical_waves_per_um,
    )
    with single_blas_thread():
        t0 = time.perf_counter()
        conf_signal, conf_info = render_signal(spec, conf, conf_optics)
        t1 = time.perf_counter()
        wf_signal, wf_info = render_signal(wf_spec, wf, wf_optics)
        t2 = time.perf_counter()
    confocal, conf_noise = confocal_pmt(conf_signal, conf_noise_rng, snr)
    widefield, wf_noise = widefield_camera(wf_signal, wf_noise_rng, snr)
    t3 = time.perf_counter()

    # --- initial estimate
    if start == "exact":
        m0, t0_, a0 = m_truth, t_truth, a_truth
    elif start == "identity":
        m0, t0_, a0 = np.eye(2), (0.0, 0.0, 0.0), 1.0
    else:
        lateral_err = start_rng.normal(0, 0.5, 2)
        axial_err = float(start_rng.normal(0, 0.3))
        m0 = np.eye(2)
        t0_ = (
            t_ok[0] + axial_err,
            t_ok[1] + float(lateral_err[0]),
            t_ok[2] + float(lateral_err[1]),
        )
        a0 = 1.0
    description: dict[str, Any] = {
        "seed": seed,
        "psf": psf,
        "snr": snr,
        "wrong": wrong,
        "start": start,
        "rotation_deg": rho,
        "lateral_scale": lat_scale,
        "axial_scale": a_ok,
        "specimen": spec.parts,
        "specimen_thickness_um": thickness,
        "placement": where,
        "confocal_z": _in_range(conf, thickness),
        "widefield_z": _in_range(wf, thickness),
        "planes": {"confocal": conf_nz, "widefield": wf_nz},
        "widefield_na": wf_na,
        "confocal_na": CONFOCAL_NA,
        "wavelengths_um": {
            "widefield_emission": WIDEFIELD_EMISSION_UM,
            "confocal_excitation": CONFOCAL_EXCITATION_UM,
            "confocal_emission": CONFOCAL_EMISSION_UM,
        },
        "immersion_index": IMMERSION_INDEX,
        "pinhole_au": conf_optics.pinhole_au,
        "spherical_waves": {"widefield": sa[0], "confocal": sa[1]},
        "spherical_waves_per_um": spherical_waves_per_um if psf == "debye" else 0.0,
        "pixel_integration": {"widefield": "area", "confocal": "dwell along x"},
        "noise": {"widefield": wf_noise, "confocal": conf_noise},
        "geometry": {"confocal": conf.to_dict(), "widefield": wf.to_dict()},
        "render": {"confocal": conf_info, "widefield": wf_info},
        "seconds": {
            "confocal": round(t1 - t0, 3),
            "widefield": round(t2 - t1, 3),
            "noise": round(t3 - t2, 3),
            "total": round(time.perf_counter() - started, 3),
        },
    }
    if wrong is not None:
        description["claimed_truth"] = {
            "matrix": m_ok.tolist(),
            "translation_um": list(t_ok),
            "axial_scale": a_ok,
        }
    if specimen == "beads":
        description["beads_confocal_zyx_um"] = conf.to_stack(spec.huv_um).tolist()
        description["beads_widefield_zyx_um"] = wf.to_stack(spec.huv_um).tolist()
    return IndependentPair(
        widefield=widefield,
        confocal=confocal,
        widefield_voxel_um=wf.voxel_um,
        confocal_voxel_um=conf.voxel_um,
        truth_matrix=m_truth,
        truth_translation_um=t_truth,
        truth_axial_scale=a_truth,
        initial_matrix=np.asarray(m0, dtype=np.float64),
        initial_translation_um=(float(t0_[0]), float(t0_[1]), float(t0_[2])),
        initial_axial_scale=float(a0),
        overlaps=wrong is None,
        description=description,
    )


def _place_beads(
    rng: np.random.Generator,
    conf: StackGeometry,
    wf: StackGeometry,
    n: int,
    thickness: float,
) -> Specimen:
    """Isolated beads >= 4 um apart inside the confocal field and both z ranges."""
    lo = max(conf.heights().min(), wf.heights().min()) + 1.2
    hi = min(conf.heights().max(), wf.heights().max()) - 1.2
    lo_s, hi_s = max(lo, 0.2), min(hi, max(thickness, 0.2))
    if hi_s > lo_s:
        lo, hi = lo_s, hi_s
    if hi <= lo:
        lo = hi = (lo + hi) / 2
    half = 0.7 * conf.voxel_um[1] * (conf.shape[1] - 1) / 2
    found: list[FloatArray] = []
    for _ in range(200 * n):
        yx = rng.uniform(-half, half, 2)
        uv = conf.lateral @ yx + conf.origin_uv_um
        if all(np.linalg.norm(uv - p[1:]) >= 4.0 for p in found):
            found.append(np.array([rng.uniform(lo, hi), *uv]))
        if len(found) == n:
            break
    return bead_specimen(np.array(found))


def _place_volume(
    rng: np.random.Generator,
    vol: VolumeEmitters,
    conf: StackGeometry,
    wf: StackGeometry,
    copies: int | None,
    brightness: float,
) -> Specimen:
    """Copies of a volume on the glass, turned and placed at random (seeded).

    The first copy has a randomly chosen emitter (brightness-weighted) in the
    central part of the confocal field; the others are spread over the
    wide-field field, their centroids at least ~0.8 file footprints apart.
    Each copy is turned by a random angle about the optical axis and mirrored
    or not. Emitters outside the wide-field field (plus 5 um) are dropped.
    """
    n_vol = len(vol.weight)
    half_w = np.array(wf.voxel_um[1:]) * (np.array(wf.shape[1:]) - 1) / 2
    half_c = np.array(conf.voxel_um[1:]) * (np.array(conf.shape[1:]) - 1) / 2
    s_w = wf.lateral_scale
    tile = vol.footprint_um[0] * vol.footprint_um[1]
    if copies is None:
        area = float(np.prod(2 * half_w * s_w))
        n_copies = int(np.clip(round(area / tile), 1, VOLUME_MAX_AUTO_COPIES))
    else:
        n_copies = int(copies)
        if n_copies < 1:
            raise ValueError(f"volume_copies must be >= 1, got {copies}")
    n_copies = max(1, min(n_copies, VOLUME_MAX_EMITTERS // n_vol))
    radius = float(vol.info["structure_radius_um"])
    d_min = max(0.8 * math.sqrt(tile), 1.2 * radius)
    inv_w = np.linalg.inv(wf.lateral)
    pieces: list[FloatArray] = []
    weights: list[FloatArray] = []
    placed: list[dict[str, Any]] = []
    centroids: list[FloatArray] = []
    p = vol.weight / vol.weight.sum()
    for c in range(n_copies):
        angle = float(rng.uniform(0.0, 360.0))
        mirrored = bool(rng.uniform() < 0.5)
        turn = rotation(angle) @ np.diag([1.0, -1.0 if mirrored else 1.0])
        if c == 0:
            anchor = int(rng.choice(n_vol, p=p))
            target = conf.lateral @ (rng.uniform(-0.35, 0.35, 2) * half_c)
            centre = target + conf.origin_uv_um - turn @ vol.zyx_um[anchor, 1:]
        else:
            for _ in range(200):
                yx = rng.uniform(-1.0, 1.0, 2) * half_w
                centre = wf.lateral @ yx + wf.origin_uv_um
                if all(np.linalg.norm(centre - q) >= d_min for q in centroids):
                    break
            else:
                break  # the field is full
        uv = vol.zyx_um[:, 1:] @ turn.T + centre
        nominal = (uv - wf.origin_uv_um) @ inv_w.T
        inside = (np.abs(nominal) <= half_w + 5.0).all(axis=1)
        centroids.append(centre)
        pieces.append(np.column_stack([vol.zyx_um[inside, 0], uv[inside]]))
        weights.append(brightness * vol.weight[inside])
        centre_c = conf.to_stack(np.array([0.0, *centre]))[0, 1:]
        placed.append(
            {
                "centroid_uv_um": [round(float(v), 4) for v in centre],
                "rotation_deg": round(angle, 4),
                "mirrored": mirrored,
                "emitters": int(inside.sum()),
                "centroid_in_confocal_field": bool((np.abs(centre_c) <= half_c).all()),
            }
        )
    huv = np.concatenate(pieces)
    n = len(huv)
    parts = {
        "kind": "volume",
        **copy.deepcopy(vol.info),
        "brightness": brightness,
        "copies_requested": "auto" if copies is None else int(copies),
        "copies": placed,
        "copy_spacing_min_um": round(d_min, 3),
        "emitters": n,
    }
    return Specimen(
        huv,
        np.concatenate(weights),
        np.full(n, vol.sigma_lateral_um),
        np.full(n, vol.sigma_axial_um),
        parts,
    )


# --------------------------------------------------------------------------
# Script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--psf", choices=("gaussian", "debye"), default="gaussian")
    parser.add_argument("--field-px", type=int, default=512)
    parser.add_argument("--widefield-pixel-um", type=float, default=0.1625)
    parser.add_argument("--snr", choices=sorted(SNR_LEVELS), default="normal")
    parser.add_argument(
        "--specimen", choices=("mixture", "beads", "volume"), default="mixture"
    )
    parser.add_argument("--volume-path", type=Path, default=None)
    parser.add_argument(
        "--volume-voxel-um",
        type=float,
        nargs=3,
        default=None,
        metavar=("DZ", "DY", "DX"),
        help="voxel of the volume, um (when the file records none)",
    )
    args = parser.parse_args(argv)
    for seed in range(args.pairs):
        pair = render_pair(
            seed,
            psf=args.psf,
            field_px=args.field_px,
            widefield_pixel_um=args.widefield_pixel_um,
            snr=args.snr,
            specimen=args.specimen,
            volume_path=args.volume_path,
            volume_voxel_um=(
                None if args.volume_voxel_um is None else tuple(args.volume_voxel_um)
            ),
        )
        d = pair.description
        print(
            f"seed {seed}: confocal {pair.confocal.shape} @ "
            f"{tuple(round(v, 4) for v in pair.confocal_voxel_um)}, wide field "
            f"{pair.widefield.shape} @ "
            f"{tuple(round(v, 4) for v in pair.widefield_voxel_um)}"
        )
        print(
            f"  truth: rotation {d['rotation_deg']:+.2f} deg, scale "
            f"{d['lateral_scale']:.4f}, axial scale {pair.truth_axial_scale:.4f}, "
            f"t (z, y, x) {tuple(round(v, 3) for v in pair.truth_translation_um)} um"
        )
        print(
            f"  specimen: {d['specimen']['kind']}, {d['specimen_thickness_um']:.2f} um "
            f"thick, {d['placement']}; confocal z {d['confocal_z']}; wide-field z "
            f"{d['widefield_z']}"
        )
        if d["specimen"]["kind"] == "volume":
            v = d["specimen"]
            print(
                f"  volume: {v['file']} voxel {v['voxel_um']} um ({v['voxel_from']}), "
                f"bin {v['lateral_bin']}, {len(v['copies'])} copies, "
                f"{v['emitters']} emitters"
            )
        print(
            f"  rendered in {d['seconds']['total']:.2f} s (confocal "
            f"{d['seconds']['confocal']:.2f}, wide field "
            f"{d['seconds']['widefield']:.2f}, noise {d['seconds']['noise']:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
