"""One pair as an OME-Zarr (NGFF 0.5, Zarr v3) folder: write it, read it back.

Layout (the conventions of ``acquire.storage``): a group whose ``"ome"``
attributes describe one multiscale with a single level, array ``"0"`` of
shape (2, z, y, x), float32, axes (c, z, y, x) with c = (widefield, confocal),
spatial units micrometer and scale ``[1, dz, dy, dx]``; OMERO metadata names
and colours the channels (wide-field magenta, confocal green). The
``"pairscope"`` attribute holds the transform, metrics, decision and
provenance of both stacks.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import zarr

from correlate.pairdb.errors import PairDatabaseError
from correlate.pairdb.records import CHANNELS

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ARRAY_PATH",
    "AXES",
    "NGFF_VERSION",
    "PAIRSCOPE_KEY",
    "PAIR_FORMAT",
    "fsync_dir",
    "pair_sha256",
    "read_pair_arrays",
    "remove_tree",
    "rename",
    "write_pair_zarr",
]

NGFF_VERSION = "0.5"
ARRAY_PATH = "0"
AXES = ("c", "z", "y", "x")
PAIRSCOPE_KEY = "pairscope"
#: Value of ``attributes["pairscope"]["format"]`` in every pair folder.
PAIR_FORMAT = "pairscope-pair"
PAIR_FORMAT_VERSION = 1
_COLORS = ("FF00FF", "00FF00")
# Chunks suit random 3D training crops: a few MB each, whole-plane reads stay cheap.
_CHUNK_ZYX = (16, 256, 256)
_RENAME_RETRY_S = 1.0

FloatArray = npt.NDArray[np.float32]


def pair_sha256(widefield: FloatArray, confocal: FloatArray) -> str:
    """SHA-256 of a pair's pixels: shape, then both stacks as float32 LE bytes.

    Parameters
    ----------
    widefield, confocal : numpy.ndarray
        The two (z, y, x) float32 stacks.

    Returns
    -------
    str
        Hex digest.

    """
    digest = hashlib.sha256(repr(tuple(widefield.shape)).encode())
    for stack in (widefield, confocal):
        digest.update(np.ascontiguousarray(stack, dtype="<f4").data)
    return digest.hexdigest()


def _ngff(
    name: str,
    voxel_size_um: tuple[float, float, float],
    ranges: list[tuple[float, float]],
    n_planes: int,
) -> dict[str, Any]:
    dz_um, dy_um, dx_um = voxel_size_um
    axes: list[dict[str, str]] = [{"name": "c", "type": "channel"}]
    axes += [{"name": n, "type": "space", "unit": "micrometer"} for n in AXES[1:]]
    channels = [
        {
            "label": label,
            "color": color,
            "active": True,
            "coefficient": 1.0,
            "family": "linear",
            "inverted": False,
            "window": {"min": low, "max": high, "start": low, "end": high},
        }
        for label, color, (low, high) in zip(CHANNELS, _COLORS, ranges, strict=True)
    ]
    return {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": axes,
                "datasets": [
                    {
                        "path": ARRAY_PATH,
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1.0, dz_um, dy_um, dx_um]}
                        ],
                    }
                ],
            }
        ],
        "omero": {
            "name": name,
            "channels": channels,
            "rdefs": {"defaultT": 0, "defaultZ": n_planes // 2, "model": "color"},
        },
    }


def _fsync_tree(root: Path) -> None:
    for folder, _, names in os.walk(root):
        for name in names:
            with (Path(folder) / name).open("rb+") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(folder))


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (creations, renames) durable; no-op on Windows."""
    if os.name == "nt":  # NTFS journals folder entries itself
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_pair_zarr(
    path: Path,
    *,
    name: str,
    widefield: FloatArray,
    confocal: FloatArray,
    voxel_size_um: tuple[float, float, float],
    attributes: Mapping[str, Any],
) -> None:
    """Write a pair folder at ``path`` (which must not exist) and fsync it.

    Parameters
    ----------
    path : Path
        The new folder.
    name : str
        Multiscale and OMERO name (the pair id).
    widefield, confocal : numpy.ndarray
        The two (z, y, x) float32 stacks, same shape, all values finite.
    voxel_size_um : tuple of 3 floats
        (dz, dy, dx) of the grid, micrometers.
    attributes : Mapping[str, Any]
        JSON values stored under the ``"pairscope"`` attribute.

    Raises
    ------
    OSError
        The disk write fails (the caller removes the folder).

    """
    shape = (2, *widefield.shape)
    chunks = (1, *(min(c, s) for c, s in zip(_CHUNK_ZYX, widefield.shape, strict=True)))
    group = zarr.create_group(store=str(path), zarr_format=3)
    array = group.create_array(
        ARRAY_PATH,
        shape=shape,
        chunks=chunks,
        dtype="float32",
        fill_value=0.0,
        dimension_names=AXES,
    )
    array[0] = widefield
    array[1] = confocal
    ranges = [(float(s.min()), float(s.max())) for s in (widefield, confocal)]
    group.update_attributes(
        {
            "ome": _ngff(name, voxel_size_um, ranges, widefield.shape[0]),
            PAIRSCOPE_KEY: {
                "format": PAIR_FORMAT,
                "format_version": PAIR_FORMAT_VERSION,
                "channels": list(CHANNELS),
                **attributes,
            },
        }
    )
    _fsync_tree(path)


