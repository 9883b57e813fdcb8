"""Paired acquisition end to end: relocate, acquire, register on the fly, refine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from acquire_helpers import demo_scope, pairscope
from typer.testing import CliRunner

from acquire.cli.main import app
from acquire.hardware.microscope import scope
from acquire.sim import groundtruth
from acquire.storage.ome_tiff import OmeImage, write_ome_tiff
from acquire.storage.reader import committed_stacks, read_stack
from acquire.workflows.paired_run import (
    PairedRunRequest,
    PairedRunResult,
    run_paired_acquisition,
)
from acquire.workflows.relocation import load_holder, load_targets, record_fiducials
from correlate.pairdb import PairDatabase

ROOT = Path(__file__).resolve().parents[2]
HOLDER = ROOT / "hardware_configs" / "demo_holder.json"
CELLS = [0, 5, 10, 15, 20, 25]
N_PLANES, Z_STEP_UM = 31, 0.3  # stacks that span the cells (see README)
BIAS_UM = 2.0  # a systematic error of scope A's mark positions


def small_scope(tmp_path: Path, name: str, seed: int) -> Path:
    """A demo scope with its own mount (full 512 px fields: marks must fit)."""
    return demo_scope(tmp_path, name, MountSeed=seed)


def cell_sequence(path: Path, config: Path) -> Path:
    with scope(config) as core:
        positions = [
            groundtruth.stage_position_of_cell(core, c, height_um=2.0) for c in CELLS
        ]
    data = {
        "stage_positions": [
            {"x": x, "y": y, "z": z, "name": f"cell{c}"}
            for c, (x, y, z) in zip(CELLS, positions, strict=True)
        ],
        "z_plan": {"range": Z_STEP_UM * (N_PLANES - 1), "step": Z_STEP_UM},
        "axis_order": "pcz",
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def scope_a(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Scope A (confocal): marks and targets in a session, stacks at the cells."""
    folder = tmp_path_factory.mktemp("scope_a")
    confocal = small_scope(folder, "confocal", 41)
    sequence = cell_sequence(folder / "cells.yaml", confocal)
    session = folder / "session.json"
    record_fiducials(
        confocal, session, load_holder(HOLDER), targets=load_targets(sequence)
    )
    dataset = folder / "confocal_stacks"
    proc = pairscope("acquire", sequence, "--config", confocal, "--out", dataset)
    assert proc.returncode == 0, proc.stderr
    # the confocal's mark positions all read BIAS_UM too far in x: relocation
    # inherits it, and only registration can see it
    data = json.loads(session.read_text())
    for xyz in data["marks"].values():
        xyz[0] += BIAS_UM
    biased = folder / "session_biased.json"
    biased.write_text(json.dumps(data))
    return {"session": biased, "dataset": dataset, "config": confocal}


@pytest.fixture(scope="module")
def scope_b(
    tmp_path_factory: pytest.TempPathFactory, scope_a: dict[str, Path]
) -> tuple[PairedRunResult, Path]:
    """Scope B (wide-field): relocated, acquired and paired on the fly."""
    folder = tmp_path_factory.mktemp("scope_b")
    widefield = small_scope(folder, "widefield", 42)
    result = run_paired_acquisition(
        PairedRunRequest(
            session=scope_a["session"],
            confocal_dataset=scope_a["dataset"],
            config=widefield,
            out=folder / "widefield_stacks",
            database=folder / "pairs",
            queue_size=len(CELLS),
            wait_for_registration=True,
        )
    )
    return result, folder


