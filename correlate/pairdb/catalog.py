"""The catalog: one SQLite file (stdlib ``sqlite3``, no server) listing the pairs.

Tables: ``meta`` (format name, schema version, split fractions), ``cells``
(each cell's split), ``pairs`` (one row per pair: decision, grid, transform
JSON, pixel hash, provenance of both stacks in ``wf_*`` and ``cf_*`` columns)
and ``metrics`` (one row per pair and metric name, so metrics can be queried
in SQL). The rollback journal (not WAL) is used, so the catalog works on
network shares and read-only copies.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from correlate.pairdb.errors import PairDatabaseError
from correlate.pairdb.records import PairRecord, StackMeta
from correlate.pairdb.splits import assign_splits

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

__all__ = ["CATALOG_NAME", "DATABASE_FORMAT", "SCHEMA_VERSION", "Catalog"]

CATALOG_NAME = "catalog.sqlite"
DATABASE_FORMAT = "pairscope-pair-database"
SCHEMA_VERSION = 1

_STACK_COLUMNS = (
    ("scope", "TEXT NOT NULL"),
    ("objective", "TEXT"),
    ("stage_x_um", "REAL"),
    ("stage_y_um", "REAL"),
    ("stage_z_um", "REAL"),
    ("voxel_dz_um", "REAL NOT NULL"),
    ("voxel_dy_um", "REAL NOT NULL"),
    ("voxel_dx_um", "REAL NOT NULL"),
    ("acquired_at", "TEXT"),
    ("source", "TEXT NOT NULL"),
)
_PREFIXES = ("wf", "cf")
_PAIR_COLUMNS = (
    ("pair_id", "TEXT PRIMARY KEY"),
    ("cell_id", "TEXT NOT NULL REFERENCES cells(cell_id)"),
    ("accepted", "INTEGER NOT NULL CHECK (accepted IN (0, 1))"),
    ("reason", "TEXT NOT NULL"),
    ("zarr_path", "TEXT NOT NULL"),
    ("shape_z", "INTEGER NOT NULL"),
    ("shape_y", "INTEGER NOT NULL"),
    ("shape_x", "INTEGER NOT NULL"),
    ("voxel_dz_um", "REAL NOT NULL"),
    ("voxel_dy_um", "REAL NOT NULL"),
    ("voxel_dx_um", "REAL NOT NULL"),
    ("transform_json", "TEXT NOT NULL"),
    ("data_sha256", "TEXT NOT NULL"),
    ("added_at", "TEXT NOT NULL"),
    *((f"{p}_{name}", kind) for p in _PREFIXES for name, kind in _STACK_COLUMNS),
)
_PAIR_NAMES = tuple(name for name, _ in _PAIR_COLUMNS)
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cells (
    cell_id TEXT PRIMARY KEY,
    split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test'))
);
CREATE TABLE pairs ({", ".join(f"{n} {k}" for n, k in _PAIR_COLUMNS)});
CREATE INDEX pairs_by_cell ON pairs (cell_id);
CREATE TABLE metrics (
    pair_id TEXT NOT NULL REFERENCES pairs(pair_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (pair_id, name)
);
"""
_LOCK_HINT = (
    "Another program is writing the catalog or holds it open in a transaction "
    "(e.g. a database browser); nothing was changed. Wait for it to finish or "
    "close it, then retry."
)


