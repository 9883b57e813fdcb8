"""`StackSpec`: what one stack will hold, checked before anything is written."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from acquire.storage.errors import DatasetError

__all__ = ["STACK_SUFFIX", "StackSpec", "is_stack_name"]

#: Folder suffix of a stack inside a dataset.
STACK_SUFFIX = ".ome.zarr"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# Names Windows reserves for devices, whatever the extension.
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(10)}
    | {f"lpt{i}" for i in range(10)}
)


def is_stack_name(name: object) -> bool:
    """Whether ``name`` can name a stack folder inside a dataset.

    Parameters
    ----------
    name : object
        A candidate name (a journal line may hold anything).

    Returns
    -------
    bool
        True for 1-100 letters, digits, '_' or '-', starting with a letter or
        digit, and not a Windows device name: never a path (no separators,
        no '..').

    """
    return (
        isinstance(name, str)
        and _NAME.fullmatch(name) is not None
        and name.lower() not in _WINDOWS_RESERVED
    )


@dataclass(frozen=True)
class StackSpec:
    """What one stack will hold: a (c, z, y, x) array and its description.

    Attributes
    ----------
    name : str
        Stack name, e.g. ``"t0000_p0001_g0000"``; letters, digits, ``_`` and
        ``-`` (at most 100). The stack is stored as ``<name>.ome.zarr``.
    n_channels : int
        Number of channels (c).
    n_planes : int
        Number of planes per channel (z).
    shape_yx : tuple[int, int]
        Plane shape in pixels (rows, columns).
    dtype : str
        NumPy integer or float type of the pixels, e.g. ``"uint16"``.
    voxel_size_um : tuple[float, float, float]
        Voxel size (z, y, x) in micrometers.
    channel_names : tuple[str, ...]
        One name per channel.
    position_name : str
        Name of the stage position the stack was taken at.
    scope_name : str
        Name of the microscope that took it.

    Raises
    ------
    DatasetError
        On construction, if any field is out of range.

    """

    name: str
    n_channels: int
    n_planes: int
    shape_yx: tuple[int, int]
    dtype: str
    voxel_size_um: tuple[float, float, float]
    channel_names: tuple[str, ...]
    position_name: str
    scope_name: str

    def __post_init__(self) -> None:
        """Check every field, and store sequences as tuples."""
        where = f"stack {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise DatasetError(
                f"stack name {self.name!r} is not a valid folder name",
                "Use 1-100 letters, digits, '_' or '-', starting with a letter or "
                "digit, e.g. 't0000_p0001_g0000'.",
            )
        if self.name.lower() in _WINDOWS_RESERVED:
            raise DatasetError(
                f"stack name {self.name!r} is a device name reserved by Windows",
                "Choose another name, e.g. 't0000_p0001_g0000'.",
            )
        for field in ("n_channels", "n_planes"):
            value = getattr(self, field)
            if not _is_positive_int(value):
                raise DatasetError(
                    f"{where}: {field} must be a positive integer, got {value!r}",
                    "Check the channels and z plan of the sequence.",
                )
        shape = tuple(self.shape_yx)
        if len(shape) != 2 or not all(_is_positive_int(n) for n in shape):
            raise DatasetError(
                f"{where}: shape_yx must be two positive integers, got "
                f"{self.shape_yx!r}",
                "Pass the camera image shape (height, width).",
            )
        object.__setattr__(self, "shape_yx", (int(shape[0]), int(shape[1])))
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = np.dtype(object)
        if dtype.kind not in "uif":
            raise DatasetError(
                f"{where}: dtype {self.dtype!r} is not an integer or float type",
                "Pass the camera pixel type, e.g. 'uint16'.",
            )
        object.__setattr__(self, "dtype", dtype.name)
        voxel = tuple(self.voxel_size_um)
        if len(voxel) != 3 or not all(_is_positive_number(v) for v in voxel):
            raise DatasetError(
                f"{where}: voxel_size_um must be three positive numbers (z, y, x), "
                f"got {self.voxel_size_um!r}",
                "Check the z step of the sequence (it must be above 0) and the "
                "pixel size of the objective.",
            )
        object.__setattr__(self, "voxel_size_um", tuple(float(v) for v in voxel))
        names = tuple(self.channel_names)
        if len(names) != self.n_channels or not all(
            isinstance(n, str) and n for n in names
        ):
            raise DatasetError(
                f"{where}: channel_names must be {self.n_channels} non-empty "
                f"names, got {self.channel_names!r}",
                "Pass one name per channel.",
            )
        object.__setattr__(self, "channel_names", names)
        for field in ("position_name", "scope_name"):
            if not isinstance(getattr(self, field), str):
                raise DatasetError(
                    f"{where}: {field} must be text, got {getattr(self, field)!r}",
                    f"Pass the {field.replace('_', ' ')} as a string.",
                )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Array shape (c, z, y, x)."""
        return (self.n_channels, self.n_planes, *self.shape_yx)

    @property
    def n_total_planes(self) -> int:
        """Number of planes in the stack, all channels together."""
        return self.n_channels * self.n_planes

    @property
    def stored_dtype(self) -> np.dtype[np.generic]:
        """The pixel type as stored on disk (little-endian)."""
        return np.dtype(self.dtype).newbyteorder("<")

    @property
    def folder_name(self) -> str:
        """Name of the stack's folder in the dataset, ``<name>.ome.zarr``."""
        return self.name + STACK_SUFFIX


def _is_positive_int(value: object) -> bool:
    return (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and int(value) > 0
    )


def _is_positive_number(value: object) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and float(value) > 0
    )
