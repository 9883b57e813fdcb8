"""The paired-image database: storage, catalog, splits, failures and montages."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from acquire_helpers import timeout_s
from PIL import Image
from scipy import ndimage

from acquire.hardware.microscope import close_core, open_core, snap
from acquire.sim import groundtruth
from correlate.pairdb import (
    SPLITS,
    PairDatabase,
    PairDatabaseError,
    StackMeta,
    assign_splits,
    cell_unit_hash,
    montage_array,
    write_montage_png,
)

ROOT = Path(__file__).resolve().parents[2]
PLANES = 9
STEP_UM = 0.5
CONFOCAL_VOXEL_UM = (STEP_UM, 0.1, 0.1)


def _sim_stack(config: str, *, size_px: int) -> tuple[np.ndarray, float]:
    """A z-stack through simulated cell 0, snapped plane by plane."""
    core = open_core(ROOT / "hardware_configs" / config)
    try:
        camera = core.getCameraDevice()
        core.setProperty(camera, "RealTiming", "No")
        core.setProperty(camera, "SensorWidthPx", size_px)
        core.setProperty(camera, "SensorHeightPx", size_px)
        x, y, z = groundtruth.stage_position_of_cell(core, 0, height_um=2.0)
        core.setXYPosition(x, y)
        planes = []
        for k in range(PLANES):
            core.setPosition(z + (k - PLANES // 2) * STEP_UM)
            core.waitForSystem()
            planes.append(snap(core))
        return np.stack(planes).astype(np.float32), float(core.getPixelSizeUm())
    finally:
        close_core(core)


@pytest.fixture(scope="module")
def sim_pair() -> tuple[np.ndarray, np.ndarray]:
    """A confocal stack and a wide-field stack brought onto its grid (no registration:
    the centre of the wide-field field of view, zoomed to the confocal pixel)."""
    confocal, confocal_px = _sim_stack("demo_confocal.cfg", size_px=48)
    assert confocal_px == pytest.approx(CONFOCAL_VOXEL_UM[2])
    widefield_raw, widefield_px = _sim_stack("demo_widefield.cfg", size_px=48)
    crop = round(48 * confocal_px / widefield_px)
    start = (48 - crop) // 2
    centre = widefield_raw[:, start : start + crop, start : start + crop]
    widefield = ndimage.zoom(centre, (1, 48 / crop, 48 / crop), order=1)
    assert widefield.shape == confocal.shape == (PLANES, 48, 48)
    return widefield.astype(np.float32), confocal


def meta(scope: str, *, voxel: tuple[float, float, float], source: str) -> StackMeta:
    return StackMeta(
        scope=scope,
        objective="Plan-Apochromat 40x/1.4 Oil",
        stage_xyz_um=(1250.5, -830.25, 4012.0),
        voxel_size_um=voxel,
        acquired_at="2026-11-20T14:03:11+00:00",
        source=source,
    )


def add(
    db: PairDatabase,
    *,
    cell_id: str = "cs1-cell001",
    seed: int = 0,
    shape: tuple[int, int, int] = (4, 6, 5),
    accepted: bool = True,
    widefield: np.ndarray | None = None,
    confocal: np.ndarray | None = None,
    **overrides: Any,
) -> str:
    rng = np.random.default_rng(seed)
    wf = (
        rng.normal(100.0, 10.0, shape).astype(np.float32)
        if widefield is None
        else widefield
    )
    cf = (
        rng.normal(50.0, 5.0, shape).astype(np.float32)
        if confocal is None
        else confocal
    )
    arguments: dict[str, Any] = {
        "widefield": wf,
        "confocal": cf,
        "voxel_size_um": CONFOCAL_VOXEL_UM,
        "cell_id": cell_id,
        "transform": {"kind": "rigid", "matrix": np.eye(4), "z_offset_um": 1.25},
        "metrics": {"ncc": 0.87, "overlap": 0.95},
        "accepted": accepted,
        "reason": "" if accepted else "ncc below 0.5",
        "widefield_meta": meta(
            "WF-1", voxel=(0.5, 0.1625, 0.1625), source="wf.zarr:p0"
        ),
        "confocal_meta": meta("LSM 710", voxel=CONFOCAL_VOXEL_UM, source="cf.ome.tif"),
    }
    arguments.update(overrides)
    return db.add_pair(**arguments)


def folders(db: PairDatabase) -> list[str]:
    return sorted(p.name for p in (db.path / "pairs").iterdir())


@pytest.fixture
def db(tmp_path: Path) -> PairDatabase:
    return PairDatabase.create(tmp_path / "pairs-db", busy_timeout_s=0.2)


# --- storage round trip ---------------------------------------------------------


def test_simulated_pair_round_trips_bit_exact_with_ngff_scale(
    tmp_path: Path, sim_pair: tuple[np.ndarray, np.ndarray]
) -> None:
    widefield, confocal = sim_pair
    db = PairDatabase.create(tmp_path / "db")
    pair_id = add(db, widefield=widefield, confocal=confocal)
    wf, cf = db.load(pair_id)
    assert wf.dtype == cf.dtype == np.float32
    np.testing.assert_array_equal(wf, widefield)
    np.testing.assert_array_equal(cf, confocal)

    # the folder read by zarr-python directly, not by pairdb
    group = zarr.open_group(tmp_path / "db" / "pairs" / f"{pair_id}.ome.zarr", mode="r")
    assert group.metadata.zarr_format == 3
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    multiscale = ome["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "z", "y", "x"]
    assert [a.get("unit") for a in multiscale["axes"][1:]] == ["micrometer"] * 3
    dataset = multiscale["datasets"][0]
    assert dataset["coordinateTransformations"][0]["scale"] == [1.0, *CONFOCAL_VOXEL_UM]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["widefield", "confocal"]
    array = group[dataset["path"]]
    assert array.shape == (2, PLANES, 48, 48)
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array[0], widefield)
    np.testing.assert_array_equal(array[1], confocal)
    own = group.attrs["pairscope"]
    assert own["cell_id"] == "cs1-cell001"
    assert own["transform"]["matrix"] == np.eye(4).tolist()
    assert own["metrics"] == {"ncc": 0.87, "overlap": 0.95}
    assert own["widefield"]["voxel_size_um"] == [0.5, 0.1625, 0.1625]
    assert own["confocal"]["source"] == "cf.ome.tif"


def test_ome_zarr_reader_sees_the_scale(db: PairDatabase) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    pair_id = add(db)
    location = parse_url(str(db.record(pair_id).path))
    assert location is not None
    node = next(iter(Reader(location)()))
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale == [1.0, *CONFOCAL_VOXEL_UM]
    assert node.metadata["channel_names"] == ["widefield", "confocal"]


def test_record_holds_what_was_added_and_survives_reopening(db: PairDatabase) -> None:
    pair_id = add(db)
    record = db.record(pair_id)
    assert record.pair_id == pair_id and len(pair_id) == 16
    assert record.cell_id == "cs1-cell001"
    assert record.accepted and record.reason == ""
    assert record.shape_zyx == (4, 6, 5)
    assert record.voxel_size_um == CONFOCAL_VOXEL_UM
    assert dict(record.metrics) == {"ncc": 0.87, "overlap": 0.95}
    assert record.transform["matrix"][3] == [0.0, 0.0, 0.0, 1.0]
    assert record.widefield.scope == "WF-1"
    assert record.widefield.voxel_size_um == (0.5, 0.1625, 0.1625)
    assert record.confocal.stage_xyz_um == (1250.5, -830.25, 4012.0)
    assert record.confocal.acquired_at == "2026-11-20T14:03:11+00:00"
    assert record.split in SPLITS
    assert record.path == db.path / "pairs" / f"{pair_id}.ome.zarr"
    reopened = PairDatabase.open(db.path)
    assert reopened.record(pair_id) == record
    assert len(reopened) == 1 and pair_id in reopened
    assert reopened.catalog_sha256() == db.catalog_sha256()


def test_sources_beside_the_database_move_with_the_session(tmp_path: Path) -> None:
    session = tmp_path / "session"
    db = PairDatabase.create(session / "pairs-db")
    raw = session / "widefield" / "p0.ome.zarr"
    elsewhere = tmp_path / "archive" / "cf.ome.tif"
    pair_id = add(
        db,
        widefield_meta=meta("WF-1", voxel=(0.5, 0.1625, 0.1625), source=str(raw)),
        confocal_meta=meta("LSM 710", voxel=CONFOCAL_VOXEL_UM, source=str(elsewhere)),
    )
    record = db.record(pair_id)
    assert record.widefield.source == "../widefield/p0.ome.zarr"
    assert record.confocal.source == str(elsewhere)
    moved = tmp_path / "moved-session"
    session.rename(moved)
    reopened = PairDatabase.open(moved / "pairs-db")
    source = reopened.path / reopened.record(pair_id).widefield.source
    assert source.resolve() == (moved / "widefield" / "p0.ome.zarr").resolve()


def test_catalog_is_plain_sqlite_with_a_schema_version(db: PairDatabase) -> None:
    pair_id = add(db)
    conn = sqlite3.connect(db.path / "catalog.sqlite")
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        meta_rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        row = conn.execute(
            "SELECT cell_id, accepted, wf_scope, cf_scope, cf_voxel_dx_um, zarr_path "
            "FROM pairs WHERE pair_id = ?",
            (pair_id,),
        ).fetchone()
        metrics = dict(
            conn.execute(
                "SELECT name, value FROM metrics WHERE pair_id = ?", (pair_id,)
            )
        )
    finally:
        conn.close()
    assert meta_rows["schema_version"] == "1"
    assert row == (
        "cs1-cell001",
        1,
        "WF-1",
        "LSM 710",
        0.1,
        f"pairs/{pair_id}.ome.zarr",
    )
    assert metrics == {"ncc": 0.87, "overlap": 0.95}


def test_integer_stacks_are_stored_as_float32(db: PairDatabase) -> None:
    wf = np.arange(60, dtype=np.uint16).reshape(3, 4, 5)
    pair_id = add(db, widefield=wf, confocal=wf[::-1].copy())
    loaded_wf, loaded_cf = db.load(pair_id)
    np.testing.assert_array_equal(loaded_wf, wf.astype(np.float32))
    np.testing.assert_array_equal(loaded_cf, wf[::-1].astype(np.float32))


def test_unknown_metrics_are_nan_and_rejected_pairs_stay_out_of_training(
    db: PairDatabase,
) -> None:
    good = add(db, seed=1)
    bad = add(db, seed=2, accepted=False, metrics={"ncc": float("nan")})
    assert [r.pair_id for r in db.records()] == [good]
    assert {r.pair_id for r in db.records(accepted_only=False)} == {good, bad}
    rejected = db.record(bad)
    assert not rejected.accepted and rejected.reason == "ncc below 0.5"
    assert np.isnan(rejected.metrics["ncc"])
    split = db.record(good).split
    assert [r.pair_id for r in db.records(split)] == [good]
    assert len(db) == 2


# --- create / open ----------------------------------------------------------------


def test_create_never_overwrites(tmp_path: Path) -> None:
    PairDatabase.create(tmp_path / "db")
    with pytest.raises(PairDatabaseError, match="already holds a pair database"):
        PairDatabase.create(tmp_path / "db")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(PairDatabaseError, match="not an empty folder"):
        PairDatabase.create(other)
    assert (other / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(PairDatabase.create(empty)) == 0


def test_open_refuses_what_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(PairDatabaseError, match=r"no catalog\.sqlite"):
        PairDatabase.open(tmp_path)
    (tmp_path / "catalog.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(PairDatabaseError, match="catalog"):
        PairDatabase.open(tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    conn = sqlite3.connect(foreign / "catalog.sqlite")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(PairDatabaseError, match="not a pair database"):
        PairDatabase.open(foreign)


def test_open_refuses_another_schema_version(db: PairDatabase) -> None:
    conn = sqlite3.connect(db.path / "catalog.sqlite")
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(PairDatabaseError, match="schema version '99'"):
        PairDatabase.open(db.path)


# --- splits -----------------------------------------------------------------------


def random_ids(rng: random.Random, n: int) -> list[str]:
    return [
        "".join(rng.choices(string.ascii_lowercase + string.digits, k=10))
        for _ in range(n)
    ]


def test_split_fractions_approach_targets_and_ignore_order() -> None:
    rng = random.Random(5)
    cells = random_ids(rng, 4000)
    splits = assign_splits(cells)
    counts = {name: list(splits.values()).count(name) for name in SPLITS}
    assert counts["train"] / 4000 == pytest.approx(0.70, abs=0.025)
    assert counts["val"] / 4000 == pytest.approx(0.15, abs=0.02)
    assert counts["test"] / 4000 == pytest.approx(0.15, abs=0.02)
    shuffled = cells[:]
    rng.shuffle(shuffled)
    assert assign_splits(shuffled) == splits
    other = assign_splits(cells, (0.5, 0.25, 0.25))
    assert sum(s == "train" for s in other.values()) / 4000 == pytest.approx(
        0.5, abs=0.03
    )


def test_small_databases_get_every_split() -> None:
    rng = random.Random(11)
    for n in range(3, 13):
        for _ in range(150):
            splits = assign_splits(random_ids(rng, n))
            assert set(splits.values()) == set(SPLITS), n


def test_growing_a_database_stops_moving_cells_once_splits_fill_naturally() -> None:
    def natural(cell: str) -> str:
        u = cell_unit_hash(cell)
        return "train" if u < 0.7 else "val" if u < 0.85 else "test"

    rng = random.Random(3)
    cells = random_ids(rng, 120)
    previous: dict[str, str] = {}
    filled_at = None
    for n in range(1, len(cells) + 1):
        current = assign_splits(cells[:n])
        moved = [c for c, s in previous.items() if current[c] != s]
        if filled_at is None and {natural(c) for c in cells[:n]} == set(SPLITS):
            filled_at = n
        if filled_at is not None:  # every cell in its natural split from now on
            assert all(current[c] == natural(c) for c in current)
            assert n == filled_at or moved == []
        else:
            assert len(moved) <= 2  # borrowed cells going home
        previous = current
    assert filled_at is not None and filled_at < 40


def test_no_cell_spans_two_splits_and_reopening_keeps_splits(tmp_path: Path) -> None:
    db = PairDatabase.create(tmp_path / "db")
    cells = [f"coverslip{c // 4}-cell{c:03d}" for c in range(12)]
    for index, cell in enumerate(cells):
        for repeat in range(2):
            add(
                db,
                cell_id=cell,
                seed=100 * index + repeat,
                shape=(2, 3, 3),
                accepted=repeat == 0 or index % 3 != 0,
            )
    records = db.records(accepted_only=False)
    assert len(records) == 24
    by_cell: dict[str, set[str]] = {}
    for record in records:
        by_cell.setdefault(record.cell_id, set()).add(record.split)
    assert all(len(s) == 1 for s in by_cell.values())
    assert {s for (s,) in by_cell.values()} == set(SPLITS)
    assert db.cell_splits() == {c: next(iter(s)) for c, s in by_cell.items()}
    assert db.cell_splits() == assign_splits(cells)
    listed = [r.pair_id for split in SPLITS for r in db.records(split)]
    assert sorted(listed) == sorted(r.pair_id for r in db.records())
    reopened = PairDatabase.open(tmp_path / "db")
    assert reopened.records(accepted_only=False) == records
    assert reopened.cell_splits() == db.cell_splits()


# --- catalog hash -----------------------------------------------------------------


def test_catalog_hash_names_the_content_not_the_order(tmp_path: Path) -> None:
    first = PairDatabase.create(tmp_path / "a")
    second = PairDatabase.create(tmp_path / "b")
    empty_hash = first.catalog_sha256()
    ids = [add(first, cell_id=f"c{k}", seed=k) for k in range(4)]
    for k in reversed(range(4)):
        add(second, cell_id=f"c{k}", seed=k)
    assert first.catalog_sha256() == second.catalog_sha256() != empty_hash
    assert PairDatabase.open(tmp_path / "a").catalog_sha256() == first.catalog_sha256()
    before = first.catalog_sha256()
    first.remove_pair(ids[0])
    assert first.catalog_sha256() != before
    assert ids[0] not in first and len(first) == 3
    assert not first.record(ids[1]).path.parent.joinpath(f"{ids[0]}.ome.zarr").exists()
    add(first, cell_id="c0", seed=0)
    assert first.catalog_sha256() == before


def test_adding_the_same_pair_twice_is_refused(db: PairDatabase) -> None:
    pair_id = add(db)
    with pytest.raises(PairDatabaseError, match=f"{pair_id}.*already in"):
        add(db)
    assert len(db) == 1 and folders(db) == [f"{pair_id}.ome.zarr"]


# --- failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("widefield", "confocal", "message"),
    [
        (
            np.zeros((2, 3, 4)),
            np.zeros((2, 3, 5)),
            r"\(2, 3, 4\).*\(2, 3, 5\).*same grid",
        ),
        (np.zeros((3, 4)), np.zeros((3, 4)), "not \\(z, y, x\\)"),
        (np.zeros((1, 2, 3, 4)), np.zeros((1, 2, 3, 4)), "not \\(z, y, x\\)"),
        (np.full((2, 2, 2), np.nan), np.zeros((2, 2, 2)), "8 NaN or infinite"),
        (np.zeros((2, 2, 2), dtype=complex), np.zeros((2, 2, 2)), "non-real"),
    ],
)
def test_bad_stacks_are_refused(
    db: PairDatabase, widefield: np.ndarray, confocal: np.ndarray, message: str
) -> None:
    with pytest.raises(PairDatabaseError, match=message):
        add(db, widefield=widefield, confocal=confocal)
    assert len(db) == 0 and folders(db) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"voxel_size_um": (0.5, 0.0, 0.1)}, "positive"),
        ({"voxel_size_um": (0.1, 0.1)}, "2 values"),
        ({"cell_id": " "}, "cell_id"),
        ({"transform": {"t": float("inf")}}, "non-finite"),
        ({"transform": {"t": object()}}, "no JSON form"),
        ({"transform": [1, 2]}, "not a mapping"),
        ({"metrics": {"ncc": "high"}}, "not a number"),
        ({"accepted": 1}, "True or False"),
        ({"confocal_meta": {"scope": "x"}}, "not a StackMeta"),
    ],
)
def test_bad_arguments_are_refused(
    db: PairDatabase, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(PairDatabaseError, match=message):
        add(db, **overrides)
    assert len(db) == 0 and folders(db) == []


def test_stack_meta_checks_its_fields() -> None:
    with pytest.raises(PairDatabaseError, match="ISO 8601"):
        StackMeta(
            scope="WF-1",
            objective=None,
            stage_xyz_um=None,
            voxel_size_um=(0.5, 0.1, 0.1),
            acquired_at="yesterday",
            source="x",
        )
    with pytest.raises(PairDatabaseError, match="no scope"):
        StackMeta("", None, None, (1.0, 1.0, 1.0), None, "x")


def test_missing_pair_folder_is_reported_on_load(db: PairDatabase) -> None:
    pair_id = add(db)
    path = db.record(pair_id).path
    shutil.rmtree(path)
    with pytest.raises(
        PairDatabaseError, match=f"folder {path} of pair {pair_id} is missing"
    ):
        db.load(pair_id)
    db.remove_pair(pair_id)
    assert len(db) == 0


def chunk_files(db: PairDatabase, pair_id: str) -> list[Path]:
    array = db.record(pair_id).path / "0"
    return sorted(p for p in array.rglob("*") if p.is_file() and p.name != "zarr.json")


def test_truncated_chunk_is_reported_on_load(db: PairDatabase) -> None:
    pair_id = add(db, shape=(3, 40, 40))
    chunk = chunk_files(db, pair_id)[0]
    chunk.write_bytes(chunk.read_bytes()[:20])
    with pytest.raises(
        PairDatabaseError, match=f"cannot read pair {pair_id}.*truncated"
    ):
        db.load(pair_id)


def test_deleted_or_altered_chunk_fails_the_hash_check(db: PairDatabase) -> None:
    pair_id = add(db, shape=(3, 40, 40))
    chunks = chunk_files(db, pair_id)
    assert len(chunks) == 2  # one chunk per channel at this size
    chunks[1].unlink()  # zarr would read the fill value silently
    with pytest.raises(PairDatabaseError, match="do not match the hash"):
        db.load(pair_id)
    wf, cf = db.load(pair_id, verify=False)
    assert not cf.any() and wf.any()


def test_locked_catalog_fails_cleanly_and_leaves_the_database_as_it_was(
    db: PairDatabase,
) -> None:
    add(db, seed=1)
    before = (len(db), folders(db), db.catalog_sha256())
    holder = sqlite3.connect(db.path / "catalog.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(PairDatabaseError, match="locked by another connection"):
            add(db, seed=2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (len(db), folders(db), db.catalog_sha256()) == before
    add(db, seed=2)
    assert len(db) == 2


def test_lock_taken_while_the_pair_is_written_leaves_no_folder(
    db: PairDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from correlate.pairdb import database

    holder = sqlite3.connect(db.path / "catalog.sqlite", isolation_level=None)
    original = database.write_pair_zarr

    def write_then_lock(path: Path, **kwargs: Any) -> None:
        original(path, **kwargs)
        assert path.is_dir()
        holder.execute("BEGIN EXCLUSIVE")

    monkeypatch.setattr(database, "write_pair_zarr", write_then_lock)
    try:
        with pytest.raises(PairDatabaseError, match="locked"):
            add(db)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(db) == 0 and folders(db) == []


def test_failed_insert_after_the_rename_removes_the_pair_folder(
    db: PairDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = add(db, seed=1)
    before = db.catalog_sha256()
    from correlate.pairdb.catalog import Catalog

    def fail(*args: Any) -> None:
        assert len(folders(db)) == 2  # renamed into place, row not yet inserted
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Catalog, "insert_pair", staticmethod(fail))
    with pytest.raises(PairDatabaseError, match="disk I/O error"):
        add(db, seed=2)
    assert folders(db) == [f"{kept}.ome.zarr"]
    assert db.catalog_sha256() == before and len(db) == 1


def test_catalog_locked_by_another_process(db: PairDatabase) -> None:
    code = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "c.execute('ROLLBACK')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(db.path / "catalog.sqlite")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "locked\n"
        with pytest.raises(PairDatabaseError, match="locked"):
            add(db)
        with pytest.raises(PairDatabaseError, match="locked"):
            db.records()
    finally:
        process.communicate("\n", timeout=timeout_s(30))
    assert process.returncode == 0
    assert len(db) == 0 and folders(db) == []


def test_leftovers_of_a_crashed_add_are_ignored_replaced_and_cleaned(
    db: PairDatabase, tmp_path: Path
) -> None:
    # a complete pair folder whose catalog insert never happened (crash after
    # the rename), and a half-written temporary folder
    scratch = PairDatabase.create(tmp_path / "scratch")
    pair_id = add(scratch, seed=7)
    shutil.copytree(
        scratch.record(pair_id).path, db.path / "pairs" / f"{pair_id}.ome.zarr"
    )
    (db.path / "pairs" / ".tmp-0123456789abcdef-deadbeef.ome.zarr" / "0").mkdir(
        parents=True
    )
    assert len(db) == 0 and db.records(accepted_only=False) == []
    kept = add(db, seed=8)
    # the orphan goes at once; a temporary folder may belong to a running add
    assert [p.name for p in db.clean_up()] == [f"{pair_id}.ome.zarr"]
    assert [p.name for p in db.clean_up(temp_age_s=0.0)] == [
        ".tmp-0123456789abcdef-deadbeef.ome.zarr"
    ]
    assert folders(db) == [f"{kept}.ome.zarr"]
    # adding the orphaned pair for real replaces a leftover folder
    shutil.copytree(
        scratch.record(pair_id).path, db.path / "pairs" / f"{pair_id}.ome.zarr"
    )
    assert add(db, seed=7) == pair_id
    np.testing.assert_array_equal(db.load(pair_id)[0], scratch.load(pair_id)[0])


def test_unknown_pair_and_split(db: PairDatabase) -> None:
    with pytest.raises(PairDatabaseError, match="no pair 'nope'"):
        db.record("nope")
    with pytest.raises(PairDatabaseError, match="unknown split 'training'"):
        db.records("training")
    with pytest.raises(PairDatabaseError, match="no pair 'nope'"):
        db.remove_pair("nope")


# --- montage ----------------------------------------------------------------------


def test_montage_panels_show_projections_at_isotropic_aspect(tmp_path: Path) -> None:
    nz, ny, nx = 6, 20, 30
    dz, dx = 0.8, 0.1
    wf = np.zeros((nz, ny, nx), np.float32)
    cf = np.zeros((nz, ny, nx), np.float32)
    wf[1, 5, 7] = 100.0  # a bright voxel in plane 1
    cf[4, 12, 20] = 50.0  # and one in plane 4
    path = write_montage_png(
        tmp_path / "m.png", wf, cf, (dz, dx, dx), percentiles=(0.0, 100.0), gap_px=3
    )
    image = np.asarray(Image.open(path).convert("RGB"))
    xz_rows = round(nz * dz / dx)  # 48 rows for 6 planes of 0.8 um at 0.1 um
    assert image.shape == (ny + 3 + xz_rows, 3 * nx + 2 * 3, 3)
    wf_xy = image[:ny, :nx, 0]
    assert np.unravel_index(np.argmax(wf_xy), wf_xy.shape) == (5, 7)
    cf_xy = image[:ny, nx + 3 : 2 * nx + 3, 1]
    assert np.unravel_index(np.argmax(cf_xy), cf_xy.shape) == (12, 20)
    # XZ: plane k is centred on row (k + 0.5) * dz / dx
    wf_xz = image[ny + 3 :, :nx, 0].astype(float)
    profile = wf_xz[:, 7]
    centre = (profile * np.arange(xz_rows)).sum() / profile.sum()
    assert centre == pytest.approx((1 + 0.5) * dz / dx, abs=1.0)
    cf_xz = image[ny + 3 :, nx + 3 : 2 * nx + 3, 1].astype(float)[:, 20]
    assert (cf_xz * np.arange(xz_rows)).sum() / cf_xz.sum() == pytest.approx(
        4.5 * dz / dx, abs=1.0
    )
    # overlay: wide-field magenta (R, B), confocal green
    overlay = image[:ny, 2 * (nx + 3) :]
    assert tuple(overlay[5, 7]) == (255, 0, 255)
    assert tuple(overlay[12, 20]) == (0, 255, 0)


def test_montage_of_simulated_pair(
    tmp_path: Path, sim_pair: tuple[np.ndarray, np.ndarray]
) -> None:
    widefield, confocal = sim_pair
    db = PairDatabase.create(tmp_path / "db")
    pair_id = add(db, widefield=widefield, confocal=confocal)
    path = db.write_montage(pair_id, tmp_path / "pair.png", projection="middle")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (48 + 4 + PLANES * 5, 3 * 48 + 2 * 4, 3)
    # the XY panels are the middle planes, percentile-scaled
    for column, stack in enumerate((widefield, confocal)):
        panel = image[:48, column * 52 : column * 52 + 48, 0].astype(float)
        plane = stack[PLANES // 2]
        assert np.corrcoef(panel.ravel(), plane.ravel())[0, 1] > 0.95
    with pytest.raises(PairDatabaseError, match="one shape"):
        montage_array(widefield, confocal[:, :10], CONFOCAL_VOXEL_UM)
    with pytest.raises(PairDatabaseError, match="projection"):
        montage_array(widefield, confocal, CONFOCAL_VOXEL_UM, projection="mean")


def test_records_are_json_friendly(db: PairDatabase) -> None:
    pair_id = add(db)
    record = db.record(pair_id)
    json.dumps({"transform": dict(record.transform), "wf": record.widefield.to_json()})
    assert StackMeta.from_json(record.confocal.to_json()) == record.confocal


WRITER_CHILD = """
import sys
sys.path[:0] = sys.argv[3:5]  # this folder and the tests' shared helpers
from test_pairdb import add
from correlate.pairdb import DuplicatePairError, PairDatabase

