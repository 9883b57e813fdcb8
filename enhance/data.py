"""The unit of training and evaluation data: one registered WF/confocal pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

__all__ = [
    "TrainingPair",
    "central_yx_window",
    "common_voxel_size_um",
    "crop_yx",
    "trim_to_overlap",
]

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


def _windowed(pair: TrainingPair, window: tuple[slice, slice, slice]) -> TrainingPair:
    """The same pair cut to ``window`` in both stacks."""
    return TrainingPair(
        pair_id=pair.pair_id,
        cell_id=pair.cell_id,
        widefield=np.ascontiguousarray(pair.widefield[window]),
        confocal=np.ascontiguousarray(pair.confocal[window]),
        voxel_size_um=pair.voxel_size_um,
    )


def trim_to_overlap(pair: TrainingPair, *, fill: float = 0.0) -> TrainingPair:
    """The pair without border planes where the wide-field stack is all ``fill``.

    Registration writes ``fill`` outside the wide-field stack's overlap; such
    border planes are no data to train on or to score (and a step from the
    camera offset to 0 makes a filter ring).

    Parameters
    ----------
    pair : TrainingPair
        A registered pair from the database.
    fill : float
        Value registration writes outside the overlap.

    Returns
    -------
    TrainingPair
        Same ids and voxel size; both stacks cut to the same box (the pair
        itself if nothing is cut or the stack is all ``fill``).

    """
    measured = np.asarray(pair.widefield) != fill
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(measured.any(axis=others))
        if hits.size == 0:
            return pair
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    if all(
        s.start == 0 and s.stop == n
        for s, n in zip(box, pair.widefield.shape, strict=True)
    ):
        return pair
    return _windowed(pair, (box[0], box[1], box[2]))


def central_yx_window(shape: tuple[int, ...], size: int) -> tuple[slice, slice, slice]:
    """Index of the central ``size`` x ``size`` pixels of a ``(z, y, x)`` stack.

    All planes; an axis shorter than ``size`` is kept whole.
    """
    _, ny, nx = shape[-3:]
    y0, x0 = max(0, (ny - size) // 2), max(0, (nx - size) // 2)
    return (slice(None), slice(y0, y0 + size), slice(x0, x0 + size))


def crop_yx(pair: TrainingPair, size: int) -> TrainingPair:
    """The central ``size`` x ``size`` pixels of both stacks (all planes)."""
    return _windowed(pair, central_yx_window(pair.widefield.shape, size))
