"""Centre an identified mark by fitting its known shape to the image.

A flux-weighted centroid is the mark's area centroid only where the
background under the mark is exactly what was subtracted: an illumination
ramp left over, light from debris beside the mark or a window cut by the
image edge pull it. Once a mark is identified its shape is known, so
:func:`fit_mark` fits the image around it with

    a (1 + g_x x + g_y y) M(x - c; theta, sigma, s) + B(x)

where ``M`` is the holder mark (:func:`correlate.fiducials.marks.mark_contains`,
anti-aliased by supersampling) turned by ``theta``, scaled by ``s`` and
blurred by a Gaussian of width ``sigma``; ``g`` is a brightness gradient
across the mark (uneven illumination, a tilted coverslip in a confocal), and
``B`` a quadratic background (a ramp, vignetting). The centre ``c`` refers to
the mark's area centroid for any ``g``, ``B``, blur and scale.

The fit is Gauss-Newton on ``(c, theta, sigma, s)`` with the linear
parameters solved exactly at every step; the template and its derivatives
come from one Fourier transform of the rasterised mark per step. Pixels are
weighted robustly (Tukey's biweight on residuals scaled by a noise that grows
with the mark's brightness, as photon noise does), so debris beside the mark
and hot pixels drop out. A real point-spread function is not Gaussian, but
the difference is symmetric about the mark's centre and moves the fit's
centre only through the shape's asymmetry (measured on the independent
renderer of ``bench/fiducials.py``: see ``bench/results/fiducials.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.typing import NDArray

from correlate.fiducials.marks import SHAPES, MarkSpec, mark_contains

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Most Gauss-Newton steps.
MAX_ITERATIONS = 15
#: Converged when the centre moves less than this (pixels) ...
CONVERGED_PX = 2e-3
#: ... and the angle less than this (degrees); a fit whose last step is
#: longer than this (pixels) has not converged.
CONVERGED_DEG = 0.01
UNCONVERGED_PX = 0.05
#: The angle and scale are fitted in the first steps only (then held, so the
#: rasterised mark stays the same and the centre converges smoothly).
SHAPE_ITERATIONS = 5
#: Tukey biweight constant, in noise standard deviations.
ROBUST_C = 6.0
#: Background around the blurred mark that the window includes.
RING_UM = 3.0
#: The window reaches this many blur widths beyond the mark.
BLUR_REACH = 3.0
#: Sub-samples of the rasterised mark: at most this far apart (um) ...
SUPERSAMPLE_UM = 0.05
#: ... and between these counts per pixel side.
SUPERSAMPLE_RANGE = (2, 8)
#: A fit is only trusted within this fraction of the mark's radius from its
#: starting point (and at least two pixels).
MAX_MOVE_FRACTION = 0.15
#: Windows are binned when the blur exceeds this many pixels, or to at most
#: this many pixels across (the binned image is the mark rasterised on the
#: coarser grid: pixel integration and blur commute).
BIN_BLUR_PX = 3.0
MAX_WINDOW_PX = 200
#: Limits of the scale and blur relative to their start.
SCALE_RANGE = (0.85, 1.15)
BLUR_RANGE = (0.3, 3.0)
#: Fewest pixels counted as background or as plateau for the noise model.
MIN_ZONE_PIXELS = 30


@dataclass(frozen=True)
class MarkFit:
    """Result of fitting a holder mark to an image.

    Attributes
    ----------
    centre_px : tuple of float
        (row, col) of the mark's area centroid in the image given.
    orientation_deg : float
        Fitted rotation (same convention as
        :func:`correlate.fiducials.marks.mark_mask`).
    blur_px : float
        Fitted Gaussian blur, pixels.
    scale : float
        Fitted size relative to the holder's.
    amplitude : float
        Brightness of the mark above the background, image units.
    iterations : int
        Gauss-Newton steps taken.
    used_fraction : float
        Weight of the pixels kept by the robust weights, over the window's
        (debris and hot pixels lower it).

    """

    centre_px: tuple[float, float]
    orientation_deg: float
    blur_px: float
    scale: float
    amplitude: float
    iterations: int
    used_fraction: float


def fit_mark(
    image: FloatArray,
    *,
    spec: MarkSpec,
    centre_px: tuple[float, float],
    orientation_deg: float,
    blur_px: float,
    pixel_size_um: float,
    exclude: BoolArray | None = None,
) -> MarkFit | None:
    """Fit a holder mark to an image around a first estimate of its centre.

    Parameters
    ----------
    image : ndarray of float64
        2-D image holding the mark (a background may remain).
    spec : MarkSpec
        The holder mark it shows.
    centre_px : tuple of float
        First estimate of (row, col) of its area centroid.
    orientation_deg : float
        First estimate of its rotation (ignored for round marks).
    blur_px : float
        First estimate of its Gaussian blur, pixels.
    pixel_size_um : float
        Pixel size in micrometres.
    exclude : ndarray of bool, optional
        Pixels not to use (other objects, saturated pixels).

    Returns
    -------
    MarkFit or None
        None when the fit does not converge, loses the mark, or moves
        farther than :data:`MAX_MOVE_FRACTION` of its radius.

    """
    radius_px = spec.radius_um / pixel_size_um
    blur_px = max(float(blur_px), 0.3)
    half = radius_px + max(BLUR_REACH * blur_px, 2.0) + RING_UM / pixel_size_um
    factor = max(
        1, math.floor(blur_px / BIN_BLUR_PX), math.ceil(2 * half / MAX_WINDOW_PX)
    )
    r0 = max(math.floor(centre_px[0] - half), 0)
    c0 = max(math.floor(centre_px[1] - half), 0)
    r1 = min(math.ceil(centre_px[0] + half) + 1, image.shape[0])
    c1 = min(math.ceil(centre_px[1] + half) + 1, image.shape[1])
    r1 = r0 + (r1 - r0) // factor * factor
    c1 = c0 + (c1 - c0) // factor * factor
    if min(r1 - r0, c1 - c0) < 4 * factor:
        return None
    data = image[r0:r1, c0:c1]
    usable = np.isfinite(data)
    if exclude is not None:
        usable &= ~exclude[r0:r1, c0:c1]
    if factor > 1:
        data = _bin(np.where(usable, data, 0.0), factor)
        counts = _bin(usable.astype(np.float64), factor)
        usable = counts > 0.999
        data = np.where(usable, data / np.maximum(counts, 1e-12), 0.0)
    start = (
        (centre_px[0] - r0 - (factor - 1) / 2) / factor,
        (centre_px[1] - c0 - (factor - 1) / 2) / factor,
    )
    fit = _fit(
        data,
        usable,
        spec=spec,
        centre=start,
        angle_deg=orientation_deg,
        blur=blur_px / factor,
        pixel_size_um=pixel_size_um * factor,
    )
    if fit is None:
        return None
    row = r0 + fit.centre_px[0] * factor + (factor - 1) / 2
    col = c0 + fit.centre_px[1] * factor + (factor - 1) / 2
    moved = math.hypot(row - centre_px[0], col - centre_px[1])
    if moved > max(2.0, MAX_MOVE_FRACTION * radius_px):
        return None
    return MarkFit(
        centre_px=(row, col),
        orientation_deg=fit.orientation_deg,
        blur_px=fit.blur_px * factor,
        scale=fit.scale,
        amplitude=fit.amplitude,
        iterations=fit.iterations,
        used_fraction=fit.used_fraction,
    )


def _bin(image: FloatArray, factor: int) -> FloatArray:
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    binned: FloatArray = image.reshape(rows, factor, cols, factor).mean(axis=(1, 3))
    return binned


def _fit(
    data: FloatArray,
    usable: BoolArray,
    *,
    spec: MarkSpec,
    centre: tuple[float, float],
    angle_deg: float,
    blur: float,
    pixel_size_um: float,
) -> MarkFit | None:
    """Gauss-Newton fit in window coordinates."""
    round_mark = SHAPES[spec.shape].symmetry == 0
    rows, cols = data.shape
    rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float64)
    half_r, half_c = max((rows - 1) / 2, 1.0), max((cols - 1) / 2, 1.0)
    yn, xn = (rr - (rows - 1) / 2) / half_r, (cc - (cols - 1) / 2) / half_c
    background = [np.ones_like(xn), xn, yn, xn * xn, xn * yn, yn * yn]
    radius_px = spec.radius_um / pixel_size_um
    supersample = int(
        np.clip(math.ceil(pixel_size_um / SUPERSAMPLE_UM), *SUPERSAMPLE_RANGE)
    )
    cr, cc0 = centre
    angle, sigma, scale = float(angle_deg), blur, 1.0
    sigma_start = blur
    weights = usable.astype(np.float64)
    values = np.where(usable, data, 0.0)
    amplitude = 0.0
    iterations = 0
    last_step_px = math.inf
    renderer = _Renderer(
        spec,
        (rows, cols),
        max_sigma=BLUR_RANGE[1] * sigma_start,
        pixel_size_um=pixel_size_um,
        supersample=supersample,
    )
    for iterations in range(1, MAX_ITERATIONS + 1):
        shape_free = iterations <= SHAPE_ITERATIONS
        template = renderer.render((cr, cc0), angle, sigma, scale)
        if template is None:
            return None
        m, m_r, m_c, m_s = template
        dy, dx = rr - cr, cc - cc0
        columns = [m, m * dx / radius_px, m * dy / radius_px, *background]
        n_linear = len(columns)
        columns += [-m_r, -m_c, m_s * sigma]
        if shape_free:
            columns.append(-(dx * m_c + dy * m_r))
            if not round_mark:
                columns.append(m_c * dy - m_r * dx)
        design = np.stack([col[usable] for col in columns], axis=1)
        coef = _weighted_least_squares(design, values[usable], weights[usable])
        if coef is None:
            return None
        amplitude = float(coef[0])
        if not amplitude > 0:
            return None
        steps = coef[n_linear:] / amplitude
        step_r, step_c = (float(s) for s in steps[:2])
        limit = max(1.0, sigma)
        length = math.hypot(step_r, step_c)
        if length > limit:
            step_r, step_c = step_r * limit / length, step_c * limit / length
        cr += step_r
        cc0 += step_c
        sigma *= math.exp(float(np.clip(steps[2], -0.3, 0.3)))
        sigma = float(
            np.clip(sigma, BLUR_RANGE[0] * sigma_start, BLUR_RANGE[1] * sigma_start)
        )
        step_deg = 0.0
        if shape_free:
            scale *= math.exp(float(np.clip(steps[3], -0.05, 0.05)))
            scale = float(np.clip(scale, *SCALE_RANGE))
            if not round_mark:
                step_deg = math.degrees(float(np.clip(steps[4], -0.04, 0.04)))
                angle += step_deg
        fitted = np.zeros_like(values)
        fitted[usable] = design @ coef
        weights = _robust_weights(values - fitted, m / max(float(m.max()), 1e-12))
        weights *= usable
        last_step_px = math.hypot(step_r, step_c)
        if not shape_free and last_step_px < CONVERGED_PX:
            break
    if last_step_px > UNCONVERGED_PX:
        return None
    inside = (cr >= 0) and (cr <= rows - 1) and (cc0 >= 0) and (cc0 <= cols - 1)
    if not inside:
        return None
    return MarkFit(
        centre_px=(cr, cc0),
        orientation_deg=angle,
        blur_px=sigma,
        scale=scale,
        amplitude=amplitude,
        iterations=iterations,
        used_fraction=float(weights[usable].mean()) if usable.any() else 0.0,
    )


def _weighted_least_squares(
    design: FloatArray, values: FloatArray, weights: FloatArray
) -> FloatArray | None:
    """Solve the normal equations of a weighted fit (columns rescaled)."""
    weighted = design * weights[:, None]
    normal = design.T @ weighted
    scale = np.sqrt(np.maximum(np.diag(normal), 1e-300))
    normal = normal / np.outer(scale, scale)
    rhs = (weighted.T @ values) / scale
    try:
        solution = np.linalg.solve(normal, rhs)
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(solution).all():
        return None
    coef: FloatArray = solution / scale
    return coef


def _robust_weights(residual: FloatArray, shape: FloatArray) -> FloatArray:
    """Tukey biweights; the noise grows linearly with the mark's brightness."""
    level = np.clip(shape, 0.0, 1.0)
    dark = np.abs(residual[level < 0.02])
    bright = np.abs(residual[level > 0.9])
    if dark.size < MIN_ZONE_PIXELS:
        dark = np.abs(residual.ravel())
    s0 = 1.4826 * float(np.median(dark))
    s1 = 1.4826 * float(np.median(bright)) if bright.size >= MIN_ZONE_PIXELS else s0
    floor = 1e-6 * max(float(np.max(np.abs(residual))), 1e-300)
    variance = np.maximum(s0**2 + (s1**2 - s0**2) * level, floor**2)
    z = residual / np.sqrt(variance)
    weights: FloatArray = np.where(
        np.abs(z) < ROBUST_C, (1.0 - (z / ROBUST_C) ** 2) ** 2, 0.0
    )
    return weights


