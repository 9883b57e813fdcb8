"""`PairDatabase`: registered wide-field/confocal pairs of the same cells.

A database is a folder::

    catalog.sqlite            the catalog (see `correlate.pairdb.catalog`)
    pairs/<pair_id>.ome.zarr  one OME-Zarr per pair (see `correlate.pairdb.store`)

The catalog is the source of truth: a pair exists once its row is committed.
`PairDatabase.add_pair` writes the pair under a temporary name
(``pairs/.tmp-*``), fsyncs it, then, holding the catalog's write lock, renames
it into place and inserts its row in the same transaction; if the insert
fails the folder is removed again. A crash therefore leaves at most a
temporary folder or a pair folder without a row: both are ignored by every
listing, replaced if the same pair is added again, and removed by
`PairDatabase.clean_up`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from correlate.pairdb.catalog import CATALOG_NAME, Catalog
from correlate.pairdb.errors import DuplicatePairError, PairDatabaseError
from correlate.pairdb.montage import write_montage_png
from correlate.pairdb.pair_input import PAIR_SUFFIX, PreparedPair, prepare_pair
from correlate.pairdb.records import SPLITS, PairRecord, StackMeta
from correlate.pairdb.splits import DEFAULT_FRACTIONS, check_fractions
from correlate.pairdb.store import (
    fsync_dir,
    pair_sha256,
    read_pair_arrays,
    remove_tree,
    rename,
    write_pair_zarr,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PAIRS_DIR", "PairDatabase"]

PAIRS_DIR = "pairs"
_TEMP_PREFIX = ".tmp-"
_DEFAULT_BUSY_TIMEOUT_S = 5.0

FloatArray = npt.NDArray[np.float32]


class PairDatabase:
    """A folder of registered wide-field/confocal pairs and their catalog.

    Make one with `create` or `open`, not directly. Every method opens the
    catalog for its own short transaction, so several processes may read and
    add pairs at once, and a database can be handed to data-loader workers.

    Parameters
    ----------
    root : Path
        The database folder.
    catalog : Catalog
        Its catalog.
    fractions : tuple of 3 floats
        Target (train, val, test) fractions of cells.

    """

    def __init__(
        self, root: Path, catalog: Catalog, fractions: tuple[float, float, float]
    ) -> None:
        self._root = root
        self._catalog = catalog
        self._fractions = fractions

    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        split_fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
        busy_timeout_s: float = _DEFAULT_BUSY_TIMEOUT_S,
    ) -> PairDatabase:
        """Start a new, empty database in a new or empty folder.

        Parameters
        ----------
        path : Path or str
            The folder; created (with its parents) if missing.
        split_fractions : tuple of 3 floats, optional
            Target (train, val, test) fractions of cells; fixed for the life of
            the database (see `correlate.pairdb.splits` for the rule).
        busy_timeout_s : float, optional
            How long a call waits for another process's catalog lock.

        Returns
        -------
        PairDatabase
            The new database.

        Raises
        ------
        PairDatabaseError
            The folder is not empty (a pair database or anything else: nothing
            is ever overwritten), or cannot be created.

        """
        root = Path(path)
        fractions = check_fractions(split_fractions)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            what = (
                "already holds a pair database"
                if (root / CATALOG_NAME).exists()
                else "is not an empty folder"
            )
            raise PairDatabaseError(
                f"cannot create a pair database in {root}: it {what}",
                "Open an existing database with PairDatabase.open, or pick a new "
                "or empty folder.",
            )
        try:
            (root / PAIRS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PairDatabaseError(
                f"cannot create the pair database folder {root}: {exc}",
                "Pick a writable location.",
            ) from exc
        catalog = Catalog(root, busy_timeout_s=busy_timeout_s)
        catalog.initialise(fractions)
        return cls(root, catalog, fractions)

    @classmethod
    def open(
        cls, path: Path | str, *, busy_timeout_s: float = _DEFAULT_BUSY_TIMEOUT_S
    ) -> PairDatabase:
        """Open an existing database (read-only media work for reading).

        Parameters
        ----------
        path : Path or str
            The database folder.
        busy_timeout_s : float, optional
            How long a call waits for another process's catalog lock.

        Returns
        -------
        PairDatabase
            The database.

        Raises
        ------
        PairDatabaseError
            The folder or its catalog is missing, is not a pair database, or
            has a schema version this release cannot read.

        """
        root = Path(path)
        catalog = Catalog(root, busy_timeout_s=busy_timeout_s)
        if not catalog.path.is_file():
            raise PairDatabaseError(
                f"{root} is not a pair database (no {CATALOG_NAME} in it)",
                "Pass the folder that PairDatabase.create made, or create one.",
            )
        meta = catalog.read_meta()
        fractions = check_fractions(json.loads(meta["split_fractions"]))
        return cls(root, catalog, fractions)

    @property
    def path(self) -> Path:
        """The database folder."""
        return self._root

    @property
    def split_fractions(self) -> tuple[float, float, float]:
        """Target (train, val, test) fractions of cells."""
        return self._fractions

    def __len__(self) -> int:
        """Number of pairs, accepted and rejected."""
        with self._catalog.read() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM pairs").fetchone()
        return int(count)

    def __contains__(self, pair_id: object) -> bool:
        """Whether ``pair_id`` is in the catalog."""
        if not isinstance(pair_id, str):
            return False
        with self._catalog.read() as conn:
            return self._catalog.has_pair(conn, pair_id)

    def __repr__(self) -> str:
        return f"PairDatabase({str(self._root)!r})"

    def add_pair(
        self,
        *,
        widefield: npt.ArrayLike,
        confocal: npt.ArrayLike,
        voxel_size_um: tuple[float, float, float],
        cell_id: str,
        transform: Mapping[str, Any],
        metrics: Mapping[str, float],
        accepted: bool,
        reason: str = "",
        widefield_meta: StackMeta,
        confocal_meta: StackMeta,
    ) -> str:
        """Store one registered pair and list it in the catalog.

        Parameters
        ----------
        widefield : array_like
            The wide-field stack resampled onto the confocal grid, (z, y, x),
            real numbers, all finite (fill voxels outside the overlap with a
            number and report the overlap in ``metrics``); stored as float32.
        confocal : array_like
            The confocal stack, same shape.
        voxel_size_um : tuple of 3 floats
            (dz, dy, dx) of the common grid, micrometers.
        cell_id : str
            The cell both stacks show; all pairs of a cell share its split.
        transform : Mapping[str, Any]
            The registration (JSON values; NumPy numbers and arrays are
            converted).
        metrics : Mapping[str, float]
            Quality metrics by name (``ncc``, ``overlap``...); NaN for unknown.
        accepted : bool
            Whether the pair is fit for training (rejected pairs are kept and
            listed with ``accepted_only=False``).
        reason : str, optional
            Why it was accepted or rejected.
        widefield_meta, confocal_meta : StackMeta
            Provenance of the two stacks.

        Returns
        -------
        str
            The pair id: 16 hex digits of a hash of the pixels, grid and cell.

        Raises
        ------
        PairDatabaseError
            An argument is invalid (shapes differ, not 3D, non-finite voxels,
            ...), the pair is in the database already (`DuplicatePairError`),
            the disk write fails,
            or the catalog is locked by another process; in every case the
            database is left as it was.

        """
        pair = prepare_pair(
            widefield=widefield,
            confocal=confocal,
            voxel_size_um=voxel_size_um,
            cell_id=cell_id,
            transform=transform,
            metrics=metrics,
            accepted=accepted,
            reason=reason,
            widefield_meta=_portable(widefield_meta, self._root),
            confocal_meta=_portable(confocal_meta, self._root),
            folder=PAIRS_DIR,
        )
        with self._catalog.read() as conn:
            if self._catalog.has_pair(conn, pair.pair_id):
                raise _duplicate(pair, self._root)
        pairs_dir = self._root / PAIRS_DIR
        temp = pairs_dir / (
            f"{_TEMP_PREFIX}{pair.pair_id}-{uuid.uuid4().hex[:8]}{PAIR_SUFFIX}"
        )
        self._stage(pair, temp)
        final = self._root / pair.relative_path
        moved = False
        try:
            with self._catalog.write() as conn:
                if self._catalog.has_pair(conn, pair.pair_id):
                    raise _duplicate(pair, self._root)
                remove_tree(final)  # left by an add that crashed before its row
                rename(temp, final)
                moved = True
                fsync_dir(pairs_dir)
                self._catalog.insert_pair(conn, pair.row, pair.metrics, self._fractions)
        except BaseException:
            remove_tree(final if moved else temp)
            raise
        return pair.pair_id

    def _stage(self, pair: PreparedPair, temp: Path) -> None:
        """Write a pair under its temporary name, fsync it and check it reads back."""
        try:
            temp.parent.mkdir(exist_ok=True)
            write_pair_zarr(
                temp,
                name=pair.pair_id,
                widefield=pair.widefield,
                confocal=pair.confocal,
                voxel_size_um=pair.voxel_size_um,
                attributes=pair.attributes,
            )
            written = read_pair_arrays(
                temp, pair_id=pair.pair_id, shape_zyx=pair.shape_zyx
            )
            if pair_sha256(*written) != pair.data_sha256:
                raise OSError("the pixels read back differ from those written")
        except (OSError, PairDatabaseError) as exc:
            remove_tree(temp)
            raise PairDatabaseError(
                f"cannot write pair {pair.pair_id} of cell {pair.cell_id!r} to "
                f"{temp}: {exc}",
                "Free disk space or fix the database folder's permissions; the "
                "database is unchanged.",
            ) from exc

    def pairs_by_sources(self) -> dict[tuple[str, str], str]:
        """Every pair's id by the two stacks it was made from.

        A build that was interrupted, or is run again, finds what it made
        before without registering the stacks again (read once per build).

        Returns
        -------
        dict
            ``(widefield_source, confocal_source) -> pair_id`` for accepted and
            flagged pairs, sources as :meth:`resolve_source` gives them.

        """
        return {
            (
                self.resolve_source(record.widefield.source, stored=True),
                self.resolve_source(record.confocal.source, stored=True),
            ): record.pair_id
            for record in self.records(accepted_only=False)
        }

    def resolve_source(self, source: str, *, stored: bool = False) -> str:
        """A stack's source as an absolute path, comparable across runs.

        Parameters
        ----------
        source : str
            ``StackMeta.source``: a path, or any other text.
        stored : bool, optional
            The source as the catalog holds it: a relative path is relative to
            the database folder (else to the current folder).

        Returns
        -------
        str
            The resolved path, or ``source`` itself if it is not one.

        """
        path = Path(source)
        if stored and not path.is_absolute():
            path = self._root / path
        try:
            return str(path.resolve())
        except (OSError, RuntimeError, ValueError):
            return source

    def records(
        self, split: str | None = None, *, accepted_only: bool = True
    ) -> list[PairRecord]:
        """List pairs, ordered by cell then pair id.

        Parameters
        ----------
        split : str or None, optional
            ``"train"``, ``"val"`` or ``"test"``; None for all.
        accepted_only : bool, optional
            Leave out rejected pairs (the default: what training reads).

        Returns
        -------
        list[PairRecord]
            The matching catalog rows.

        Raises
        ------
        PairDatabaseError
            An unknown split name, or the catalog is locked or damaged.

        """
        conditions: list[str] = []
        params: list[Any] = []
        if split is not None:
            if split not in SPLITS:
                raise PairDatabaseError(
                    f"unknown split {split!r}", f"Use one of {', '.join(SPLITS)}."
                )
            conditions.append("c.split = ?")
            params.append(split)
        if accepted_only:
            conditions.append("p.accepted = 1")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._catalog.read() as conn:
            return self._catalog.records(conn, where, tuple(params))

    def record(self, pair_id: str) -> PairRecord:
        """The catalog row of one pair (accepted or not).

        Raises
        ------
        PairDatabaseError
            No such pair.

        """
        with self._catalog.read() as conn:
            found = self._catalog.records(conn, "WHERE p.pair_id = ?", (pair_id,))
        if not found:
            raise PairDatabaseError(
                f"no pair {pair_id!r} in the database {self._root}",
                "List the pairs with PairDatabase.records(accepted_only=False).",
            )
        return found[0]

    def cell_splits(self) -> dict[str, str]:
        """The split of every cell in the catalog."""
        with self._catalog.read() as conn:
            rows = conn.execute("SELECT cell_id, split FROM cells").fetchall()
        return {str(cell): str(split) for cell, split in rows}

    def load(
        self, pair_id: str, *, verify: bool = True
    ) -> tuple[FloatArray, FloatArray]:
        """Read the two stacks of a pair.

        Parameters
        ----------
        pair_id : str
            The pair.
        verify : bool, optional
            Check the pixels against the hash in the catalog (catches damaged
            or missing chunks that would otherwise read as fill values).

        Returns
        -------
        tuple of numpy.ndarray
            (widefield, confocal), float32 (z, y, x), on the grid whose voxel
            size is ``record(pair_id).voxel_size_um``.

        Raises
        ------
        PairDatabaseError
            No such pair, its folder is missing, or a chunk is damaged.

        """
        record = self.record(pair_id)
        wf, cf = read_pair_arrays(
            record.path, pair_id=pair_id, shape_zyx=record.shape_zyx
        )
        if verify and pair_sha256(wf, cf) != record.data_sha256:
            raise PairDatabaseError(
                f"the pixels of pair {pair_id} in {record.path} do not match the "
                "hash in the catalog (a damaged, missing or replaced chunk)",
                "Restore the folder from a copy of the database, or drop the pair "
                "with PairDatabase.remove_pair.",
            )
        return wf, cf

    def remove_pair(self, pair_id: str) -> None:
        """Drop a pair: its catalog row first, then its folder.

        Raises
        ------
        PairDatabaseError
            No such pair, or the catalog is locked.

        """
        with self._catalog.write() as conn:
            if not self._catalog.has_pair(conn, pair_id):
                raise PairDatabaseError(
                    f"no pair {pair_id!r} in the database {self._root}",
                    "List the pairs with PairDatabase.records(accepted_only=False).",
                )
            self._catalog.delete_pair(conn, pair_id, self._fractions)
        remove_tree(self._root / PAIRS_DIR / f"{pair_id}{PAIR_SUFFIX}")

    def clean_up(
        self, *, temp_age_s: float = 3600.0, dry_run: bool = False
    ) -> list[Path]:
        """Remove what crashed adds left: orphan pair folders and old temp folders.

        Orphans (a pair folder without a catalog row) are found while holding
        the catalog's write lock, so an add in progress elsewhere is never
        mistaken for one. A temporary folder may belong to an add still
        writing, so only those older than ``temp_age_s`` are removed.

        Parameters
        ----------
        temp_age_s : float, optional
            Minimum age (since last change) of a temporary folder to remove.
        dry_run : bool, optional
            Only list what would be removed.

        Returns
        -------
        list[Path]
            The folders removed (or that would be).

        """
        removed: list[Path] = []
        pairs_dir = self._root / PAIRS_DIR
        now = time.time()
        with self._catalog.write() as conn:
            listed = {str(p) for (p,) in conn.execute("SELECT zarr_path FROM pairs")}
            for folder in sorted(pairs_dir.glob(f"*{PAIR_SUFFIX}")):
                relative = f"{PAIRS_DIR}/{folder.name}"
                if folder.name.startswith(_TEMP_PREFIX):
                    if now - folder.stat().st_mtime < temp_age_s:
                        continue
                elif relative in listed:
                    continue
                if not dry_run:
                    remove_tree(folder)
                removed.append(folder)
        return removed

    def catalog_sha256(self) -> str:
        """A hash of the catalog content: names the exact training data.

        It covers the split fractions and, for every pair (accepted or not,
        in pair id order), its cell, split, decision, reason, grid, transform,
        metrics, provenance and pixel hash; not when pairs were added nor
        where the database lies. Equal hashes mean equal data and splits.

        Returns
        -------
        str
            Hex SHA-256.

        """
        pairs = []
        for rec in sorted(self.records(accepted_only=False), key=lambda r: r.pair_id):
            pairs.append(
                {
                    "pair_id": rec.pair_id,
                    "cell_id": rec.cell_id,
                    "split": rec.split,
                    "accepted": rec.accepted,
                    "reason": rec.reason,
                    "shape_zyx": list(rec.shape_zyx),
                    "voxel_size_um": list(rec.voxel_size_um),
                    "transform": dict(rec.transform),
                    "metrics": {
                        k: v if math.isfinite(v) else None
                        for k, v in rec.metrics.items()
                    },
                    "widefield": rec.widefield.to_json(),
                    "confocal": rec.confocal.to_json(),
                    "data_sha256": rec.data_sha256,
                }
            )
        content = {"split_fractions": list(self._fractions), "pairs": pairs}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def write_montage(
        self, pair_id: str, path: Path | str, *, projection: str = "max"
    ) -> Path:
        """Write the PNG montage of a pair (`write_montage_png`).

        Returns
        -------
        Path
            The PNG file.

        """
        record = self.record(pair_id)
        wf, cf = self.load(pair_id)
        return write_montage_png(
            path, wf, cf, record.voxel_size_um, projection=projection
        )


def _portable(meta: Any, root: Path) -> Any:
    """``meta`` with a source file beside the database named relative to it.

    A session folder holding the raw stacks and the database can then be
    moved or copied to a server as a whole and its provenance still resolves
    (``root / source``); sources elsewhere keep their absolute path.
    """
    if not isinstance(meta, StackMeta) or not isinstance(meta.source, str):
        return meta  # refused with a clear message by prepare_pair
    source = Path(meta.source)
    if not source.is_absolute():
        return meta
    try:
        inside = source.resolve().relative_to(root.resolve().parent)
    except (ValueError, OSError):
        return meta
    return replace(meta, source=(Path("..") / inside).as_posix())


def _duplicate(pair: PreparedPair, root: Path) -> DuplicatePairError:
    return DuplicatePairError(
        f"pair {pair.pair_id} (cell {pair.cell_id!r}, same pixels and grid) is "
        "already in "
        f"the database {root}",
        "Nothing to do; to change its decision, remove_pair it and add it again.",
        pair_id=pair.pair_id,
    )
