"""Crash-safe dataset storage, read back with zarr-python and ome-zarr (not ours)."""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

from acquire.errors import UserError
from acquire.storage.dataset import Dataset
from acquire.storage.errors import DatasetError
from acquire.storage.spec import StackSpec

if TYPE_CHECKING:
    from pathlib import Path

    from acquire.storage.stack_writer import StackWriter

IDENTITY = {"sequence_hash": "seq-1234", "config_hash": "cfg-5678"}
VOXEL_UM = (0.5, 0.1625, 0.1625)


def pattern(name: str, c: int, z: int, shape_yx: tuple[int, int]) -> np.ndarray:
    """Deterministic, stack-specific pixels (also written into the kill child)."""
    seed = zlib.crc32(name.encode()) % 20000
    yy, xx = np.indices(shape_yx)
    return ((yy * 131 + xx * 7 + seed + 1000 * c + 17 * z) % 65536).astype(np.uint16)


def make_spec(name: str = "t0000_p0000_g0000", **changes: Any) -> StackSpec:
    fields: dict[str, Any] = {
        "name": name,
        "n_channels": 2,
        "n_planes": 3,
        "shape_yx": (16, 24),
        "dtype": "uint16",
        "voxel_size_um": VOXEL_UM,
        "channel_names": ("DAPI", "FITC"),
        "position_name": "pos-A",
        "scope_name": "widefield",
    }
    fields.update(changes)
    return StackSpec(**fields)


def plane_metadata(c: int, z: int) -> dict[str, Any]:
    return {
        "stage_x_um": np.float64(100.5),
        "stage_y_um": -20.25,
        "stage_z_um": 1000.0 + 0.5 * z,
        "timestamp": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "exposure_ms": np.float32(12.5),
        "objective": "Plan-Apochromat 40x/1.3 Oil",
        "channel": ("DAPI", "FITC")[c],
        "scope": "widefield",
    }


def write_planes(writer: StackWriter, skip: set[tuple[int, int]] | None = None) -> None:
    spec = writer.spec
    for c in range(spec.n_channels):
        for z in range(spec.n_planes):
            if (c, z) not in (skip or set()):
                plane = pattern(spec.name, c, z, spec.shape_yx)
                writer.write_plane(c, z, plane, plane_metadata(c, z))


def commit_stack(dataset: Dataset, name: str) -> Path:
    writer = dataset.begin_stack(make_spec(name))
    write_planes(writer)
    return writer.commit()


def expected_stack(spec: StackSpec) -> np.ndarray:
    return np.stack(
        [
            np.stack([pattern(spec.name, c, z, spec.shape_yx) for z in range(3)])
            for c in range(2)
        ]
    )


