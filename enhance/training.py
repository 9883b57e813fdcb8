"""Training a residual U-Net on wide-field/confocal pairs.

Patches are drawn afresh every epoch from the training split only, each with a
random XY flip/rotation (the same on input and target). Validation uses one
fixed set of un-augmented patches from the validation split, drawn once from
the seed, so validation losses of different epochs are comparable. The
weights of the epoch with the lowest validation loss are kept; training stops
when it has not improved for ``patience`` epochs.

A run is reproducible on the same machine and device: torch, NumPy and the
patch sampling are seeded from ``TrainingConfig.seed`` and torch's
deterministic algorithms are switched on for the run (on CUDA with
``warn_only``, since a few kernels have no deterministic variant). A
``max_duration_s`` limit makes the number of epochs depend on speed.

Mixed precision (``torch.autocast``) is used on CUDA only; CPU and MPS train in
float32.

With a two-channel U-Net (the default), a linear filter from wide-field to
confocal is first fitted in closed form on the training split
(:func:`enhance.transfer.fit_transfer_function`); every stack is filtered once,
whole, and the network sees the wide-field stack and its filtering and learns
a correction to the filtering. The filter travels in the checkpoint.
"""

from __future__ import annotations

import copy
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from enhance.checkpoint import Checkpoint, TrainingProvenance
from enhance.data import TrainingPair, common_voxel_size_um
from enhance.device import configure_threads, place_model, select_device, to_device
from enhance.errors import EnhanceError
from enhance.losses import LOSSES, LossName, make_loss
from enhance.normalization import PercentileNormalization
from enhance.patches import sample_patches
from enhance.recipe import RECIPE
from enhance.snapshot import EpochRecord, TrainingSnapshot
from enhance.state_files import cpu_state
from enhance.transfer import fit_transfer_function, network_input
from enhance.unet import UNet3D, UNetConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from numpy.typing import NDArray

__all__ = [
    "FitOutcome",
    "FitSettings",
    "TrainingConfig",
    "TrainingResult",
    "batched_loss",
    "check_training_settings",
    "deterministic_algorithms",
    "fit_network",
    "recorded_seconds",
    "run_fingerprint",
    "train_model",
]


