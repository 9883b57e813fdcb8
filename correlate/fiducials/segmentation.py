"""Segment mark-sized bright objects and measure their flux and centre.

:func:`find_candidates` works on raw camera or detector frames:

1. The image is smoothed a little, and its background and noise are
   estimated *locally* (:mod:`correlate.fiducials.background`): a smooth surface
   under the objects (vignetting, illumination ramps, autofluorescence) and a
   noise map. Everything below works on the image less that surface.
2. Pixels well above the local noise seed candidate objects; seeds closer
   than the widest gap inside any of the holder's marks (the two discs of a
   double disc) are grouped into one candidate.
3. A candidate is segmented at half its plateau above the local background
   (measured in a ring around it) and kept if it is mark-sized. Parts of it
   much smaller than any part of a holder mark are dust or debris: they are
   cut out and the candidate segmented again. A blurred one is smoothed
   more, in proportion to its blur.
4. Its flux is summed over the mark and its blurred surroundings, after
   subtracting the local background. Blur moves light across the edges but
   does not move its centroid, so the flux-weighted centroid is the mark's area
   centroid, the centre a :class:`~correlate.fiducials.marks.MarkSpec` refers to, for
   every shape and focus. A brightness gradient across the mark (a tilted
   coverslip in a confocal image) would pull the centroid to the bright side;
   it is fitted on the mark's core and divided out. This centroid is the
   first estimate: an identified mark is centred by fitting its known shape
   (:mod:`correlate.fiducials.fit`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from correlate.fiducials.background import estimate_background
from correlate.fiducials.descriptors import edge_mean, gradient_magnitude
from correlate.fiducials.marks import Holder, mark_mask
from correlate.fiducials.matching import BLUR_STEPS_PER_OCTAVE

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Box = tuple[slice, slice]

#: Smoothing before segmentation: at least this many micrometres and 1 pixel.
SMOOTHING_UM = 0.2
#: Seeds lie this many noise standard deviations above the background.
SEED_SIGMAS = 8.0
#: A mark's plateau must rise this many noise standard deviations above it.
MIN_CONTRAST_SIGMAS = 15.0
#: Percentile of a candidate's seed pixels taken as its plateau.
PLATEAU_PERCENTILE = 90.0
#: Light within this distance of the half-height contour, and within three
#: edge widths, counts for the flux and the centre.
CENTROID_MARGIN_UM = 2.5
#: Largest edge width (Gaussian standard deviation) that is measured.
MAX_BLUR_UM = 4.0
#: A blurred candidate is smoothed again by about this fraction of its blur.
RESMOOTH_FRACTION = 0.5
#: ... and identified on a grid coarser by a whole factor, keeping at least
#: this much smoothing (in grid pixels).
MIN_SMOOTHING_PER_BIN_PX = 2.0
#: Width of the ring around a mark in which its local background is measured.
BACKGROUND_RING_UM = 4.0
#: Fewest ring pixels for a local background estimate.
MIN_RING_PIXELS = 20
#: Fewest core pixels, and their least spread, for a brightness gradient.
MIN_CORE_PIXELS = 50
MIN_CORE_SPREAD_UM = 3.0
#: Mark-sized: area between these fractions of the smallest and largest mark
#: (objects reaching the image edge may be half as small).
AREA_RANGE = (0.5, 1.6)
#: Parts of a mark and seeds closer than this (plus its widest inner gap) merge.
MERGE_MARGIN_UM = 1.0
#: Parts and holes smaller than this are noise, not mark features.
MIN_FEATURE_UM2 = 4.0
#: Weights of the centroid are clipped at this multiple of the plateau, so a
#: hot pixel or a bead adds little.
MAX_WEIGHT_PLATEAUS = 2.0
#: Objects are grown by this much (and two smoothing widths) before the
#: background is estimated without them: their blurred edges.
BACKGROUND_MARGIN_UM = 2.0
#: Parts of a candidate smaller than this fraction of the smallest part of
#: any holder mark are debris; they are cut out with this margin.
DEBRIS_PART_FRACTION = 0.2
DEBRIS_MARGIN_UM = 1.0
#: Blocks of the noise map: this many smoothing widths, at least the minimum.
NOISE_BLOCK_SMOOTHINGS = 16
NOISE_BLOCK_MIN_PX = 32
#: The background surface is fitted on blocks of up to this many smoothing
#: widths, and at least this many blocks across the smallest mark.
BIN_SMOOTHINGS = 2.0
BIN_PER_MARK = 8.0


@dataclass(frozen=True)
class MarkCandidate:
    """A mark-sized bright object, segmented and measured.

    Attributes
    ----------
    box : tuple of slice
        Where in the image it was cut out (with its surroundings).
    origin_px : tuple of int
        (row, col) in the image of the identification grid's first pixel.
    step : int
        The grid takes every ``step``-th pixel: a smooth (blurred) object is
        identified on a coarser grid. ``region``, ``smooth`` and
        ``gradient`` are on this grid.
    pixel_size_um : float
        Pixel size of the grid.
    region : ndarray of bool
        The candidate's own pixels (its seeds grown by the merge distance).
    smooth : ndarray of float64
        The smoothed image.
    smoothing_px : float
        Standard deviation of that smoothing, in grid pixels.
    gradient : ndarray of float64
        Gradient magnitude of ``smooth``, per micrometre.
    mask : ndarray of bool
        Segmentation at half its plateau, at full resolution in ``box``.
    area_um2 : float
        Area of ``mask``.
    blur_um : float
        Gaussian width of its edges (optics and smoothing).
    background : float
        Local background level.
    flux : float
        Background-subtracted light of the object, in image units times um^2.
    centre_px : tuple of float
        (row, col) of its flux-weighted centroid in the image.
    touches_border : bool
        Whether ``mask`` reaches the edge of the image.
    signal : ndarray of float64
        The raw image less the background surface, in ``box``.
    noise : float
        Noise standard deviation of the raw image near the candidate.
    others : ndarray of bool
        Pixels of ``box`` that belong to other candidates.

    """

    box: Box
    origin_px: tuple[int, int]
    step: int
    pixel_size_um: float
    region: BoolArray
    smooth: FloatArray
    smoothing_px: float
    gradient: FloatArray
    mask: BoolArray
    area_um2: float
    blur_um: float
    background: float
    flux: float
    centre_px: tuple[float, float]
    touches_border: bool
    signal: FloatArray
    noise: float
    others: BoolArray


def find_candidates(
    image: FloatArray, *, pixel_size_um: float, holder: Holder
) -> list[MarkCandidate]:
    """Segment the mark-sized bright objects of an image.

    Parameters
    ----------
    image : ndarray of float64
        2-D raw image.
    pixel_size_um : float
        Pixel size in micrometres.
    holder : Holder
        The holder's marks (not empty): their sizes set what is mark-sized
        and how far apart the parts of one mark may lie.

    Returns
    -------
    list of MarkCandidate
        Objects between :data:`AREA_RANGE` times the smallest and the largest
        mark's area, or touching the image edge and at least half that small.

    Notes
    -----
    Objects larger than the largest mark, or brighter areas broader than it,
    are taken partly for background: marks must stand out of what surrounds
    them within about one mark size.

    """
    smoothing_px = max(1.0, SMOOTHING_UM / pixel_size_um)
    smooth = ndi.gaussian_filter(image, smoothing_px)
    largest_um = max(2.0 * m.radius_um for m in holder.marks)
    smallest_um = min(m.size_um for m in holder.marks)
    merge_px = _merge_distance_um(holder, pixel_size_um) / pixel_size_um
    background = estimate_background(
        smooth,
        scale_px=largest_um / pixel_size_um,
        margin_px=max(2.0 * smoothing_px, BACKGROUND_MARGIN_UM / pixel_size_um),
        block_px=max(NOISE_BLOCK_MIN_PX, round(NOISE_BLOCK_SMOOTHINGS * smoothing_px)),
        bin_px=max(
            1,
            math.floor(
                min(
                    BIN_SMOOTHINGS * smoothing_px,
                    smallest_um / BIN_PER_MARK / pixel_size_um,
                )
            ),
        ),
    )
    residual = smooth - background.level
    signal = image - background.level
    seeds = residual > SEED_SIGMAS * background.noise
    if not seeds.any():
        return []
    groups, _ = ndi.label(ndi.distance_transform_edt(~seeds) <= merge_px)
    # noise of the raw image: white noise drops by 2 sqrt(pi) sigma when
    # smoothed with a Gaussian of standard deviation sigma
    raw_noise = background.noise * (2.0 * math.sqrt(math.pi) * smoothing_px)

    areas = [m.area_um2 for m in holder.marks]
    min_area = AREA_RANGE[0] * min(areas)
    max_area = AREA_RANGE[1] * max(areas)
    candidates = []
    for index, bounds in enumerate(ndi.find_objects(groups), start=1):
        if bounds is None:
            continue
        candidate = _segment(
            signal,
            residual,
            seeds,
            groups,
            index,
            (bounds[0], bounds[1]),
            noise=background.noise,
            raw_noise=raw_noise,
            pixel_size_um=pixel_size_um,
            smoothing_px=smoothing_px,
            min_area_um2=min_area / 2,
            min_part_um2=min(
                _smallest_part_um2(m.shape, float(m.size_um)) for m in holder.marks
            ),
        )
        if candidate is None:
            continue
        small = min_area / 2 if candidate.touches_border else min_area
        if small <= candidate.area_um2 <= max_area:
            candidates.append(candidate)
    return candidates


@functools.lru_cache(maxsize=64)
def _part_gap_um(shape: str, size_um: float) -> float:
    """Widest gap that must be bridged to join all parts of a mark."""
    pixel_um = 0.1
    mask = mark_mask(shape, size_um, pixel_size_um=pixel_um) > 0.5
    _, n_parts = ndi.label(mask)
    if n_parts <= 1:
        return 0.0
    distance = ndi.distance_transform_edt(~mask)
    low, high = 0.0, float(distance.max())
    while high - low > 0.5:
        middle = 0.5 * (low + high)
        _, n = ndi.label(distance <= middle)
        low, high = (low, middle) if n == 1 else (middle, high)
    return 2.0 * high * pixel_um


def _merge_distance_um(holder: Holder, pixel_size_um: float) -> float:
    """Seeds closer than twice this distance belong to one candidate mark."""
    gap = max(_part_gap_um(m.shape, float(m.size_um)) for m in holder.marks)
    return 0.5 * gap + max(MERGE_MARGIN_UM, 2.0 * pixel_size_um)


def _segment(
    img: FloatArray,
    smooth: FloatArray,
    seeds: BoolArray,
    groups: NDArray[np.int32],
    index: int,
    bounds: Box,
    *,
    noise: FloatArray,
    raw_noise: FloatArray,
    pixel_size_um: float,
    smoothing_px: float,
    min_area_um2: float,
    min_part_um2: float,
) -> MarkCandidate | None:
    """Segment one seed group and measure its flux and centroid.

    ``img`` and ``smooth`` are the raw and the smoothed image less the
    background surface; ``noise`` is the smoothed image's noise map and
    ``raw_noise`` the raw image's. Parts of the segmentation much smaller
    than the smallest part of any mark (``min_part_um2``) are debris: they
    are cut out, with a margin, and the candidate segmented again. Returns
    None for objects too faint or (segmented) smaller than ``min_area_um2``.
    """
    pad = math.ceil(
        (max(CENTROID_MARGIN_UM, 3 * MAX_BLUR_UM) + BACKGROUND_RING_UM) / pixel_size_um
    )
    box: Box = (
        slice(max(bounds[0].start - pad, 0), min(bounds[0].stop + pad, img.shape[0])),
        slice(max(bounds[1].start - pad, 0), min(bounds[1].stop + pad, img.shape[1])),
    )
    labels = groups[box]
    region = labels == index
    free = region | (labels == 0)  # not another candidate's pixels
    local = smooth[box]
    seed = seeds[box] & region
    for attempt in range(2):
        if not seed.any():
            return None
        plateau = float(np.percentile(local[seed], PLATEAU_PERCENTILE))
        ring = ndi.distance_transform_edt(~region) * pixel_size_um
        ring = (ring <= BACKGROUND_RING_UM) & ~region & free
        local_background = (
            float(np.median(local[ring])) if ring.sum() >= MIN_RING_PIXELS else 0.0
        )
        contrast = plateau - local_background
        local_noise = float(np.median(noise[box][seed]))
        if contrast < MIN_CONTRAST_SIGMAS * local_noise:
            return None
        mask = clean_mask(
            (local > local_background + 0.5 * contrast) & region, pixel_size_um
        )
        if mask.sum() * pixel_size_um**2 < min_area_um2:
            return None
        debris = _debris_parts(
            mask,
            min_part_um2 * DEBRIS_PART_FRACTION,
            pixel_size_um,
            edge=_image_edge(box, img.shape),
        )
        if attempt or debris is None:
            break
        # small bright specks beside a mark: dust or debris, not the mark
        away = ndi.distance_transform_edt(~debris) * pixel_size_um > DEBRIS_MARGIN_UM
        region &= away
        seed &= away
        free &= away

    gradient = gradient_magnitude(local, pixel_size_um=pixel_size_um)
    blur_um = _edge_blur_um(mask, gradient, contrast)
    # a blurred mark is smoothed more: its edges stay as they are, noise drops
    wanted_px = RESMOOTH_FRACTION * blur_um / pixel_size_um
    if wanted_px > smoothing_px:
        steps = math.floor(BLUR_STEPS_PER_OCTAVE * math.log2(wanted_px / smoothing_px))
        smoothing_px *= 2.0 ** (steps / BLUR_STEPS_PER_OCTAVE)
        local = ndi.gaussian_filter(img[box], smoothing_px)
        gradient = gradient_magnitude(local, pixel_size_um=pixel_size_um)
    margin_um = max(CENTROID_MARGIN_UM, 3.0 * blur_um)
    distance_um = ndi.distance_transform_edt(~mask) * pixel_size_um
    near = (distance_um <= margin_um) & free
    outer = (distance_um > margin_um) & (distance_um <= margin_um + BACKGROUND_RING_UM)
    outer &= free
    if outer.sum() >= MIN_RING_PIXELS:
        local_background = float(np.median(local[outer]))
    weights = np.minimum(
        img[box][near] - local_background, MAX_WEIGHT_PLATEAUS * contrast
    )
    weights /= _relative_brightness(
        local - local_background,
        mask,
        near,
        blur_um=blur_um,
        pixel_size_um=pixel_size_um,
    )
    total = float(weights.sum())
    if total <= 0:
        return None
    rows, cols = np.nonzero(near)
    centre = (
        box[0].start + float(np.dot(weights, rows)) / total,
        box[1].start + float(np.dot(weights, cols)) / total,
    )
    # identification looks at the candidate's own pixels only, and at a smooth
    # image on a coarser grid: the same shape, faster
    step = max(1, int(smoothing_px // MIN_SMOOTHING_PER_BIN_PX))
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    grid = (
        slice(max(rows[0] - 2 * step, 0), rows[-1] + 2 * step + 1, step),
        slice(max(cols[0] - 2 * step, 0), cols[-1] + 2 * step + 1, step),
    )
    return MarkCandidate(
        box=box,
        origin_px=(box[0].start + grid[0].start, box[1].start + grid[1].start),
        step=step,
        pixel_size_um=pixel_size_um * step,
        region=region[grid],
        smooth=local[grid],
        smoothing_px=smoothing_px / step,
        gradient=gradient[grid],
        mask=mask,
        area_um2=float(mask.sum()) * pixel_size_um**2,
        blur_um=blur_um,
        background=local_background,
        flux=total * pixel_size_um**2,
        centre_px=centre,
        touches_border=_touches_border(box, mask, img.shape),
        signal=img[box],
        noise=float(np.median(raw_noise[box][seed])),
        others=~free,
    )


def _debris_parts(
    mask: BoolArray, max_area_um2: float, pixel_size_um: float, *, edge: BoolArray
) -> BoolArray | None:
    """Parts of a mask smaller than ``max_area_um2`` beside larger ones.

    Parts reaching the image's edge (``edge``) are never debris: they may be
    the visible piece of a mark's part.
    """
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n < 2:
        return None
    areas = np.bincount(labels.ravel())[1:] * pixel_size_um**2
    small = areas < max_area_um2
    small[np.unique(labels[edge & mask]) - 1] = False
    if not small.any() or small.all():
        return None
    debris: BoolArray = np.isin(labels, 1 + np.flatnonzero(small))
    return debris


def _image_edge(box: Box, shape: tuple[int, ...]) -> BoolArray:
    """Pixels of ``box`` on the image's outermost rows and columns."""
    rows, cols = box
    edge = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
    if rows.start == 0:
        edge[0] = True
    if rows.stop == shape[0]:
        edge[-1] = True
    if cols.start == 0:
        edge[:, 0] = True
    if cols.stop == shape[1]:
        edge[:, -1] = True
    return edge


