"""The model commands: ``train``, ``evaluate`` and ``enhance`` on tiny simulated pairs.

The commands run through a Typer app assembled here from
:mod:`acquire.cli.enhance` (the same functions ``pairscope`` registers).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from acquire.cli.enhance import enhance, evaluate, train
from acquire.sim.pairs import simulate_pair
from acquire.storage.reader import committed_stacks, read_stack
from correlate.pairdb import PairDatabase, StackMeta
from correlate.registration import register_pair
from enhance.checkpoint import load_checkpoint
from enhance.data import central_yx_window, trim_to_overlap
from enhance.database_pairs import load_split
from enhance.metrics import image_metrics
from enhance.predict import predict_stack

if TYPE_CHECKING:
    from pathlib import Path

N_PLANES = 12
FIELD_PX = 96
TINY_TRAIN = [
    "--patch", "8,32,32", "--base-channels", "2", "--depth", "1",
    "--max-epochs", "2", "--steps-per-epoch", "2", "--batch-size", "2",
    "--val-patches", "2", "--threads", "1", "--device", "cpu",
]  # fmt: skip

app = typer.Typer()
app.command("train")(train)
app.command("evaluate")(evaluate)
app.command("enhance")(enhance)
runner = CliRunner()


def cli(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def add_tiny_pair(db: PairDatabase, seed: int, cell: int) -> None:
    """One small simulated pair, registered as the pipeline does.

    Registration of a 96-px field is sometimes flagged; the commands under test
    only need aligned stacks, so every pair is stored as accepted.
    """
    pair = simulate_pair(seed, n_planes=N_PLANES, field_px=FIELD_PX, cell=cell)
    wf, cf = pair.widefield, pair.confocal
    result = register_pair(
        wf.data,
        cf.data,
        widefield_voxel_um=wf.voxel_um,
        confocal_voxel_um=cf.voxel_um,
        initial=pair.initial,
    )
    meta = StackMeta(
        scope="sim",
        objective=None,
        stage_xyz_um=None,
        voxel_size_um=wf.voxel_um,
        acquired_at=None,
        source=f"simulate_pair({seed})",
    )
    db.add_pair(
        widefield=result.aligned_widefield,
        confocal=result.confocal,
        voxel_size_um=cf.voxel_um,
        cell_id=f"cell{cell:02d}",
        transform={"registered": result.transform.to_dict()},
        metrics={"ncc": result.quality.ncc},
        accepted=True,
        reason="test fixture",
        widefield_meta=meta,
        confocal_meta=meta,
    )


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("enh") / "db"
    db = PairDatabase.create(path)
    for cell in range(3):
        add_tiny_pair(db, 300 + cell, cell)
    assert all(db.records(split) for split in ("train", "val", "test"))
    return path


@pytest.fixture(scope="module")
def tiny_model(tiny_db: Path) -> Path:
    out = tiny_db.parent / "tiny.pt"
    code, output = cli("train", tiny_db, "--out", out, "--seed", "3", *TINY_TRAIN)
    assert code == 0, output
    return out


def test_train_records_provenance(tiny_db: Path, tiny_model: Path) -> None:
    db = PairDatabase.open(tiny_db)
    checkpoint = load_checkpoint(tiny_model)
    provenance = checkpoint.provenance
    assert provenance.catalog_sha256 == db.catalog_sha256()
    assert set(provenance.train_pair_ids) == {r.pair_id for r in db.records("train")}
    assert set(provenance.val_pair_ids) == {r.pair_id for r in db.records("val")}
    assert checkpoint.seed == 3
    assert checkpoint.voxel_size_um == pytest.approx((0.25, 0.1, 0.1))
    assert checkpoint.command_line is not None
    assert checkpoint.command_line[0] == "pairscope"
    history = checkpoint.training["history"]
    assert len(history) == 2 and all(math.isfinite(h["val_loss"]) for h in history)


def test_train_continues_from_a_model(
    tiny_db: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "continued.pt"
    code, output = cli(
        "train", tiny_db, "--out", out, "--init", tiny_model, *TINY_TRAIN
    )
    assert code == 0, output
    start, continued = load_checkpoint(tiny_model), load_checkpoint(out)
    assert continued.unet == start.unet
    assert continued.training["continued_from"]["created_utc"] == start.created_utc
    assert continued.training["seconds_total"] > start.training["seconds"]


def test_train_adds_a_coarse_stage_to_a_model(
    tiny_db: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "coarse.pt"
    code, output = cli(
        "train", tiny_db, "--out", out, "--init", tiny_model, "--stage", "coarse",
        "--patch", "8,8,8", "--depth", "1", "--base-channels", "2",
        "--max-epochs", "2", "--steps-per-epoch", "2", "--batch-size", "2",
        "--val-patches", "2", "--threads", "1", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, output
    start, model = load_checkpoint(tiny_model), load_checkpoint(out)
    assert start.coarse is None and model.coarse is not None
    for name, weights in start.state_dict.items():  # the fine network is kept
        assert torch.equal(weights, model.state_dict[name]), name
    db = PairDatabase.open(tiny_db)
    record = model.coarse.training
    assert record["catalog_sha256"] == db.catalog_sha256()
    assert set(record["train_pair_ids"]) == {r.pair_id for r in db.records("train")}
    assert record["epochs_run"] == 2
    assert math.isfinite(model.metrics["coarse_val_loss"])
    assert model.coarse.config.unet.in_channels == start.unet.in_channels + 1

    # evaluated without its coarse stage it is the model it started from
    reports = {}
    for name, path, extra in (
        ("start", tiny_model, ()),
        ("with", out, ()),
        ("without", out, ("--without-coarse-stage",)),
    ):
        folder = tmp_path / f"report_{name}"
        code, output = cli(
            "evaluate", path, tiny_db, "--out", folder, "--rl-iterations", "2", *extra
        )
        assert code == 0, output
        reports[name] = json.loads((folder / "report.json").read_text())
    assert reports["start"]["checkpoint"]["coarse_stage"] is None
    assert reports["without"]["checkpoint"]["coarse_stage"] is None
    assert (
        reports["with"]["checkpoint"]["coarse_stage"] == model.coarse.config.to_dict()
    )
    assert reports["without"]["mean"]["model"] == reports["start"]["mean"]["model"]
    assert reports["with"]["mean"]["model"] != reports["start"]["mean"]["model"]
    refused = tmp_path / "refused"
    code, output = cli(
        "evaluate", tiny_model, tiny_db, "--out", refused, "--rl-iterations", "2",
        "--without-coarse-stage",
    )  # fmt: skip
    assert code != 0 and "has no coarse stage" in output
    assert not refused.exists()


def test_evaluate_writes_report(tiny_db: Path, tiny_model: Path) -> None:
    out = tiny_db.parent / "report"
    code, output = cli(
        "evaluate", tiny_model, tiny_db, "--out", out, "--rl-candidates", "2,4"
    )
    assert code == 0, output
    assert {p.name for p in out.iterdir()} == {
        "report.md",
        "report.json",
        "comparison.png",
    }
    report = json.loads((out / "report.json").read_text())
    db = PairDatabase.open(tiny_db)
    assert [p["pair_id"] for p in report["pairs"]] == [
        r.pair_id for r in db.records("test")
    ]
    assert report["rl_tuned_on_pair"] == db.records("val")[0].pair_id
    assert report["rl_iterations"] in (2, 4)
    assert "PSNR" in output

    centre = tiny_db.parent / "report_centre"
    code, output = cli(
        "evaluate",
        tiny_model,
        tiny_db,
        "--out",
        centre,
        "--rl-iterations",
        "2",
        "--score-crop-yx",
        "16",
    )
    assert code == 0, output
    report = json.loads((centre / "report.json").read_text())
    assert report["scored_region"] == "central 16 x 16 px of the whole-stack results"
    first = db.records("test")[0]
    pair = trim_to_overlap(load_split(db, "test")[0])
    window = central_yx_window(pair.confocal.shape, 16)
    expected = image_metrics(pair.widefield[window], pair.confocal[window])
    assert report["pairs"][0]["pair_id"] == first.pair_id
    assert report["pairs"][0]["metrics"]["widefield"]["ssim"] == pytest.approx(
        expected.ssim
    )


def test_enhance_dataset_equals_offline_prediction(
    tiny_db: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from acquire.storage.dataset import Dataset
    from acquire.storage.spec import StackSpec

    rng = np.random.default_rng(5)
    raw = tmp_path / "raw"
    dataset = Dataset.create(raw, {"kind": "test"})
    stacks = {
        f"s{i}": rng.gamma(2.0, 50.0, (8, 40, 40)).astype(np.float32) for i in range(2)
    }
    for name, data in stacks.items():
        writer = dataset.begin_stack(
            StackSpec(
                name=name,
                n_channels=1,
                n_planes=8,
                shape_yx=(40, 40),
                dtype="float32",
                voxel_size_um=(0.25, 0.1, 0.1),
                channel_names=("gfp",),
                position_name="p",
                scope_name="sim",
            )
        )
        for z, plane in enumerate(data):
            writer.write_plane(0, z, plane, {"z": z})
        writer.commit()
    dataset.mark_complete()
    out = tmp_path / "enhanced"
    code, output = cli("enhance", tiny_model, raw, "--out", out, "--device", "cpu")
    assert code == 0, output
    assert committed_stacks(out) == ("s0", "s1")
    for name, data in stacks.items():
        stored = read_stack(out, name)
        expected = predict_stack(
            tiny_model, data, voxel_size_um=(0.25, 0.1, 0.1), device="cpu"
        ).image
        np.testing.assert_allclose(stored.data[0], expected, rtol=1e-5, atol=1e-4)
        assert stored.voxel_size_um == pytest.approx((0.25, 0.1, 0.1))


def test_enhance_resamples_onto_model_grid(tiny_model: Path, tmp_path: Path) -> None:
    from acquire.storage.dataset import Dataset
    from acquire.storage.spec import StackSpec

    raw = tmp_path / "raw"
    dataset = Dataset.create(raw, {"kind": "test"})
    writer = dataset.begin_stack(
        StackSpec(
            name="wf",
            n_channels=1,
            n_planes=4,
            shape_yx=(20, 20),
            dtype="uint16",
            voxel_size_um=(0.5, 0.2, 0.2),
            channel_names=("gfp",),
            position_name="p",
            scope_name="sim",
        )
    )
    for z in range(4):
        writer.write_plane(0, z, np.full((20, 20), 100 + z, np.uint16), {"z": z})
    writer.commit()
    out = tmp_path / "off-grid"
    code, output = cli("enhance", tiny_model, raw, "--out", out)
    assert code == 2 and "--resample" in output and "Traceback" not in output
    assert not out.exists()
    code, output = cli("enhance", tiny_model, raw, "--out", out, "--resample")
    assert code == 0, output
    stored = read_stack(out, "wf")
    assert stored.data.shape == (1, 8, 40, 40)
    assert stored.voxel_size_um == pytest.approx((0.25, 0.1, 0.1))


def test_bad_inputs_exit_2_without_traceback(
    tiny_db: Path, tiny_model: Path, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    future = tmp_path / "future.pt"
    payload = torch.load(tiny_model, weights_only=True)
    payload["format_version"] = 999
    torch.save(payload, future)
    empty_db = tmp_path / "empty_db"
    PairDatabase.create(empty_db)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "x").write_text("x")
    cases = [
        ("evaluate", tmp_path / "missing.pt", tiny_db, "--out", tmp_path / "r1"),
        ("evaluate", corrupt, tiny_db, "--out", tmp_path / "r2"),
        ("evaluate", foreign, tiny_db, "--out", tmp_path / "r3"),
        ("evaluate", future, tiny_db, "--out", tmp_path / "r4"),
        ("evaluate", tiny_model, empty_db, "--out", tmp_path / "r5"),
        ("evaluate", tiny_model, tiny_db, "--out", existing),
        ("enhance", tiny_model, tmp_path / "nothing", "--out", tmp_path / "e1"),
        ("enhance", tiny_model, tiny_db, "--out", existing),
        ("train", empty_db, "--out", tmp_path / "m1.pt", *TINY_TRAIN),
        ("train", tiny_db, "--out", tmp_path / "m2.pt", "--patch", "64,64,64"),
        ("train", tiny_db, "--out", tiny_model, *TINY_TRAIN),
        ("train", tiny_db, "--out", tmp_path / "m3.pt", "--init", corrupt),
        ("train", tiny_db, "--out", tmp_path / "m4.pt", "--init", future),
        ("train", tiny_db, "--out", tmp_path / "m5.pt", "--stage", "coarse"),
        ("train", tiny_db, "--out", tmp_path / "m6.pt", "--stage", "medium"),
        # continuing into the file it starts from
        ("train", tiny_db, "--out", tiny_model, "--init", tiny_model, "--overwrite"),
    ]
    for case in cases:
        code, output = cli(*case)
        assert code == 2, (case, output)
        assert "pairscope: error:" in output and "Traceback" not in output, output


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--max-minutes", "nan"), "--max-minutes nan is not a positive number"),
        (("--lr", "nan"), "--lr nan is not a positive number"),
        (("--lr", "-1e-3"), "--lr -0.001 is not a positive number"),
    ],
)
def test_train_refuses_bad_numbers_before_training(
    tiny_db: Path, tmp_path: Path, option: tuple[str, str], message: str
) -> None:
    out = tmp_path / "m.pt"
    code, output = cli("train", tiny_db, "--out", out, *TINY_TRAIN, *option)
    assert code == 2 and message in output, output
    assert "epoch" not in output and not out.exists()  # refused before any epoch


def test_train_refuses_a_folder_it_cannot_write_before_training(
    tiny_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import acquire.cli.enhance as cli_enhance

    def read_only(*_args: object, **_kwargs: object) -> None:
        # what a read-only share answers (root ignores permission bits here)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli_enhance.tempfile, "NamedTemporaryFile", read_only)
    code, output = cli("train", tiny_db, "--out", tmp_path / "m.pt", *TINY_TRAIN)
    assert code == 2, output
    assert "cannot write in" in output and "Permission denied" in output
    assert "epoch" not in output


def test_a_voxel_size_that_is_not_finite_is_refused_before_output(
    tiny_model: Path, tmp_path: Path
) -> None:
    import tifffile

    stack = tmp_path / "infz.ome.tif"
    tifffile.imwrite(
        stack,
        np.ones((4, 16, 16), np.uint16),
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.1,
            "PhysicalSizeY": 0.1,
            "PhysicalSizeZ": math.inf,
        },
    )
    out = tmp_path / "enhanced"
    for extra in ((), ("--resample",)):
        code, output = cli("enhance", tiny_model, stack, "--out", out, *extra)
        assert code == 2, output
        assert "not three positive numbers" in output and "Traceback" not in output
        assert not out.exists()


def test_a_killed_training_resumes_from_its_last_snapshot(
    tiny_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import enhance.training

    options = [*TINY_TRAIN, "--max-epochs", "4", "--patience", "4", "--seed", "5"]
    every_epoch = ("--snapshot-minutes", "1e-9")
    whole = tmp_path / "whole.pt"
    code, output = cli("train", tiny_db, "--out", whole, *options, *every_epoch)
    assert code == 0, output

    # the same run, killed during epoch 3 (Ctrl-C; a kill -9 stops sooner, and
    # the snapshot of epoch 2 is on disk either way: saved and fsync'd)
    validations = [0]
    validate = enhance.training.batched_loss

    def interrupted(*args: object, **kwargs: object) -> float:
        validations[0] += 1
        if validations[0] == 3:
            raise KeyboardInterrupt
        return validate(*args, **kwargs)  # type: ignore[arg-type]

    out = tmp_path / "model.pt"
    with monkeypatch.context() as patch:
        patch.setattr(enhance.training, "batched_loss", interrupted)
        code, output = cli("train", tiny_db, "--out", out, *options, *every_epoch)
    assert code == 130 and not out.exists(), output
    snapshot = tmp_path / "model.pt.resume"
    assert snapshot.is_file()
    # started again without --resume, it would throw the two epochs away
    code, output = cli("train", tiny_db, "--out", out, *options)
    assert code == 2 and "--resume" in output, output
    # with other options it is not the same run
    code, output = cli(
        "train", tiny_db, "--out", out, *options, "--lr", "1e-2", "--resume"
    )
    assert code == 2 and "snapshot of another run" in output, output

    code, output = cli("train", tiny_db, "--out", out, *options, "--resume")
    assert code == 0, output
    assert "resuming after epoch 2" in output
    assert not snapshot.exists()
    resumed, reference = load_checkpoint(out), load_checkpoint(whole)
    assert [h["epoch"] for h in resumed.training["history"]] == [1, 2, 3, 4]
    assert [h["val_loss"] for h in resumed.training["history"]] == [
        h["val_loss"] for h in reference.training["history"]
    ]
    for name, weights in reference.state_dict.items():
        assert torch.equal(weights, resumed.state_dict[name]), name


def test_the_command_line_trains_the_library_default_recipe(
    tiny_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import enhance.training

    captured = []

    def capture(*_args: object, config: object = None, **_kwargs: object) -> None:
        captured.append(_args[2] if len(_args) > 2 else config)
        raise KeyboardInterrupt  # stop before any epoch

    monkeypatch.setattr(enhance.training, "train_model", capture)
    code, output = cli("train", tiny_db, "--out", tmp_path / "m.pt")
    assert code == 130, output
    # a notebook's TrainingConfig() trains what `pairscope train` trains
    assert captured == [enhance.training.TrainingConfig()]


@pytest.mark.parametrize(
    ("epochs_left", "seconds_per_epoch", "budget_left_s", "shown"),
    [
        (10, 30.0, 3600.0, "at most 5:00 left"),  # the epochs end first
        (100, 30.0, 90.5, "at most 1:30 left"),  # the time budget ends first
        (0, 30.0, 600.0, "at most 0:00 left"),
        (5, 30.0, -4.0, "at most 0:00 left"),  # past the budget: the last epoch
    ],
)
def test_training_shows_the_shorter_of_epochs_and_budget_left(
    epochs_left: int, seconds_per_epoch: float, budget_left_s: float, shown: str
) -> None:
    from acquire.cli.enhance import _time_left

    assert (
        _time_left(
            epochs_left=epochs_left,
            seconds_per_epoch=seconds_per_epoch,
            budget_left_s=budget_left_s,
        )
        == shown
    )


def test_a_multichannel_input_needs_the_channel_named(
    tiny_model: Path, tmp_path: Path
) -> None:
    import tifffile

    rng = np.random.default_rng(9)
    channels = rng.gamma(2.0, 50.0, (2, 8, 40, 40)).astype(np.float32)
    source = tmp_path / "two.ome.tif"
    tifffile.imwrite(
        source,
        channels,
        ome=True,
        metadata={
            "axes": "CZYX",
            "PhysicalSizeZ": 0.25,
            "PhysicalSizeY": 0.1,
            "PhysicalSizeX": 0.1,
        },
    )
    out = tmp_path / "enhanced"
    # which stain to enhance is the user's to say, not silently the first
    code, output = cli("enhance", tiny_model, source, "--out", out)
    assert code == 2 and "2 channels" in output and "--channel 0..1" in output
    assert "Traceback" not in output and not out.exists()
    code, output = cli("enhance", tiny_model, source, "--out", out, "--channel", "1")
    assert code == 0, output
    expected = predict_stack(
        tiny_model, channels[1], voxel_size_um=(0.25, 0.1, 0.1), device="cpu"
    ).image
    np.testing.assert_allclose(
        read_stack(out, "two").data[0], expected, rtol=1e-5, atol=1e-4
    )
