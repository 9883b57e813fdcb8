"""What the database records about a pair: `StackMeta` and `PairRecord`."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from correlate.pairdb.errors import PairDatabaseError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "CHANNELS",
    "SPLITS",
    "PairRecord",
    "StackMeta",
    "check_voxel_size",
]

#: Channel order of every stored pair (axis c).
CHANNELS = ("widefield", "confocal")
#: The split names, in their canonical order.
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class StackMeta:
    """Provenance of one of the two stacks of a pair, as it was acquired.

    Parameters
    ----------
    scope : str
        The instrument (e.g. ``"Axio Observer Z1 + ORCA"``, ``"LSM 710"``).
    objective : str or None
        The objective (e.g. ``"63x/1.43 oil"``); None if unknown.
    stage_xyz_um : tuple of 3 floats or None
        Stage position (x, y, z) in micrometers of that scope's stage where the
        stack was taken; None if unknown.
    voxel_size_um : tuple of 3 floats
        The stack's own voxel size (dz, dy, dx) in micrometers, before it was
        resampled onto the pair's grid.
    acquired_at : str or None
        Acquisition time, ISO 8601; None if unknown.
    source : str
        Where the stack came from: a file path, or a dataset and stack key.
        A file in the database's parent folder is stored relative to the
        database folder (``../widefield/p0.ome.zarr``), so the session can
        move as a whole.

    """

    scope: str
    objective: str | None
    stage_xyz_um: tuple[float, float, float] | None
    voxel_size_um: tuple[float, float, float]
    acquired_at: str | None
    source: str

    def __post_init__(self) -> None:
        where = f"StackMeta(source={self.source!r})"
        if not isinstance(self.scope, str) or not self.scope.strip():
            raise PairDatabaseError(
                f"{where} has no scope name", "Name the instrument, e.g. 'LSM 710'."
            )
        if self.objective is not None and not isinstance(self.objective, str):
            raise PairDatabaseError(
                f"{where} has objective {self.objective!r}, not text",
                "Pass the objective as text, or None if unknown.",
            )
        if self.stage_xyz_um is not None:
            stage = _three_floats(self.stage_xyz_um, f"{where}.stage_xyz_um")
            if not all(math.isfinite(v) for v in stage):
                raise PairDatabaseError(
                    f"{where}.stage_xyz_um is {stage}, not finite",
                    "Pass the stage position in micrometers, or None if unknown.",
                )
            object.__setattr__(self, "stage_xyz_um", stage)
        voxel = check_voxel_size(self.voxel_size_um, f"{where}.voxel_size_um")
        object.__setattr__(self, "voxel_size_um", voxel)
        if self.acquired_at is not None:
            try:
                dt.datetime.fromisoformat(self.acquired_at)
            except (TypeError, ValueError) as exc:
                raise PairDatabaseError(
                    f"{where}.acquired_at {self.acquired_at!r} is not an ISO 8601 time",
                    "Pass e.g. '2026-11-22T10:15:00+00:00', or None if unknown.",
                ) from exc
        if not isinstance(self.source, str) or not self.source.strip():
            raise PairDatabaseError(
                "StackMeta has no source",
                "Name the file, or the dataset and stack key, the stack came from.",
            )

    def to_json(self) -> dict[str, Any]:
        """Return the fields as plain JSON values."""
        return {
            "scope": self.scope,
            "objective": self.objective,
            "stage_xyz_um": None if self.stage_xyz_um is None else [*self.stage_xyz_um],
            "voxel_size_um": [*self.voxel_size_um],
            "acquired_at": self.acquired_at,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackMeta:
        """Build a `StackMeta` from the output of `to_json`."""
        stage = data.get("stage_xyz_um")
        return cls(
            scope=data["scope"],
            objective=data.get("objective"),
            stage_xyz_um=None if stage is None else tuple(stage),
            voxel_size_um=tuple(data["voxel_size_um"]),
            acquired_at=data.get("acquired_at"),
            source=data["source"],
        )


@dataclass(frozen=True)
class PairRecord:
    """One catalog row: a registered wide-field/confocal pair of one cell.

    Parameters
    ----------
    pair_id : str
        The pair's identifier (16 hex digits of a hash of its content).
    cell_id : str
        The cell both stacks show.
    split : str
        ``"train"``, ``"val"`` or ``"test"`` (shared by all pairs of a cell).
    accepted : bool
        Whether the pair is fit for training.
    reason : str
        Why it was accepted or rejected (may be empty).
    shape_zyx : tuple of 3 ints
        Shape of each stack on the pair's (confocal) grid.
    voxel_size_um : tuple of 3 floats
        Voxel size (dz, dy, dx) of the pair's grid, in micrometers.
    transform : Mapping[str, Any]
        The registration, as given to `PairDatabase.add_pair` (JSON values).
    metrics : Mapping[str, float]
        Quality metrics (``ncc``, ``overlap``...); NaN where unknown.
    widefield : StackMeta
        Provenance of the wide-field stack.
    confocal : StackMeta
        Provenance of the confocal stack.
    path : Path
        The pair's OME-Zarr folder.
    data_sha256 : str
        SHA-256 of the pixels (wide-field then confocal, float32 little-endian).
    added_at : str
        When the pair entered the database (UTC, ISO 8601).

    """

    pair_id: str
    cell_id: str
    split: str
    accepted: bool
    reason: str
    shape_zyx: tuple[int, int, int]
    voxel_size_um: tuple[float, float, float]
    transform: Mapping[str, Any]
    metrics: Mapping[str, float]
    widefield: StackMeta
    confocal: StackMeta
    path: Path
    data_sha256: str
    added_at: str


def _three_floats(value: Any, where: str) -> tuple[float, float, float]:
    try:
        items = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise PairDatabaseError(
            f"{where} is {value!r}, not three numbers", "Pass (z, y, x) numbers."
        ) from exc
    if len(items) != 3:
        raise PairDatabaseError(
            f"{where} has {len(items)} values, not 3", "Pass (z, y, x) numbers."
        )
    return items[0], items[1], items[2]


def check_voxel_size(value: Any, where: str) -> tuple[float, float, float]:
    """Return ``value`` as a (dz, dy, dx) tuple of positive finite floats.

    Parameters
    ----------
    value : Any
        Three numbers.
    where : str
        What the value is, for the error message.

    Returns
    -------
    tuple of 3 floats
        The voxel size in micrometers.

    Raises
    ------
    PairDatabaseError
        Not three positive finite numbers.

    """
    voxel = _three_floats(value, where)
    if not all(math.isfinite(v) and v > 0 for v in voxel):
        raise PairDatabaseError(
            f"{where} is {voxel}; voxel sizes must be positive and finite",
            "Pass (dz, dy, dx) in micrometers.",
        )
    return voxel