@functools.lru_cache(maxsize=64)
def _smallest_part_um2(shape: str, size_um: float) -> float:
    """Area of the smallest connected part of a mark."""
    pixel_um = 0.1
    mask = mark_mask(shape, size_um, pixel_size_um=pixel_um) > 0.5
    labels, n = ndi.label(mask)
    if n == 0:
        return 0.0
    return float(np.bincount(labels.ravel())[1:].min()) * pixel_um**2


def _relative_brightness(
    signal: FloatArray,
    mask: BoolArray,
    near: BoolArray,
    *,
    blur_um: float,
    pixel_size_um: float,
) -> FloatArray | float:
    """Brightness across a mark relative to its mean, at the ``near`` pixels.

    A tilted coverslip puts one side of a mark closer to focus; in a confocal
    image that side is brighter, which would pull the centroid towards it. A
    plane is fitted to the mark's core, the pixels farther than three edge
    widths from its edge, whose brightness blur does not change. Returns 1
    when the core is too small to fit a plane reliably.
    """
    depth_um = ndi.distance_transform_edt(mask) * pixel_size_um
    core = depth_um >= max(3.0 * blur_um, 2.0 * pixel_size_um)
    rows, cols = np.nonzero(core)
    if rows.size < MIN_CORE_PIXELS:
        return 1.0
    spread_um = pixel_size_um * math.sqrt(float(np.var(rows) + np.var(cols)))
    if spread_um < MIN_CORE_SPREAD_UM:
        return 1.0
    r0, c0 = float(rows.mean()), float(cols.mean())
    design = np.column_stack((np.ones(rows.size), rows - r0, cols - c0))
    coefficients, *_ = np.linalg.lstsq(design, signal[core], rcond=None)
    level, d_row, d_col = (float(c) for c in coefficients)
    if level <= 0:
        return 1.0
    near_rows, near_cols = np.nonzero(near)
    relative = 1.0 + (d_row * (near_rows - r0) + d_col * (near_cols - c0)) / level
    clipped: FloatArray = np.clip(relative, 0.5, 2.0)
    return clipped


