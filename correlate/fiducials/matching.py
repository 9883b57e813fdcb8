"""Compare a segmented object with a holder's marks, as they would be imaged.

An image of a mark is the mark blurred by the optics (and by the detector's
smoothing); segmented at half the mark's brightness, thin parts get thinner
and corners round off as the blur grows. :func:`shape_distance2` therefore
compares an object's descriptors with those of the holder's mark rasterised
at the image's pixel size and blurred until its edges are as steep as the
object's (:func:`reference_marks`). :func:`score_matches` turns the distances
to all of a holder's marks into a confidence that weighs the best match
against the runner-up and against "none of these".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage as ndi

from correlate.fiducials.descriptors import (
    ShapeDescriptors,
    describe_mask,
    descriptor_distance2,
    edge_mean,
    gradient_magnitude,
    interpolate_descriptors,
)
from correlate.fiducials.marks import MarkSpec, mark_mask

FloatArray = NDArray[np.float64]

#: Orientations at which each holder mark is rasterised (pixelation effects
#: repeat every 90 degrees and are mirror-symmetric, so 0-45 degrees cover them).
REFERENCE_ORIENTATIONS_DEG = (0.0, 15.0, 30.0, 45.0)
#: Blur levels of the references: this many per octave of blur.
BLUR_STEPS_PER_OCTAVE = 4
#: Squared distance at which "none of the holder's marks" is as likely as a
#: mark: a match needs its descriptors within about two tolerances.
REJECT_DISTANCE2 = 16.0
#: Above this blur (pixels) references are blurred in Fourier space.
_FFT_BLUR_PX = 4.0


@dataclass(frozen=True)
class MarkReference:
    """A holder mark rasterised, blurred and segmented like an image of it.

    Attributes
    ----------
    descriptors : ShapeDescriptors or None
        Descriptors of the mark segmented at half its brightness; None when
        the blur leaves no part of it above half its brightness.
    edge_slope_per_um : float
        Mean gradient magnitude on the edge of that segmentation, for unit
        brightness (per micrometre): it falls as the blur grows.

    """

    descriptors: ShapeDescriptors | None
    edge_slope_per_um: float


def reference_marks(
    shape: str,
    size_um: float,
    *,
    pixel_size_um: float,
    blur_px: float,
    opening_px: float = 0.0,
) -> tuple[MarkReference, ...]:
    """A holder mark as the detector would segment an image of it.

    The mark is rasterised at :data:`REFERENCE_ORIENTATIONS_DEG`, blurred with
    a Gaussian and thresholded at half its brightness. Results are cached.

    Parameters
    ----------
    shape : str
        Shape name (see :data:`correlate.fiducials.marks.SHAPES`).
    size_um : float
        Outer extent of the mark.
    pixel_size_um : float
        Pixel size of the image.
    blur_px : float
        Standard deviation of the Gaussian blur (optics and smoothing), in
        pixels.
    opening_px : float
        Radius of a disc the segmented mark is opened with (0: none), as an
        image's segmentation is when debris touching a mark is cut off.

    Returns
    -------
    tuple of MarkReference
        One per reference orientation.

    """
    return _reference_marks(
        shape,
        float(size_um),
        float(pixel_size_um),
        float(blur_px),
        float(opening_px),
    )


@functools.lru_cache(maxsize=64)
def _coverage(
    shape: str, size_um: float, pixel_size_um: float, angle_deg: float
) -> NDArray[np.float32]:
    return _rasterise(shape, size_um, pixel_size_um, angle_deg)


def _rasterise(
    shape: str, size_um: float, pixel_size_um: float, angle_deg: float
) -> NDArray[np.float32]:
    supersample = int(min(4, max(1, math.ceil(pixel_size_um / 0.1))))
    coverage = mark_mask(
        shape,
        size_um,
        angle_deg,
        pixel_size_um=pixel_size_um,
        supersample=supersample,
        margin_px=0,
    )
    return coverage.astype(np.float32)


@functools.lru_cache(maxsize=1024)
def _reference_marks(
    shape: str,
    size_um: float,
    pixel_size_um: float,
    blur_px: float,
    opening_px: float = 0.0,
) -> tuple[MarkReference, ...]:
    out = []
    for angle in REFERENCE_ORIENTATIONS_DEG:
        blurred = _blur(_coverage(shape, size_um, pixel_size_um, angle), blur_px)
        mask = open_mask(blurred > 0.5, opening_px)
        slope = edge_mean(
            mask, gradient_magnitude(blurred, pixel_size_um=pixel_size_um)
        )
        descriptors = (
            describe_mask(mask, pixel_size_um=pixel_size_um, field=blurred)
            if mask.any()
            else None
        )
        out.append(MarkReference(descriptors, slope))
    return tuple(out)


def open_mask(mask: NDArray[np.bool_], radius_px: float) -> NDArray[np.bool_]:
    """Binary opening with a disc: parts and bumps thinner than it go.

    Parameters
    ----------
    mask : ndarray of bool
        2-D mask.
    radius_px : float
        Radius of the disc in pixels; below one pixel the mask is returned.

    Returns
    -------
    ndarray of bool
        The opened mask.

    """
    if radius_px < 1.0 or not mask.any():
        return mask
    # erosion and dilation by a disc through distance transforms (padded so
    # the image edge counts as outside)
    padded = np.pad(mask, 1)
    eroded = ndi.distance_transform_edt(padded) > radius_px
    if not eroded.any():
        return np.zeros_like(mask)
    opened = ndi.distance_transform_edt(~eroded) <= radius_px
    out: NDArray[np.bool_] = opened[1:-1, 1:-1] & mask
    return out


def _blur(coverage: NDArray[np.float32], blur_px: float) -> FloatArray:
    """Gaussian blur of a coverage map, padded so nothing wraps or is cut.

    The padding is symmetric: the mark's centroid stays at the centre.
    """
    margin = math.ceil(4 * blur_px) + 2
    padded = np.pad(coverage.astype(np.float64), margin)
    if blur_px <= _FFT_BLUR_PX:
        blurred: FloatArray = ndi.gaussian_filter(padded, blur_px, mode="constant")
        return blurred
    fast = tuple(scipy.fft.next_fast_len(n, real=True) for n in padded.shape)
    spectrum = ndi.fourier_gaussian(scipy.fft.rfft2(padded, s=fast), blur_px, n=fast[1])
    blurred = scipy.fft.irfft2(spectrum, s=fast)[: padded.shape[0], : padded.shape[1]]
    return blurred


def blurred_mark(
    shape: str,
    size_um: float,
    orientation_deg: float = 0.0,
    *,
    pixel_size_um: float,
    blur_px: float,
) -> FloatArray:
    """A holder mark as imaged with unit brightness and Gaussian blur.

    Parameters
    ----------
    shape : str
        Shape name (see :data:`correlate.fiducials.marks.SHAPES`).
    size_um : float
        Outer extent of the mark.
    orientation_deg : float
        Rotation from the reference pose (see
        :func:`correlate.fiducials.marks.mark_mask`).
    pixel_size_um : float
        Pixel size of the image.
    blur_px : float
        Standard deviation of the blur in pixels.

    Returns
    -------
    ndarray of float64
        Square image with the mark's area centroid at its centre.

    """
    if orientation_deg in REFERENCE_ORIENTATIONS_DEG:
        coverage = _coverage(
            shape, float(size_um), float(pixel_size_um), orientation_deg
        )
    else:
        coverage = _rasterise(
            shape, float(size_um), float(pixel_size_um), orientation_deg
        )
    return _blur(coverage, float(blur_px))


def shape_distance2(
    observed: ShapeDescriptors,
    edge_slope_per_um: float,
    spec: MarkSpec,
    *,
    pixel_size_um: float,
    min_blur_px: float,
    max_blur_px: float,
    opening_px: float = 0.0,
) -> float:
    """Squared descriptor distance of a segmented object to one holder mark.

    The mark is compared as it would look with the blur whose edge slope
    matches the object's: references are computed at blur levels
    ``min_blur_px * 2 ** (j / BLUR_STEPS_PER_OCTAVE)`` and interpolated
    between the two levels that bracket the observed slope.

    Parameters
    ----------
    observed : ShapeDescriptors
        Descriptors of the object segmented at half the mark's brightness.
    edge_slope_per_um : float
        Mean gradient magnitude on that segmentation's edge, divided by the
        mark's brightness.
    spec : MarkSpec
        The holder mark it is compared with.
    pixel_size_um : float
        Pixel size of the image.
    min_blur_px, max_blur_px : float
        Range of blur (Gaussian standard deviation in pixels) considered;
        the smallest is the smoothing the image was segmented with.
    opening_px : float
        Radius of the disc the object's segmentation was opened with (the
        references are opened likewise); 0 for none.

    Returns
    -------
    float
        The smallest :func:`~correlate.fiducials.descriptors.descriptor_distance2`
        over the reference orientations (infinite if the blurred mark
        vanishes).

    """
    top = max(
        0, math.ceil(BLUR_STEPS_PER_OCTAVE * math.log2(max_blur_px / min_blur_px))
    )

    def level(j: int) -> tuple[MarkReference, ...]:
        blur = min_blur_px * 2.0 ** (j / BLUR_STEPS_PER_OCTAVE)
        return reference_marks(
            spec.shape,
            spec.size_um,
            pixel_size_um=pixel_size_um,
            blur_px=blur,
            opening_px=opening_px,
        )

    def slope(j: int) -> float:
        return float(np.mean([r.edge_slope_per_um for r in level(j)]))

    # a straight edge's slope gives a first guess; thin parts are less steep,
    # so the matching level is at or below it
    guess_px = 1.0 / (
        math.sqrt(2 * math.pi) * max(edge_slope_per_um, 1e-12) * pixel_size_um
    )
    octaves = math.log2(max(guess_px, min_blur_px) / min_blur_px)
    j = min(math.floor(BLUR_STEPS_PER_OCTAVE * octaves), top)
    while j > 0 and slope(j) < edge_slope_per_um:
        j -= 1
    while j < top and slope(j + 1) > edge_slope_per_um:
        j += 1
    candidates = [r.descriptors for r in level(j)]
    if j < top and slope(j) > edge_slope_per_um:
        t = min((slope(j) - edge_slope_per_um) / (slope(j) - slope(j + 1)), 1.0)
        candidates = [
            interpolate_descriptors(a.descriptors, b.descriptors, t)
            if a.descriptors is not None and b.descriptors is not None
            else a.descriptors
            for a, b in zip(level(j), level(j + 1), strict=True)
        ]
    return min(
        (descriptor_distance2(observed, c) for c in candidates if c is not None),
        default=math.inf,
    )


def score_matches(distances2: ArrayLike) -> tuple[int, float]:
    """Best match among a holder's marks and its confidence.

    Each mark's likelihood is ``exp(-d2 / 2)``; "none of these" has the
    likelihood of a match at :data:`REJECT_DISTANCE2`.

    Parameters
    ----------
    distances2 : array_like
        Squared descriptor distance of one object to each of the holder's
        marks (not empty; infinite for impossible matches).

    Returns
    -------
    index : int
        Index of the best match.
    score : float
        Its likelihood over the sum of all likelihoods, in [0, 1]: low when
        the runner-up matches about as well, or when nothing matches.

    Raises
    ------
    ValueError
        If no distance is given.

    """
    d = np.asarray(distances2, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("need at least one distance")
    best = int(np.argmin(d))
    # likelihoods relative to the best one: no underflow for poor matches
    d_ref = min(float(d[best]), REJECT_DISTANCE2)
    weights = np.exp(-0.5 * (d - d_ref))
    reject = math.exp(-0.5 * (REJECT_DISTANCE2 - d_ref))
    return best, float(weights[best] / (weights.sum() + reject))


__all__ = [
    "BLUR_STEPS_PER_OCTAVE",
    "REFERENCE_ORIENTATIONS_DEG",
    "REJECT_DISTANCE2",
    "MarkReference",
    "blurred_mark",
    "open_mask",
    "reference_marks",
    "score_matches",
    "shape_distance2",
]
