"""Orientation of an identified mark, from its polar profile.

Around its area centroid, a mark turned by ``a`` degrees is the reference mark
with its polar profile shifted by ``a`` along the angle. Correlating the
image's polar profile with the reference's (one FFT along the angle per
radius) finds ``a``, for any shape that is not round, to a fraction of a
degree. Marks with rotational symmetry give their angle modulo the symmetry.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage as ndi

from correlate.fiducials.marks import SHAPES, MarkSpec
from correlate.fiducials.matching import blurred_mark

FloatArray = NDArray[np.float64]

#: Angular sampling of the polar profiles.
ANGLE_STEP_DEG = 0.5


def mark_orientation_deg(
    image: ArrayLike,
    centre_px: tuple[float, float],
    spec: MarkSpec,
    *,
    pixel_size_um: float,
    blur_px: float,
) -> float | None:
    """Rotation of a mark in an image from its reference pose.

    Parameters
    ----------
    image : array_like
        2-D background-subtracted image of the mark.
    centre_px : tuple of float
        (row, col) of the mark's area centroid in ``image``.
    spec : MarkSpec
        The holder mark it shows.
    pixel_size_um : float
        Pixel size in micrometres.
    blur_px : float
        Gaussian blur of the image (optics and smoothing), in pixels.

    Returns
    -------
    float or None
        Degrees from the image's column axis towards its row axis (the
        convention of :func:`correlate.fiducials.marks.mark_mask`), in
        ``[0, 360 / symmetry)``; None for round marks (disc, ring).

    """
    symmetry = SHAPES[spec.shape].symmetry
    if symmetry == 0:
        return None
    field = np.asarray(image, dtype=np.float64)
    reference = blurred_mark(
        spec.shape, spec.size_um, pixel_size_um=pixel_size_um, blur_px=blur_px
    )
    radii = np.arange(0.5, spec.radius_um / pixel_size_um + 2.0 * blur_px, 1.0)
    angles = np.deg2rad(np.arange(0.0, 360.0, ANGLE_STEP_DEG))
    ref_centre = ((reference.shape[0] - 1) / 2, (reference.shape[1] - 1) / 2)
    observed = _polar(field, centre_px, radii, angles)
    expected = _polar(reference, ref_centre, radii, angles)
    # each ring's mean carries no angle; the ring's circumference its weight
    observed -= observed.mean(axis=1, keepdims=True)
    expected -= expected.mean(axis=1, keepdims=True)
    cross = np.fft.rfft(observed * radii[:, None], axis=1) * np.conj(
        np.fft.rfft(expected, axis=1)
    )
    correlation = np.fft.irfft(cross.sum(axis=0), n=angles.size)
    peak = int(np.argmax(correlation))
    before, at, after = (correlation[(peak + k) % angles.size] for k in (-1, 0, 1))
    curvature = before - 2.0 * at + after
    offset = 0.5 * (before - after) / curvature if curvature < 0 else 0.0
    angle = (peak + offset) * ANGLE_STEP_DEG
    return float(angle % (360.0 / symmetry))


def _polar(
    field: FloatArray,
    centre_px: tuple[float, float],
    radii: FloatArray,
    angles: FloatArray,
) -> FloatArray:
    """Sample ``field`` on circles around ``centre_px``: (radius, angle)."""
    rows = centre_px[0] + radii[:, None] * np.sin(angles)[None, :]
    cols = centre_px[1] + radii[:, None] * np.cos(angles)[None, :]
    samples: FloatArray = ndi.map_coordinates(
        field, [rows, cols], order=1, mode="constant", cval=0.0
    )
    return samples


__all__ = ["ANGLE_STEP_DEG", "mark_orientation_deg"]