def check_training_settings(settings: Any, unet: UNetConfig, *, what: str) -> None:
    """Validate the fields a training configuration shares with others.

    ``settings`` has ``patch_shape``, ``batch_size``, ``steps_per_epoch``,
    ``max_epochs``, ``patience``, ``n_val_patches`` and ``learning_rate``;
    ``what`` names the patch shape in the message.

    Raises
    ------
    EnhanceError
        Naming the first bad value and how to fix it.

    """
    patch = tuple(settings.patch_shape)
    multiple = unet.shape_multiple
    if len(patch) != 3 or any(
        p < 1 or p % m for p, m in zip(patch, multiple, strict=True)
    ):
        raise EnhanceError(
            f"{what} {patch} must be 3 positive multiples of {multiple} (z, y, x) "
            f"for a depth-{unet.depth} U-Net",
            "round each size to a multiple",
        )
    for name in (
        "batch_size",
        "steps_per_epoch",
        "max_epochs",
        "patience",
        "n_val_patches",
    ):
        if getattr(settings, name) < 1:
            raise EnhanceError(f"{name} must be >= 1, got {getattr(settings, name)}")
    if settings.learning_rate <= 0:
        raise EnhanceError(f"learning_rate must be > 0, got {settings.learning_rate}")


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one training run; the defaults are `enhance.recipe.RECIPE`.

    Attributes
    ----------
    unet : UNetConfig
        Architecture; ``in_channels=2`` (the default) adds the learned linear
        filter (see module notes), 1 trains on the wide-field stack alone.
    normalization : PercentileNormalization
        Intensity normalisation of input and target stacks.
    patch_shape : tuple of int
        ``(z, y, x)`` training patch size; each must be a multiple of
        ``unet.shape_multiple``. Equal y and x allow 90-degree rotations.
    batch_size : int
        Patches per optimiser step.
    steps_per_epoch : int
        Optimiser steps between validations.
    max_epochs : int
        Upper limit of epochs.
    patience : int
        Epochs without a better validation loss before stopping.
    learning_rate : float
        Initial Adam learning rate; halved when validation stalls for
        ``max(1, patience // 2)`` epochs.
    loss : {"l1", "mse", "mse+ssim"}
        Loss in normalised units (see :mod:`enhance.losses`; the SSIM term's
        data range is the training targets' median max - min).
    n_val_patches : int
        Size of the fixed validation patch set.
    seed : int
        Seed of torch, NumPy and patch sampling.
    device : str
        ``"auto"`` (CUDA, MPS, CPU), or a torch device name.
    num_threads : int or None
        CPU threads for torch (``None``: torch's default, capped at the CPUs
        this process may use).
    amp : bool
        Mixed precision on CUDA (ignored elsewhere).
    max_duration_s : float or None
        Stop after the epoch during which this much time has passed.

    """

    unet: UNetConfig = field(
        default_factory=lambda: UNetConfig(
            depth=RECIPE.depth,
            base_channels=RECIPE.base_channels,
            in_channels=2 if RECIPE.linear_filter else 1,
        )
    )
    normalization: PercentileNormalization = field(
        default_factory=PercentileNormalization
    )
    patch_shape: tuple[int, int, int] = RECIPE.patch_shape
    batch_size: int = RECIPE.batch_size
    steps_per_epoch: int = RECIPE.steps_per_epoch
    max_epochs: int = RECIPE.max_epochs
    patience: int = RECIPE.patience
    learning_rate: float = RECIPE.learning_rate
    loss: LossName = RECIPE.loss  # type: ignore[assignment]  # checked below
    n_val_patches: int = RECIPE.n_val_patches
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    amp: bool = True
    max_duration_s: float | None = RECIPE.max_duration_s

    def __post_init__(self) -> None:
        check_training_settings(self, self.unet, what="patch_shape")
        if self.loss not in LOSSES:
            raise EnhanceError(
                f"unknown loss {self.loss!r}", f"use one of {', '.join(LOSSES)}"
            )
        if "ssim" in self.loss and min(self.patch_shape) < 7:
            raise EnhanceError(
                f"patch_shape {self.patch_shape} is too small for the SSIM loss",
                "use patches of at least 7 voxels along every axis",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of all settings."""
        data = asdict(self)
        data["unet"] = self.unet.to_dict()
        data["normalization"] = self.normalization.to_dict()
        data["patch_shape"] = list(self.patch_shape)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        """Inverse of :meth:`to_dict` (e.g. from ``checkpoint.training["config"]``).

        Raises
        ------
        EnhanceError
            On unknown keys or invalid values.

        """
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise EnhanceError(f"unknown training settings {sorted(unknown)}")
        values = dict(data)
        if "unet" in values:
            values["unet"] = UNetConfig.from_dict(dict(values["unet"]))
        if "normalization" in values:
            values["normalization"] = PercentileNormalization.from_dict(
                dict(values["normalization"])
            )
        if "patch_shape" in values:
            values["patch_shape"] = tuple(int(v) for v in values["patch_shape"])
        return cls(**values)


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """Outcome of :func:`train_model`.

    Attributes
    ----------
    checkpoint : Checkpoint
        Best weights with their metadata; ``checkpoint.save(path)`` writes it.
    history : tuple of EpochRecord
        One record per epoch run.
    best_epoch : int
        Epoch whose weights were kept.
    stopped_early : bool
        Training ended by patience (not by ``max_epochs`` or time).
    device : str
        Device trained on.
    seconds : float
        Wall time of the run.

    """

    checkpoint: Checkpoint
    history: tuple[EpochRecord, ...]
    best_epoch: int
    stopped_early: bool
    device: str
    seconds: float


def run_fingerprint(
    config: TrainingConfig,
    train_pairs: Sequence[TrainingPair],
    val_pairs: Sequence[TrainingPair],
    *,
    catalog_sha256: str | None = None,
    initial: Checkpoint | None = None,
) -> dict[str, Any]:
    """What identifies a training run, for its snapshots (JSON-safe).

    The time limit is left out: a resumed run may be given more time.
    """
    settings = config.to_dict()
    settings.pop("max_duration_s", None)
    return {
        "config": settings,
        "train_pairs": [p.pair_id for p in train_pairs],
        "val_pairs": [p.pair_id for p in val_pairs],
        "catalog_sha256": catalog_sha256,
        "initial": None if initial is None else initial.created_utc,
    }


def _check_initial(
    initial: Checkpoint, config: TrainingConfig, voxel: tuple[float, float, float]
) -> None:
    """Refuse a starting model that cannot continue with this configuration."""
    problems = []
    if initial.unet != config.unet:
        problems.append(f"architecture {initial.unet} != {config.unet}")
    if initial.normalization != config.normalization:
        problems.append("a different intensity normalisation")
    if not np.allclose(initial.voxel_size_um, voxel, rtol=1e-3):
        problems.append(f"voxel {initial.voxel_size_um} um, the data {tuple(voxel)} um")
    if problems:
        raise EnhanceError(
            "the starting model does not match: " + "; ".join(problems),
            "train from scratch, or use the starting model's architecture "
            "and data of its voxel size",
        )


def recorded_seconds(training: Mapping[str, Any] | None) -> float:
    """Training time a record holds over all its runs (0 without a record)."""
    if training is None:
        return 0.0
    earlier = training.get("seconds_total", training.get("seconds"))
    return float(earlier) if isinstance(earlier, (int, float)) else 0.0


def _lineage(initial: Checkpoint) -> dict[str, Any]:
    """What a continued run started from (JSON-safe)."""
    return {
        "created_utc": initial.created_utc,
        "seed": initial.seed,
        "command_line": list(initial.command_line or ()),
        "best_epoch": initial.training.get("best_epoch"),
        "val_loss": initial.metrics.get("val_loss"),
        "continued_from": initial.training.get("continued_from"),
    }


def _check_split(
    pairs: Sequence[TrainingPair], patch_shape: tuple[int, int, int], what: str
) -> None:
    if not pairs:
        raise EnhanceError(f"the {what} holds no pairs", f"add pairs to the {what}")
    fits = [
        p
        for p in pairs
        if all(s >= q for s, q in zip(p.widefield.shape, patch_shape, strict=True))
    ]
    if not fits:
        shapes = sorted({tuple(p.widefield.shape) for p in pairs})
        raise EnhanceError(
            f"no stack of the {what} holds one {patch_shape} (z, y, x) patch "
            f"(stack shapes {shapes})",
            "use a smaller patch_shape or add larger stacks",
        )


def _normalised(
    pairs: Sequence[TrainingPair], norm: PercentileNormalization
) -> tuple[list[NDArray[np.float32]], list[NDArray[np.float32]]]:
    inputs = [norm.apply(np.asarray(p.widefield, dtype=np.float32)) for p in pairs]
    targets = [norm.apply(np.asarray(p.confocal, dtype=np.float32)) for p in pairs]
    return inputs, targets


def _autocast(device: torch.device, enabled: bool) -> AbstractContextManager[Any]:
    if device.type != "cuda" or not enabled:
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def batched_loss(
    model: UNet3D,
    xs: NDArray[np.float32],
    ys: NDArray[np.float32],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    device: torch.device,
    amp: bool,
) -> float:
    """Mean loss of ``model`` over patches ``xs`` against targets ``ys``."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(xs), batch_size):
            x = to_device(xs[start : start + batch_size], device)
            y = torch.from_numpy(ys[start : start + batch_size, None]).to(device)
            with _autocast(device, amp):
                pred = model(x)
            total += float(loss_fn(pred.float(), y)) * len(x)
    return total / len(xs)


@contextmanager
def deterministic_algorithms(device: torch.device) -> Iterator[None]:
    """Torch's deterministic algorithms on (warn-only off the CPU), then restored."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn_only)


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_network` trains (see :class:`TrainingConfig`).

    ``deadline`` is a ``time.perf_counter()`` value after which no new epoch
    starts; ``amp`` is mixed precision (CUDA only); ``snapshot_every_s`` is
    how often (at the first epoch end past it) the state is handed to
    ``on_snapshot``.
    """

    patch_shape: tuple[int, int, int]
    batch_size: int
    steps_per_epoch: int
    max_epochs: int
    patience: int
    learning_rate: float
    amp: bool = False
    deadline: float | None = None
    snapshot_every_s: float | None = None

    @classmethod
    def of(
        cls,
        config: Any,
        *,
        amp: bool = False,
        deadline: float | None = None,
        snapshot_every_s: float | None = None,
    ) -> FitSettings:
        """The settings of a training configuration with those fields."""
        return cls(
            patch_shape=config.patch_shape,
            batch_size=config.batch_size,
            steps_per_epoch=config.steps_per_epoch,
            max_epochs=config.max_epochs,
            patience=config.patience,
            learning_rate=config.learning_rate,
            amp=amp,
            deadline=deadline,
            snapshot_every_s=snapshot_every_s,
        )


@dataclass(frozen=True, eq=False)
class FitOutcome:
    """The epochs :func:`fit_network` ran and the weights it kept."""

    history: tuple[EpochRecord, ...]
    best_loss: float
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    stopped_early: bool


def fit_network(
    model: UNet3D,
    train_inputs: Sequence[NDArray[np.float32]],
    train_targets: Sequence[NDArray[np.float32]],
    val_x: NDArray[np.float32],
    val_y: NDArray[np.float32],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    settings: FitSettings,
    rng: np.random.Generator,
    device: torch.device,
    progress: Callable[[EpochRecord], None] | None = None,
    resume: TrainingSnapshot | None = None,
    on_snapshot: Callable[[TrainingSnapshot], None] | None = None,
) -> FitOutcome:
    """Adam on fresh augmented patches every epoch, validation, early stopping.

    The learning rate halves when validation stalls for
    ``max(1, patience // 2)`` epochs; training stops after ``patience``
    epochs without a better validation loss, after ``max_epochs``, or at the
    first epoch end past ``deadline``. The weights of the best epoch are kept.
    Every ``settings.snapshot_every_s`` the state is handed to
    ``on_snapshot``; given back as ``resume``, the run goes on from there as
    if it had not stopped (``rng`` and torch's random state included).

    Raises
    ------
    EnhanceError
        If the validation loss becomes NaN or infinite.

    """
    fit_started = time.perf_counter()
    model = place_model(model, device)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, factor=0.5, patience=max(1, settings.patience // 2)
    )
    scaler = torch.amp.GradScaler(
        "cuda", enabled=settings.amp and not torch.cuda.is_bf16_supported()
    )
    history: list[EpochRecord] = []
    best_loss, best_epoch = float("inf"), 0
    best_state: dict[str, torch.Tensor] | None = None
    stale, stopped_early, first_epoch, spent_before = 0, False, 1, 0.0
    if resume is not None:
        model.load_state_dict(resume.model_state)
        optimiser.load_state_dict(resume.optimiser_state)
        scheduler.load_state_dict(resume.scheduler_state)
        if resume.scaler_state:
            scaler.load_state_dict(resume.scaler_state)
        rng.bit_generator.state = resume.numpy_rng_state
        torch.set_rng_state(resume.torch_rng_state)
        history = list(resume.history)
        best_loss, best_epoch, best_state = (
            resume.best_loss,
            resume.best_epoch,
            resume.best_state,
        )
        stale, first_epoch, spent_before = (
            resume.stale,
            resume.epoch + 1,
            resume.elapsed_s,
        )
    last_snapshot = time.perf_counter()
    n = settings.batch_size
    for epoch in range(first_epoch, settings.max_epochs + 1):
        epoch_start = time.perf_counter()
        xs, ys = sample_patches(
            train_inputs,
            train_targets,
            patch_shape=settings.patch_shape,
            n_patches=settings.steps_per_epoch * n,
            rng=rng,
        )
        model.train()
        running = 0.0
        for step in range(settings.steps_per_epoch):
            x = to_device(xs[step * n : (step + 1) * n], device)
            y = torch.from_numpy(ys[step * n : (step + 1) * n, None]).to(device)
            optimiser.zero_grad(set_to_none=True)
            with _autocast(device, settings.amp):
                pred = model(x)
            loss = loss_fn(pred.float(), y)
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(optimiser)
            scaler.update()
            running += float(loss.detach())
        val_loss = batched_loss(
            model, val_x, val_y, loss_fn, batch_size=n, device=device, amp=settings.amp
        )
        if not np.isfinite(val_loss):
            raise EnhanceError(
                f"training diverged at epoch {epoch} (validation loss {val_loss})",
                "lower the learning rate or turn amp off",
            )
        scheduler.step(val_loss)
        record = EpochRecord(
            epoch=epoch,
            train_loss=running / settings.steps_per_epoch,
            val_loss=val_loss,
            learning_rate=float(optimiser.param_groups[0]["lr"]),
            seconds=time.perf_counter() - epoch_start,
        )
        history.append(record)
        if progress is not None:
            progress(record)
        if val_loss < best_loss:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = cpu_state(model.state_dict())
        else:
            stale += 1
            if stale >= settings.patience:
                stopped_early = True
                break
        if settings.deadline is not None and time.perf_counter() >= settings.deadline:
            break
        due = settings.snapshot_every_s
        if (
            on_snapshot is not None
            and due is not None
            and time.perf_counter() - last_snapshot >= due
            and epoch < settings.max_epochs
        ):
            assert best_state is not None
            on_snapshot(
                TrainingSnapshot(
                    epoch=epoch,
                    model_state=cpu_state(model.state_dict()),
                    # copies: the live states go on changing in place
                    optimiser_state=copy.deepcopy(optimiser.state_dict()),
                    scheduler_state=copy.deepcopy(scheduler.state_dict()),
                    scaler_state=copy.deepcopy(scaler.state_dict()),
                    best_loss=best_loss,
                    best_epoch=best_epoch,
                    best_state=best_state,
                    stale=stale,
                    history=tuple(history),
                    numpy_rng_state=dict(rng.bit_generator.state),
                    torch_rng_state=torch.get_rng_state(),
                    elapsed_s=spent_before + time.perf_counter() - fit_started,
                )
            )
            last_snapshot = time.perf_counter()
    assert best_state is not None  # at least one epoch ran with a finite loss
    return FitOutcome(
        history=tuple(history),
        best_loss=best_loss,
        best_epoch=best_epoch,
        best_state=best_state,
        stopped_early=stopped_early,
    )


def train_model(
    train_pairs: Sequence[TrainingPair],
    val_pairs: Sequence[TrainingPair],
    config: TrainingConfig,
    *,
    progress: Callable[[EpochRecord], None] | None = None,
    catalog_sha256: str | None = None,
    command_line: Sequence[str] | None = None,
    initial: Checkpoint | None = None,
    resume: TrainingSnapshot | None = None,
    on_snapshot: Callable[[TrainingSnapshot], None] | None = None,
    snapshot_every_s: float | None = None,
) -> TrainingResult:
    """Train a residual U-Net that maps wide-field stacks to confocal ones.

    Parameters
    ----------
    train_pairs : sequence of TrainingPair
        Training split (patches come from here only).
    val_pairs : sequence of TrainingPair
        Validation split (early stopping and the kept weights).
    config : TrainingConfig
        Settings.
    progress : callable, optional
        Called with each :class:`EpochRecord` as the epoch ends.
    catalog_sha256 : str, optional
        Hash of the database catalog, recorded in the checkpoint.
    command_line : sequence of str, optional
        Command that started training, recorded in the checkpoint.
    initial : Checkpoint, optional
        Continue from this model (fine-tuning, or a longer run in stages):
        its weights and linear filter are the starting point; its
        architecture, normalisation and voxel size must match.
    resume : TrainingSnapshot, optional
        Continue the interrupted run this snapshot was taken of (check it
        with `run_fingerprint` first: same settings, pairs and ``initial``).
    on_snapshot : callable, optional
        Receives the run's state every ``snapshot_every_s`` (at an epoch
        end), e.g. to save it with `enhance.snapshot.save_snapshot`.
    snapshot_every_s : float, optional
        Time between snapshots (default: none are taken).

    Returns
    -------
    TrainingResult

    Raises
    ------
    EnhanceError
        If a split is empty, holds no stack as large as one patch, or mixes
        voxel sizes, or the two splits differ in voxel size, or ``initial``
        does not match the configuration or the data.

    """
    _check_split(train_pairs, config.patch_shape, "training split")
    _check_split(val_pairs, config.patch_shape, "validation split")
    voxel = common_voxel_size_um(train_pairs, what="training split")
    common_voxel_size_um(
        [train_pairs[0], *val_pairs], what="training and validation splits"
    )

    if initial is not None:
        _check_initial(initial, config, voxel)
    started = time.perf_counter()
    device = select_device(config.device)
    if device.type == "cpu":
        configure_threads(config.num_threads)
    use_amp = config.amp and device.type == "cuda"
    with deterministic_algorithms(device):
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        val_rng = np.random.default_rng([config.seed, 1])
        train_wf, train_tg = _normalised(train_pairs, config.normalization)
        val_wf, val_tg = _normalised(val_pairs, config.normalization)
        if initial is not None:
            transfer = initial.transfer  # the filter its weights learned with
        elif config.unet.in_channels == 2:
            transfer = fit_transfer_function(train_wf, train_tg, voxel_size_um=voxel)
        else:
            transfer = None
        train_in = [network_input(w, transfer) for w in train_wf]
        val_in = [network_input(w, transfer) for w in val_wf]
        del train_wf, val_wf
        val_x, val_y = sample_patches(
            val_in,
            val_tg,
            patch_shape=config.patch_shape,
            n_patches=config.n_val_patches,
            rng=val_rng,
            augment=False,
        )
        model = UNet3D(config.unet)
        if initial is not None:
            model.load_state_dict(initial.state_dict)
        ssim_range = float(np.median([float(t.max() - t.min()) for t in train_tg]))
        loss_fn = make_loss(config.loss, ssim_data_range=ssim_range)
        # the network's starting point: its input's last channel as it stands
        identity_loss = float(
            loss_fn(torch.from_numpy(val_x[:, -1]), torch.from_numpy(val_y))
        )
        spent_before = 0.0 if resume is None else resume.elapsed_s
        deadline = (
            None
            if config.max_duration_s is None
            else started + config.max_duration_s - spent_before
        )
        outcome = fit_network(
            model,
            train_in,
            train_tg,
            val_x,
            val_y,
            loss_fn,
            settings=FitSettings.of(
                config,
                amp=use_amp,
                deadline=deadline,
                snapshot_every_s=snapshot_every_s,
            ),
            rng=rng,
            device=device,
            progress=progress,
            resume=resume,
            on_snapshot=on_snapshot,
        )
    seconds = time.perf_counter() - started + spent_before
    checkpoint = Checkpoint(
        unet=config.unet,
        state_dict=outcome.best_state,
        normalization=config.normalization,
        voxel_size_um=voxel,
        transfer=transfer,
        provenance=TrainingProvenance(
            catalog_sha256=catalog_sha256,
            train_pair_ids=tuple(p.pair_id for p in train_pairs),
            val_pair_ids=tuple(p.pair_id for p in val_pairs),
            train_cell_ids=tuple(sorted({p.cell_id for p in train_pairs})),
            val_cell_ids=tuple(sorted({p.cell_id for p in val_pairs})),
        ),
        metrics={"val_loss": outcome.best_loss, "val_loss_identity": identity_loss},
        training={
            "config": config.to_dict(),
            "epochs_run": len(outcome.history),
            "best_epoch": outcome.best_epoch,
            "stopped_early": outcome.stopped_early,
            "ssim_data_range": ssim_range,
            "device": str(device),
            "seconds": round(seconds, 3),
            "seconds_total": round(
                seconds
                + recorded_seconds(None if initial is None else initial.training),
                3,
            ),
            "continued_from": None if initial is None else _lineage(initial),
            "history": [asdict(r) for r in outcome.history],
        },
        seed=config.seed,
        command_line=None if command_line is None else tuple(command_line),
    )
    return TrainingResult(
        checkpoint=checkpoint,
        history=outcome.history,
        best_epoch=outcome.best_epoch,
        stopped_early=outcome.stopped_early,
        device=str(device),
        seconds=seconds,
    )