def journal_lines(dataset: Path) -> list[dict[str, Any]]:
    """Complete journal entries, parsed here (not with the storage code)."""
    entries = []
    for line in (dataset / "journal.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def zarr_sha256(stack: Path) -> str:
    pixels = zarr.open_group(stack, mode="r")["0"][:]
    return hashlib.sha256(
        np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ).hexdigest()


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    return Dataset.create(tmp_path / "run", {**IDENTITY, "operator": "test"})


# -- layout, round trip ------------------------------------------------------


def test_create_writes_the_layout_and_manifest(tmp_path: Path) -> None:
    ds = Dataset.create(tmp_path / "new" / "run", {**IDENTITY})
    assert sorted(p.name for p in ds.path.iterdir()) == [
        ".pairscope.lock",
        ".pairscope.owner.json",
        ".staging",
        "journal.jsonl",
        "manifest.json",
    ]
    manifest = json.loads((ds.path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "pairscope-dataset"
    assert manifest["format_version"] == 1
    assert manifest["status"] == "running"
    assert manifest["failures"] == []
    assert manifest["sequence_hash"] == "seq-1234"
    assert ds.manifest == manifest
    assert ds.committed() == frozenset()


def test_committed_stack_reads_back_with_zarr(dataset: Dataset) -> None:
    spec = make_spec()
    writer = dataset.begin_stack(spec)
    write_planes(writer)
    assert writer.complete
    path = writer.commit()

    assert path == dataset.path / "t0000_p0000_g0000.ome.zarr"
    assert not (dataset.path / ".staging" / path.name).exists()
    group = zarr.open_group(path, mode="r")
    array = group["0"]
    assert isinstance(array, zarr.Array)
    assert array.shape == (2, 3, 16, 24)
    assert array.dtype == np.dtype("uint16")
    assert array.chunks == (1, 1, 16, 24)
    assert tuple(array.metadata.dimension_names or ()) == ("c", "z", "y", "x")
    np.testing.assert_array_equal(array[:], expected_stack(spec))

    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    (multiscale,) = ome["multiscales"]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "z", "y", "x"]
    assert [a["type"] for a in multiscale["axes"]] == [
        "channel",
        "space",
        "space",
        "space",
    ]
    assert [a.get("unit") for a in multiscale["axes"][1:]] == ["micrometer"] * 3
    (level,) = multiscale["datasets"]
    assert level["path"] == "0"
    # scale, then the stage position of voxel (0, 0, 0): the first plane's z,
    # the field's centre at the recorded x and y
    dz, dy, dx = VOXEL_UM
    assert level["coordinateTransformations"] == [
        {"type": "scale", "scale": [1.0, dz, dy, dx]},
        {
            "type": "translation",
            "translation": [0.0, 1000.0, -20.25 - 7.5 * dy, 100.5 - 11.5 * dx],
        },
    ]
    channels = ome["omero"]["channels"]
    assert [ch["label"] for ch in channels] == ["DAPI", "FITC"]
    # colours by dye, not by order: DAPI blue, FITC green
    assert [ch["color"] for ch in channels] == ["0000FF", "00FF00"]
    first = expected_stack(spec)[0]
    assert channels[0]["window"]["start"] == first.min()
    assert channels[0]["window"]["end"] == first.max()

    ours = group.attrs["pairscope"]
    assert ours["position_name"] == "pos-A"
    assert ours["scope_name"] == "widefield"
    planes = ours["planes"]
    assert [(p["c"], p["z"]) for p in planes] == [
        (c, z) for c in (0, 1) for z in (0, 1, 2)
    ]
    assert planes[4] == {
        "c": 1,
        "z": 1,
        "stage_x_um": 100.5,
        "stage_y_um": -20.25,
        "stage_z_um": 1000.5,
        "timestamp": "2026-01-02T03:04:05+00:00",
        "exposure_ms": 12.5,
        "objective": "Plan-Apochromat 40x/1.3 Oil",
        "channel": "FITC",
        "scope": "widefield",
    }
    assert writer.plane_metadata() == planes
    np.testing.assert_array_equal(writer.data(), expected_stack(spec))

    (line,) = journal_lines(dataset.path)
    assert line["stack"] == spec.name
    assert line["path"] == path.name
    assert line["planes"] == 6
    assert dt.datetime.fromisoformat(line["committed_at"]).tzinfo is not None
    assert line["sha256"] == zarr_sha256(path) == ours["sha256"]
    assert dataset.committed() == {spec.name}


def test_committed_stack_opens_with_ome_zarr_and_validates(dataset: Dataset) -> None:
    reader = pytest.importorskip("ome_zarr.reader")
    ome_io = pytest.importorskip("ome_zarr.io")
    path = commit_stack(dataset, "t0000_p0000_g0000")
    node = next(iter(reader.Reader(ome_io.parse_url(str(path)))()))
    assert node.metadata["channel_names"] == ["DAPI", "FITC"]
    dz, dy, dx = VOXEL_UM
    assert node.metadata["coordinateTransformations"] == [
        [
            {"type": "scale", "scale": [1.0, dz, dy, dx]},
            {
                "type": "translation",
                "translation": [0.0, 1000.0, -20.25 - 7.5 * dy, 100.5 - 11.5 * dx],
            },
        ]
    ]
    np.testing.assert_array_equal(
        np.asarray(node.data[0]), expected_stack(make_spec("t0000_p0000_g0000"))
    )
    yaozarrs = pytest.importorskip("yaozarrs")
    yaozarrs.validate_zarr_store(str(path))


def test_float_stack_and_safe_upcast(dataset: Dataset) -> None:
    spec = make_spec(
        "floats", n_channels=1, n_planes=1, dtype="float32", channel_names=("enhanced",)
    )
    writer = dataset.begin_stack(spec)
    plane = np.linspace(0, 1, 16 * 24, dtype=np.float32).reshape(16, 24)
    plane[0, 0] = np.nan
    writer.write_plane(0, 0, plane, {"value": float("nan")})
    path = writer.commit()
    group = zarr.open_group(path, mode="r")
    np.testing.assert_array_equal(group["0"][0, 0], plane)
    assert group.attrs["pairscope"]["planes"][0]["value"] is None
    window = group.attrs["ome"]["omero"]["channels"][0]["window"]
    assert (window["start"], window["end"]) == (plane[0, 1], 1.0)

    upcast = dataset.begin_stack(
        make_spec("bytes", n_channels=1, n_planes=1, channel_names=("x",))
    )
    upcast.write_plane(0, 0, np.full((16, 24), 255, np.uint8), {})
    assert zarr.open_group(upcast.commit(), mode="r")["0"][0, 0, 0, 0] == 255


# -- refusals ----------------------------------------------------------------


def test_commit_refuses_an_incomplete_stack_and_abort_cleans_up(
    dataset: Dataset,
) -> None:
    writer = dataset.begin_stack(make_spec())
    write_planes(writer, skip={(1, 2), (0, 0)})
    assert not writer.complete
    assert writer.missing == ((0, 0), (1, 2))
    with pytest.raises(DatasetError) as info:
        writer.commit()
    message = str(info.value)
    assert "missing 2 of 6 planes (c=0 z=0, c=1 z=2)" in message
    assert "t0000_p0000_g0000" in message
    assert "abort" in message
    assert isinstance(info.value, UserError)
    assert journal_lines(dataset.path) == []
    assert not dataset.stack_path("t0000_p0000_g0000").exists()

    staging = dataset.path / ".staging" / "t0000_p0000_g0000.ome.zarr"
    assert staging.is_dir()
    writer.abort()
    assert not staging.exists()
    with pytest.raises(DatasetError, match="is aborted"):
        writer.write_plane(0, 0, np.zeros((16, 24), np.uint16), {})
    assert dataset.committed() == frozenset()


@pytest.mark.parametrize(
    ("c", "z", "plane", "needle"),
    [
        (2, 0, np.zeros((16, 24), np.uint16), "outside the stack"),
        (0, -1, np.zeros((16, 24), np.uint16), "outside the stack"),
        (0, 0, np.zeros((24, 16), np.uint16), "has shape (24, 16)"),
        (0, 0, np.zeros((16, 24), np.float64), "float64, which uint16 cannot hold"),
        (0, 0, np.zeros((16, 24), np.int32), "int32, which uint16 cannot hold"),
        (0, 0, [[0] * 24] * 16, "not a numpy array"),
    ],
)
def test_write_plane_refuses_bad_planes(
    dataset: Dataset, c: int, z: int, plane: Any, needle: str
) -> None:
    writer = dataset.begin_stack(make_spec())
    with pytest.raises(DatasetError, match="plane c=") as info:
        writer.write_plane(c, z, plane, {})
    assert needle in str(info.value)


def test_write_plane_refuses_metadata_without_json_form(dataset: Dataset) -> None:
    writer = dataset.begin_stack(make_spec())
    with pytest.raises(DatasetError, match=r"'device.handle'.*object"):
        writer.write_plane(
            0, 0, np.zeros((16, 24), np.uint16), {"device": {"handle": object()}}
        )


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"name": "../escape"}, "not a valid folder name"),
        ({"name": "NUL"}, "reserved by Windows"),
        ({"n_planes": 0}, "n_planes must be a positive integer"),
        ({"shape_yx": (16,)}, "shape_yx must be two positive integers"),
        ({"dtype": "complex64"}, "not an integer or float type"),
        ({"dtype": "nonsense"}, "not an integer or float type"),
        ({"voxel_size_um": (0.0, 0.1, 0.1)}, "z step of the sequence"),
        ({"channel_names": ("DAPI",)}, "channel_names must be 2 non-empty names"),
    ],
)
def test_stack_spec_refuses_bad_fields(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(DatasetError) as info:
        make_spec(**changes)
    assert needle in str(info.value)


def test_create_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        Dataset.create(folder, IDENTITY)
    assert str(info.value) == (
        f"output folder {folder} already exists and is not empty. "
        "Choose a new or empty folder for the dataset."
    )
    Dataset.create(tmp_path / "run", IDENTITY)
    with pytest.raises(DatasetError, match="Resume the dataset in it"):
        Dataset.create(tmp_path / "run", IDENTITY)
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(DatasetError, match="is a file"):
        Dataset.create(tmp_path / "file", IDENTITY)
    with pytest.raises(DatasetError, match="reserved key"):
        Dataset.create(tmp_path / "other", {"status": "complete"})


def test_resume_refuses_a_different_identity(dataset: Dataset) -> None:
    commit_stack(dataset, "t0000_p0000_g0000")
    with pytest.raises(DatasetError) as info:
        Dataset.resume(dataset.path, identity={**IDENTITY, "config_hash": "other"})
    message = str(info.value)
    assert f"the output folder {dataset.path} already holds a different dataset" in (
        message
    )
    assert "config_hash" in message
    assert "Choose a new output folder" in message
    with pytest.raises(DatasetError, match="has no such key"):
        Dataset.resume(dataset.path, identity={"sample": "cells"})
    assert dataset.committed() == {"t0000_p0000_g0000"}


def test_resume_refuses_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset.resume(tmp_path / "nowhere", identity=IDENTITY)
    with pytest.raises(DatasetError, match=r"not a pairscope dataset \(it has no"):
        Dataset.resume(tmp_path, identity=IDENTITY)
    (tmp_path / "manifest.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(DatasetError, match="not a pairscope dataset"):
        Dataset.resume(tmp_path, identity=IDENTITY)


def test_begin_stack_refuses_committed_and_open_names(dataset: Dataset) -> None:
    commit_stack(dataset, "t0000_p0000_g0000")
    with pytest.raises(DatasetError, match="already committed"):
        dataset.begin_stack(make_spec("t0000_p0000_g0000"))
    first = dataset.begin_stack(make_spec("t0001_p0000_g0000"))
    with pytest.raises(DatasetError, match="already being written"):
        dataset.begin_stack(make_spec("t0001_p0000_g0000"))
    first.abort()
    again = dataset.begin_stack(make_spec("t0001_p0000_g0000"))
    write_planes(again)
    again.commit()
    with pytest.raises(DatasetError, match="committed and cannot be aborted"):
        again.abort()
    assert dataset.committed() == {"t0000_p0000_g0000", "t0001_p0000_g0000"}


def test_manifest_updates_failures_and_completion(dataset: Dataset) -> None:
    dataset.update_manifest(note="first pass", n_stacks=np.int64(4))
    dataset.record_failure("camera timed out", stack="t0003_p0000_g0000", retries=3)
    on_disk = json.loads((dataset.path / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["note"] == "first pass"
    assert on_disk["n_stacks"] == 4
    assert on_disk["status"] == "failed"
    (failure,) = on_disk["failures"]
    assert failure["message"] == "camera timed out"
    assert failure["stack"] == "t0003_p0000_g0000"
    dataset.mark_complete()
    on_disk = json.loads((dataset.path / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["status"] == "complete"
    assert "completed_at" in on_disk
    assert on_disk == dataset.manifest
    with pytest.raises(DatasetError, match="cannot change failures"):
        dataset.update_manifest(failures=[])
    assert sorted(p.name for p in dataset.path.iterdir()) == [
        ".pairscope.lock",
        ".pairscope.owner.json",
        ".staging",
        "journal.jsonl",
        "manifest.json",
    ]


# -- crashes -----------------------------------------------------------------


def test_resume_after_simulated_crashes(dataset: Dataset) -> None:
    for name in ("a", "b", "c", "d"):
        commit_stack(dataset, name)
    lines = (dataset.path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    # c: renamed into place, crash before its journal line.
    # d: renamed into place, crash in the middle of its journal line.
    torn = lines[3][:40]
    (dataset.path / "journal.jsonl").write_text(
        lines[0] + "\n" + lines[1] + "\n" + torn, encoding="utf-8"
    )
    # e: some planes written, then the writer is dropped without commit.
    partial = dataset.begin_stack(make_spec("e"))
    write_planes(partial, skip={(1, 2)})
    del partial
    # A stray temporary manifest from a crash in the middle of a rewrite.
    (dataset.path / ".manifest.json.0123abcd.tmp").write_text("{", encoding="utf-8")

    resumed = Dataset.resume(dataset.path, identity=IDENTITY)

    # c and d are whole (their pixels match the checksum in their attributes):
    # adopted, not taken again; e's partial planes are gone
    assert resumed.committed() == {"a", "b", "c", "d"}
    assert sorted(p.name for p in dataset.path.iterdir()) == [
        ".pairscope.lock",
        ".pairscope.owner.json",
        ".staging",
        "OME",
        "a.ome.zarr",
        "b.ome.zarr",
        "c.ome.zarr",
        "d.ome.zarr",
        "journal.jsonl",
        "manifest.json",
        "zarr.json",
    ]
    # the collection index lists the adopted stacks too
    index = json.loads((dataset.path / "OME" / "zarr.json").read_text("utf-8"))
    assert index["attributes"]["ome"]["series"] == [
        f"{n}.ome.zarr" for n in ("a", "b", "c", "d")
    ]
    staging = dataset.path / ".staging"
    assert list(staging.iterdir()) == []
    record = resumed.manifest["resumes"][-1]
    assert record["adopted"] == ["c", "d"] and record["orphans"] == []
    assert record["staging_removed"] == ["e.ome.zarr"]
    assert record["journal_lines_skipped"] == 1
    assert resumed.manifest["status"] == "running"

    # Only the stack lost to the crash is taken again; the torn line stays apart.
    commit_stack(resumed, "e")
    raw = (dataset.path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    assert raw[2] == torn
    assert [e["stack"] for e in journal_lines(dataset.path)] == list("abcde")
    again = Dataset.resume(dataset.path, identity=IDENTITY)
    assert again.committed() == set("abcde")
    for entry in journal_lines(dataset.path):
        assert zarr_sha256(dataset.path / entry["path"]) == entry["sha256"]
        np.testing.assert_array_equal(
            zarr.open_group(dataset.path / entry["path"], mode="r")["0"][:],
            expected_stack(make_spec(entry["stack"])),
        )


def test_resume_refuses_a_lost_committed_folder(dataset: Dataset) -> None:
    path = commit_stack(dataset, "a")
    shutil.rmtree(path)
    with pytest.raises(DatasetError, match="lists stack 'a' but its folder"):
        Dataset.resume(dataset.path, identity=IDENTITY)


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges")
@pytest.mark.parametrize("link", [".staging", ".staging/orphans"])
def test_resume_never_empties_or_fills_a_folder_outside_the_dataset(
    dataset: Dataset, tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "notes.txt").write_text("keep me")
    (outside / "other.ome.zarr").mkdir()
    linked = dataset.path / link
    shutil.rmtree(linked, ignore_errors=True)
    linked.parent.mkdir(exist_ok=True)
    linked.symlink_to(outside, target_is_directory=True)
    (dataset.path / "stray.ome.zarr").mkdir()  # an orphan resume would move
    with pytest.raises(DatasetError, match=r"is a link to .*precious.*Remove the link"):
        Dataset.resume(dataset.path, identity=IDENTITY)
    assert sorted(p.name for p in outside.iterdir()) == ["notes.txt", "other.ome.zarr"]
    assert (dataset.path / "stray.ome.zarr").is_dir()


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges")
def test_a_link_inside_staging_is_removed_as_a_link(
    dataset: Dataset, tmp_path: Path
) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "notes.txt").write_text("keep me")
    (dataset.path / ".staging" / "t0000_p0000_g0000.ome.zarr").symlink_to(outside)
    Dataset.resume(dataset.path, identity=IDENTITY)
    assert (outside / "notes.txt").read_text() == "keep me"
    assert list((dataset.path / ".staging").iterdir()) == []


@pytest.mark.parametrize(
    "stack", ["../outside_stack", "/tmp/abs", "a/b", "..", "con", "a\\b"]
)
def test_a_journal_line_naming_a_path_is_never_a_committed_stack(
    dataset: Dataset, tmp_path: Path, stack: str
) -> None:
    commit_stack(dataset, "a")
    (tmp_path / "outside_stack.ome.zarr").mkdir()
    line = {
        "stack": stack,
        "path": stack + ".ome.zarr",
        "planes": 6,
        "committed_at": "2026-12-07T00:00:00Z",
        "sha256": "0" * 64,
    }
    journal_path = dataset.path / "journal.jsonl"
    intact = journal_path.read_bytes()
    with journal_path.open("a", encoding="utf-8") as journal:
        journal.write(json.dumps(line) + "\n")
    # not a line a crash can leave: the dataset is neither read nor written
    with pytest.raises(DatasetError, match=r"journal of .* is damaged: line\(s\) 2"):
        Dataset.resume(dataset.path, identity=IDENTITY)
    assert (tmp_path / "outside_stack.ome.zarr").is_dir()
    assert (dataset.path / "a.ome.zarr").is_dir()
    journal_path.write_bytes(intact)  # restored from a backup, it resumes
    assert Dataset.resume(dataset.path, identity=IDENTITY).committed() == {"a"}


@pytest.mark.parametrize("damage", ["missing chunk", "random bytes", "one bit"])
def test_a_damaged_stack_is_refused_when_read(dataset: Dataset, damage: str) -> None:
    from acquire.storage.reader import read_stack

    path = commit_stack(dataset, "a")
    intact = read_stack(dataset.path, "a").data
    np.testing.assert_array_equal(intact, expected_stack(make_spec("a")))
    chunks = sorted((path / "0").glob("c.*"))  # chunk key separator "."
    assert len(chunks) == 6  # one chunk per plane (c, z)
    chunk = chunks[3]
    raw = chunk.read_bytes()
    if damage == "missing chunk":
        chunk.unlink()  # zarr reads it back as the fill value
    elif damage == "random bytes":
        chunk.write_bytes(np.random.default_rng(0).bytes(len(raw)))
    else:
        chunk.write_bytes(bytes([raw[0] ^ 1]) + raw[1:])
    with pytest.raises(DatasetError, match=r"stack 'a' of .* is damaged"):
        read_stack(dataset.path, "a")


def test_a_stack_missing_from_the_journal_is_not_read(dataset: Dataset) -> None:
    from acquire.storage.reader import read_stack

    commit_stack(dataset, "a")
    journal = dataset.path / "journal.jsonl"
    journal.write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"stack 'a' .* is not in the dataset's"):
        read_stack(dataset.path, "a")


def test_a_torn_line_is_a_crash_but_other_lines_are_a_damaged_journal(
    dataset: Dataset,
) -> None:
    from acquire.storage.reader import committed_stacks

    commit_stack(dataset, "a")
    journal = dataset.path / "journal.jsonl"
    intact = journal.read_bytes()
    # a crash mid-append, then a resumed run's append: the torn start of an
    # entry ends up in the middle of the file, and is no damage
    journal.write_bytes(intact + b'{"stack": "b", "pa')
    resumed = Dataset.resume(dataset.path, identity=IDENTITY)
    commit_stack(resumed, "c")
    assert committed_stacks(dataset.path) == ("a", "c")
    for bad in (b"\x00" * 40 + b"\n", b"not a journal\n", b'{"stack": 3}\n'):
        journal.write_bytes(intact + bad)
        with pytest.raises(DatasetError, match=r"journal of .* is damaged: line"):
            committed_stacks(dataset.path)
    # a journal that is all garbage is not "no stacks"
    journal.write_bytes(b"\xff\xfe garbage\n" * 3)
    with pytest.raises(DatasetError, match=r"line\(s\) 1, 2, 3 are not entries"):
        committed_stacks(dataset.path)


HOLDER_CHILD = """
import sys, time
from pathlib import Path
from acquire.storage.dataset import Dataset
dataset = Dataset.resume(Path(sys.argv[1]), identity={"sequence_hash": "x"})
print("holding", flush=True)
time.sleep(60)
"""


def test_a_second_writer_process_is_refused_and_nothing_is_cleaned(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run"
    first = Dataset.create(path, {"sequence_hash": "x"})
    commit_stack(first, "a")
    del first  # this process stops writing; the child takes the dataset
    script = tmp_path / "holder.py"
    script.write_text(HOLDER_CHILD, encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "holding\n", child.communicate()[1]
        partial = path / ".staging" / "b.ome.zarr"
        partial.mkdir()  # the running writer's stack in progress
        with pytest.raises(DatasetError) as info:
            Dataset.resume(path, identity={"sequence_hash": "x"})
        assert f"in use by process {child.pid} on host" in str(info.value)
        assert partial.is_dir()  # the running writer's staging is left alone
    finally:
        child.kill()
        child.communicate()
    # killed, it holds nothing: the OS released the lock
    resumed = Dataset.resume(path, identity={"sequence_hash": "x"})
    assert resumed.committed() == {"a"} and not partial.exists()


def test_one_process_may_reopen_the_dataset_it_writes(dataset: Dataset) -> None:
    again = Dataset.resume(dataset.path, identity=IDENTITY)
    commit_stack(again, "a")
    assert again.committed() == {"a"}


def test_a_complete_stack_a_kill_left_unjournaled_is_adopted(
    dataset: Dataset,
) -> None:
    from acquire.storage.reader import read_stack

    commit_stack(dataset, "a")
    commit_stack(dataset, "b")
    commit_stack(dataset, "c")
    journal = dataset.path / "journal.jsonl"
    lines = journal.read_text(encoding="utf-8").splitlines()
    # killed after renaming b and c into place, before their journal lines
    journal.write_text(lines[0] + "\n", encoding="utf-8")
    chunk = sorted((dataset.path / "c.ome.zarr" / "0").glob("c.*"))[0]
    chunk.unlink()  # c was damaged since: it must not be adopted
    resumed = Dataset.resume(dataset.path, identity=IDENTITY)
    assert resumed.committed() == {"a", "b"}
    record = resumed.manifest["resumes"][-1]
    assert record["adopted"] == ["b"] and record["orphans"] == ["c.ome.zarr"]
    adopted = read_stack(dataset.path, "b")  # verified against the journal
    np.testing.assert_array_equal(adopted.data, expected_stack(make_spec("b")))


def test_stray_folder_blocks_begin_until_resume(dataset: Dataset) -> None:
    stray = dataset.stack_path("a")
    stray.mkdir()
    with pytest.raises(DatasetError, match="exists but is not in the journal"):
        dataset.begin_stack(make_spec("a"))
    resumed = Dataset.resume(dataset.path, identity=IDENTITY)
    commit_stack(resumed, "a")
    assert (dataset.path / ".staging" / "orphans" / "a.ome.zarr").is_dir()


CHILD = """
import sys
import zlib
from pathlib import Path

import numpy as np

from acquire.storage.dataset import Dataset
from acquire.storage.spec import StackSpec

{pattern}

path = Path(sys.argv[1])
identity = {{"sequence_hash": "kill-loop"}}
if (path / "manifest.json").exists():
    dataset = Dataset.resume(path, identity=identity)
else:
    dataset = Dataset.create(path, identity)
print("ready", flush=True)
for i in range(100000):
    name = f"t{{i:04d}}_p0000_g0000"
    if name in dataset.committed():
        continue
    spec = StackSpec(
        name=name, n_channels=2, n_planes=3, shape_yx=(16, 24), dtype="uint16",
        voxel_size_um=(0.5, 0.1625, 0.1625), channel_names=("DAPI", "FITC"),
        position_name="p", scope_name="s",
    )
    writer = dataset.begin_stack(spec)
    for c in range(2):
        for z in range(3):
            writer.write_plane(c, z, pattern(name, c, z, (16, 24)), {{"z": z}})
    writer.commit()
    print(name, flush=True)
"""


def check_consistent(path: Path) -> set[str]:
    """Every journaled stack is whole and right; return the journaled names."""
    entries = journal_lines(path)
    names = [e["stack"] for e in entries]
    assert len(names) == len(set(names)), names
    for entry in entries:
        stack = path / entry["path"]
        array = zarr.open_group(stack, mode="r")["0"]
        assert array.shape == (2, 3, 16, 24)
        np.testing.assert_array_equal(
            array[:], expected_stack(make_spec(entry["stack"]))
        )
        assert zarr_sha256(stack) == entry["sha256"]
    return set(names)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_during_commits_leaves_a_consistent_dataset(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(
        CHILD.format(pattern=inspect.getsource(pattern)), encoding="utf-8"
    )
    path = tmp_path / "run"
    rng = random.Random(7)
    committed: set[str] = set()
    for round_ in range(6):
        child = subprocess.Popen(
            [sys.executable, str(script), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        if round_ % 3 == 2:
            # Kill anywhere: while importing, resuming, or early in the loop.
            time.sleep(rng.uniform(0.2, 1.0))
        else:
            assert child.stdout.readline() == "ready\n", child.communicate()[1]
            assert child.stdout.readline().startswith("t"), child.communicate()[1]
            time.sleep(rng.uniform(0.0, 0.15))
        os.kill(child.pid, signal.SIGKILL)
        _, stderr = child.communicate()
        assert child.returncode == -signal.SIGKILL, stderr
        if not path.exists():
            continue
        # Right after the kill, before any repair: committed stacks are whole.
        now = check_consistent(path)
        assert committed <= now
        committed = now
        resumed = Dataset.resume(path, identity={"sequence_hash": "kill-loop"})
        # a stack killed between its rename and its journal line is adopted
        adopted = set(resumed.manifest["resumes"][-1]["adopted"])
        assert resumed.committed() == committed | adopted
        committed = set(resumed.committed())
        for name in adopted:
            assert zarr_sha256(path / f"{name}.ome.zarr") == next(
                e["sha256"] for e in journal_lines(path) if e["stack"] == name
            )
        assert {p.name for p in path.glob("*.ome.zarr")} == {
            f"{name}.ome.zarr" for name in committed
        }
        assert {p.name for p in (path / ".staging").iterdir()} <= {"orphans"}
        del resumed  # gives the writer lock back before the next child writes
    assert len(committed) >= 4


def test_a_stack_without_stage_positions_has_no_translation(dataset: Dataset) -> None:
    spec = make_spec(channel_names=("ch-a", "ch-b"))
    writer = dataset.begin_stack(spec)
    for c in range(spec.n_channels):
        for z in range(spec.n_planes):
            writer.write_plane(c, z, pattern(spec.name, c, z, spec.shape_yx), {})
    group = zarr.open_group(writer.commit(), mode="r")
    (multiscale,) = group.attrs["ome"]["multiscales"]
    assert multiscale["datasets"][0]["coordinateTransformations"] == [
        {"type": "scale", "scale": [1.0, *VOXEL_UM]}
    ]
    # unknown dyes keep the palette, in order
    colors = [ch["color"] for ch in group.attrs["ome"]["omero"]["channels"]]
    assert colors == ["00FF00", "FF00FF"]


@pytest.mark.parametrize(
    ("name", "n_channels", "color"),
    [
        ("DAPI", 3, "0000FF"),
        ("Hoechst 33342", 2, "0000FF"),
        ("EGFP", 2, "00FF00"),
        ("Alexa Fluor 647", 2, "FF00FF"),
        ("mCherry", 2, "FF0000"),
        ("Cy3", 2, "FF8000"),
        ("Cy5", 2, "FF00FF"),
        ("default", 1, "FFFFFF"),
    ],
)
def test_channel_colours_follow_the_dye(name: str, n_channels: int, color: str) -> None:
    from acquire.storage.ngff import channel_color

    assert channel_color(name, 0, n_channels) == color


def test_the_dataset_folder_is_an_ome_zarr_collection_of_its_stacks(
    dataset: Dataset,
) -> None:
    yaozarrs = pytest.importorskip("yaozarrs")
    root = dataset.path
    assert not (root / "zarr.json").exists()  # nothing committed: no index
    names = ["t0000_p0001_g0000", "t0000_p0000_g0000"]
    for name in names:
        commit_stack(dataset, name)
    # the folder validates as OME-Zarr 0.5 (bioformats2raw layout) ...
    yaozarrs.validate_zarr_store(str(root))
    group = zarr.open_group(str(root), mode="r")
    assert group.attrs["ome"]["bioformats2raw.layout"] == 3
    series = zarr.open_group(str(root / "OME"), mode="r").attrs["ome"]["series"]
    # ... listing every committed stack, in acquisition order
    assert series == sorted(n + ".ome.zarr" for n in names)
    for path in series:
        image = zarr.open_group(str(root / path), mode="r")
        assert image.attrs["ome"]["multiscales"][0]["datasets"][0]["path"] == "0"
    # and ome-zarr-models (ome-zarr's own metadata models) reads both levels
    models = pytest.importorskip("ome_zarr_models.v05")
    collection = models.BioFormats2Raw.from_zarr(zarr.open_group(str(root), mode="r"))
    assert collection.ome_attributes.bioformats2raw_layout == 3
    for path in series:
        models.Image.from_zarr(zarr.open_group(str(root / path), mode="r"))
    # a journal line is what commits a stack; the index follows it
    assert set(dataset.committed()) == set(names)