class Catalog:
    """Transactions on one ``catalog.sqlite`` file.

    Each call opens its own short-lived connection, so a `Catalog` can be
    pickled into worker processes and never holds a lock between calls.

    Parameters
    ----------
    root : Path
        The database folder (holding `CATALOG_NAME`).
    busy_timeout_s : float
        How long to wait for a lock held by another connection.

    """

    def __init__(self, root: Path, *, busy_timeout_s: float) -> None:
        self.root = root
        self.path = root / CATALOG_NAME
        self.busy_timeout_s = busy_timeout_s

    @contextlib.contextmanager
    def _connect(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        mode = "rwc" if create else "rw"
        uri = f"{self.path.resolve().as_uri()}?mode={mode}"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=self.busy_timeout_s, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise PairDatabaseError(
                f"cannot open the catalog {self.path}: {exc}",
                "Check that the folder is a pair database and readable.",
            ) from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            yield conn
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise PairDatabaseError(
                    f"the catalog {self.path} is locked by another connection "
                    f"(waited {self.busy_timeout_s:g} s)",
                    _LOCK_HINT,
                ) from exc
            raise self._damaged(exc) from exc
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from exc
        finally:
            conn.close()

    def _damaged(self, exc: Exception) -> PairDatabaseError:
        return PairDatabaseError(
            f"the catalog {self.path} cannot be used: {exc}",
            "It is not a pair database catalog, or it is damaged; restore it "
            "from a copy of the database.",
        )

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection inside a read transaction (one consistent snapshot)."""
        with self._connect() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def write(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection inside a write transaction, committed on success.

        The write lock is taken at the start (``BEGIN IMMEDIATE``), waiting at
        most ``busy_timeout_s``; any error rolls the transaction back.
        """
        with self._connect(create=create) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def initialise(self, fractions: tuple[float, float, float]) -> None:
        """Create the tables in a new, empty catalog file."""
        with self.write(create=True) as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("format", DATABASE_FORMAT),
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("split_fractions", json.dumps(list(fractions))),
                ],
            )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def read_meta(self) -> dict[str, str]:
        """Return the ``meta`` table, checking format and schema version."""
        with self.read() as conn:
            try:
                rows = conn.execute("SELECT key, value FROM meta").fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                rows = []
        meta = {str(k): str(v) for k, v in rows}
        if meta.get("format") != DATABASE_FORMAT:
            raise PairDatabaseError(
                f"{self.path} is not a pair database catalog (no format "
                f"{DATABASE_FORMAT!r} in its meta table)",
                "Open the folder that PairDatabase.create made.",
            )
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise PairDatabaseError(
                f"the catalog {self.path} has schema version "
                f"{meta.get('schema_version')!r}; this pairscope reads version "
                f"{SCHEMA_VERSION}",
                "Use the pairscope release that wrote the database.",
            )
        return meta

    @staticmethod
    def has_pair(conn: sqlite3.Connection, pair_id: str) -> bool:
        """Whether the catalog lists ``pair_id``."""
        row = conn.execute("SELECT 1 FROM pairs WHERE pair_id = ?", (pair_id,))
        return row.fetchone() is not None

    @staticmethod
    def insert_pair(
        conn: sqlite3.Connection,
        row: Mapping[str, Any],
        metrics: Mapping[str, float],
        fractions: tuple[float, float, float],
    ) -> None:
        """Insert one pair (and its cell), then re-derive every cell's split."""
        conn.execute(
            "INSERT OR IGNORE INTO cells (cell_id, split) VALUES (?, 'train')",
            (row["cell_id"],),
        )
        names = ", ".join(_PAIR_NAMES)
        marks = ", ".join("?" for _ in _PAIR_NAMES)
        conn.execute(
            f"INSERT INTO pairs ({names}) VALUES ({marks})",
            [row[name] for name in _PAIR_NAMES],
        )
        conn.executemany(
            "INSERT INTO metrics (pair_id, name, value) VALUES (?, ?, ?)",
            [
                (row["pair_id"], name, value if math.isfinite(value) else None)
                for name, value in metrics.items()
            ],
        )
        Catalog.update_splits(conn, fractions)

    @staticmethod
    def delete_pair(
        conn: sqlite3.Connection, pair_id: str, fractions: tuple[float, float, float]
    ) -> None:
        """Delete one pair (its cell too if it was the last), re-derive splits."""
        conn.execute("DELETE FROM metrics WHERE pair_id = ?", (pair_id,))
        conn.execute("DELETE FROM pairs WHERE pair_id = ?", (pair_id,))
        conn.execute(
            "DELETE FROM cells WHERE cell_id NOT IN (SELECT cell_id FROM pairs)"
        )
        Catalog.update_splits(conn, fractions)

    @staticmethod
    def update_splits(
        conn: sqlite3.Connection, fractions: tuple[float, float, float]
    ) -> None:
        """Store the split `assign_splits` gives every cell of the catalog."""
        current = dict(conn.execute("SELECT cell_id, split FROM cells").fetchall())
        wanted = assign_splits(current, fractions)
        conn.executemany(
            "UPDATE cells SET split = ? WHERE cell_id = ?",
            [(s, c) for c, s in wanted.items() if current[c] != s],
        )

    def records(
        self, conn: sqlite3.Connection, where: str = "", params: tuple[Any, ...] = ()
    ) -> list[PairRecord]:
        """Pairs matching an SQL condition on ``pairs`` (p) and ``cells`` (c)."""
        columns = ", ".join(f"p.{name}" for name in _PAIR_NAMES)
        sql = (
            f"SELECT {columns}, c.split FROM pairs p JOIN cells c USING (cell_id) "
            f"{where} ORDER BY p.cell_id, p.pair_id"
        )
        rows = conn.execute(sql, params).fetchall()
        metrics: dict[str, dict[str, float]] = {}
        for pair_id, name, value in conn.execute(
            "SELECT m.pair_id, m.name, m.value FROM metrics m "
            "JOIN pairs p USING (pair_id) JOIN cells c USING (cell_id) "
            f"{where} ORDER BY m.pair_id, m.name",
            params,
        ):
            metrics.setdefault(pair_id, {})[name] = (
                math.nan if value is None else float(value)
            )
        out = []
        for values in rows:
            row = dict(zip(_PAIR_NAMES, values[:-1], strict=True))
            out.append(
                PairRecord(
                    pair_id=row["pair_id"],
                    cell_id=row["cell_id"],
                    split=values[-1],
                    accepted=bool(row["accepted"]),
                    reason=row["reason"],
                    shape_zyx=(row["shape_z"], row["shape_y"], row["shape_x"]),
                    voxel_size_um=(
                        row["voxel_dz_um"],
                        row["voxel_dy_um"],
                        row["voxel_dx_um"],
                    ),
                    transform=MappingProxyType(json.loads(row["transform_json"])),
                    metrics=MappingProxyType(metrics.get(row["pair_id"], {})),
                    widefield=_stack_meta(row, "wf"),
                    confocal=_stack_meta(row, "cf"),
                    path=self.root / row["zarr_path"],
                    data_sha256=row["data_sha256"],
                    added_at=row["added_at"],
                )
            )
        return out


