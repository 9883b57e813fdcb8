"""Find a holder's fiducial marks in wide-field or confocal images.

:func:`detect_marks` estimates the image's background and noise locally
(uneven illumination, autofluorescence: :mod:`correlate.fiducials.background`),
segments mark-sized bright objects and measures their flux-weighted centres
(:mod:`correlate.fiducials.segmentation`), then identifies each by
rotation-invariant descriptors
(:mod:`correlate.fiducials.matching`): for each holder mark in turn, the mark's
brightness follows from the object's flux and that mark's known area, the
image is segmented at half that brightness, and the mask is compared with the
mark rasterised at the image's pixel size and blurred as much as the image's
edges are. Defocus blurs thin parts (the ring, the arms of the cross) below
their true brightness; this keeps their segmented width right. An identified
mark's orientation comes from its polar profile
(:mod:`correlate.fiducials.orientation`), and its centre from a fit of its known
shape with a brightness gradient and a quadratic background, robust to debris
beside it (:mod:`correlate.fiducials.fit`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from correlate.fiducials.descriptors import describe_mask, edge_mean
from correlate.fiducials.fit import fit_mark
from correlate.fiducials.matching import (
    open_mask,
    score_matches,
    shape_distance2,
)
from correlate.fiducials.orientation import mark_orientation_deg
from correlate.fiducials.segmentation import (
    MAX_BLUR_UM,
    SMOOTHING_UM,
    MarkCandidate,
    clean_mask,
    find_candidates,
)

if TYPE_CHECKING:
    from correlate.fiducials.marks import Holder, MarkSpec

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: A holder's marks must span at least this many pixels to be detected.
MIN_MARK_PX = 2.0
#: When no holder mark matches, the segmentations are opened with a disc of
#: this radius (debris touching the mark) and compared again.
DEBRIS_OPENING_UM = 2.0
#: An image whose median pixel is saturated shows no marks.
SATURATED_FRACTION = 0.5


class MarkDetectionError(ValueError):
    """An image or an option that mark detection cannot work with.

    The message says what is wrong, where, and how to fix it.
    """


@dataclass(frozen=True)
class MarkDetection:
    """One mark-sized bright object found in an image.

    Attributes
    ----------
    identity : str
        The holder mark it shows, or "" if it could not be identified (or
        reaches the image edge).
    centre_px : tuple of float
        Sub-pixel (row, col) of the mark's area centroid: fitted with the
        mark's known shape for an identified mark, the flux-weighted
        centroid otherwise.
    score : float
        Identification confidence in [0, 1] (for an unidentified object, that
        of its best, rejected, match).
    area_um2 : float
        Area of the segmented object in square micrometres.
    touches_border : bool
        The object reaches the image edge: it is partly outside the image,
        its centre is unreliable and it is never identified (its score is
        that of its best match all the same).
    orientation_deg : float or None
        Rotation of an identified mark from its reference pose (that of
        :func:`correlate.fiducials.marks.mark_mask`), in degrees from the image's column
        axis towards its row axis, modulo the shape's rotational symmetry;
        None for unidentified and round marks. A mirrored camera shows the
        mark mirrored; every holder shape is mirror-symmetric, so the angle is
        still defined, but it turns the other way.

    """

    identity: str
    centre_px: tuple[float, float]
    score: float
    area_um2: float
    touches_border: bool
    orientation_deg: float | None = None


def detect_marks(
    image: ArrayLike,
    *,
    pixel_size_um: float,
    holder: Holder,
    min_score: float = 0.5,
    flat_field: ArrayLike | None = None,
    dark_level: ArrayLike | float = 0.0,
    saturation_level: float | None = None,
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
    flat_field : array_like, optional
        Image of a uniformly fluorescent slide taken with the same optics
        (same shape as ``image``): the image is divided by it (normalised to
        its mean) before detection, which evens out vignetting and tilted
        illumination. Without it the background is modelled locally anyway.
    dark_level : array_like or float
        Camera offset (a level, or a dark frame of the image's shape)
        subtracted from the image and the flat field before the division;
        only used with ``flat_field``.
    saturation_level : float, optional
        Pixel value at which the detector saturates; default: the largest
        value of the image's integer type (none for float images). Saturated
        pixels are left out of the centre fit.

    Returns
    -------
    tuple of MarkDetection
        Mark-sized bright objects (and any object touching the image edge
        that may be part of one), identified ones first, by decreasing
        score. Each holder identity is given to at most one detection.

    Raises
    ------
    MarkDetectionError
        If the image is not 2-D and finite, is saturated, a flat field does
        not fit it, the holder's marks are smaller than two pixels, or an
        option is out of range (a ValueError).

    Notes
    -----
    The background (illumination, autofluorescence) is modelled as a smooth
    surface under the objects, so it may vary across the field; it must vary
    slowly compared with the largest mark. Anything closer to a mark than the
    widest gap inside one of the holder's marks (4 um between the discs of
    the double disc) plus 2 um is taken as part of it.

    """
    img = _checked_image(image, pixel_size_um=pixel_size_um, min_score=min_score)
    if not holder.marks:
        return ()
    smallest = min(holder.marks, key=lambda m: m.size_um)
    if smallest.size_um < MIN_MARK_PX * pixel_size_um:
        raise MarkDetectionError(
            f"the holder's mark {smallest.identity!r} ({smallest.size_um:g} um) "
            f"spans only {smallest.size_um / pixel_size_um:.2f} pixels of "
            f"{pixel_size_um:g} um: marks must span at least {MIN_MARK_PX:g} "
            "pixels to be found. Use an objective with pixels smaller than "
            f"{smallest.size_um / MIN_MARK_PX:g} um, or check the pixel size and "
            "the holder's mark sizes"
        )
    saturated = _saturated(image, img, saturation_level)
    if flat_field is not None:
        img = _flat_corrected(img, flat_field, dark_level)
    detections = [
        _identify(candidate, holder, min_score=min_score, saturated=saturated)
        for candidate in find_candidates(
            img, pixel_size_um=pixel_size_um, holder=holder
        )
    ]
    return _unique_identities(detections)


