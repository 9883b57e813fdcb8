"""Stack coordinates, input checks and resampling onto the confocal grid."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from correlate.registration.errors import RegistrationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

    from correlate.registration.transform import PairTransform

Voxel = tuple[float, float, float]


def check_voxel(voxel_um: Sequence[float], name: str) -> Voxel:
    """Return a valid (dz, dy, dx) or raise `RegistrationError`."""
    values = tuple(float(v) for v in voxel_um)
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise RegistrationError(
            f"{name} must be three positive voxel sizes (dz, dy, dx) in um, "
            f"got {tuple(voxel_um)!r}"
        )
    return values[0], values[1], values[2]


def check_stack(stack: ArrayLike, name: str) -> NDArray[np.float32]:
    """Return a finite float32 (z, y, x) stack or raise `RegistrationError`."""
    array = np.asarray(stack)
    if array.ndim != 3:
        raise RegistrationError(
            f"{name} must be a 3D stack (z, y, x), got {array.ndim} dimensions "
            f"(shape {array.shape}); add a z axis to a single plane"
        )
    if min(array.shape[1:]) < 32 or array.shape[0] < 4:
        raise RegistrationError(
            f"{name} of shape {array.shape} is too small: need >= 4 planes of "
            ">= 32x32 pixels"
        )
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise RegistrationError(f"{name} must be real numbers, got {array.dtype}")
    out = np.asarray(array, dtype=np.float32)
    if not np.isfinite(out).all():
        raise RegistrationError(
            f"{name} holds NaN or infinite values; replace them (e.g. with the "
            "background level) before registering"
        )
    return out


def centred_axis(n: int, step_um: float) -> NDArray[np.float64]:
    """Centred physical coordinates of ``n`` samples ``step_um`` apart."""
    axis: NDArray[np.float64] = (np.arange(n, dtype=np.float64) - (n - 1) / 2) * step_um
    return axis


def _plane_map(
    transform: PairTransform,
    confocal_shape: tuple[int, int],
    confocal_pixel_um: tuple[float, float],
    widefield_shape: tuple[int, int],
    widefield_pixel_um: tuple[float, float],
) -> NDArray[np.float64]:
    """(2, 3) affine from confocal (column, row) to wide-field (column, row).

    The matrix OpenCV's ``warpAffine`` takes with ``WARP_INVERSE_MAP``: both
    stacks' coordinates are centred on their middle pixel.
    """
    (ny_c, nx_c), (dy_c, dx_c) = confocal_shape, confocal_pixel_um
    (ny_w, nx_w), (dy_w, dx_w) = widefield_shape, widefield_pixel_um
    m = transform.matrix_array
    _, ty, tx = transform.translation_um
    # confocal pixel (i, j) -> centred um (y, x) -> wide-field um -> pixel
    to_um = np.array(
        [[0.0, dy_c, -dy_c * (ny_c - 1) / 2], [dx_c, 0.0, -dx_c * (nx_c - 1) / 2]]
    )  # rows (y, x) from (j, i, 1)
    yx_w = m @ to_um + np.array([[0.0, 0.0, ty], [0.0, 0.0, tx]])
    row = yx_w[0] / dy_w + np.array([0.0, 0.0, (ny_w - 1) / 2])
    col = yx_w[1] / dx_w + np.array([0.0, 0.0, (nx_w - 1) / 2])
    return np.stack([col, row])


def _inside(
    plane_map: NDArray[np.float64], shape: tuple[int, int], source: tuple[int, int]
) -> NDArray[np.bool_]:
    """Output pixels whose sample point lies within the source plane."""
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    cols = np.arange(shape[1], dtype=np.float64)[None, :]
    (a, b, c), (d, e, f) = plane_map
    x = a * cols + b * rows + c
    y = d * cols + e * rows + f
    eps = 1e-6
    in_x = (x >= -eps) & (x <= source[1] - 1 + eps)
    in_y = (y >= -eps) & (y <= source[0] - 1 + eps)
    return np.asarray(in_x & in_y, dtype=bool)


def _bin_mask(mask: NDArray[np.bool_], b: int) -> NDArray[np.bool_]:
    ny, nx = mask.shape[0] // b, mask.shape[1] // b
    blocks = mask[: ny * b, : nx * b].reshape(ny, b, nx, b)
    return np.asarray(blocks.all(axis=(1, 3)), dtype=bool)


def resample_widefield(
    widefield: NDArray[np.float32],
    widefield_voxel_um: Voxel,
    transform: PairTransform,
    confocal_shape: tuple[int, int, int],
    confocal_voxel_um: Voxel,
    *,
    bin_factor: int = 1,
    z_slice: slice | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The wide-field stack on the confocal grid (optionally binned laterally).

    Linear interpolation in z and bilinear in (y, x) (OpenCV ``warpAffine``:
    sample positions resolved to 1/32 wide-field pixel); with ``bin_factor``
    b > 1 each output pixel is the mean over the b x b confocal pixels it
    covers, as for a confocal plane binned b x b.

    Parameters
    ----------
    widefield : ndarray
        (z, y, x) wide-field stack.
    widefield_voxel_um : tuple of float
        Its (dz, dy, dx).
    transform : PairTransform
        Confocal-to-wide-field transform.
    confocal_shape : tuple of int
        (nz, ny, nx) of the confocal stack.
    confocal_voxel_um : tuple of float
        Its (dz, dy, dx).
    bin_factor : int
        Lateral binning of the output grid (pixels beyond a multiple of it
        are left out, as `bin_lateral` does).
    z_slice : slice, optional
        Confocal planes to produce (all by default).

    Returns
    -------
    volume : ndarray of float32
        (planes, ny // b, nx // b), zero outside the wide-field stack.
    mask : ndarray of bool
        Same shape; True where the whole output voxel lies inside it.

    """
    nz_c, ny_c, nx_c = confocal_shape
    dz_c, dy_c, dx_c = confocal_voxel_um
    nz_w, ny_w, nx_w = widefield.shape
    dz_w, dy_w, dx_w = widefield_voxel_um
    b = bin_factor
    out_y, out_x = ny_c // b, nx_c // b
    full = (out_y * b, out_x * b)  # the confocal pixels the binned grid covers
    plane_map = _plane_map(
        transform, (ny_c, nx_c), (dy_c, dx_c), (ny_w, nx_w), (dy_w, dx_w)
    )
    lateral_mask = _bin_mask(_inside(plane_map, full, (ny_w, nx_w)), b)

    planes = range(nz_c)[z_slice or slice(None)]
    z_c = centred_axis(nz_c, dz_c)[list(planes)]
    kz = (transform.axial_scale * z_c + transform.translation_um[0]) / dz_w
    kz = kz + (nz_w - 1) / 2
    z_inside = (kz >= -1e-6) & (kz <= nz_w - 1 + 1e-6)
    k0 = np.clip(np.floor(kz).astype(np.int64), 0, max(nz_w - 2, 0))
    fz = np.clip(kz - k0, 0.0, 1.0)
    source = np.ascontiguousarray(widefield, dtype=np.float32)
    inside = lateral_mask.astype(np.float32)
    volume = np.zeros((len(planes), out_y, out_x), np.float32)
    # the plane map first, then linear interpolation in z between mapped
    # planes (they commute): each wide-field plane is mapped once, and the
    # blend runs on the (smaller, when binned) output planes
    mapped: dict[int, NDArray[np.float32]] = {}

    def mapped_plane(k: int) -> NDArray[np.float32]:
        if k not in mapped:
            warped = cv2.warpAffine(
                source[k],
                plane_map,
                (full[1], full[0]),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0.0,
            )
            if b > 1:  # exact b x b block means
                warped = cv2.resize(
                    warped, (out_x, out_y), interpolation=cv2.INTER_AREA
                )
            plane = np.asarray(warped, dtype=np.float32)
            plane *= inside
            mapped[k] = plane
        return mapped[k]

    for i in np.flatnonzero(z_inside):
        k = int(k0[i])
        for old in [key for key in mapped if key < k]:
            del mapped[old]  # z only increases: keep at most two planes
        if fz[i] > 1e-6:
            cv2.addWeighted(
                mapped_plane(k), 1 - fz[i], mapped_plane(k + 1), fz[i], 0.0, volume[i]
            )
        else:
            volume[i] = mapped_plane(k)
    mask = z_inside[:, None, None] & lateral_mask[None]
    return volume, mask


def bin_lateral(stack: NDArray[np.float32], factor: int) -> NDArray[np.float32]:
    """Mean over ``factor`` x ``factor`` pixel blocks of each plane."""
    if factor == 1:
        return stack
    nz, ny, nx = stack.shape
    out = np.zeros((nz, ny // factor, nx // factor), np.float32)
    for dy in range(factor):
        for dx in range(factor):
            out += stack[:, dy::factor, dx::factor][:, : ny // factor, : nx // factor]
    out *= np.float32(1.0 / factor**2)
    return out
