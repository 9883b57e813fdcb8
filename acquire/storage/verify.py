"""Check a stack folder against the checksum its writer recorded in it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from acquire.storage.ngff import ARRAY_PATH
from acquire.storage.stack_writer import PAIRSCOPE_KEY

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

__all__ = ["pixels_sha256", "verified_stack"]


def pixels_sha256(data: NDArray[Any]) -> str:
    """SHA-256 of a stack's pixels as stored: little-endian, C order (c, z, y, x).

    Parameters
    ----------
    data : ndarray
        The (c, z, y, x) pixels.

    Returns
    -------
    str
        Hex digest, as the journal records it.

    """
    stored = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    return hashlib.sha256(stored.tobytes()).hexdigest()


def verified_stack(folder: Path, name: str) -> tuple[str, int] | None:
    """The checksum and plane count of a whole stack folder, or None.

    Parameters
    ----------
    folder : Path
        A ``NAME.ome.zarr`` folder.
    name : str
        The stack name its attributes must record.

    Returns
    -------
    tuple of (str, int) or None
        ``(sha256, planes)`` when the folder is readable, records ``name``
        and its pixels match the checksum recorded in its attributes; None
        otherwise (damaged, partial or foreign).

    """
    try:
        attributes: dict[str, Any] = dict(
            zarr.open_group(folder, mode="r").attrs.asdict()
        )
        own: dict[str, Any] = dict(attributes[PAIRSCOPE_KEY])
        data = np.asarray(zarr.open_array(folder / ARRAY_PATH, mode="r")[...])
    except (OSError, KeyError, ValueError, TypeError):
        return None
    if own.get("stack") != name or data.ndim != 4:
        return None
    sha256 = pixels_sha256(data)
    if sha256 != own.get("sha256"):
        return None
    return sha256, int(data.shape[0] * data.shape[1])
