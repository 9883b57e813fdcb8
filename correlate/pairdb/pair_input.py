"""Check what `PairDatabase.add_pair` is given and turn it into a catalog row."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from correlate.json_values import plain_json
from correlate.pairdb.catalog import stack_columns
from correlate.pairdb.errors import PairDatabaseError
from correlate.pairdb.records import StackMeta, check_voxel_size
from correlate.pairdb.store import pair_sha256

__all__ = ["PAIR_SUFFIX", "PreparedPair", "prepare_pair"]

#: Name ending of every pair folder.
PAIR_SUFFIX = ".ome.zarr"

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PreparedPair:
    """A checked pair, ready to be written and inserted.

    Parameters
    ----------
    pair_id : str
        16 hex digits of SHA-256 over the pixel hash, cell id and voxel size.
    cell_id : str
        The cell.
    widefield, confocal : numpy.ndarray
        Float32, C-ordered (z, y, x) stacks of one shape, all finite.
    voxel_size_um : tuple of 3 floats
        (dz, dy, dx) of the grid.
    data_sha256 : str
        `pair_sha256` of the two stacks.
    relative_path : str
        The pair folder, relative to the database folder.
    metrics : dict[str, float]
        Metric values (NaN for unknown).
    row : dict[str, Any]
        The ``pairs`` row of the catalog.
    attributes : dict[str, Any]
        The ``"pairscope"`` attributes of the pair folder.

    """

    pair_id: str
    cell_id: str
    widefield: FloatArray
    confocal: FloatArray
    voxel_size_um: tuple[float, float, float]
    data_sha256: str
    relative_path: str
    metrics: dict[str, float]
    row: dict[str, Any]
    attributes: dict[str, Any]

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """Shape of each stack."""
        z, y, x = self.widefield.shape
        return int(z), int(y), int(x)


def prepare_pair(
    *,
    widefield: npt.ArrayLike,
    confocal: npt.ArrayLike,
    voxel_size_um: tuple[float, float, float],
    cell_id: str,
    transform: Mapping[str, Any],
    metrics: Mapping[str, float],
    accepted: bool,
    reason: str,
    widefield_meta: StackMeta,
    confocal_meta: StackMeta,
    folder: str,
) -> PreparedPair:
    """Check the arguments of `PairDatabase.add_pair` and build row and attributes.

    Parameters
    ----------
    widefield, confocal : array_like
        The two (z, y, x) stacks (see `PairDatabase.add_pair` for every
        argument but ``folder``).
    voxel_size_um : tuple of 3 floats
        (dz, dy, dx) of the grid, micrometers.
    cell_id : str
        The cell.
    transform : Mapping[str, Any]
        The registration, JSON values.
    metrics : Mapping[str, float]
        Quality metrics.
    accepted : bool
        Whether the pair is fit for training.
    reason : str
        Why.
    widefield_meta, confocal_meta : StackMeta
        Provenance of the two stacks.
    folder : str
        Folder of the pair folders, relative to the database folder.

    Returns
    -------
    PreparedPair
        The checked pair.

    Raises
    ------
    PairDatabaseError
        An argument is invalid.

    """
    wf, cf = _check_stacks(widefield, confocal)
    voxel = check_voxel_size(voxel_size_um, "voxel_size_um")
    if not isinstance(cell_id, str) or not cell_id.strip():
        raise PairDatabaseError(
            f"cell_id {cell_id!r} is not a non-empty text",
            "Name the cell, e.g. 'coverslip3-cell017'.",
        )
    if not isinstance(accepted, (bool, np.bool_)):
        raise PairDatabaseError(
            f"accepted is {accepted!r}, not True or False",
            "Pass accepted=True or accepted=False.",
        )
    if not isinstance(reason, str):
        raise PairDatabaseError(f"reason {reason!r} is not text", "Pass text.")
    for label, meta in (
        ("widefield_meta", widefield_meta),
        ("confocal_meta", confocal_meta),
    ):
        if not isinstance(meta, StackMeta):
            raise PairDatabaseError(
                f"{label} is a {type(meta).__name__}, not a StackMeta",
                "Describe each stack with correlate.pairdb.StackMeta.",
            )
    if not isinstance(transform, Mapping):
        raise PairDatabaseError(
            f"transform is a {type(transform).__name__}, not a mapping",
            "Pass the registration as a mapping of JSON values, e.g. "
            "{'matrix': [[...]], 'kind': 'rigid'}.",
        )
    transform_json = json.dumps(
        plain_json(
            dict(transform),
            where="transform",
            non_finite="refuse",
            error=PairDatabaseError,
        ),
        sort_keys=True,
        allow_nan=False,
    )
    metric_values = _check_metrics(metrics)
    data_sha256 = pair_sha256(wf, cf)
    pair_id = hashlib.sha256(
        json.dumps([data_sha256, cell_id, list(voxel)]).encode()
    ).hexdigest()[:16]
    added_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    relative = f"{folder}/{pair_id}{PAIR_SUFFIX}"
    attributes = {
        "pair_id": pair_id,
        "cell_id": cell_id,
        "accepted": bool(accepted),
        "reason": reason,
        "voxel_size_um": list(voxel),
        "transform": json.loads(transform_json),
        "metrics": {
            k: v if math.isfinite(v) else None for k, v in metric_values.items()
        },
        "widefield": widefield_meta.to_json(),
        "confocal": confocal_meta.to_json(),
        "data_sha256": data_sha256,
        "added_at": added_at,
    }
    row: dict[str, Any] = {
        "pair_id": pair_id,
        "cell_id": cell_id,
        "accepted": int(bool(accepted)),
        "reason": reason,
        "zarr_path": relative,
        "shape_z": wf.shape[0],
        "shape_y": wf.shape[1],
        "shape_x": wf.shape[2],
        "voxel_dz_um": voxel[0],
        "voxel_dy_um": voxel[1],
        "voxel_dx_um": voxel[2],
        "transform_json": transform_json,
        "data_sha256": data_sha256,
        "added_at": added_at,
        **stack_columns("wf", widefield_meta),
        **stack_columns("cf", confocal_meta),
    }
    return PreparedPair(
        pair_id=pair_id,
        cell_id=cell_id,
        widefield=wf,
        confocal=cf,
        voxel_size_um=voxel,
        data_sha256=data_sha256,
        relative_path=relative,
        metrics=metric_values,
        row=row,
        attributes=attributes,
    )


def _check_stacks(
    widefield: npt.ArrayLike, confocal: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    stacks = []
    for label, value in (("widefield", widefield), ("confocal", confocal)):
        array = np.asarray(value)
        if array.ndim != 3:
            raise PairDatabaseError(
                f"the {label} stack has shape {array.shape}, not (z, y, x)",
                "Pass one channel of one stack as a 3D array.",
            )
        if array.dtype.kind not in "uif" or 0 in array.shape:
            raise PairDatabaseError(
                f"the {label} stack is an empty or non-real {array.dtype} array of "
                f"shape {array.shape}",
                "Pass real pixel values (integers or floats).",
            )
        stack = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(stack).all():
            raise PairDatabaseError(
                f"the {label} stack holds {int((~np.isfinite(stack)).sum())} NaN or "
                "infinite voxels",
                "Fill voxels outside the registered overlap with a number (e.g. 0) "
                "and record the overlap in the metrics.",
            )
        stacks.append(stack)
    wf, cf = stacks
    if wf.shape != cf.shape:
        raise PairDatabaseError(
            f"the widefield stack has shape {wf.shape} and the confocal stack "
            f"{cf.shape}; a pair holds both on the same grid",
            "Resample the wide-field stack onto the confocal grid (registration) "
            "before adding the pair.",
        )
    return wf, cf


def _check_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    if not isinstance(metrics, Mapping):
        raise PairDatabaseError(
            f"metrics is a {type(metrics).__name__}, not a mapping",
            "Pass e.g. {'ncc': 0.83, 'overlap': 0.97}.",
        )
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise PairDatabaseError(
                f"metric name {name!r} is not a non-empty text", "Name each metric."
            )
        try:
            out[name] = float(value)
        except (TypeError, ValueError) as exc:
            raise PairDatabaseError(
                f"metric {name!r} is {value!r}, not a number",
                "Pass numbers (NaN for unknown).",
            ) from exc
    return out
