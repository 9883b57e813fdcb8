"""Find a holder's fiducial marks in wide-field or confocal images.

:func:`detect_marks` works on raw camera or detector frames:

1. The image is smoothed a little, and its background level and noise are
   estimated robustly (median and MAD of the darker half).
2. Pixels well above the noise seed candidate objects; seeds closer than the
   widest gap inside any of the holder's marks (the two discs of a double
   disc) are grouped into one candidate.
3. A candidate is segmented at half its plateau above the local background
   (measured in a ring around it) and kept if it is mark-sized.
4. Its flux is summed over the mark and its blurred surroundings, after
   subtracting the local background. Blur moves light across the edges but
   does not move its centroid, so the flux-weighted centroid is the mark's area
   centroid, the centre a :class:`~correlate.marks.MarkSpec` refers to, for
   every shape and focus.
5. It is identified by rotation-invariant descriptors
   (:mod:`correlate.mark_matching`): for each holder mark in turn, the
   mark's brightness follows from the flux and that mark's known area, the
   image is segmented at half that brightness, and the mask is compared with
   the mark rasterised at the image's pixel size and blurred as much as the
   image's edges are. Defocus blurs thin parts (the ring, the arms of the
   cross) below their true brightness; this keeps their segmented width right.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage as ndi

from correlate.mark_descriptors import describe_mask, edge_mean, gradient_magnitude
from correlate.mark_matching import (
    BLUR_STEPS_PER_OCTAVE,
    score_matches,
    shape_distance2,
)
from correlate.marks import Holder, MarkSpec, mark_mask

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
#: Width of the ring around a mark in which its local background is measured.
BACKGROUND_RING_UM = 4.0
#: Fewest ring pixels for a local background estimate.
MIN_RING_PIXELS = 20
#: Fewest core pixels, and their least spread, for a brightness gradient.
MIN_CORE_PIXELS = 50
MIN_CORE_SPREAD_UM = 3.0
#: Mark-sized: area between these fractions of the smallest and largest mark.
AREA_RANGE = (0.5, 1.6)
#: Parts of a mark and seeds closer than this (plus its widest inner gap) merge.
MERGE_MARGIN_UM = 1.0
#: Parts and holes smaller than this are noise, not mark features.
MIN_FEATURE_UM2 = 4.0
#: Weights of the centroid are clipped at this multiple of the plateau, so a
#: hot pixel or a bead adds little.
MAX_WEIGHT_PLATEAUS = 2.0


@dataclass(frozen=True)
class MarkDetection:
    """One mark-sized bright object found in an image.

    Attributes
    ----------
    identity : str
        The holder mark it shows, or "" if it could not be identified.
    centre_px : tuple of float
        Sub-pixel (row, col) of the flux-weighted centroid, i.e. of the
        mark's area centroid.
    score : float
        Identification confidence in [0, 1] (for an unidentified object, that
        of its best, rejected, match).
    area_um2 : float
        Area of the segmented object in square micrometres.
    touches_border : bool
        The object reaches the image edge: it is partly outside the image
        and its centre (and identity) are unreliable.

    """

    identity: str
    centre_px: tuple[float, float]
    score: float
    area_um2: float
    touches_border: bool


@dataclass(frozen=True)
class _Candidate:
    """A segmented bright object, in a box cut from the image."""

    box: Box
    region: BoolArray  # its pixels: the seed group, grown by the merge distance
    smooth: FloatArray  # the smoothed image in the box
    smoothing_px: float  # the Gaussian it was smoothed with
    gradient: FloatArray  # magnitude of the smoothed image's gradient, per um
    mask: BoolArray  # half-plateau segmentation
    background: float
    flux: float  # background-subtracted, in image units times um^2
    centre_px: tuple[float, float]
    touches_border: bool


def detect_marks(
    image: ArrayLike,
    *,
    pixel_size_um: float,
    holder: Holder,
    min_score: float = 0.5,
) -> tuple[MarkDetection, ...]:
    """Detect and identify a holder's fiducial marks in one image.

    Parameters
    ----------
    image : array_like
        2-D raw image (any numeric type; integers are not rescaled).
    pixel_size_um : float
        Pixel size at the sample in micrometres.
    holder : Holder
        The holder whose marks may be in view (their shapes and sizes are
        used, not their positions).
    min_score : float
        Detections scoring below this keep identity "".

    Returns
    -------
    tuple of MarkDetection
        Mark-sized bright objects (and any object touching the image edge
        that may be part of one), identified ones first, by decreasing
        score. Each holder identity is given to at most one detection.

    Raises
    ------
    ValueError
        If the image is not 2-D and finite, or an option is out of range.

    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 3:
        raise ValueError(f"image must be 2-D (at least 3 x 3), got {img.shape}")
    if not (math.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise ValueError(f"pixel_size_um must be positive, got {pixel_size_um}")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must lie in [0, 1], got {min_score}")
    if not np.isfinite(img).all():
        raise ValueError("image must be finite")
    if not holder.marks:
        return ()

    smoothing_px = max(1.0, SMOOTHING_UM / pixel_size_um)
    smooth = ndi.gaussian_filter(img, smoothing_px)
    background, noise = _background_and_noise(smooth)
    seeds = smooth > background + SEED_SIGMAS * noise
    merge_px = _merge_distance_um(holder, pixel_size_um) / pixel_size_um
    groups, _ = ndi.label(ndi.distance_transform_edt(~seeds) <= merge_px)

    areas = [m.area_um2 for m in holder.marks]
    min_area = AREA_RANGE[0] * min(areas)
    max_area = AREA_RANGE[1] * max(areas)
    detections = []
    for index, bounds in enumerate(ndi.find_objects(groups), start=1):
        if bounds is None:
            continue
        candidate = _segment(
            img,
            smooth,
            seeds,
            groups,
            index,
            (bounds[0], bounds[1]),
            background=background,
            noise=noise,
            pixel_size_um=pixel_size_um,
            smoothing_px=smoothing_px,
        )
        if candidate is None:
            continue
        area = float(candidate.mask.sum()) * pixel_size_um**2
        small = min_area / 2 if candidate.touches_border else min_area
        if not small <= area <= max_area:
            continue
        detections.append(
            _identify(
                candidate,
                holder,
                area_um2=area,
                pixel_size_um=pixel_size_um,
                min_score=min_score,
            )
        )
    return _unique_identities(detections)


def _background_and_noise(smooth: FloatArray) -> tuple[float, float]:
    """Background level and noise of the smoothed image, from its lower half."""
    background = float(np.median(smooth))
    below = smooth[smooth <= background]
    noise = 1.4826 * float(np.median(background - below)) if below.size else 0.0
    spread = float(smooth.max() - background)
    return background, max(noise, 1e-3 * spread, 1e-12)


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
    background: float,
    noise: float,
    pixel_size_um: float,
    smoothing_px: float,
) -> _Candidate | None:
    """Segment one seed group and measure its flux and centroid."""
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
    if not seed.any():
        return None
    plateau = float(np.percentile(local[seed], PLATEAU_PERCENTILE))
    ring = (ndi.distance_transform_edt(~region) * pixel_size_um) <= BACKGROUND_RING_UM
    ring &= ~region & free
    local_background = (
        float(np.median(local[ring])) if ring.sum() >= MIN_RING_PIXELS else background
    )
    contrast = plateau - local_background
    if contrast < MIN_CONTRAST_SIGMAS * noise:
        return None
    mask = _clean((local > local_background + 0.5 * contrast) & region, pixel_size_um)
    if not mask.any():
        return None

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
    return _Candidate(
        box=box,
        region=region,
        smooth=local,
        smoothing_px=smoothing_px,
        gradient=gradient,
        mask=mask,
        background=local_background,
        flux=total * pixel_size_um**2,
        centre_px=centre,
        touches_border=_touches_border(box, mask, img.shape),
    )


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


