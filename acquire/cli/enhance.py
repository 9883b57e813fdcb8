"""``pairscope train``, ``evaluate`` and ``enhance``: the model commands.

``train`` fits a wide-field -> confocal model on the train split of a paired
database (validation split: early stopping), ``evaluate`` scores it against
raw wide-field and Richardson-Lucy on a held-out split, ``enhance`` runs it on
the stacks of a dataset or on an OME-TIFF.

Registered pairs carry the fill value (0) wherever the wide-field stack did
not cover the confocal grid (typically a last plane). `enhance.load_split`
cuts such all-fill border planes off before training and evaluation
(:func:`enhance.data.trim_to_overlap`), so the network and the baseline see
only measured wide-field voxels, as they do live.
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from numpy.typing import NDArray
from rich import box
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from acquire.cli.common import (
    console,
    err_console,
    flag,
    handle_errors,
    zyx_triple,
)
from acquire.errors import UserError
from acquire.paths import check_new_file, check_output_folder
from acquire.storage.recorded_paths import record_path
from enhance.recipe import RECIPE

if TYPE_CHECKING:
    from enhance.data import TrainingPair
    from enhance.predict import Enhancer
    from enhance.snapshot import EpochRecord

__all__ = ["enhance", "evaluate", "train"]

DEFAULT_PATCH = ",".join(map(str, RECIPE.patch_shape))
DEFAULT_COARSE_PATCH = "32,64,64"
STAGES = ("fine", "coarse")


def _load_split(
    database: Path,
    split: str,
    *,
    limit: int | None = None,
    crop: int | None = None,
) -> tuple[Any, list[TrainingPair]]:
    from correlate.pairdb import PairDatabase
    from enhance.data import crop_yx
    from enhance.database_pairs import load_split

    db = PairDatabase.open(database)
    pairs = load_split(db, split, limit=limit)
    if crop is not None:
        pairs = [crop_yx(p, crop) for p in pairs]
    return db, pairs


def _check_new_model_file(out: Path, *, overwrite: bool) -> Path:
    path = check_new_file(out, what="model file", overwrite=overwrite)
    try:  # a probe: permission bits do not tell on every system (Windows ACLs)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".pairscope-probe-"):
            pass
    except OSError as error:
        raise UserError(
            f"cannot write in {str(path.parent)!r}, the folder of --out "
            f"({error.strerror or error})",
            "Choose a folder you can write to; nothing was trained.",
        ) from None
    return path


def _check_positive(option: str, value: float) -> None:
    """Refuse a NaN, infinite, zero or negative number option up front."""
    if not (math.isfinite(value) and value > 0):
        raise UserError(
            f"{option} {value} is not a positive number", f"Give {option} > 0."
        )


@handle_errors
def train(
    database: Annotated[Path, typer.Argument(help="Paired-image database folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New model file (.pt).")],
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of weights and patches.")
    ] = 0,
    max_minutes: Annotated[
        float, typer.Option("--max-minutes", help="Stop after the epoch past this.")
    ] = RECIPE.max_duration_s / 60.0,
    max_epochs: Annotated[int, typer.Option("--max-epochs")] = RECIPE.max_epochs,
    steps_per_epoch: Annotated[
        int, typer.Option("--steps-per-epoch")
    ] = RECIPE.steps_per_epoch,
    batch_size: Annotated[int, typer.Option("--batch-size")] = RECIPE.batch_size,
    patch: Annotated[
        str | None,
        typer.Option(
            "--patch",
            help=f"Training patch z,y,x in voxels (default {DEFAULT_PATCH}; "
            f"coarse stage: in block-averaged voxels, default {DEFAULT_COARSE_PATCH}).",
        ),
    ] = None,
    base_channels: Annotated[
        int | None,
        typer.Option(
            "--base-channels",
            help=f"U-Net width (default {RECIPE.base_channels}; coarse stage 16).",
        ),
    ] = None,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth",
            help=f"U-Net pooling steps (default {RECIPE.depth}; coarse stage 3).",
        ),
    ] = None,
    linear_filter: Annotated[
        bool,
        flag(
            "--linear-filter/--no-linear-filter",
            help="Fit a linear WF->confocal filter on the train split and let the "
            "U-Net correct its output (default), or learn from the WF stack alone.",
        ),
    ] = RECIPE.linear_filter,
    loss: Annotated[
        str, typer.Option("--loss", help="l1, mse or mse+ssim.")
    ] = RECIPE.loss,
    learning_rate: Annotated[float, typer.Option("--lr")] = RECIPE.learning_rate,
    patience: Annotated[int, typer.Option("--patience")] = RECIPE.patience,
    val_patches: Annotated[int, typer.Option("--val-patches")] = RECIPE.n_val_patches,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads (default: all).")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda.")] = "auto",
    init: Annotated[
        Path | None,
        typer.Option(
            "--init",
            help="Continue from this model's weights and linear filter "
            "(fine-tuning, or a long run in stages); its architecture replaces "
            "--depth, --base-channels and --linear-filter.",
        ),
    ] = None,
    stage: Annotated[
        str,
        typer.Option(
            "--stage",
            help="fine: the U-Net (default); coarse: a coarse-scale correction "
            "stage on top of the --init model, whose U-Net stays as it is.",
        ),
    ] = "fine",
    overwrite: Annotated[bool, flag("--overwrite")] = False,
    snapshot_minutes: Annotated[
        float,
        typer.Option(
            "--snapshot-minutes",
            help="Save the run's state (OUT.resume) this often, to --resume it "
            "after a kill.",
        ),
    ] = 5.0,
    resume: Annotated[
        bool,
        flag(
            "--resume",
            help="Continue the interrupted run from OUT.resume (same database "
            "and options).",
        ),
    ] = False,
) -> None:
    """Train a wide-field -> confocal model on a paired database's train split.

    The run's state is saved every --snapshot-minutes beside --out; killed,
    the same command with --resume continues where it stopped.
    """
    from enhance.checkpoint import load_checkpoint
    from enhance.losses import LOSSES
    from enhance.snapshot import (
        TrainingSnapshot,
        load_snapshot,
        save_snapshot,
    )
    from enhance.training import TrainingConfig, run_fingerprint, train_model
    from enhance.unet import UNetConfig

    target = _check_new_model_file(out, overwrite=overwrite)
    _check_positive("--max-minutes", max_minutes)
    _check_positive("--lr", learning_rate)
    _check_positive("--snapshot-minutes", snapshot_minutes)
    snapshots = target.with_name(target.name + ".resume")
    if resume and stage == "coarse":
        raise UserError(
            "--resume continues a U-Net training; the coarse stage trains in "
            "minutes and starts again",
            "Run --stage coarse without --resume.",
        )
    if not resume and snapshots.exists():
        raise UserError(
            f"an interrupted training left its state in {snapshots}",
            "Continue it with --resume, or delete the file to start again.",
        )
    if init is not None and init.expanduser().absolute() == target:
        raise UserError(
            f"--init {init} and --out name the same file",
            "Write the continued model to a new file.",
        )
    if stage not in STAGES:
        raise UserError(f"--stage {stage!r} is unknown", "Use --stage fine or coarse.")
    if stage == "coarse" and init is None:
        raise UserError(
            "--stage coarse adds a stage to a trained model, and no --init "
            "model was given",
            "Pass the trained model as --init MODEL.",
        )
    initial = None if init is None else load_checkpoint(init)

    with _epoch_bar(max_epochs=max_epochs, max_minutes=max_minutes) as progress:
        if initial is not None and stage == "coarse":
            _train_coarse(
                database,
                initial,
                target,
                patch=patch or DEFAULT_COARSE_PATCH,
                depth=3 if depth is None else depth,
                base_channels=16 if base_channels is None else base_channels,
                seed=seed,
                max_minutes=max_minutes,
                settings={
                    "max_epochs": max_epochs,
                    "steps_per_epoch": steps_per_epoch,
                    "batch_size": batch_size,
                    "patience": patience,
                    "learning_rate": learning_rate,
                    "n_val_patches": val_patches,
                    "num_threads": threads,
                    "device": device,
                },
                progress=progress,
            )
            return
        if initial is not None and initial.coarse is not None:
            err_console.print(
                f"note: the coarse stage of {init} fits its U-Net as it is now; the "
                "continued model is written without it (train one again with "
                "--stage coarse)",
                markup=False,
            )
        if loss not in LOSSES:
            raise UserError(
                f"--loss {loss!r} is unknown", f"Use --loss {', '.join(LOSSES)}."
            )
        loss_name = next(name for name in LOSSES if name == loss)
        config = TrainingConfig(
            unet=initial.unet
            if initial is not None
            else UNetConfig(
                depth=RECIPE.depth if depth is None else depth,
                base_channels=RECIPE.base_channels
                if base_channels is None
                else base_channels,
                in_channels=2 if linear_filter else 1,
            ),
            patch_shape=zyx_triple(patch or DEFAULT_PATCH, "--patch", DEFAULT_PATCH),
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
            max_epochs=max_epochs,
            patience=patience,
            learning_rate=learning_rate,
            loss=loss_name,
            n_val_patches=val_patches,
            seed=seed,
            device=device,
            num_threads=threads,
            max_duration_s=max_minutes * 60.0,
        )
        db, train_pairs = _load_split(database, "train")
        _, val_pairs = _load_split(database, "val")
        err_console.print(
            f"training on {len(train_pairs)} pairs "
            f"({len({p.cell_id for p in train_pairs})} cells), validating on "
            f"{len(val_pairs)} pairs; stop after {max_minutes:g} min",
            markup=False,
        )
        catalog_sha256 = db.catalog_sha256()
        fingerprint = run_fingerprint(
            config,
            train_pairs,
            val_pairs,
            catalog_sha256=catalog_sha256,
            initial=initial,
        )
        state = load_snapshot(snapshots, fingerprint=fingerprint) if resume else None
        if state is not None:
            err_console.print(
                f"resuming after epoch {state.epoch} "
                f"({state.elapsed_s / 60:.1f} min trained)",
                markup=False,
            )

        def save(snapshot: TrainingSnapshot) -> None:
            save_snapshot(snapshots, snapshot, fingerprint=fingerprint)

        result = train_model(
            train_pairs,
            val_pairs,
            config,
            progress=progress,
            catalog_sha256=catalog_sha256,
            command_line=("pairscope", *sys.argv[1:]),
            initial=initial,
            resume=state,
            on_snapshot=save,
            snapshot_every_s=snapshot_minutes * 60.0,
        )
        result.checkpoint.save(target)
        snapshots.unlink(missing_ok=True)
        metrics = result.checkpoint.metrics
        _print_training(
            result, metrics["val_loss"], metrics["val_loss_identity"], target
        )


@contextlib.contextmanager
def _epoch_bar(
    *, max_epochs: int, max_minutes: float
) -> Iterator[Callable[[EpochRecord], None]]:
    """A bar over the epochs with the time left; each epoch's losses above it.

    Training ends at ``max_epochs``, when its time budget is spent, or earlier
    when the validation loss stops improving, so the time shown is an upper
    bound: the epochs left at the mean epoch time, or the budget left if
    that is shorter.
    """
    started = time.monotonic()
    durations: list[float] = []
    with Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[left]}"),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("epochs", total=max_epochs, left="")

        def progress(record: EpochRecord) -> None:
            durations.append(record.seconds)
            bar.update(
                task,
                completed=record.epoch,
                left=_time_left(
                    epochs_left=max_epochs - record.epoch,
                    seconds_per_epoch=float(np.mean(durations)),
                    budget_left_s=max_minutes * 60.0 - (time.monotonic() - started),
                ),
            )
            bar.console.print(
                f"epoch {record.epoch:4d}  train {record.train_loss:.5f}  "
                f"val {record.val_loss:.5f}  lr {record.learning_rate:.2g}  "
                f"{record.seconds:.1f} s",
                markup=False,
            )

        yield progress


def _time_left(
    *, epochs_left: int, seconds_per_epoch: float, budget_left_s: float
) -> str:
    """``at most M:SS left``: the shorter of the epochs left and the budget."""
    left = max(0.0, min(epochs_left * seconds_per_epoch, budget_left_s))
    return f"at most {int(left // 60)}:{int(left % 60):02d} left"


def _print_training(
    result: Any, val_loss: float, identity_loss: float, target: Path
) -> None:
    table = Table(title=f"trained model: {target}", box=box.SIMPLE_HEAD)
    for column in ("epochs", "best epoch", "val loss", "identity loss", "minutes"):
        table.add_column(column)
    table.add_row(
        str(len(result.history)),
        str(result.best_epoch),
        f"{val_loss:.5f}",
        f"{identity_loss:.5f}",
        f"{result.seconds / 60:.1f}",
    )
    console.print(table)


def _train_coarse(
    database: Path,
    initial: Any,
    target: Path,
    *,
    patch: str,
    depth: int,
    base_channels: int,
    seed: int,
    max_minutes: float,
    settings: dict[str, Any],
    progress: Any,
) -> None:
    """``pairscope train --stage coarse``: add a coarse stage to ``initial``."""
    from enhance.coarse import CoarseStageConfig
    from enhance.coarse_training import CoarseTrainingConfig, train_coarse_stage
    from enhance.unet import UNetConfig

    stage = CoarseStageConfig(
        unet=UNetConfig(
            depth=depth,
            base_channels=base_channels,
            in_channels=initial.unet.in_channels + 1,
            pool_z=True,
        )
    )
    config = CoarseTrainingConfig(
        stage=stage,
        patch_shape=zyx_triple(patch, "--patch", DEFAULT_PATCH),
        seed=seed,
        max_duration_s=max_minutes * 60.0,
        **settings,
    )
    db, train_pairs = _load_split(database, "train")
    _, val_pairs = _load_split(database, "val")
    err_console.print(
        f"coarse stage: fine predictions of {len(train_pairs)} training and "
        f"{len(val_pairs)} validation pairs, then training for {max_minutes:g} min",
        markup=False,
    )
    result = train_coarse_stage(
        initial,
        train_pairs,
        val_pairs,
        config,
        progress=progress,
        catalog_sha256=db.catalog_sha256(),
        command_line=("pairscope", *sys.argv[1:]),
    )
    result.checkpoint.save(target)
    metrics = result.checkpoint.metrics
    _print_training(
        result, metrics["coarse_val_loss"], metrics["coarse_val_loss_identity"], target
    )


def _metrics_table(report: Any, title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("method", "PSNR dB", "SSIM", "NRMSE", "Pearson r"):
        table.add_column(column)
    for method, metrics in report.mean.items():
        table.add_row(
            method,
            f"{metrics.psnr_db:.2f}",
            f"{metrics.ssim:.4f}",
            f"{metrics.nrmse:.4f}",
            f"{metrics.pearson_r:.4f}",
        )
    return table


@handle_errors
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model file of `pairscope train`.")],
    database: Annotated[Path, typer.Argument(help="Paired-image database folder.")],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="New folder for the report.")
    ],
    split: Annotated[str, typer.Option("--split", help="Split to score.")] = "test",
    rl_iterations: Annotated[
        int | None,
        typer.Option("--rl-iterations", help="Fixed RL count (default: tuned)."),
    ] = None,
    rl_candidates: Annotated[
        str, typer.Option("--rl-candidates", help="RL counts tried when tuning.")
    ] = "10,20,40,80,160",
    rl_background: Annotated[
        float | None,
        typer.Option(
            "--rl-background",
            help="Camera offset subtracted before RL (default: the tuning "
            "stack's 1st percentile).",
        ),
    ] = None,
    max_pairs: Annotated[
        int | None,
        typer.Option("--max-pairs", help="Score only the first N pairs.", min=1),
    ] = None,
    crop: Annotated[
        int | None,
        typer.Option(
            "--crop-yx",
            help="Crop every pair to its central N x N pixels before evaluating "
            "(faster RL; the crop's edges cut the cells).",
            min=16,
        ),
    ] = None,
    score_crop: Annotated[
        int | None,
        typer.Option(
            "--score-crop-yx",
            help="Run every method on the whole stacks and score their central "
            "N x N pixels.",
            min=16,
        ),
    ] = None,
    without_coarse: Annotated[
        bool,
        flag(
            "--without-coarse-stage",
            help="Score the model without its coarse stage (what the stage adds).",
        ),
    ] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda.")] = "auto",
) -> None:
    """Score raw wide-field, Richardson-Lucy and the model against the confocal."""
    from enhance.checkpoint import load_checkpoint
    from enhance.evaluation import evaluate as run_evaluation

    folder = check_output_folder(out_dir)
    try:
        candidates = tuple(int(v) for v in rl_candidates.split(","))
    except ValueError:
        candidates = ()
    if not candidates or min(candidates) < 1:
        raise UserError(
            f"--rl-candidates {rl_candidates!r} is not a list of positive integers",
            "Write it as e.g. 10,20,40,80,160.",
        )
    checkpoint = load_checkpoint(model)
    if without_coarse:
        if checkpoint.coarse is None:
            raise UserError(
                f"model {str(model)!r} has no coarse stage to leave out",
                "Drop --without-coarse-stage.",
            )
        checkpoint = replace(checkpoint, coarse=None)
    _, pairs = _load_split(database, split, limit=max_pairs, crop=crop)
    tuning_pair = None
    if rl_iterations is None:
        if split == "val":
            raise UserError(
                "RL would be tuned on the validation split it is scored on",
                "Pass --rl-iterations, or evaluate the test split.",
            )
        tuning_pair = _load_split(database, "val", limit=1, crop=crop)[1][0]
    if rl_background is None:
        reference = tuning_pair.widefield if tuning_pair else pairs[0].widefield
        rl_background = float(np.percentile(reference, 1.0))
    err_console.print(
        f"scoring {len(pairs)} pairs of the {split} split"
        + (
            f"; tuning RL on validation pair {tuning_pair.pair_id}"
            if tuning_pair
            else ""
        ),
        markup=False,
    )
    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        # RL tuning (when tuned) is the first step, then one per pair
        task = bar.add_task(
            "steps", total=len(pairs) + (1 if rl_iterations is None else 0)
        )
        report = run_evaluation(
            checkpoint,
            pairs,
            out_dir=folder,
            rl_iterations=rl_iterations,
            rl_tuning_pair=tuning_pair,
            rl_candidates=candidates,
            rl_background=rl_background,
            device=device,
            score_crop_yx=score_crop,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(
        _metrics_table(
            report,
            f"{split} split, {len(pairs)} pairs; RL {report.rl_iterations} "
            f"iterations, background {rl_background:.1f}",
        )
    )
    rl, ours = report.mean["richardson_lucy"], report.mean["model"]
    console.print(
        f"model - RL: {ours.psnr_db - rl.psnr_db:+.2f} dB PSNR, "
        f"{ours.ssim - rl.ssim:+.4f} SSIM; model speed "
        f"{report.model_voxels_per_s / 1e6:.2f} Mvoxel/s",
        markup=False,
    )
    console.print(
        f"wrote {report.report_md}, {report.report_json}, {report.figure_png}",
        markup=False,
    )


def _chosen_channel(channel: int | None, n_channels: int, where: str) -> int:
    """The channel to enhance: ``--channel``, or the only one there is.

    A model enhances one channel; taking the first of several unasked would
    enhance the wrong stain without a word.
    """
    if channel is not None:
        return channel
    if n_channels > 1:
        raise UserError(
            f"{where} has {n_channels} channels and the model enhances one",
            f"Choose it with --channel 0..{n_channels - 1} (the channel the "
            "model was trained on).",
        )
    return 0


def _input_stacks(
    source: Path, channel: int | None
) -> list[tuple[str, NDArray[np.float32], tuple[float, float, float], str, str]]:
    """(name, stack, voxel size, position, scope) of every stack of the input."""
    if source.is_file():
        from correlate.pairdb import read_ome_tiff_stack

        imported = read_ome_tiff_stack(source, channel=channel or 0)
        _chosen_channel(channel, imported.n_channels, repr(str(source)))
        name = source.name.split(".")[0] or "stack"
        _check_voxel_values(source, imported.voxel_size_um)
        return [(name, imported.data, imported.voxel_size_um, "", "")]
    if not source.is_dir():
        raise UserError(
            f"input {str(source)!r} does not exist",
            "Give a pairscope dataset folder or an OME-TIFF file.",
        )
    from acquire.storage.reader import committed_stacks, read_stack

    names = committed_stacks(source)
    if not names:
        raise UserError(
            f"dataset {str(source)!r} holds no committed stack",
            "Give a dataset that `pairscope acquire` wrote stacks into.",
        )
    stacks = []
    for name in names:
        stored = read_stack(source, name)
        _check_voxel_values(stored.path, stored.voxel_size_um)
        where = f"stack {name} of {str(source)!r}"
        chosen = _chosen_channel(channel, stored.data.shape[0], where)
        if not 0 <= chosen < stored.data.shape[0]:
            raise UserError(
                f"{where} has no channel {chosen}",
                f"Pick --channel 0..{stored.data.shape[0] - 1}.",
            )
        stacks.append(
            (
                name,
                np.asarray(stored.data[chosen], dtype=np.float32),
                stored.voxel_size_um,
                stored.position_name,
                stored.scope_name,
            )
        )
    return stacks


def _check_voxel_values(where: Path, voxel_size_um: tuple[float, ...]) -> None:
    """Refuse a voxel size that is not finite and positive, before any output."""
    if not all(math.isfinite(v) and v > 0 for v in voxel_size_um):
        raise UserError(
            f"{where} records voxel size (dz, dy, dx) = {tuple(voxel_size_um)} um, "
            "not three positive numbers",
            "Fix the file's physical sizes (OME PhysicalSizeX/Y/Z); nothing was "
            "written.",
        )


def _store_enhanced(
    dataset: Any,
    name: str,
    image: NDArray[np.float32],
    voxel_size_um: tuple[float, float, float],
    position: str,
    scope: str,
) -> None:
    """Commit one enhanced stack into the output dataset."""
    from acquire.storage.spec import StackSpec

    writer = dataset.begin_stack(
        StackSpec(
            name=name,
            n_channels=1,
            n_planes=int(image.shape[0]),
            shape_yx=(int(image.shape[1]), int(image.shape[2])),
            dtype="float32",
            voxel_size_um=voxel_size_um,
            channel_names=("enhanced",),
            position_name=position,
            scope_name=scope,
        )
    )
    for z, plane in enumerate(image):
        writer.write_plane(0, z, plane, {"source_stack": name, "z": z})
    writer.commit()


def _write_enhanced(
    enhancer: Enhancer,
    stacks: list[tuple[str, NDArray[np.float32], tuple[float, float, float], str, str]],
    out: Path,
    *,
    resample: bool,
    manifest: dict[str, Any],
) -> int:
    from acquire.storage.dataset import Dataset
    from enhance.voxels import resample_stack

    checkpoint = enhancer.checkpoint
    voxel = checkpoint.voxel_size_um
    dataset: Dataset | None = None
    voxels_done, seconds_done = 0, 0.0
    with Progress(
        TextColumn("enhancing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("stacks", total=len(stacks), rate="")
        for name, data, voxel_size_um, position, scope in stacks:
            if resample:
                data = resample_stack(data, voxel_size_um, voxel)
                voxel_size_um = voxel
            result = enhancer.predict(data, voxel_size_um=voxel_size_um)
            image = result.image
            if dataset is None:
                dataset = Dataset.create(out, manifest)
            _store_enhanced(dataset, name, image, voxel_size_um, position, scope)
            voxels_done += image.size
            seconds_done += result.seconds
            bar.update(
                task,
                advance=1,
                rate=f"{voxels_done / max(seconds_done, 1e-9) / 1e6:.2f} Mvoxel/s",
            )
            bar.console.print(
                f"{name}: {image.shape[0]}x{image.shape[1]}x{image.shape[2]} voxels "
                f"in {result.seconds:.1f} s "
                f"({result.voxels_per_s / 1e6:.2f} Mvoxel/s)",
                markup=False,
            )
    assert dataset is not None
    dataset.mark_complete()
    return len(stacks)


@handle_errors
def enhance(
    model: Annotated[Path, typer.Argument(help="Model file of `pairscope train`.")],
    source: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT", help="Dataset folder (every stack) or OME-TIFF file."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="New dataset of enhanced stacks.")
    ],
    resample: Annotated[
        bool,
        flag(
            "--resample",
            help="Resample stacks of another voxel size onto the model's grid.",
        ),
    ] = False,
    channel: Annotated[
        int | None,
        typer.Option(
            "--channel",
            help="Channel to enhance (needed when the input has several).",
            min=0,
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda.")] = "auto",
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="auto (torch, the faster on CPU), torch or onnxruntime.",
        ),
    ] = "auto",
) -> None:
    """Enhance every stack of a dataset (or one OME-TIFF) into a new dataset."""
    from enhance.predict import Enhancer
    from enhance.voxels import check_model_grid

    folder = check_output_folder(out)
    enhancer = Enhancer(model, device=device, engine=engine)
    err_console.print(
        f"model {model} on {enhancer.device} with {enhancer.engine_name}",
        markup=False,
    )
    stacks = _input_stacks(source, channel)
    checkpoint = enhancer.checkpoint
    if not resample:
        for name, _, voxel_size_um, _, _ in stacks:
            check_model_grid(
                voxel_size_um,
                checkpoint.voxel_size_um,
                resample=False,
                what=f"stack {name}",
                hint="pass --resample to resample it onto the model's grid",
            )
    count = _write_enhanced(
        enhancer,
        stacks,
        folder,
        resample=resample,
        manifest={
            "kind": "enhanced",
            "source": record_path(source, relative_to=folder),
            "model_file": record_path(model, relative_to=folder),
            "model": {
                "voxel_size_um": list(checkpoint.voxel_size_um),
                "software_version": checkpoint.software_version,
                "created_utc": checkpoint.created_utc,
                "provenance": checkpoint.provenance.to_dict(),
            },
        },
    )
    console.print(f"enhanced {count} stacks into {folder}", markup=False)
