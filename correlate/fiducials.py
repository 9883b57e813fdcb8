"""Find a holder's fiducial marks in wide-field or confocal images.

:func:`detect_marks` segments mark-sized bright objects and measures their
flux-weighted centres (:mod:`correlate.mark_segmentation`: the centre is the
mark's area centroid for every shape, focus and brightness gradient), then
identifies each by rotation-invariant descriptors
(:mod:`correlate.mark_matching`): for each holder mark in turn, the mark's
brightness follows from the object's flux and that mark's known area, the
image is segmented at half that brightness, and the mask is compared with the
mark rasterised at the image's pixel size and blurred as much as the image's
edges are. Defocus blurs thin parts (the ring, the arms of the cross) below
their true brightness; this keeps their segmented width right. An identified
mark's orientation comes from its polar profile
(:mod:`correlate.mark_orientation`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from correlate.mark_descriptors import describe_mask, edge_mean
from correlate.mark_matching import score_matches, shape_distance2
from correlate.mark_orientation import mark_orientation_deg
from correlate.mark_segmentation import (
    MAX_BLUR_UM,
    MarkCandidate,
    clean_mask,
    find_candidates,
)
from correlate.marks import Holder, MarkSpec


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
    orientation_deg : float or None
        Rotation of an identified mark from its reference pose (that of
        :func:`correlate.marks.mark_mask`), in degrees from the image's column
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

    Notes
    -----
    The image's median is taken as its background, so marks and cells must
    cover less than half of it. Anything closer to a mark than the widest gap
    inside one of the holder's marks (4 um between the discs of the double
    disc) plus 2 um is taken as part of it.

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

    detections = [
        _identify(candidate, holder, min_score=min_score)
        for candidate in find_candidates(
            img, pixel_size_um=pixel_size_um, holder=holder
        )
    ]
    return _unique_identities(detections)


def _identify(
    candidate: MarkCandidate,
    holder: Holder,
    *,
    min_score: float,
) -> MarkDetection:
    """Compare a candidate with each holder mark and keep the best match."""
    distances = []
    areas = []
    for spec in holder.marks:
        distance, area = _hypothesis_distance2(candidate, spec)
        distances.append(distance)
        areas.append(area)
    best, score = score_matches(distances)
    identified = score >= min_score and math.isfinite(distances[best])
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
    return MarkDetection(
        identity=holder.marks[best].identity if identified else "",
        centre_px=candidate.centre_px,
        score=score if math.isfinite(distances[best]) else 0.0,
        area_um2=areas[best] if identified else candidate.area_um2,
        touches_border=candidate.touches_border,
        orientation_deg=orientation,
    )


def _hypothesis_distance2(
    candidate: MarkCandidate, spec: MarkSpec
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
    pixel_size_um = candidate.pixel_size_um
    brightness = candidate.flux / spec.area_um2
    level = candidate.background + 0.5 * brightness
    mask = clean_mask((candidate.smooth > level) & candidate.region, pixel_size_um)
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


__all__ = ["MarkDetection", "detect_marks"]