def test_paired_acquisition_registers_and_refines_positions(
    scope_b: tuple[PairedRunResult, Path],
) -> None:
    result, tmp_path = scope_b
    widefield = tmp_path / "widefield.cfg"
    assert result.acquisition.status == "complete"
    assert result.registration_failures == 0
    outcomes = {o.position_name: o for o in result.outcomes}
    assert sorted(outcomes) == sorted(f"cell{c}" for c in CELLS)
    assert all(o.accepted for o in outcomes.values()), [
        o.reason for o in outcomes.values()
    ]

    # where each cell's confocal stack really is on the wide-field stage
    with scope(widefield) as core:
        truth = {
            f"cell{c}": groundtruth.stage_position_of_cell(core, c, height_um=2.0)
            for c in CELLS
        }
    first = outcomes["cell0"]
    # the first stack starts off by about the bias, as nothing was measured yet
    assert first.start_offset_um == pytest.approx(BIAS_UM, abs=0.6)
    # each registration saw the bias: the prediction error it measures is it
    errors = np.array([o.prediction_error_um for o in outcomes.values()])
    # (plus relocation error, ~0.25 um RMS, and 0.2 um stage repeatability on
    # each scope)
    assert np.mean(errors[:, 0]) == pytest.approx(BIAS_UM, abs=0.4)
    assert np.mean(errors[:, 1]) == pytest.approx(0.0, abs=0.4)
    assert np.all(np.abs(errors[:, 0] - BIAS_UM) < 1.0)
    # closed loop: every later stack started much closer to its cell; what
    # remains is each position's own error (relocation noise, repeatability)
    later = np.array([outcomes[f"cell{c}"].start_offset_um for c in CELLS[1:]])
    assert np.sqrt(np.mean(later**2)) < 0.4 * first.start_offset_um
    assert later.max() < 1.0
    applied = result.applied_offsets_um
    assert applied["cell0"] == (0.0, 0.0, 0.0)
    assert applied["cell25"][0] == pytest.approx(BIAS_UM, abs=0.6)

    # the database: every pair stored, on the confocal grid, aligned
    db = PairDatabase.open(tmp_path / "pairs")
    records = db.records(accepted_only=False)
    assert len(records) == len(CELLS)
    splits = db.cell_splits()
    assert set(splits) == {f"cell{c}" for c in CELLS}
    record = records[0]
    wf, cf = db.load(record.pair_id)
    assert wf.shape == cf.shape == (N_PLANES, 512, 512)
    assert record.voxel_size_um == pytest.approx((Z_STEP_UM, 0.1, 0.1))
    assert record.metrics["ncc"] > 0.5
    # registration finds each cell where it really is: the stage
    # repeatability (0.2 um per axis and move, on each scope) bounds this
    # comparison; registration itself is checked against exact truth in
    # test_registration.py
    for name, outcome in outcomes.items():
        measured = np.asarray(outcome.measured_stage_xyz_um)
        assert np.hypot(*(measured[:2] - truth[name][:2])) < 1.0
        assert abs(measured[2] - truth[name][2]) < 0.3