class _Renderer:
    """The blurred mark and its derivatives on a fixed window.

    The mark is rasterised with its centre on a whole pixel (rasterising at
    another whole pixel gives exactly the shifted array) and moved by the
    fraction of a pixel in Fourier space, together with the blur: the
    template changes smoothly with the centre, which the fit needs.
    Rasterisations are cached by (whole-pixel centre, angle, scale).
    """

    def __init__(
        self,
        spec: MarkSpec,
        shape: tuple[int, int],
        *,
        max_sigma: float,
        pixel_size_um: float,
        supersample: int,
    ) -> None:
        self.spec = spec
        self.shape = shape
        self.pixel_size_um = pixel_size_um
        self.supersample = supersample
        self.pad = math.ceil(4.0 * max_sigma) + 2
        self.grid = (
            scipy.fft.next_fast_len(shape[0] + 2 * self.pad, real=True),
            scipy.fft.next_fast_len(shape[1] + 2 * self.pad, real=True),
        )
        self.f_r = scipy.fft.fftfreq(self.grid[0])[:, None]
        self.f_c = scipy.fft.rfftfreq(self.grid[1])[None, :]
        self.f2 = self.f_r**2 + self.f_c**2
        self._key: tuple[int, int, float, float] | None = None
        self._spectrum: NDArray[np.complex128] | None = None

    def _coverage_spectrum(
        self, whole: tuple[int, int], angle_deg: float, scale: float
    ) -> NDArray[np.complex128] | None:
        key = (whole[0], whole[1], angle_deg, scale)
        if key != self._key:
            coverage = _coverage(
                self.spec,
                self.grid,
                (whole[0] + self.pad, whole[1] + self.pad),
                angle_deg,
                scale,
                pixel_size_um=self.pixel_size_um,
                supersample=self.supersample,
            )
            self._key = key
            self._spectrum = scipy.fft.rfft2(coverage) if coverage.any() else None
        return self._spectrum

    def render(
        self,
        centre: tuple[float, float],
        angle_deg: float,
        sigma: float,
        scale: float,
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None:
        """Template, its derivatives along rows and columns, and along blur."""
        whole = (round(centre[0]), round(centre[1]))
        spectrum = self._coverage_spectrum(whole, angle_deg, scale)
        if spectrum is None:
            return None
        frac_r, frac_c = centre[0] - whole[0], centre[1] - whole[1]
        two_pi = 2.0 * math.pi
        transfer = np.exp(
            -0.5 * two_pi**2 * sigma**2 * self.f2
            - 1j * two_pi * (self.f_r * frac_r + self.f_c * frac_c)
        )
        blurred = spectrum * transfer
        crop = (
            slice(self.pad, self.pad + self.shape[0]),
            slice(self.pad, self.pad + self.shape[1]),
        )

        def back(s: NDArray[np.complex128]) -> FloatArray:
            out: FloatArray = scipy.fft.irfft2(s, s=self.grid)[crop]
            return out

        return (
            back(blurred),
            back(blurred * (1j * two_pi * self.f_r)),
            back(blurred * (1j * two_pi * self.f_c)),
            back(blurred * (-(two_pi**2) * sigma * self.f2)),
        )


def _coverage(
    spec: MarkSpec,
    shape: tuple[int, int],
    centre: tuple[float, float],
    angle_deg: float,
    scale: float,
    *,
    pixel_size_um: float,
    supersample: int,
) -> FloatArray:
    """Fraction of each pixel the mark covers (pixel ``i`` spans i +- 1/2)."""
    out = np.zeros(shape)
    reach = spec.radius_um * scale / pixel_size_um + 1.0
    r0 = max(math.floor(centre[0] - reach), 0)
    r1 = min(math.ceil(centre[0] + reach) + 1, shape[0])
    c0 = max(math.floor(centre[1] - reach), 0)
    c1 = min(math.ceil(centre[1] + reach) + 1, shape[1])
    if r0 >= r1 or c0 >= c1:
        return out
    s = supersample
    offsets = (np.arange(s) + 0.5) / s - 0.5
    y = ((np.arange(r0, r1)[:, None] + offsets).ravel() - centre[0]) * pixel_size_um
    x = ((np.arange(c0, c1)[:, None] + offsets).ravel() - centre[1]) * pixel_size_um
    inside = mark_contains(
        spec.shape,
        x[None, :],
        y[:, None],
        centre_um=(0.0, 0.0),
        orientation_deg=angle_deg,
        size_um=spec.size_um * scale,
    )
    out[r0:r1, c0:c1] = inside.reshape(r1 - r0, s, c1 - c0, s).mean(axis=(1, 3))
    return out


__all__ = ["MarkFit", "fit_mark"]
