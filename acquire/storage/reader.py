"""Read committed stacks back: pixels, voxel size and the metadata written with them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from acquire.storage.errors import DatasetError
from acquire.storage.journal import Journal
from acquire.storage.ngff import ARRAY_PATH
from acquire.storage.spec import STACK_SUFFIX
from acquire.storage.stack_writer import PAIRSCOPE_KEY
from acquire.storage.verify import pixels_sha256

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "StoredStack",
    "committed_stacks",
    "read_stack",
    "stack_centre_um",
    "stack_folder",
]


@dataclass(frozen=True)
class StoredStack:
    """A committed stack as read from a dataset.

    Attributes
    ----------
    name : str
        Stack name, e.g. ``"t0000_p0001_g0000"``.
    path : Path
        The stack's OME-Zarr folder.
    data : ndarray
        Pixels, axes (c, z, y, x), as stored.
    voxel_size_um : tuple of float
        (z, y, x) voxel size.
    position_name : str
        Name of the stage position it was taken at.
    scope_name : str
        Microscope that took it.
    planes : list of dict
        Per-plane metadata (stage position reached, time, objective...).

    """

    name: str
    path: Path
    data: NDArray[Any]
    voxel_size_um: tuple[float, float, float]
    position_name: str
    scope_name: str
    planes: list[dict[str, Any]]

    def stage_xyz_um(self) -> tuple[float, float, float]:
        """Stage x, y of the stack and the z of its middle plane."""
        return stack_centre_um(self.planes, where=str(self.path))

    def objective(self) -> str | None:
        """Objective label recorded with the first plane, if any."""
        return self.planes[0].get("objective") if self.planes else None


def stack_centre_um(
    planes: list[dict[str, Any]], *, where: str
) -> tuple[float, float, float]:
    """Stage x, y of a stack and the z halfway between its first and last plane.

    Raises
    ------
    DatasetError
        No plane records a stage position.

    """
    located = [p for p in planes if p.get("stage_x_um") is not None]
    if not located:
        raise DatasetError(
            f"{where}: the planes record no stage position",
            "Acquire with pairscope, which records it for every plane.",
        )
    z = [float(p.get("stage_z_um") or 0.0) for p in located]
    middle = located[len(located) // 2]
    return (
        float(middle["stage_x_um"]),
        float(middle["stage_y_um"]),
        0.5 * (min(z) + max(z)),
    )


def committed_stacks(dataset: Path) -> tuple[str, ...]:
    """Names of the stacks committed in a dataset, in commit order.

    Raises
    ------
    DatasetError
        If the folder holds no pairscope dataset.

    """
    dataset = Path(dataset)
    if not (dataset / "manifest.json").is_file():
        raise DatasetError(
            f"{dataset} is not a pairscope dataset (no manifest.json)",
            "Give the folder that `pairscope acquire --out` wrote.",
        )
    try:
        contents = Journal(dataset / "journal.jsonl").read()
    except OSError as error:
        raise DatasetError(
            f"cannot read the journal of {dataset}: {error}",
            "Check the file's permissions; the journal lists the committed stacks.",
        ) from None
    contents.check_intact(dataset)
    return tuple(dict.fromkeys(str(entry["stack"]) for entry in contents.entries))


def stack_folder(dataset: Path, name: str) -> Path:
    """Where a committed stack's OME-Zarr lies in its dataset (not read)."""
    return Path(dataset) / (name + STACK_SUFFIX)


def read_stack(dataset: Path, name: str) -> StoredStack:
    """Read one committed stack of a dataset.

    Parameters
    ----------
    dataset : Path
        The dataset folder.
    name : str
        Stack name.

    Returns
    -------
    StoredStack

    Raises
    ------
    DatasetError
        If the stack is missing, unreadable or lacks its metadata.

    """
    path = stack_folder(dataset, name)
    try:
        group = zarr.open_group(path, mode="r")
        stored: dict[str, Any] = dict(group.attrs.asdict())
        attributes: dict[str, Any] = dict(stored[PAIRSCOPE_KEY])
        array = zarr.open_array(path / ARRAY_PATH, mode="r")
        data = np.asarray(array[...])
        voxel = tuple(float(v) for v in attributes["voxel_size_um"])
    except (FileNotFoundError, KeyError, ValueError, TypeError, OSError) as error:
        raise DatasetError(
            f"cannot read stack {name!r} from {dataset}: {error}",
            "Check that the stack was committed (it is listed in journal.jsonl) "
            "and that the folder was copied whole.",
        ) from None
    if data.ndim != 4 or len(voxel) != 3:
        raise DatasetError(
            f"{path}: expected a (c, z, y, x) stack, found shape {data.shape}",
            "Give a stack written by pairscope acquire.",
        )
    _verify_checksum(Path(dataset), name, data)
    return StoredStack(
        name=name,
        path=path,
        data=data,
        voxel_size_um=(voxel[0], voxel[1], voxel[2]),
        position_name=str(attributes.get("position_name", "")),
        scope_name=str(attributes.get("scope_name", "")),
        planes=list(attributes.get("planes", [])),
    )


def _verify_checksum(dataset: Path, name: str, data: NDArray[Any]) -> None:
    """Compare the pixels with the SHA-256 the journal recorded at commit.

    A missing chunk reads as the fill value and a damaged one as other
    pixels: either changes the checksum, so the stack is refused rather than
    used.
    """
    entries = Journal(dataset / "journal.jsonl").read().entries
    recorded = [str(e["sha256"]) for e in entries if e["stack"] == name]
    if not recorded:
        raise DatasetError(
            f"stack {name!r} of {dataset} is not in the dataset's journal",
            "Only committed stacks are read; resume the acquisition to finish it.",
        )
    if pixels_sha256(data) != recorded[-1]:
        raise DatasetError(
            f"stack {name!r} of {dataset} is damaged: its pixels do not match the "
            "checksum recorded when it was committed (a chunk is missing or "
            "changed)",
            "Restore the stack's folder from a backup or acquire it again; it is "
            "not used.",
        )
