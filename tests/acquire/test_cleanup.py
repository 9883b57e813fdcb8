"""``pairscope clean``: leftovers of interrupted runs go, data and running work stay."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
from acquire_helpers import writer_locks_held_elsewhere
from test_storage import IDENTITY, commit_stack, make_spec, write_planes, zarr_sha256
from typer.testing import CliRunner

from acquire.cli.main import app
from acquire.storage.dataset import Dataset
from acquire.storage.reader import committed_stacks, read_stack
from correlate.pairdb import PairDatabase, StackMeta

if TYPE_CHECKING:
    from pathlib import Path


def _pair_database(path: Path) -> PairDatabase:
    db = PairDatabase.create(path)
    rng = np.random.default_rng(3)
    meta = StackMeta(
        scope="s",
        objective=None,
        stage_xyz_um=(0.0, 0.0, 0.0),
        voxel_size_um=(0.5, 0.1, 0.1),
        acquired_at=None,
        source="x",
    )
    db.add_pair(
        widefield=rng.random((3, 8, 8)),
        confocal=rng.random((3, 8, 8)),
        voxel_size_um=(0.5, 0.1, 0.1),
        cell_id="cell0",
        transform={},
        metrics={"ncc": 0.9},
        accepted=True,
        widefield_meta=meta,
        confocal_meta=meta,
    )
    return db


def _folder_with_a_file(path: Path, size: int = 1000) -> Path:
    path.mkdir(parents=True)
    (path / "data").write_bytes(b"x" * size)
    return path


def _lab(root: Path) -> dict[str, Path]:
    """A dataset, a pair database and a demo output, each with leftovers."""
    run = Dataset.create(root / "run", dict(IDENTITY))
    commit_stack(run, "t0000_p0000_g0000")
    unjournaled = commit_stack(run, "t0000_p0001_g0000")
    journal = root / "run" / "journal.jsonl"
    journal.write_text(journal.read_text().splitlines(keepends=True)[0])
    partial = run.begin_stack(make_spec("t0000_p0002_g0000"))
    write_planes(partial, skip={(1, 2)})  # killed mid-stack
    del run, partial
    temp = root / "run" / ".manifest.json.0123abcd.tmp"
    temp.write_text("{")
    orphan = _folder_with_a_file(root / "run" / ".staging" / "orphans" / "o.ome.zarr")

    db = _pair_database(root / "pairs")
    old_temp = _folder_with_a_file(root / "pairs" / "pairs" / ".tmp-aa-11.ome.zarr")
    two_hours_ago = time.time() - 7200
    os.utime(old_temp, (two_hours_ago, two_hours_ago))
    fresh_temp = _folder_with_a_file(root / "pairs" / "pairs" / ".tmp-bb-22.ome.zarr")
    rowless = _folder_with_a_file(root / "pairs" / "pairs" / f"{'0' * 16}.ome.zarr")
    stopped_demo = _folder_with_a_file(root / ".demo.0123abcd.partial")
    return {
        "committed": root / "run" / "t0000_p0000_g0000.ome.zarr",
        "unjournaled": unjournaled,
        "partial": root / "run" / ".staging" / "t0000_p0002_g0000.ome.zarr",
        "temp": temp,
        "orphan": orphan,
        "db": db.path,
        "old_temp": old_temp,
        "fresh_temp": fresh_temp,
        "rowless": rowless,
        "stopped_demo": stopped_demo,
    }


def test_clean_removes_leftovers_and_keeps_data_and_running_work(
    tmp_path: Path,
) -> None:
    paths = _lab(tmp_path / "lab")
    sha = zarr_sha256(paths["committed"])
    # a demo still running beside the lab folder, and a dataset still written
    running_demo = _folder_with_a_file(tmp_path / "lab" / ".other.89abcdef.partial")
    busy = Dataset.create(tmp_path / "lab" / "busy", dict(IDENTITY))
    del busy
    busy_partial = _folder_with_a_file(
        tmp_path / "lab" / "busy" / ".staging" / "t0000_p0000_g0000.ome.zarr"
    )
    with writer_locks_held_elsewhere(running_demo, busy_partial.parents[1]) as pid:
        removable = ["partial", "temp", "old_temp", "rowless", "stopped_demo"]

        listed = CliRunner().invoke(app, ["clean", str(tmp_path / "lab"), "--dry-run"])
        assert listed.exit_code == 0, listed.output
        output = " ".join(listed.output.split())
        for key in removable:
            assert f"would remove {paths[key]}" in output
        assert all(p.exists() for p in paths.values())  # a dry run removes nothing

        cleaned = CliRunner().invoke(app, ["clean", str(tmp_path / "lab")])
        assert cleaned.exit_code == 0, cleaned.output
        output = " ".join(cleaned.output.split())
        assert f"{len(removable)} leftovers removed" in output
        assert not any(paths[key].exists() for key in removable)
        # kept: data, what a resume adopts, orphans unless asked, running work
        for key in ("committed", "unjournaled", "orphan", "fresh_temp"):
            assert paths[key].exists(), key
        assert "run the acquisition again with --resume" in output
        assert "--orphans removes them" in output
        assert running_demo.is_dir() and busy_partial.is_dir()
        assert output.count(f"in use by process {pid} on host") == 2
        # the dataset and the database still read as before
        assert committed_stacks(tmp_path / "lab" / "run") == ("t0000_p0000_g0000",)
        read_stack(tmp_path / "lab" / "run", "t0000_p0000_g0000")  # verifies it
        assert zarr_sha256(paths["committed"]) == sha
        assert len(PairDatabase.open(paths["db"])) == 1

        # a dataset in use, named itself: one clear error, nothing touched
        refused = CliRunner().invoke(app, ["clean", str(tmp_path / "lab" / "busy")])
        assert refused.exit_code == 2
        assert f"in use by process {pid}" in refused.output
        assert busy_partial.is_dir()

    orphans = CliRunner().invoke(
        app, ["clean", str(tmp_path / "lab" / "run"), "--orphans"]
    )
    assert orphans.exit_code == 0, orphans.output
    assert not paths["orphan"].exists() and paths["unjournaled"].exists()
    # the killed holder's dataset is free now
    freed = CliRunner().invoke(app, ["clean", str(tmp_path / "lab" / "busy")])
    assert freed.exit_code == 0 and not busy_partial.exists()
    # and so is the killed demo's work folder
    after_kill = CliRunner().invoke(app, ["clean", str(tmp_path / "lab")])
    assert "1 leftovers removed" in after_kill.output
    assert not running_demo.exists()
    again = CliRunner().invoke(app, ["clean", str(tmp_path / "lab")])
    assert again.exit_code == 0 and "nothing to clean" in again.output


@pytest.mark.parametrize("name", ["missing", "file.txt"])
def test_clean_refuses_what_is_not_a_folder(tmp_path: Path, name: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    result = CliRunner().invoke(app, ["clean", str(tmp_path / name)])
    assert result.exit_code == 2
    assert "is not a folder" in result.output
    assert (tmp_path / "file.txt").read_text() == "x"