def read_pair_arrays(
    path: Path, *, pair_id: str, shape_zyx: tuple[int, int, int]
) -> tuple[FloatArray, FloatArray]:
    """Read both stacks of a pair folder.

    Parameters
    ----------
    path : Path
        The pair's OME-Zarr folder.
    pair_id : str
        The pair, for error messages.
    shape_zyx : tuple of 3 ints
        The shape the catalog records.

    Returns
    -------
    tuple of numpy.ndarray
        (widefield, confocal), float32 (z, y, x).

    Raises
    ------
    PairDatabaseError
        The folder is missing, is not a pair, has another shape, or a chunk
        cannot be read or decoded.

    """
    hint = (
        "Restore the folder from a copy of the database, or drop the pair "
        "with PairDatabase.remove_pair."
    )
    if not path.is_dir():
        raise PairDatabaseError(f"the folder {path} of pair {pair_id} is missing", hint)
    try:
        group = zarr.open_group(store=str(path), mode="r", zarr_format=3)
        attrs = group.attrs.asdict()
        array = group[ARRAY_PATH]
        if not isinstance(array, zarr.Array):
            raise TypeError(f"{ARRAY_PATH!r} is a group, not an array")
        data = np.asarray(array[...])
    except Exception as exc:  # zarr raises many types for damaged stores
        raise PairDatabaseError(
            f"cannot read pair {pair_id} from {path}: {type(exc).__name__}: {exc} "
            "(a damaged or truncated Zarr chunk or metadata file)",
            hint,
        ) from exc
    own = attrs.get(PAIRSCOPE_KEY, {})
    if not isinstance(own, dict) or own.get("format") != PAIR_FORMAT:
        raise PairDatabaseError(f"{path} is not a pairscope pair folder", hint)
    expected = (2, *shape_zyx)
    if data.shape != expected or data.dtype != np.float32:
        raise PairDatabaseError(
            f"pair {pair_id} in {path} holds a {data.dtype} array of shape "
            f"{data.shape}; the catalog records float32 {expected}",
            hint,
        )
    return data[0], data[1]


def rename(source: Path, target: Path) -> None:
    """Rename a folder to a free name, atomically.

    On Windows a rename can fail for a moment with "access denied" while a
    virus scanner or indexer holds a file; it is retried for up to a second.
    """
    deadline = time.monotonic() + _RENAME_RETRY_S
    while True:
        try:
            source.replace(target)
            return
        except PermissionError:
            if os.name != "nt" or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def remove_tree(path: Path) -> None:
    """Remove a folder and everything in it; a missing folder is fine."""
    shutil.rmtree(path, ignore_errors=True)
