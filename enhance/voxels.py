"""A stack against a model's voxel grid: the check, and the resampling onto it.

A model learns at one voxel size. A stack of another size is refused, or,
when asked, resampled linearly onto the model's grid and the result back onto
the stack's. The command line, the live enhancement and `enhance.predict` all
use these two functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from enhance.errors import EnhanceError, VoxelSizeError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["VOXEL_SIZE_RTOL", "check_model_grid", "resample_stack"]

VOXEL_SIZE_RTOL = 0.05
"""Default relative voxel-size mismatch (per axis) accepted without resampling."""


def check_model_grid(
    voxel_size_um: tuple[float, float, float],
    model_voxel_um: tuple[float, float, float],
    *,
    resample: bool,
    rtol: float = VOXEL_SIZE_RTOL,
    what: str = "the stack",
    hint: str = "pass resample=True to resample the stack to the model's grid and "
    "back, or acquire at the model's voxel size",
) -> bool:
    """Whether a stack must be resampled onto the model's grid.

    Parameters
    ----------
    voxel_size_um : tuple of 3 floats
        The stack's (dz, dy, dx), um.
    model_voxel_um : tuple of 3 floats
        The model's (dz, dy, dx), um.
    resample : bool
        Whether resampling is allowed.
    rtol : float, optional
        Relative mismatch per axis accepted as the same grid.
    what : str, optional
        The stack's name in the message.
    hint : str, optional
        How to fix a refused stack (the command line names its option).

    Returns
    -------
    bool
        True when the stack is off the grid and ``resample`` is set.

    Raises
    ------
    EnhanceError
        The voxel size is not three positive finite lengths.
    VoxelSizeError
        Off the grid, and ``resample`` is not set.

    """
    given = np.asarray(voxel_size_um, dtype=float)
    wanted = np.asarray(model_voxel_um, dtype=float)
    if given.shape != (3,) or not np.all(np.isfinite(given)) or np.any(given <= 0):
        raise EnhanceError(
            f"voxel size {voxel_size_um} of {what} is not three positive lengths "
            "(dz, dy, dx) in um"
        )
    if np.all(np.abs(given - wanted) <= rtol * wanted):
        return False
    if not resample:
        raise VoxelSizeError(
            f"{what} has voxel size (dz, dy, dx) = "
            f"{tuple(round(v, 4) for v in given.tolist())} um, the model was "
            f"trained for {tuple(round(v, 4) for v in wanted.tolist())} um "
            f"(tolerance {rtol:.0%} per axis)",
            hint,
        )
    return True


def resample_stack(
    stack: NDArray[Any],
    voxel_size_um: tuple[float, float, float],
    target_um: tuple[float, float, float],
    *,
    shape: tuple[int, int, int] | None = None,
) -> NDArray[np.float32]:
    """Linear resampling of a (z, y, x) stack onto another voxel size.

    Parameters
    ----------
    stack : ndarray
        (z, y, x).
    voxel_size_um, target_um : tuple of 3 floats
        Its voxel size and the one wanted, um.
    shape : tuple of 3 ints, optional
        Exact output shape (e.g. the stack's own, to resample back).

    Returns
    -------
    ndarray of float32

    """
    data = np.asarray(stack, dtype=np.float32)
    if shape is not None:
        factors = np.asarray(shape, float) / np.asarray(data.shape, float)
    else:
        factors = np.asarray(voxel_size_um, float) / np.asarray(target_um, float)
    if np.allclose(factors, 1.0, rtol=1e-3) and (shape is None or data.shape == shape):
        return data
    zoomed = ndimage.zoom(data, factors, order=1, mode="nearest")
    return np.asarray(zoomed, dtype=np.float32)