def _identify(
    candidate: _Candidate,
    holder: Holder,
    *,
    area_um2: float,
    pixel_size_um: float,
    min_score: float,
) -> MarkDetection:
    """Compare a candidate with each holder mark and keep the best match."""
    distances = []
    areas = []
    for spec in holder.marks:
        distance, area = _hypothesis_distance2(
            candidate, spec, pixel_size_um=pixel_size_um
        )
        distances.append(distance)
        areas.append(area)
    best, score = score_matches(distances)
    identified = score >= min_score and math.isfinite(distances[best])
    return MarkDetection(
        identity=holder.marks[best].identity if identified else "",
        centre_px=candidate.centre_px,
        score=score if math.isfinite(distances[best]) else 0.0,
        area_um2=areas[best] if identified else area_um2,
        touches_border=candidate.touches_border,
    )


def _hypothesis_distance2(
    candidate: _Candidate,
    spec: MarkSpec,
    *,
    pixel_size_um: float,
) -> tuple[float, float]:
    """Descriptor distance of a candidate to a mark, if it were that mark.

    The mark's brightness is the candidate's flux over the mark's area; the
    candidate is segmented at half that brightness.

    Returns
    -------
    distance2 : float
        Squared descriptor distance (infinite when nothing is segmented).
    area_um2 : float
        Area of that segmentation.

    """
    brightness = candidate.flux / spec.area_um2
    level = candidate.background + 0.5 * brightness
    mask = _clean((candidate.smooth > level) & candidate.region, pixel_size_um)
    if not mask.any():
        return math.inf, 0.0
    observed = describe_mask(
        mask, pixel_size_um=pixel_size_um, field=candidate.smooth, level=level
    )
    distance = shape_distance2(
        observed,
        edge_mean(mask, candidate.gradient) / brightness,
        spec,
        pixel_size_um=pixel_size_um,
        min_blur_px=candidate.smoothing_px,
        max_blur_px=max(MAX_BLUR_UM / pixel_size_um, candidate.smoothing_px),
    )
    return distance, observed.area_um2


def _clean(mask: BoolArray, pixel_size_um: float) -> BoolArray:
    """Drop specks and fill pinholes smaller than :data:`MIN_FEATURE_UM2`."""
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


def _unique_identities(
    detections: list[MarkDetection],
) -> tuple[MarkDetection, ...]:
    """Best identified first; an identity claimed twice stays with the best."""

    def order(d: MarkDetection) -> tuple[bool, float]:
        return (d.identity == "", -d.score)

    taken: set[str] = set()
    out = []
    for d in sorted(detections, key=order):
        if d.identity in taken:
            d = dataclasses.replace(d, identity="")
        elif d.identity:
            taken.add(d.identity)
        out.append(d)
    return tuple(sorted(out, key=order))


__all__ = ["MarkDetection", "detect_marks"]