def _checked_image(
    image: ArrayLike, *, pixel_size_um: float, min_score: float
) -> FloatArray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 3:
        raise MarkDetectionError(
            f"image must be 2-D (at least 3 x 3), got shape {img.shape}: pass one "
            "camera frame (one plane of a stack, one channel)"
        )
    if not (math.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise MarkDetectionError(
            f"pixel_size_um must be positive, got {pixel_size_um}: give the pixel "
            "size at the sample (camera pixel / magnification)"
        )
    if not 0.0 <= min_score <= 1.0:
        raise MarkDetectionError(f"min_score must lie in [0, 1], got {min_score}")
    if not np.isfinite(img).all():
        bad = int(np.count_nonzero(~np.isfinite(img)))
        raise MarkDetectionError(
            f"image has {bad} pixels that are NaN or infinite: pass the raw frame"
        )
    return img


def _saturated(
    raw: ArrayLike, img: FloatArray, saturation_level: float | None
) -> BoolArray | None:
    """Saturated pixels (None if none); an image mostly saturated is refused."""
    level = saturation_level
    dtype = np.asarray(raw).dtype
    if level is None and np.issubdtype(dtype, np.integer):
        level = float(np.iinfo(dtype).max)
    if level is None:
        return None
    saturated = img >= level
    fraction = float(np.count_nonzero(saturated)) / img.size
    if fraction >= SATURATED_FRACTION:
        raise MarkDetectionError(
            f"image is saturated: {100 * fraction:.0f} % of its pixels are at "
            f"{level:g} or above, so no mark can stand out of the background. "
            "Lower the exposure, the light or the detector gain, and snap again"
        )
    return saturated if saturated.any() else None


def _flat_corrected(
    img: FloatArray, flat_field: ArrayLike, dark_level: ArrayLike | float
) -> FloatArray:
    """``(image - dark) / (flat - dark)``, the flat normalised to its mean."""
    flat = np.asarray(flat_field, dtype=np.float64)
    if flat.shape != img.shape:
        raise MarkDetectionError(
            f"flat_field has shape {flat.shape} but the image {img.shape}: take the "
            "flat with the same camera, binning and region of interest"
        )
    dark = np.asarray(dark_level, dtype=np.float64)
    if dark.shape not in ((), img.shape):
        raise MarkDetectionError(
            f"dark_level must be a number or an image of shape {img.shape}, got "
            f"shape {dark.shape}"
        )
    if not (np.isfinite(flat).all() and np.isfinite(dark).all()):
        raise MarkDetectionError("flat_field and dark_level must be finite")
    light = flat - dark
    bad = light <= 0
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise MarkDetectionError(
            f"flat_field has {int(bad.sum())} pixels at or below the dark level "
            f"(first at row {row}, col {col}): a flat field must be lit "
            "everywhere. Take it on a uniformly fluorescent slide, check "
            "dark_level, or leave flat_field out"
        )
    corrected: FloatArray = (img - dark) / (light / float(light.mean()))
    return corrected


def _identify(
    candidate: MarkCandidate,
    holder: Holder,
    *,
    min_score: float,
    saturated: BoolArray | None = None,
) -> MarkDetection:
    """Compare a candidate with each holder mark and keep the best match."""
    results = [_hypothesis_distance2(candidate, spec) for spec in holder.marks]
    best, score = score_matches([d for d, _ in results])
    if score < min_score or not math.isfinite(results[best][0]):
        # none matches well: debris touching the mark may have changed its
        # outline; compare once more with the segmentations opened
        opened = [
            _hypothesis_distance2(candidate, spec, opening_um=DEBRIS_OPENING_UM)
            for spec in holder.marks
        ]
        results = [min(a, b) for a, b in zip(results, opened, strict=True)]
    distances = [d for d, _ in results]
    areas = [a for _, a in results]
    best, score = score_matches(distances)
    # a mark cut by the image edge is not told apart from a lookalike: a
    # background bump or debris cut straight by the edge can match a shape
    identified = (
        score >= min_score
        and math.isfinite(distances[best])
        and not candidate.touches_border
    )
    orientation = None
    if identified:
        row0, col0 = candidate.origin_px
        step = candidate.step
        pixel = candidate.pixel_size_um
        orientation = mark_orientation_deg(
            candidate.smooth - candidate.background,
            (
                (candidate.centre_px[0] - row0) / step,
                (candidate.centre_px[1] - col0) / step,
            ),
            holder.marks[best],
            pixel_size_um=pixel,
            blur_px=max(candidate.blur_um / pixel, candidate.smoothing_px),
        )
    centre = candidate.centre_px
    if identified:
        centre = _fitted_centre(candidate, holder.marks[best], orientation, saturated)
    return MarkDetection(
        identity=holder.marks[best].identity if identified else "",
        centre_px=centre,
        score=score if math.isfinite(distances[best]) else 0.0,
        area_um2=areas[best] if identified else candidate.area_um2,
        touches_border=candidate.touches_border,
        orientation_deg=orientation,
    )


def _fitted_centre(
    candidate: MarkCandidate,
    spec: MarkSpec,
    orientation_deg: float | None,
    saturated: BoolArray | None,
) -> tuple[float, float]:
    """The mark's centre fitted with its shape; the centroid if the fit fails."""
    rows, cols = candidate.box
    pixel = candidate.pixel_size_um / candidate.step
    smoothing_um = max(1.0, SMOOTHING_UM / pixel) * pixel
    optical_um = math.sqrt(max(candidate.blur_um**2 - smoothing_um**2, 0.0))
    exclude = candidate.others
    if saturated is not None:
        exclude = exclude | saturated[rows, cols]
    fit = fit_mark(
        candidate.signal,
        spec=spec,
        centre_px=(
            candidate.centre_px[0] - rows.start,
            candidate.centre_px[1] - cols.start,
        ),
        orientation_deg=orientation_deg or 0.0,
        blur_px=max(optical_um / pixel, 0.5),
        pixel_size_um=pixel,
        exclude=exclude,
    )
    if fit is None:
        return candidate.centre_px
    return (rows.start + fit.centre_px[0], cols.start + fit.centre_px[1])


def _hypothesis_distance2(
    candidate: MarkCandidate, spec: MarkSpec, *, opening_um: float = 0.0
) -> tuple[float, float]:
    """Descriptor distance of a candidate to a mark, if it were that mark.

    The mark's brightness is the candidate's flux over the mark's area; the
    candidate is segmented at half that brightness, and, with ``opening_um``,
    opened with a disc of that radius (dust or debris touching the mark is
    cut off; the reference is opened likewise).

    Returns
    -------
    distance2 : float
        Squared descriptor distance (infinite when nothing is segmented).
    area_um2 : float
        Area of that segmentation.

    """
    pixel_size_um = candidate.pixel_size_um
    brightness = candidate.flux / spec.area_um2
    level = candidate.background + 0.5 * brightness
    mask = clean_mask((candidate.smooth > level) & candidate.region, pixel_size_um)
    radius_px = opening_um / pixel_size_um
    if radius_px >= 1.0:
        mask = clean_mask(open_mask(mask, radius_px), pixel_size_um)
    else:
        radius_px = 0.0
    if not mask.any():
        return math.inf, 0.0
    return _mask_distance2(candidate, spec, mask, level, brightness, radius_px)


def _mask_distance2(
    candidate: MarkCandidate,
    spec: MarkSpec,
    mask: BoolArray,
    level: float,
    brightness: float,
    opening_px: float,
) -> tuple[float, float]:
    pixel_size_um = candidate.pixel_size_um
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
        opening_px=opening_px,
    )
    return distance, observed.area_um2


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
            d = dataclasses.replace(d, identity="", orientation_deg=None)
        elif d.identity:
            taken.add(d.identity)
        out.append(d)
    return tuple(sorted(out, key=order))


__all__ = ["MarkDetection", "MarkDetectionError", "detect_marks"]
