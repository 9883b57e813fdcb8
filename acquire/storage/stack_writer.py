"""`StackWriter`: writes one stack plane by plane into staging, then commits it.

Each plane is one uncompressed Zarr v3 chunk, written to its own file the
moment it arrives (no compression: a 512 x 512 uint16 plane costs well under
a millisecond). The Zarr metadata itself comes from zarr-python, so the chunk
files always follow the layout that zarr-python reads.

`StackWriter.commit` refuses a stack with any plane missing, so a committed
stack never holds fill values that look like data. It re-reads every chunk from
disk (checking its size, hashing it, and finding each channel's data range),
writes the NGFF 0.5 group metadata, fsyncs everything, and hands the folder to
the dataset, which renames it out of staging and appends its journal line.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import zarr
from zarr.codecs import BytesCodec

from acquire.storage.durable import fsync_tree
from acquire.storage.errors import DatasetError
from acquire.storage.jsonsafe import json_safe
from acquire.storage.ngff import ARRAY_PATH, AXES, ngff_attributes, stack_origin_um

if TYPE_CHECKING:
    from acquire.storage.spec import StackSpec

__all__ = ["PAIRSCOPE_KEY", "Publish", "StackWriter"]

#: Group attribute holding pairscope's own metadata (``"planes"`` and more).
PAIRSCOPE_KEY = "pairscope"

#: Called by `StackWriter.commit` with the writer, its staging folder and the
#: SHA-256 of its pixels; moves the folder into the dataset and journals it.
Publish = Callable[["StackWriter", Path, str], Path]

_OPEN, _COMMITTED, _ABORTED = "open", "committed", "aborted"
_MAX_LISTED = 5


class StackWriter:
    """Writes one stack into a staging folder; `commit` publishes it.

    Made by `Dataset.begin_stack`, not directly.

    Parameters
    ----------
    spec : StackSpec
        What the stack holds.
    staging : Path
        The staging folder of the stack (``.staging/<name>.ome.zarr``); any
        earlier content is removed.
    publish : Publish
        Moves the finished folder into the dataset and journals it.

    Raises
    ------
    DatasetError
        The staging folder cannot be created.

    """

    def __init__(self, spec: StackSpec, staging: Path, publish: Publish) -> None:
        self._spec = spec
        self._staging = staging
        self._root = staging  # where the chunk files are: staging, then final
        self._publish = publish
        self._lock = threading.Lock()
        self._state = _OPEN
        self._dtype = spec.stored_dtype
        self._plane_nbytes = int(np.prod(spec.shape_yx)) * self._dtype.itemsize
        self._metadata: dict[tuple[int, int], dict[str, Any]] = {}
        try:
            if staging.exists():
                shutil.rmtree(staging)
            staging.mkdir(parents=True)
            self._group = zarr.create_group(store=staging, zarr_format=3)
            array = self._group.create_array(
                ARRAY_PATH,
                shape=spec.shape,
                chunks=(1, 1, *spec.shape_yx),
                dtype=spec.dtype,
                fill_value=0,
                filters=None,
                compressors=None,
                serializer=BytesCodec(endian="little"),
                chunk_key_encoding={"name": "default", "separator": "."},
                dimension_names=AXES,
            )
            encode = array.metadata.encode_chunk_key
            self._chunk_paths = {
                (c, z): staging.joinpath(ARRAY_PATH, *encode((c, z, 0, 0)).split("/"))
                for c in range(spec.n_channels)
                for z in range(spec.n_planes)
            }
            for path in {p.parent for p in self._chunk_paths.values()}:
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(
                f"cannot create the staging folder {staging} for stack "
                f"{spec.name!r}: {exc}",
                "Free disk space or fix the dataset folder's permissions.",
            ) from exc

    @property
    def spec(self) -> StackSpec:
        """What the stack holds."""
        return self._spec

    @property
    def is_open(self) -> bool:
        """Whether the stack is neither committed nor aborted."""
        return self._state == _OPEN

    @property
    def complete(self) -> bool:
        """Whether every plane (all channels, all z) has been written."""
        return len(self._metadata) == self._spec.n_total_planes

    @property
    def missing(self) -> tuple[tuple[int, int], ...]:
        """The (c, z) indices of the planes not written yet, in order."""
        return tuple(key for key in self._chunk_paths if key not in self._metadata)

    @property
    def path(self) -> Path:
        """The stack folder: in staging until committed, then in the dataset."""
        return self._root

    def plane_metadata(self) -> list[dict[str, Any]]:
        """Metadata of the planes written so far, in (c, z) order.

        Returns
        -------
        list[dict[str, Any]]
            One mapping per plane, with its ``"c"`` and ``"z"`` indices and
            the metadata given to `write_plane` (as plain JSON values).

        """
        with self._lock:
            return [
                copy.deepcopy(self._metadata[key])
                for key in self._chunk_paths
                if key in self._metadata
            ]

    def data(self) -> npt.NDArray[Any]:
        """Read the whole stack back from disk as a (c, z, y, x) array.

        Returns
        -------
        numpy.ndarray
            Pixels of type ``spec.dtype``, read from the committed folder once
            the stack is committed.

        Raises
        ------
        DatasetError
            The stack was aborted, a plane is missing, or a read fails.

        """
        with self._lock:
            if self._state == _ABORTED:
                raise DatasetError(
                    f"stack {self._spec.name!r} was aborted; its pixels are gone",
                    "Read stacks before aborting them, or take the stack again.",
                )
            if not self.complete:
                raise DatasetError(
                    f"stack {self._spec.name!r} in {self._root} has "
                    f"{len(self.missing)} planes missing",
                    "Write every plane before reading the stack back.",
                )
            out = np.empty(self._spec.shape, dtype=self._spec.dtype)
            for (c, z), raw in self._iter_chunks():
                out[c, z] = np.frombuffer(raw, dtype=self._dtype).reshape(
                    self._spec.shape_yx
                )
            return out

    def write_plane(
        self,
        c: int,
        z: int,
        plane: npt.NDArray[Any],
        metadata: Mapping[str, Any],
    ) -> None:
        """Write one plane to disk now, and keep its metadata for the commit.

        Writing a plane again replaces it (and its metadata).

        Parameters
        ----------
        c : int
            Channel index.
        z : int
            Plane index.
        plane : numpy.ndarray
            Pixels, of shape ``spec.shape_yx`` and a type that converts to
            ``spec.dtype`` without loss.
        metadata : Mapping[str, Any]
            What was true when the plane was taken (stage x/y/z reached,
            timestamp, exposure_ms, objective, channel, scope...); plain
            JSON values, NumPy scalars or datetimes.

        Raises
        ------
        DatasetError
            The stack is closed, an index is out of range, the plane has the
            wrong shape or type, or the disk write fails.

        """
        where = f"plane c={c} z={z} of stack {self._spec.name!r}"
        key = (c, z)
        if key not in self._chunk_paths:
            raise DatasetError(
                f"{where} is outside the stack ({self._spec.n_channels} channels x "
                f"{self._spec.n_planes} planes)",
                "Use 0 <= c < n_channels and 0 <= z < n_planes.",
            )
        data = self._check_plane(plane, where)
        safe = json_safe(dict(metadata), where=where)
        path = self._chunk_paths[key]
        with self._lock:
            self._require_open(f"write {where}")
            try:
                with path.open("wb") as handle:
                    handle.write(data.data)
            except OSError as exc:
                raise DatasetError(
                    f"cannot write {where} to {path}: {exc}",
                    "Free disk space or check the disk, then resume the acquisition.",
                ) from exc
            self._metadata[key] = {**safe, "c": c, "z": z}

    def commit(self) -> Path:
        """Finish the stack: check, describe, fsync, publish and journal it.

        Returns
        -------
        Path
            The committed stack folder, ``DATASET/<name>.ome.zarr``.

        Raises
        ------
        DatasetError
            A plane is missing or truncated on disk, the stack is closed, or
            the disk fails. The stack stays in staging (call `abort`).

        """
        with self._lock:
            self._require_open("commit")
            missing = self.missing
            if missing:
                listed = ", ".join(f"c={c} z={z}" for c, z in missing[:_MAX_LISTED])
                more = "..." if len(missing) > _MAX_LISTED else ""
                raise DatasetError(
                    f"stack {self._spec.name!r} in {self._staging} is missing "
                    f"{len(missing)} of {self._spec.n_total_planes} planes "
                    f"({listed}{more})",
                    "Write every plane before commit, or abort the stack.",
                )
            sha256, data_ranges = self._read_back()
            attributes = ngff_attributes(
                self._spec,
                data_ranges,
                origin_um=stack_origin_um(self._spec, self._metadata),
            )
            attributes[PAIRSCOPE_KEY] = self._pairscope_attributes(sha256)
            try:
                self._group.update_attributes(attributes)
                fsync_tree(self._staging)
            except OSError as exc:
                raise DatasetError(
                    f"cannot finish stack {self._spec.name!r} in {self._staging}: "
                    f"{exc}",
                    "Free disk space or check the disk, then resume the acquisition.",
                ) from exc
            final = self._publish(self, self._staging, sha256)
            self._state = _COMMITTED
            self._root = final
            return final

    def abort(self) -> None:
        """Drop the stack: remove its staging folder. Does nothing if aborted.

        Raises
        ------
        DatasetError
            The stack was committed already.

        """
        with self._lock:
            if self._state == _COMMITTED:
                raise DatasetError(
                    f"stack {self._spec.name!r} is committed and cannot be aborted",
                    "Committed stacks are kept; begin a stack with another name.",
                )
            self._state = _ABORTED
            shutil.rmtree(self._staging, ignore_errors=True)

    def _require_open(self, action: str) -> None:
        if self._state != _OPEN:
            raise DatasetError(
                f"cannot {action}: stack {self._spec.name!r} is {self._state}",
                "Begin the stack again with Dataset.begin_stack.",
            )

    def _check_plane(self, plane: npt.NDArray[Any], where: str) -> npt.NDArray[Any]:
        """Return ``plane`` as C-ordered little-endian pixels of the stack's type."""
        if not isinstance(plane, np.ndarray):
            raise DatasetError(
                f"{where} is a {type(plane).__name__}, not a numpy array",
                "Pass the camera image as a numpy array.",
            )
        if plane.shape != self._spec.shape_yx:
            raise DatasetError(
                f"{where} has shape {plane.shape}, the stack expects "
                f"{self._spec.shape_yx}",
                "Set the camera ROI and binning before beginning the stack, or "
                "begin it with the camera's image shape.",
            )
        if not np.can_cast(plane.dtype, self._dtype, casting="safe"):
            raise DatasetError(
                f"{where} has type {plane.dtype}, which {self._spec.dtype} cannot "
                "hold without loss",
                "Begin the stack with the camera's pixel type, or convert the "
                "plane yourself.",
            )
        return np.ascontiguousarray(plane, dtype=self._dtype)

    def _iter_chunks(self) -> Iterator[tuple[tuple[int, int], bytes]]:
        """Yield each plane's chunk bytes as stored, in (c, z) order, checked."""
        for key, staged in self._chunk_paths.items():
            path = self._root / staged.relative_to(self._staging)
            c, z = key
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise DatasetError(
                    f"cannot read back plane c={c} z={z} from {path}: {exc}",
                    "Check the disk, write the plane again, or abort the stack.",
                ) from exc
            if len(raw) != self._plane_nbytes:
                raise DatasetError(
                    f"plane c={c} z={z} in {path} holds {len(raw)} bytes, "
                    f"expected {self._plane_nbytes}",
                    "Write the plane again, or abort the stack.",
                )
            yield key, raw

    def _read_back(self) -> tuple[str, list[tuple[float, float]]]:
        """Hash every chunk as stored (c, then z) and find each channel's range."""
        digest = hashlib.sha256()
        low = [np.inf] * self._spec.n_channels
        high = [-np.inf] * self._spec.n_channels
        for (c, _), raw in self._iter_chunks():
            digest.update(raw)
            pixels = np.frombuffer(raw, dtype=self._dtype)
            if pixels.dtype.kind == "f":
                pixels = pixels[np.isfinite(pixels)]
            if pixels.size:
                low[c] = min(low[c], float(pixels.min()))
                high[c] = max(high[c], float(pixels.max()))
        ranges = [
            (lo, hi) if lo <= hi else (0.0, 0.0)
            for lo, hi in zip(low, high, strict=True)
        ]
        return digest.hexdigest(), ranges

    def _pairscope_attributes(self, sha256: str) -> dict[str, Any]:
        spec = self._spec
        return {
            "stack": spec.name,
            "position_name": spec.position_name,
            "scope_name": spec.scope_name,
            "channel_names": list(spec.channel_names),
            "voxel_size_um": list(spec.voxel_size_um),
            "sha256": sha256,
            "planes": [self._metadata[key] for key in self._chunk_paths],
        }