def test_pairs_cli_lists_shows_and_builds(
    tmp_path: Path, scope_a: dict[str, Path], scope_b: tuple[PairedRunResult, Path]
) -> None:
    db = scope_b[1] / "pairs"
    wf = scope_b[1] / "widefield_stacks"
    listing = pairscope("pairs", "list", db)
    assert listing.returncode == 0, listing.stderr
    ids = [r.pair_id for r in PairDatabase.open(db).records()]
    assert ids and all(i in listing.stdout for i in ids)
    png = tmp_path / "pair.png"
    shown = pairscope("pairs", "show", db, ids[0], "--out", png)
    assert shown.returncode == 0, shown.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # offline build into a second database gives the same pairs' registrations
    again = pairscope("pairs", "build", "--widefield", wf, "--db", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    rebuilt = PairDatabase.open(tmp_path / "again").records(accepted_only=False)
    assert len(rebuilt) == len(CELLS)
    # an interrupted build (a pair lost) run again completes what is missing
    # and skips, without registering again, what is done
    PairDatabase.open(tmp_path / "again").remove_pair(rebuilt[0].pair_id)
    build = ["pairs", "build", "--widefield", str(wf), "--db", str(tmp_path / "again")]
    rerun = CliRunner().invoke(app, build)
    assert rerun.exit_code == 0, rerun.output
    skipped = f"{len(CELLS) - 1} stacks were paired before and skipped; 1 new"
    assert skipped in rerun.output
    completed = PairDatabase.open(tmp_path / "again").records(accepted_only=False)
    assert {r.pair_id for r in completed} == {r.pair_id for r in rebuilt}

    # a confocal that Micro-Manager does not drive exports OME-TIFF (ZEN):
    # stage positions and voxel sizes come from the OME metadata only
    tiffs = [
        export_ome_tiff(scope_a["dataset"], name, tmp_path)
        for name in committed_stacks(scope_a["dataset"])
    ]
    args = [a for t in tiffs for a in ("--confocal-tiff", t)]
    proc = pairscope(
        "pairs",
        "build",
        "--widefield",
        wf,
        "--db",
        tmp_path / "imported",
        *args,
    )
    assert proc.returncode == 0, proc.stderr
    imported = PairDatabase.open(tmp_path / "imported").records(accepted_only=False)
    assert len(imported) == len(CELLS)
    assert all(r.accepted for r in imported), [r.reason for r in imported]
    # the exports lie beside the database: named relative to it, they resolve
    sources = {(tmp_path / "imported" / r.confocal.source).resolve() for r in imported}
    assert sources == {Path(t).resolve() for t in tiffs}
    assert not any(Path(r.confocal.source).is_absolute() for r in imported)
    # the same wide-field stacks against the same pixels: the registrations
    # agree with those against the dataset's stacks
    by_stack = {r.widefield.source: r for r in rebuilt}
    for record in imported:
        a = record.transform["registered"]["translation_um"]
        b = by_stack[record.widefield.source].transform["registered"]["translation_um"]
        assert np.abs(np.subtract(a, b)).max() < 0.05


def test_an_interrupted_paired_run_resumes_without_redoing_anything(
    tmp_path: Path, scope_a: dict[str, Path], scope_b: tuple[PairedRunResult, Path]
) -> None:
    folder = scope_b[1]
    out, db = tmp_path / "widefield_stacks", tmp_path / "pairs"
    shutil.copytree(folder / "widefield_stacks", out)
    shutil.copytree(folder / "pairs", db)
    # a kill: the last stack was still being written (no journal line), the
    # one before it was committed but not registered yet
    journal = out / "journal.jsonl"
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    journal.write_text("".join(json.dumps(e) + "\n" for e in entries[:-1]))
    shutil.rmtree(out / entries[-1]["path"])
    database = PairDatabase.open(db)
    lost = [e["path"] for e in entries[-2:]]
    for record in database.records(accepted_only=False):
        if Path(record.widefield.source).name in lost:
            database.remove_pair(record.pair_id)
    assert len(database) == len(CELLS) - 2
    kept = {r.pair_id for r in database.records(accepted_only=False)}

    command = [
        "pairs",
        "acquire",
        str(scope_a["session"]),
        "--confocal",
        str(scope_a["dataset"]),
        "--config",
        str(folder / "widefield.cfg"),
        "--out",
        str(out),
        "--db",
        str(db),
    ]
    # without --resume the dataset is never touched
    refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 2, refused.output
    assert len(committed_stacks(out)) == len(CELLS) - 1

    resumed = CliRunner().invoke(app, [*command, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.output
    assert f"{entries[-2]['stack']}: paired" in resumed.output
    summary = f"2 registered, 2 paired, {len(CELLS) - 2} already in the database"
    assert summary in " ".join(resumed.output.split())
    after = PairDatabase.open(db).records(accepted_only=False)
    assert len(after) == len(CELLS)
    assert kept < {r.pair_id for r in after}
    assert all(r.accepted for r in after), [r.reason for r in after]
    assert sorted(r.cell_id for r in after) == sorted(f"cell{c}" for c in CELLS)
    # only the stack that was lost was imaged again, at its own position
    assert len(committed_stacks(out)) == len(CELLS)
    assert sorted(committed_stacks(out)) == sorted(e["stack"] for e in entries)
    assert read_stack(out, entries[-1]["stack"]).position_name == f"cell{CELLS[-1]}"

    # once more: nothing is left to do, and nothing is done twice
    idle = CliRunner().invoke(app, [*command, "--resume"])
    assert idle.exit_code == 0, idle.output
    assert f"0 registered, 0 paired, {len(CELLS)} already" in " ".join(
        idle.output.split()
    )
    assert len(PairDatabase.open(db)) == len(CELLS)


def export_ome_tiff(dataset: Path, name: str, folder: Path) -> Path:
    """A dataset stack as an OME-TIFF with its stage positions and voxel size."""
    stack = read_stack(dataset, name)
    path = folder / f"{stack.position_name}.ome.tif"
    write_ome_tiff(
        path,
        OmeImage(
            data=stack.data[0],
            pixel_size_um=stack.voxel_size_um[1],
            z_step_um=stack.voxel_size_um[0],
            positions_um=[
                (p["stage_x_um"], p["stage_y_um"], p["stage_z_um"])
                for p in sorted(stack.planes, key=lambda p: p["z"])
            ],
            exposure_ms=10.0,
            objective=None,
            camera="LSM",
        ),
    )
    return path


def test_a_stack_without_partner_is_a_clear_error(tmp_path: Path) -> None:
    from acquire.errors import UserError
    from acquire.workflows.pairing import Pairer
    from correlate.stage.camera_calibration import PixelCalibration
    from correlate.stage.fit_transform import fit_stage_transform

    marks = {"a": (0.0, 0.0, 0.0), "b": (2600.0, 0.0, 0.0), "c": (0.0, 2600.0, 0.0)}
    pairer = Pairer(
        PairDatabase.create(tmp_path / "db"),
        fit_stage_transform(marks, marks),
        {},
        widefield_calibration=PixelCalibration(np.diag([0.1625, 0.1625])),
        widefield_scope="widefield",
    )
    with pytest.raises(UserError, match=r"no confocal stack for position 'cell7'"):
        pairer.predicted_stage("cell7")
    assert len(PairDatabase.open(tmp_path / "db")) == 0