def _edge_blur_um(mask: BoolArray, gradient: FloatArray, step: float) -> float:
    """Gaussian width of the edges of a mask segmented at half a step.

    A straight edge of height ``step`` blurred by a Gaussian of standard
    deviation ``sigma`` has the slope ``step / (sigma sqrt(2 pi))`` where it
    crosses half its height.
    """
    slope = edge_mean(mask, gradient)
    if slope <= 0:
        return MAX_BLUR_UM
    return min(step / (math.sqrt(2 * math.pi) * slope), MAX_BLUR_UM)


def clean_mask(mask: BoolArray, pixel_size_um: float) -> BoolArray:
    """Drop specks and fill pinholes smaller than :data:`MIN_FEATURE_UM2`.

    Parameters
    ----------
    mask : ndarray of bool
        2-D segmentation.
    pixel_size_um : float
        Pixel size in micrometres.

    Returns
    -------
    ndarray of bool
        The cleaned mask.

    """
    min_pixels = MIN_FEATURE_UM2 / pixel_size_um**2
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n:
        keep = np.bincount(labels.ravel()) >= min_pixels
        keep[0] = False
        mask = keep[labels]
    holes, n = ndi.label(~mask)
    if n:
        fill = np.bincount(holes.ravel()) < min_pixels
        fill[0] = False
        mask = mask | fill[holes]
    return mask


def _touches_border(box: Box, mask: BoolArray, shape: tuple[int, ...]) -> bool:
    """Whether the mask (placed at ``box``) reaches an edge of the image."""
    rows, cols = box
    return bool(
        (rows.start == 0 and mask[0].any())
        or (rows.stop == shape[0] and mask[-1].any())
        or (cols.start == 0 and mask[:, 0].any())
        or (cols.stop == shape[1] and mask[:, -1].any())
    )


__all__ = [
    "AREA_RANGE",
    "MarkCandidate",
    "clean_mask",
    "find_candidates",
]
