"""Random training patches and their XY augmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["augment_xy", "sample_patches"]

Stack = NDArray[np.float32]


def sample_patches(
    inputs: Sequence[Stack],
    targets: Sequence[Stack],
    *,
    patch_shape: tuple[int, int, int],
    n_patches: int,
    rng: np.random.Generator,
    augment: bool = True,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Draw aligned input/target patches at random positions.

    A stack is chosen with probability proportional to the number of patch
    positions it offers; the position is uniform within it.

    Parameters
    ----------
    inputs, targets : sequence of ndarray
        ``(z, y, x)`` stacks, pairwise of equal (z, y, x) shape; inputs may
        carry a leading channel axis, ``(c, z, y, x)``.
    patch_shape : tuple of int
        ``(z, y, x)`` size of a patch.
    n_patches : int
        Number of patches.
    rng : numpy.random.Generator
        Source of randomness (seeded by the caller).
    augment : bool
        Apply a random XY flip/rotation (:func:`augment_xy`) to each patch.

    Returns
    -------
    x, y : ndarray
        ``(n_patches, [c,] z, y, x)`` and ``(n_patches, z, y, x)`` float32.

    Raises
    ------
    EnhanceError
        If no stack is at least as large as a patch.

    """
    positions = np.array(
        [
            int(
                np.prod(
                    [
                        max(s - p + 1, 0)
                        for s, p in zip(st.shape[-3:], patch_shape, strict=True)
                    ]
                )
            )
            for st in inputs
        ],
        dtype=float,
    )
    if positions.sum() == 0:
        raise EnhanceError(
            f"no stack is large enough for a {patch_shape} (z, y, x) patch "
            f"(shapes: {[tuple(s.shape[-3:]) for s in inputs]})",
            "use a smaller patch_shape or larger stacks",
        )
    chosen = rng.choice(len(inputs), size=n_patches, p=positions / positions.sum())
    channels = tuple(inputs[0].shape[:-3])
    xs = np.empty((n_patches, *channels, *patch_shape), dtype=np.float32)
    ys = np.empty((n_patches, *patch_shape), dtype=np.float32)
    for i, index in enumerate(chosen):
        source, target = inputs[index], targets[index]
        start = [
            int(rng.integers(0, s - p + 1))
            for s, p in zip(source.shape[-3:], patch_shape, strict=True)
        ]
        region = tuple(slice(a, a + p) for a, p in zip(start, patch_shape, strict=True))
        x, y = source[(..., *region)], target[region]
        if augment:
            x, y = augment_xy(x, y, rng)
        xs[i], ys[i] = x, y
    return xs, ys


def augment_xy(x: Stack, y: Stack, rng: np.random.Generator) -> tuple[Stack, Stack]:
    """Apply one random flip/rotation in the (y, x) plane to both patches.

    The last two axes are (y, x); a leading channel axis is carried along.

    Rotations by 90 degrees need square (y, x) patches; otherwise only 0 and
    180 degrees are drawn. z is never flipped: the PSF of an inverted
    microscope need not be symmetric in z.
    """
    square = x.shape[-2] == x.shape[-1]
    quarter_turns = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    flip = bool(rng.integers(2))
    out = []
    for patch in (x, y):
        p = np.rot90(patch, quarter_turns, axes=(-2, -1))
        if flip:
            p = p[..., ::-1]
        out.append(np.ascontiguousarray(p))
    return out[0], out[1]
