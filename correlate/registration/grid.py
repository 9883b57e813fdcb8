"""Stack coordinates, input checks and resampling onto the confocal grid."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike, NDArray

from correlate.registration.errors import RegistrationError
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


def _bilinear_matrix(
    source_yx: NDArray[np.float64], source_shape: tuple[int, int], rows: int
) -> tuple[scipy.sparse.csr_matrix, NDArray[np.bool_]]:
    """Sparse matrix sampling a flattened plane bilinearly at ``source_yx`` indices.

    ``source_yx`` is (2, rows * per_row): ``per_row`` sample points averaged into
    each output row. Points outside the plane get no weight; the mask says which
    output rows had every point inside.
    """
    ny, nx = source_shape
    y, x = source_yx
    inside = (y >= 0) & (y <= ny - 1) & (x >= 0) & (x <= nx - 1)
    y = np.clip(y, 0, ny - 1.000001)
    x = np.clip(x, 0, nx - 1.000001)
    y0 = np.floor(y).astype(np.int64)
    x0 = np.floor(x).astype(np.int64)
    fy = (y - y0).astype(np.float32)
    fx = (x - x0).astype(np.float32)
    base = y0 * nx + x0
    per_row = y.size // rows
    weight = inside.astype(np.float32) / np.float32(per_row)
    indices = np.stack([base, base + 1, base + nx, base + nx + 1], axis=-1)
    data = (
        np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], axis=-1)
        * weight[:, None]
    )
    nnz = 4 * per_row
    matrix = scipy.sparse.csr_matrix(
        (data.ravel(), indices.ravel(), np.arange(rows + 1) * nnz),
        shape=(rows, ny * nx),
    )
    mask = inside.reshape(rows, per_row).all(axis=1)
    return matrix, mask


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

    Linear interpolation in z and bilinear in (y, x); with ``bin_factor`` b > 1
    each output pixel is the mean over the b x b confocal pixels it covers, as
    for a confocal plane binned b x b.

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
    # sample points: every confocal pixel, grouped by output pixel
    yc = centred_axis(ny_c, dy_c)[: out_y * b].reshape(out_y, b)
    xc = centred_axis(nx_c, dx_c)[: out_x * b].reshape(out_x, b)
    yy = np.broadcast_to(yc[:, None, :, None], (out_y, out_x, b, b))
    xx = np.broadcast_to(xc[None, :, None, :], (out_y, out_x, b, b))
    m = transform.matrix_array
    _, ty, tx = transform.translation_um
    yw = m[0, 0] * yy + m[0, 1] * xx + ty
    xw = m[1, 0] * yy + m[1, 1] * xx + tx
    source = np.stack(
        [
            (yw / dy_w + (ny_w - 1) / 2).ravel(),
            (xw / dx_w + (nx_w - 1) / 2).ravel(),
        ]
    )
    matrix, lateral_mask = _bilinear_matrix(source, (ny_w, nx_w), out_y * out_x)

    planes = range(nz_c)[z_slice or slice(None)]
    kz = (centred_axis(nz_c, dz_c)[list(planes)] + transform.translation_um[0]) / dz_w
    kz = kz + (nz_w - 1) / 2
    z_inside = (kz >= -1e-6) & (kz <= nz_w - 1 + 1e-6)
    k0 = np.clip(np.floor(kz).astype(np.int64), 0, nz_w - 2)
    fz = np.clip(kz - k0, 0.0, 1.0)
    flat = widefield.reshape(nz_w, -1)
    volume = np.zeros((len(planes), out_y * out_x), np.float32)
    for i in np.flatnonzero(z_inside):
        # linear interpolation in z between whole planes, then the plane map
        plane = flat[k0[i]]
        if fz[i] > 1e-6:
            plane = plane * np.float32(1 - fz[i]) + flat[k0[i] + 1] * np.float32(fz[i])
        volume[i] = matrix @ plane
    mask = z_inside[:, None] & lateral_mask[None, :]
    return volume.reshape(len(planes), out_y, out_x), mask.reshape(
        len(planes), out_y, out_x
    )


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
