"""Local background and noise of a mark image: illumination is never flat.

A wide-field image of a holder carries its marks on a background that varies
across the field: vignetting, a tilted illumination field, stray light and
slowly varying autofluorescence. A single background level and a noise figure
taken over the whole image fail there: the noise estimate grows with the
ramp, and the marks sink under a threshold set by it.

:func:`estimate_background` models the background as a smooth surface under
the objects, and the noise as a slowly varying map:

1. A first surface: a morphological opening of the image with a square
   wider than the largest mark, which removes every mark and keeps what is
   broader (a quadratic through block medians when the field is too small
   for that square).
2. Objects are compact groups of pixels more than :data:`OBJECT_SIGMAS`
   local noise above the surface (at most a few marks large: broader bright
   areas are background not yet followed), grown by a margin. The surface is
   refitted without them: a quadratic over the free pixels (vignetting and
   ramps, exact up to the field's edges), plus what remains of the free
   pixels smoothed by a normalised convolution at a quarter of the largest
   mark's size, which also fills the holes the objects leave.
3. The noise map is the robust spread (MAD) of the free pixels about the
   surface in blocks, median-filtered over neighbouring blocks and
   interpolated: Poisson noise grows with the local brightness.

Steps 2 and 3 are repeated until the objects stop changing (a few times).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Pixels this many local noise standard deviations above the surface are
#: objects (kept out of the background and noise estimates).
OBJECT_SIGMAS = 3.0
#: Rounds of refitting the surface without the objects.
MAX_ROUNDS = 5
#: Bright areas larger than this many squares of the largest mark's size are
#: background not yet followed, not objects.
MAX_OBJECT_AREAS = 4.0
#: The surface follows the free pixels at this fraction of the largest
#: mark's size (holes left by objects are filled from their surroundings).
SMOOTHING_SCALE = 0.25
#: The first surface is an opening with a square this many times the
#: largest mark's size.
OPENING_SCALE = 1.2
#: Fewest free pixels for a block's noise estimate.
MIN_BLOCK_PIXELS = 24
#: Blocks of the first (block median) fit rejected above this many MADs.
BLOCK_REJECT_MADS = 3.0
#: Normalised-convolution weight below which the smooth part is left out.
MIN_SUPPORT = 1e-3
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Background:
    """Background surface and noise map of an image.

    Attributes
    ----------
    level : ndarray of float64
        Background at every pixel (image units).
    noise : ndarray of float64
        Standard deviation of the noise about it at every pixel.
    objects : ndarray of bool
        Pixels left out as (parts of, or near) bright objects.

    """

    level: FloatArray
    noise: FloatArray
    objects: BoolArray


def estimate_background(
    image: FloatArray,
    *,
    scale_px: float,
    margin_px: float,
    block_px: int,
    bin_px: int = 1,
) -> Background:
    """Smooth background and local noise of an image with bright objects on it.

    Parameters
    ----------
    image : ndarray of float64
        2-D image (usually lightly smoothed: the noise map describes it).
    scale_px : float
        Size of the largest object of interest (a mark), in pixels: bright
        compact objects up to a few times this size are left out of the
        background, which follows what remains at a quarter of this scale.
    margin_px : float
        Objects are grown by this many pixels before they are left out (their
        blurred edges).
    block_px : int
        Side of the blocks of the noise map, in pixels.
    bin_px : int
        The surface is fitted on block means of ``bin_px`` x ``bin_px``
        pixels (faster; it is smooth anyway) and interpolated back.

    Returns
    -------
    Background
        The surface, the noise map and the objects.

    """
    q = max(1, min(int(bin_px), min(image.shape) // 16))
    coarse = _bin(image, q)
    scale, margin, block = scale_px / q, margin_px / q, max(4, round(block_px / q))
    level = _first_surface(coarse, scale, block)
    noise = _noise_map(coarse - level, np.ones(coarse.shape, bool), block)
    objects = np.zeros(coarse.shape, bool)
    for _ in range(MAX_ROUNDS):
        bright = _compact(coarse - level > OBJECT_SIGMAS * noise, scale)
        found = _grow(bright, margin)
        if found.all():  # nothing free: keep the first surface
            break
        if _rounds_agree(found, objects):
            objects = found
            break
        objects = found
        level = _surface(coarse, ~objects, SMOOTHING_SCALE * scale)
        noise = _noise_map(coarse - level, ~objects, block)
    if q > 1:
        level = _upsample(level, q, image.shape)
        objects = _upsample(objects.astype(np.float64), q, image.shape) > 0.0
    free = ~objects if not objects.all() else np.ones(image.shape, bool)
    noise = _noise_map(image - level, free, block_px)
    spread = float(np.max(image - level)) if image.size else 0.0
    noise = np.maximum(noise, max(1e-3 * spread, 1e-12))
    return Background(level=level, noise=noise, objects=objects)


def _bin(image: FloatArray, q: int) -> FloatArray:
    """Block means of ``q`` x ``q`` pixels (a partial last block included)."""
    if q == 1:
        return image
    rows, cols = image.shape
    n_r, n_c = math.ceil(rows / q), math.ceil(cols / q)
    padded = np.pad(image, ((0, n_r * q - rows), (0, n_c * q - cols)), mode="edge")
    binned: FloatArray = padded.reshape(n_r, q, n_c, q).mean(axis=(1, 3))
    return binned


def _taps(n_out: int, n_in: int, q: float) -> tuple[NDArray[np.intp], ...]:
    """Two-tap linear interpolation from blocks of ``q`` pixels to pixels."""
    position = np.clip((np.arange(n_out) + 0.5) / q - 0.5, 0.0, n_in - 1.0)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, position - low


def _upsample(grid: FloatArray, q: float, shape: tuple[int, int]) -> FloatArray:
    """Bilinear interpolation of a block grid back to pixels."""
    low, high, frac = _taps(shape[0], grid.shape[0], q)
    rows = grid[low] * (1.0 - frac)[:, None] + grid[high] * frac[:, None]
    low, high, frac = _taps(shape[1], grid.shape[1], q)
    out: FloatArray = rows[:, low] * (1.0 - frac) + rows[:, high] * frac
    return out


def _first_surface(image: FloatArray, scale: float, block: int) -> FloatArray:
    """A first background: a morphological opening, or a quadratic.

    Opening with a square wider than the largest object removes every object
    (none contains the square) and keeps what is broader: illumination and
    autofluorescence. It sits low by the noise it opened (a minimum of
    minima), which the median difference to the image restores. A field too
    small for the square gets a quadratic through block medians instead.
    """
    side = max(3, round(OPENING_SCALE * scale))
    if min(image.shape) < 2 * side:
        return _block_quadratic(image, block)
    opened = ndi.grey_opening(image, size=(side, side), mode="reflect")
    opened = ndi.uniform_filter(opened, size=side, mode="reflect")
    surface: FloatArray = opened + float(np.median(image - opened))
    return surface


def _compact(mask: BoolArray, scale: float) -> BoolArray:
    """Parts of a mask no larger than a few objects of size ``scale``.

    Broader bright areas are background the surface has not followed yet,
    not objects: they stay in the next fit.
    """
    labels, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes <= MAX_OBJECT_AREAS * scale * scale
    keep[0] = False
    compact: BoolArray = keep[labels]
    return compact


def _rounds_agree(a: BoolArray, b: BoolArray) -> bool:
    """Two object masks differ by under 0.1 % of the image."""
    return int(np.count_nonzero(a ^ b)) <= max(1, a.size // 1000)


def _grow(mask: BoolArray, margin_px: float) -> BoolArray:
    """Dilate a mask by a distance in pixels."""
    if not mask.any() or margin_px <= 0:
        return mask
    grown: BoolArray = ndi.distance_transform_edt(~mask) <= margin_px
    return grown


def _normalised_coords(
    shape: tuple[int, int], rows: FloatArray, cols: FloatArray
) -> tuple[FloatArray, FloatArray]:
    half_r = max((shape[0] - 1) / 2, 1.0)
    half_c = max((shape[1] - 1) / 2, 1.0)
    return (rows - (shape[0] - 1) / 2) / half_r, (cols - (shape[1] - 1) / 2) / half_c


def _quadratic_design(y: FloatArray, x: FloatArray) -> FloatArray:
    return np.column_stack((np.ones_like(x), x, y, x * x, x * y, y * y))


def _lstsq(design: FloatArray, values: FloatArray) -> FloatArray:
    """Least squares through the normal equations (a few well-scaled columns)."""
    normal = design.T @ design
    try:
        coef = np.linalg.solve(normal, design.T @ values)
    except np.linalg.LinAlgError:
        coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return np.asarray(coef, dtype=np.float64)


def _evaluate_quadratic(coef: FloatArray, shape: tuple[int, int]) -> FloatArray:
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    cols = np.arange(shape[1], dtype=np.float64)[None, :]
    y, x = _normalised_coords(shape, rows, cols)
    c0, cx, cy, cxx, cxy, cyy = (float(c) for c in coef)
    surface: FloatArray = c0 + cx * x + cy * y + cxx * x * x + cxy * x * y + cyy * y * y
    return surface


def _block_quadratic(image: FloatArray, block_px: int) -> FloatArray:
    """Quadratic through the block medians, blocks of objects rejected."""
    rows, cols = image.shape
    b = max(1, min(block_px, rows // 2, cols // 2))
    n_r, n_c = max(rows // b, 1), max(cols // b, 1)
    blocks = image[: n_r * b, : n_c * b].reshape(n_r, b, n_c, b)
    medians = np.median(blocks, axis=(1, 3)).ravel()
    centres_r = (np.arange(n_r) * b + (b - 1) / 2).repeat(n_c)
    centres_c = np.tile(np.arange(n_c) * b + (b - 1) / 2, n_r)
    y, x = _normalised_coords(image.shape, centres_r, centres_c)
    design = _quadratic_design(y, x)
    keep = np.ones(medians.size, bool)
    coef = np.zeros(6)
    coef[0] = float(np.median(medians))
    if medians.size < 12:  # too few blocks for a surface: a level
        return np.full(image.shape, coef[0])
    for _ in range(10):
        coef = _lstsq(design[keep], medians[keep])
        residual = medians - design @ coef
        spread = _MAD_TO_SIGMA * float(np.median(np.abs(residual[keep])))
        new_keep = residual <= BLOCK_REJECT_MADS * max(spread, 1e-12)
        if new_keep.sum() < 12 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return _evaluate_quadratic(coef, image.shape)


def _surface(image: FloatArray, free: BoolArray, scale_px: float) -> FloatArray:
    """Quadratic over the free pixels plus their smoothed remainder."""
    rows, cols = image.shape
    step = max(1, int(math.sqrt(image.size / 40000)))
    sub_free = free[::step, ::step]
    r = np.arange(0, rows, step, dtype=np.float64)[:, None].repeat(
        sub_free.shape[1], axis=1
    )
    c = np.arange(0, cols, step, dtype=np.float64)[None, :].repeat(
        sub_free.shape[0], axis=0
    )
    values = image[::step, ::step][sub_free]
    if values.size < 12:
        return np.full(image.shape, float(np.median(image)))
    y, x = _normalised_coords(image.shape, r[sub_free], c[sub_free])
    coef = _lstsq(_quadratic_design(y, x), values)
    quadratic = _evaluate_quadratic(coef, image.shape)
    remainder = _normalised_convolution(image - quadratic, free, scale_px)
    return quadratic + remainder


def _normalised_convolution(
    values: FloatArray, weights: BoolArray, sigma_px: float
) -> FloatArray:
    """Gaussian average of ``values`` over the weighted pixels only.

    Computed on a grid of blocks about a quarter of ``sigma_px`` wide and
    interpolated back; where (almost) no free pixel is within reach it is 0.
    """
    rows, cols = values.shape
    q = max(1, int(sigma_px // 4))
    n_r, n_c = math.ceil(rows / q), math.ceil(cols / q)
    pad_r, pad_c = n_r * q - rows, n_c * q - cols
    w = np.pad(weights.astype(np.float64), ((0, pad_r), (0, pad_c)))
    v = np.pad(values * weights, ((0, pad_r), (0, pad_c)))
    w_blocks = w.reshape(n_r, q, n_c, q).sum(axis=(1, 3))
    v_blocks = v.reshape(n_r, q, n_c, q).sum(axis=(1, 3))
    sigma = sigma_px / q
    num = ndi.gaussian_filter(v_blocks, sigma, mode="constant")
    den = ndi.gaussian_filter(w_blocks, sigma, mode="constant")
    support = den / max(float(den.max()), 1e-300)
    smooth = np.where(support > MIN_SUPPORT, num / np.maximum(den, 1e-300), 0.0)
    if q == 1:
        return np.asarray(smooth[:rows, :cols], dtype=np.float64)
    return _upsample(smooth, q, (rows, cols))


def _masked_mad(blocks: FloatArray, min_count: int) -> FloatArray:
    """Robust standard deviation along the last axis, ignoring NaN.

    NaN where fewer than ``min_count`` values are finite. Medians are the
    lower middle element (sorting once per statistic, no Python loop).
    """
    finite = np.isfinite(blocks)
    counts = np.count_nonzero(finite, axis=-1)
    middle = np.maximum(counts - 1, 0) // 2

    def lower_median(values: FloatArray) -> FloatArray:
        ordered = np.sort(np.where(finite, values, np.inf), axis=-1)
        picked = np.take_along_axis(ordered, middle[..., None], axis=-1)[..., 0]
        return np.asarray(picked, dtype=np.float64)

    centre = lower_median(blocks)
    spread = _MAD_TO_SIGMA * lower_median(np.abs(blocks - centre[..., None]))
    return np.where(counts >= min_count, spread, np.nan)


def _noise_map(residual: FloatArray, free: BoolArray, block_px: int) -> FloatArray:
    """Robust standard deviation of the free pixels, block by block."""
    rows, cols = residual.shape
    b = max(4, min(block_px, rows, cols))
    n_r, n_c = math.ceil(rows / b), math.ceil(cols / b)
    pad = ((0, n_r * b - rows), (0, n_c * b - cols))
    values = np.pad(np.where(free, residual, np.nan), pad, constant_values=np.nan)
    blocks = values.reshape(n_r, b, n_c, b).transpose(0, 2, 1, 3).reshape(n_r, n_c, -1)
    spread = _masked_mad(blocks, MIN_BLOCK_PIXELS)
    known = np.isfinite(spread)
    if not known.any():
        pool = residual[free] if free.any() else residual.ravel()
        level = _MAD_TO_SIGMA * float(np.median(np.abs(pool - np.median(pool))))
        return np.full(residual.shape, level)
    # blocks under objects take their nearest measured neighbour's value
    nearest = ndi.distance_transform_edt(
        ~known, return_distances=False, return_indices=True
    )
    filled = spread[tuple(nearest)]
    if min(n_r, n_c) >= 3:
        filled = ndi.median_filter(filled, size=3, mode="nearest")
    return _upsample(filled, b, residual.shape)


__all__ = ["OBJECT_SIGMAS", "Background", "estimate_background"]