db = PairDatabase.open(sys.argv[1], busy_timeout_s=30.0)
writer = int(sys.argv[2])
added = duplicates = 0
print("ready", flush=True)
sys.stdin.readline()
for seed in range(8):  # the same pairs in every writer: a rerun raced by another
    try:
        add(db, seed=seed, cell_id=f"shared{seed}")
        added += 1
    except DuplicatePairError:
        duplicates += 1
for seed in range(4):  # this writer's own
    add(db, seed=100 * (writer + 1) + seed, cell_id=f"w{writer}-{seed}")
print(added, duplicates, flush=True)
"""


def test_several_writer_processes_store_every_pair_once(db: PairDatabase) -> None:
    here = Path(__file__).resolve().parent
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER_CHILD,
                str(db.path),
                str(w),
                str(here),
                str(here.parent),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(3)
    ]
    for writer in writers:  # all started and importing done: write at once
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n", writer.communicate()[1]
    results = [writer.communicate("go\n", timeout=timeout_s(120)) for writer in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in results]
    counts = [tuple(map(int, out.split())) for out, _ in results]
    # each shared pair went in exactly once; the other writers were told so
    assert sum(added for added, _ in counts) == 8
    assert all(added + duplicates == 8 for added, duplicates in counts)
    records = db.records(accepted_only=False)
    assert len(records) == 8 + 3 * 4
    assert len({r.pair_id for r in records}) == len(records)
    assert sorted(folders(db)) == sorted(f"{r.pair_id}.ome.zarr" for r in records)
    for record in records:  # every pair reads back whole
        db.load(record.pair_id)