def stack_columns(prefix: str, meta: StackMeta) -> dict[str, Any]:
    """The ``wf_*`` or ``cf_*`` column values of one stack's provenance."""
    stage = meta.stage_xyz_um or (None, None, None)
    values = {
        "scope": meta.scope,
        "objective": meta.objective,
        "stage_x_um": stage[0],
        "stage_y_um": stage[1],
        "stage_z_um": stage[2],
        "voxel_dz_um": meta.voxel_size_um[0],
        "voxel_dy_um": meta.voxel_size_um[1],
        "voxel_dx_um": meta.voxel_size_um[2],
        "acquired_at": meta.acquired_at,
        "source": meta.source,
    }
    return {f"{prefix}_{name}": value for name, value in values.items()}


def _stack_meta(row: Mapping[str, Any], prefix: str) -> StackMeta:
    def get(name: str) -> Any:
        return row[f"{prefix}_{name}"]

    stage = (get("stage_x_um"), get("stage_y_um"), get("stage_z_um"))
    return StackMeta(
        scope=get("scope"),
        objective=get("objective"),
        stage_xyz_um=None if None in stage else stage,
        voxel_size_um=(get("voxel_dz_um"), get("voxel_dy_um"), get("voxel_dx_um")),
        acquired_at=get("acquired_at"),
        source=get("source"),
    )
