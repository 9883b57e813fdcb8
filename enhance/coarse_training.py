"""Training the coarse stage (:mod:`enhance.coarse`) of a trained model.

The fine network is kept as it is. Every training and validation stack is
normalised, run through the fine network once (whole, tiled as in prediction)
and block-averaged with its network input and its confocal partner; the coarse
U-Net then learns from random patches of these block-averaged stacks (XY flips
and rotations, training split only), validated on a fixed set of validation
patches, with early stopping on the validation loss as in
:mod:`enhance.training`.

The loss is the squared error weighted as SSIM's luminance term weighs a
difference of local means, ``(p - t)^2 / (p^2 + t^2 + C1)`` with
``C1 = (0.01 * data_range)^2`` and the data range of the block-averaged
training targets: the local means the loss compares. A plain squared error,
dominated by the bright structures, leaves the faint cell body as dim as the
fine network renders it. (On the demo database the range of the
full-resolution targets, about 2x larger, weighted the faint body too little;
see ``enhance/models/README.md``.)

A model that already has a coarse stage of the same architecture continues
from its weights (a longer run in stages); otherwise the stage starts as no
correction (the coarse U-Net's output layer zero).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from enhance.coarse import CoarseStage, CoarseStageConfig, block_mean, coarse_input
from enhance.data import TrainingPair, common_voxel_size_um
from enhance.device import configure_threads, select_device
from enhance.errors import EnhanceError
from enhance.losses import luminance_weighted_error
from enhance.patches import sample_patches
from enhance.predict import Enhancer
from enhance.training import (
    FitSettings,
    TrainingResult,
    check_training_settings,
    deterministic_algorithms,
    fit_network,
    recorded_seconds,
)
from enhance.transfer import network_input
from enhance.unet import UNet3D

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from numpy.typing import NDArray

    from enhance.checkpoint import Checkpoint
    from enhance.snapshot import EpochRecord

__all__ = ["CoarseTrainingConfig", "coarse_training_data", "train_coarse_stage"]


@dataclass(frozen=True)
class CoarseTrainingConfig:
    """Settings of one coarse-stage training run.

    Attributes
    ----------
    stage : CoarseStageConfig
        Architecture; its U-Net's ``in_channels`` must be the fine network's
        plus 1.
    patch_shape : tuple of int
        ``(z, y, x)`` patch size in block-averaged voxels; multiples of the
        coarse U-Net's ``shape_multiple``.
    batch_size, steps_per_epoch, max_epochs, patience, n_val_patches : int
        As in :class:`enhance.training.TrainingConfig`.
    learning_rate : float
        Initial Adam learning rate; halved when validation stalls for
        ``max(1, patience // 2)`` epochs.
    seed : int
        Seed of torch, NumPy and patch sampling.
    device : str
        ``"auto"`` (CUDA, MPS, CPU) or a torch device name.
    num_threads : int or None
        CPU threads for torch.
    max_duration_s : float or None
        Stop after the epoch during which this much training time has passed
        (the fine predictions before the first epoch do not count).

    """

    stage: CoarseStageConfig = field(default_factory=CoarseStageConfig)
    patch_shape: tuple[int, int, int] = (32, 64, 64)
    batch_size: int = 4
    steps_per_epoch: int = 20
    max_epochs: int = 200
    patience: int = 20
    learning_rate: float = 1e-3
    n_val_patches: int = 16
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    max_duration_s: float | None = None

    def __post_init__(self) -> None:
        check_training_settings(self, self.stage.unet, what="coarse patch_shape")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of all settings."""
        data = asdict(self)
        data["stage"] = self.stage.to_dict()
        data["patch_shape"] = list(self.patch_shape)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CoarseTrainingConfig:
        """Inverse of :meth:`to_dict`; ``EnhanceError`` on unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise EnhanceError(f"unknown coarse training settings {sorted(unknown)}")
        values = dict(data)
        if "stage" in values:
            values["stage"] = CoarseStageConfig.from_dict(values["stage"])
        if "patch_shape" in values:
            values["patch_shape"] = tuple(int(v) for v in values["patch_shape"])
        return cls(**values)


def coarse_training_data(
    enhancer: Enhancer, pairs: Sequence[TrainingPair], factor: tuple[int, int, int]
) -> tuple[list[NDArray[np.float32]], list[NDArray[np.float32]], float]:
    """Block-averaged coarse inputs and targets of some pairs.

    Parameters
    ----------
    enhancer : Enhancer
        The fine model (without a coarse stage).
    pairs : sequence of TrainingPair
        Registered pairs.
    factor : tuple of int
        Block size.

    Returns
    -------
    inputs, targets, median_range
        ``(channels + 1, z', y', x')`` inputs and ``(z', y', x')`` targets,
        normalised as the model normalises, and the median over the pairs of
        the block-averaged target's max - min.

    """
    checkpoint = enhancer.checkpoint
    norm = checkpoint.normalization
    inputs, targets, ranges = [], [], []
    for pair in pairs:
        x = network_input(
            norm.apply(np.asarray(pair.widefield, np.float32)), checkpoint.transfer
        )
        fine, _, _ = enhancer.enhance_normalised(x)
        target = norm.apply(np.asarray(pair.confocal, np.float32))
        inputs.append(coarse_input(x, fine, factor))
        targets.append(block_mean(target, factor))
        ranges.append(float(targets[-1].max() - targets[-1].min()))
    return inputs, targets, float(np.median(ranges))


def _check_fits(
    stacks: Sequence[NDArray[np.float32]], patch: tuple[int, int, int], what: str
) -> None:
    if not any(
        all(s >= p for s, p in zip(st.shape[-3:], patch, strict=True)) for st in stacks
    ):
        shapes = sorted({tuple(st.shape[-3:]) for st in stacks})
        raise EnhanceError(
            f"no block-averaged stack of the {what} holds one {patch} (z, y, x) "
            f"coarse patch (shapes {shapes})",
            "use a smaller coarse patch or larger stacks",
        )


def train_coarse_stage(
    checkpoint: Checkpoint,
    train_pairs: Sequence[TrainingPair],
    val_pairs: Sequence[TrainingPair],
    config: CoarseTrainingConfig,
    *,
    progress: Callable[[EpochRecord], None] | None = None,
    catalog_sha256: str | None = None,
    command_line: Sequence[str] | None = None,
) -> TrainingResult:
    """Train a coarse stage on top of a trained model's fine network.

    Parameters
    ----------
    checkpoint : Checkpoint
        The trained model. A coarse stage it already has is the starting
        point if its architecture is ``config.stage``, else replaced.
    train_pairs, val_pairs : sequence of TrainingPair
        Training and validation splits (of the data the model was trained on:
        its test cells must stay unseen).
    config : CoarseTrainingConfig
        Settings.
    progress : callable, optional
        Called with each :class:`EpochRecord`.
    catalog_sha256, command_line : optional
        Recorded in the coarse stage's training record.

    Returns
    -------
    TrainingResult
        Its checkpoint is ``checkpoint`` with the new coarse stage.

    Raises
    ------
    EnhanceError
        Empty split, stacks smaller than one coarse patch, a voxel size other
        than the model's, or a stage whose channels do not fit the model.

    """
    for pairs, what in ((train_pairs, "training split"), (val_pairs, "validation")):
        if not pairs:
            raise EnhanceError(f"the {what} holds no pairs", f"add pairs to the {what}")
    voxel = common_voxel_size_um([*train_pairs, *val_pairs], what="coarse training")
    if not np.allclose(voxel, checkpoint.voxel_size_um, rtol=1e-3):
        raise EnhanceError(
            f"the pairs' voxel size {voxel} um is not the model's "
            f"{checkpoint.voxel_size_um} um",
            "train the coarse stage on the data the model was trained on",
        )
    if config.stage.unet.in_channels != checkpoint.unet.in_channels + 1:
        raise EnhanceError(
            f"a coarse U-Net of {config.stage.unet.in_channels} input channels "
            f"does not fit a {checkpoint.unet.in_channels}-channel model",
            f"use in_channels={checkpoint.unet.in_channels + 1}",
        )
    started = time.perf_counter()
    device = select_device(config.device)
    if device.type == "cpu":
        configure_threads(config.num_threads)
    fine_only = replace(checkpoint, coarse=None)
    enhancer = Enhancer(fine_only, device=device)
    factor = config.stage.factor
    train_in, train_tg, data_range = coarse_training_data(enhancer, train_pairs, factor)
    val_in, val_tg, _ = coarse_training_data(enhancer, val_pairs, factor)
    _check_fits(train_in, config.patch_shape, "training split")
    _check_fits(val_in, config.patch_shape, "validation split")
    setup_seconds = time.perf_counter() - started

    with deterministic_algorithms(device):
        torch.manual_seed(config.seed)
        val_x, val_y = sample_patches(
            val_in,
            val_tg,
            patch_shape=config.patch_shape,
            n_patches=config.n_val_patches,
            rng=np.random.default_rng([config.seed, 1]),
            augment=False,
        )

        def loss_fn(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return luminance_weighted_error(prediction, target, data_range=data_range)

        identity_loss = float(
            loss_fn(torch.from_numpy(val_x[:, -1]), torch.from_numpy(val_y))
        )
        model = UNet3D(config.stage.unet)
        earlier = checkpoint.coarse
        if earlier is not None and earlier.config == config.stage:
            model.load_state_dict(dict(earlier.state_dict))
        else:
            earlier = None
            with torch.no_grad():  # start as no correction: the fine model
                for parameter in model.head.parameters():
                    parameter.zero_()
        outcome = fit_network(
            model,
            train_in,
            train_tg,
            val_x,
            val_y,
            loss_fn,
            settings=FitSettings.of(
                config,
                deadline=None
                if config.max_duration_s is None
                else time.perf_counter() + config.max_duration_s,
            ),
            rng=np.random.default_rng(config.seed),
            device=device,
            progress=progress,
        )
    seconds = time.perf_counter() - started
    to_best = setup_seconds + sum(
        r.seconds for r in outcome.history[: outcome.best_epoch]
    )
    earlier_seconds = recorded_seconds(None if earlier is None else earlier.training)
    stage = CoarseStage(
        config=config.stage,
        state_dict=outcome.best_state,
        training={
            "config": config.to_dict(),
            "catalog_sha256": catalog_sha256,
            "train_pair_ids": [p.pair_id for p in train_pairs],
            "val_pair_ids": [p.pair_id for p in val_pairs],
            "loss_data_range": data_range,
            "epochs_run": len(outcome.history),
            "best_epoch": outcome.best_epoch,
            "stopped_early": outcome.stopped_early,
            "val_loss": outcome.best_loss,
            "val_loss_identity": identity_loss,
            "device": str(device),
            "setup_seconds": round(setup_seconds, 3),
            "seconds": round(seconds, 3),
            "seconds_to_best_epoch": round(to_best, 3),
            "seconds_total": round(seconds + earlier_seconds, 3),
            "seconds_to_best_epoch_total": round(to_best + earlier_seconds, 3),
            "command_line": None if command_line is None else list(command_line),
            "continued_from": None
            if earlier is None
            else {
                key: earlier.training.get(key)
                for key in (
                    "command_line",
                    "epochs_run",
                    "best_epoch",
                    "val_loss",
                    "seconds",
                    "seconds_to_best_epoch",
                    "continued_from",
                )
            },
            "history": [asdict(r) for r in outcome.history],
        },
    )
    trained = replace(
        checkpoint,
        coarse=stage,
        metrics={
            **checkpoint.metrics,
            "coarse_val_loss": outcome.best_loss,
            "coarse_val_loss_identity": identity_loss,
        },
    )
    return TrainingResult(
        checkpoint=trained,
        history=outcome.history,
        best_epoch=outcome.best_epoch,
        stopped_early=outcome.stopped_early,
        device=str(device),
        seconds=seconds,
    )
