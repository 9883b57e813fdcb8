"""The unit of training and evaluation data: one registered WF/confocal pair."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from enhance.errors import EnhanceError

__all__ = ["TrainingPair", "common_voxel_size_um"]

VOXEL_SIZE_RTOL = 0.02
"""Relative difference below which two voxel sizes count as the same."""


@dataclass(frozen=True, eq=False)
class TrainingPair:
    """A wide-field stack and its confocal partner on the same voxel grid.

    Attributes
    ----------
    pair_id : str
        Identifier of the pair in the paired-image database.
    cell_id : str
        Identifier of the imaged cell (splits are made by cell).
    widefield : ndarray
        ``(z, y, x)`` float32 wide-field stack, already resampled onto the
        confocal grid.
    confocal : ndarray
        ``(z, y, x)`` float32 confocal stack of the same shape.
    voxel_size_um : tuple of float
        ``(dz, dy, dx)`` of both stacks in micrometres.

    """

    pair_id: str
    cell_id: str
    widefield: NDArray[np.float32]
    confocal: NDArray[np.float32]
    voxel_size_um: tuple[float, float, float]

    def __post_init__(self) -> None:
        where = f"pair {self.pair_id!r}"
        if self.widefield.ndim != 3 or self.confocal.ndim != 3:
            raise EnhanceError(
                f"{where}: stacks must be 3-D (z, y, x), got "
                f"{self.widefield.shape} and {self.confocal.shape}",
                "pass single-channel z-stacks",
            )
        if self.widefield.shape != self.confocal.shape:
            raise EnhanceError(
                f"{where}: wide-field {self.widefield.shape} and confocal "
                f"{self.confocal.shape} differ in shape",
                "resample the wide-field stack onto the confocal grid first",
            )
        if len(self.voxel_size_um) != 3 or min(self.voxel_size_um) <= 0:
            raise EnhanceError(
                f"{where}: voxel size {self.voxel_size_um} is not three positive "
                "lengths (dz, dy, dx) in um",
            )
        for name, stack in (
            ("wide-field", self.widefield),
            ("confocal", self.confocal),
        ):
            if not np.all(np.isfinite(stack)):
                raise EnhanceError(f"{where}: the {name} stack holds NaN or inf")

    @property
    def n_voxels(self) -> int:
        """Number of voxels in either stack."""
        return int(self.widefield.size)


def common_voxel_size_um(
    pairs: Sequence[TrainingPair], *, what: str
) -> tuple[float, float, float]:
    """The voxel size shared by all pairs.

    Parameters
    ----------
    pairs : sequence of TrainingPair
        At least one pair.
    what : str
        Name of the set, for the error message (e.g. ``"training split"``).

    Returns
    -------
    tuple of float
        ``(dz, dy, dx)`` in um of the first pair.

    Raises
    ------
    EnhanceError
        If ``pairs`` is empty or two pairs differ by more than 2 % on an axis.

    """
    if not pairs:
        raise EnhanceError(f"the {what} holds no pairs", "add pairs to the split")
    first = np.asarray(pairs[0].voxel_size_um, dtype=float)
    for pair in pairs[1:]:
        size = np.asarray(pair.voxel_size_um, dtype=float)
        if np.any(np.abs(size - first) > VOXEL_SIZE_RTOL * first):
            raise EnhanceError(
                f"the {what} mixes voxel sizes: {pairs[0].pair_id!r} has "
                f"{tuple(first.tolist())} um, {pair.pair_id!r} has "
                f"{tuple(size.tolist())} um",
                "resample all pairs onto one confocal grid",
            )
    return (float(first[0]), float(first[1]), float(first[2]))
