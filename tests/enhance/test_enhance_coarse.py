"""The coarse stage: block means, interpolation, training, checkpoints, tiling."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from scipy import ndimage
from test_enhance_model import VOXEL_UM, random_checkpoint

from enhance.checkpoint import Checkpoint, load_checkpoint
from enhance.coarse import (
    CoarseStage,
    CoarseStageConfig,
    block_mean,
    coarse_input,
    upsample_correction,
)
from enhance.coarse_training import CoarseTrainingConfig, train_coarse_stage
from enhance.data import TrainingPair
from enhance.errors import CheckpointError, EnhanceError
from enhance.losses import luminance_weighted_error
from enhance.predict import predict_stack
from enhance.unet import UNet3D, UNetConfig

if TYPE_CHECKING:
    from pathlib import Path

FINE = UNetConfig(depth=1, base_channels=3, pool_z=False)
COARSE_UNET = UNetConfig(depth=1, base_channels=4, in_channels=2, pool_z=False)
STAGE = CoarseStageConfig(factor=(1, 4, 4), unet=COARSE_UNET)


def random_stage(seed: int = 1) -> CoarseStage:
    """A coarse stage whose correction is large (kaiming weights)."""
    torch.manual_seed(seed)
    model = UNet3D(COARSE_UNET)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv3d | torch.nn.ConvTranspose3d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return CoarseStage(config=STAGE, state_dict=model.state_dict())


def test_block_mean_matches_an_explicit_average() -> None:
    rng = np.random.default_rng(0)
    data = rng.random((2, 3, 8, 12)).astype(np.float32)
    out = block_mean(data, (1, 4, 4))
    assert out.shape == (2, 3, 2, 3)
    assert out[1, 2, 1, 2] == pytest.approx(data[1, 2, 4:8, 8:12].mean(), rel=1e-6)
    # a size that is no multiple: the last block repeats the edge voxel
    odd = rng.random((3, 6, 5)).astype(np.float32)
    out = block_mean(odd, (2, 4, 4))
    assert out.shape == (2, 2, 2)
    corner = np.concatenate([odd[2:3], odd[2:3]])[:, 4:6, 4:5]  # z edge repeated
    expected = np.pad(corner, ((0, 0), (0, 2), (0, 3)), mode="edge").mean()
    assert out[1, 1, 1] == pytest.approx(expected, rel=1e-6)


def test_upsampled_correction_interpolates_between_block_centres() -> None:
    # block centres of factor 4 sit at x = 1.5, 5.5, 9.5, ...; a correction
    # linear in the block index must come back linear in x between them
    coarse = np.tile(np.arange(5, dtype=np.float32), (2, 3, 1))
    full = upsample_correction(coarse, (1, 4, 4), (2, 12, 19))
    assert full.shape == (2, 12, 19)
    x = np.arange(19)
    expected = np.clip((x - 1.5) / 4, 0, 4)
    assert np.allclose(full[1, 5], expected, atol=1e-6)
    constant = upsample_correction(
        np.full((2, 2, 2), 3.0, np.float32), (1, 4, 4), (2, 7, 8)
    )
    assert np.allclose(constant, 3.0)


def test_luminance_weighted_error_is_ssims_luminance_loss() -> None:
    p, t = torch.tensor([0.2, 3.0]), torch.tensor([0.1, 3.1])
    data_range = 4.0
    c1 = (0.01 * data_range) ** 2
    luminance = (2 * p * t + c1) / (p**2 + t**2 + c1)
    expected = float((1 - luminance).mean())
    got = float(luminance_weighted_error(p, t, data_range=data_range))
    assert got == pytest.approx(expected, rel=1e-5)
    # the faint pair's error counts far more than the bright pair's
    faint = float(luminance_weighted_error(p[:1], t[:1], data_range=data_range))
    assert faint > 10 * float(luminance_weighted_error(p[1:], t[1:], data_range=4))


def test_checkpoint_with_coarse_stage_round_trips(tmp_path: Path) -> None:
    checkpoint = replace(random_checkpoint(FINE), coarse=random_stage())
    path = checkpoint.save(tmp_path / "m.pt")
    loaded = load_checkpoint(path)
    assert loaded.coarse is not None and loaded.coarse.config == STAGE
    for name, weights in checkpoint.coarse.state_dict.items():  # type: ignore[union-attr]
        assert torch.equal(weights, loaded.coarse.state_dict[name]), name
    stack = 100 + 50 * np.random.default_rng(2).random((6, 32, 32)).astype(np.float32)
    a = predict_stack(checkpoint, stack, voxel_size_um=VOXEL_UM).image
    b = predict_stack(loaded, stack, voxel_size_um=VOXEL_UM).image
    without = predict_stack(
        replace(checkpoint, coarse=None), stack, voxel_size_um=VOXEL_UM
    ).image
    assert np.array_equal(a, b)
    # the stage changes the result, by a smooth (block-scale) correction
    difference = a - without
    assert np.abs(difference).max() > 1e-2 * np.ptp(without)
    assert np.abs(np.diff(difference, axis=2)).max() < np.abs(difference).max()


def test_coarse_stage_of_the_wrong_width_is_refused() -> None:
    wide = UNetConfig(depth=1, base_channels=4, in_channels=3, pool_z=False)
    torch.manual_seed(0)
    stage = CoarseStage(
        config=CoarseStageConfig(unet=wide), state_dict=UNet3D(wide).state_dict()
    )
    with pytest.raises(CheckpointError, match="coarse stage takes 3 channels"):
        replace(random_checkpoint(FINE), coarse=stage)


def test_version_2_file_reads_as_model_without_coarse_stage(tmp_path: Path) -> None:
    path = random_checkpoint(FINE).save(tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = 2
    del raw["coarse_state_dict"]
    torch.save(raw, path)
    assert load_checkpoint(path).coarse is None


def test_tiled_and_whole_prediction_agree_with_a_coarse_stage() -> None:
    checkpoint = replace(random_checkpoint(FINE, seed=4), coarse=random_stage(5))
    stack = 100 + 50 * np.random.default_rng(3).random((6, 70, 58)).astype(np.float32)
    whole = predict_stack(
        checkpoint, stack, voxel_size_um=VOXEL_UM, tile_shape=(18, 96, 96)
    )
    tiled = predict_stack(
        checkpoint, stack, voxel_size_um=VOXEL_UM, tile_shape=(18, 24, 24)
    )
    assert tiled.n_tiles > 1 and whole.n_tiles == 1
    span = np.ptp(whole.image)
    assert np.abs(tiled.image - whole.image).max() < 1e-4 * span


def hazy_pair(seed: int, shape: tuple[int, int, int] = (8, 48, 48)) -> TrainingPair:
    """Beads on a faint broad body (confocal); wide-field without the body."""
    rng = np.random.default_rng(seed)
    obj = np.zeros(shape)
    n = int(np.prod(shape) // 300)
    obj[tuple(rng.integers(0, s, n) for s in shape)] = rng.uniform(50, 100, n)
    _, yy, xx = np.indices(shape)
    body = np.exp(-((yy - shape[1] / 2) ** 2 + (xx - shape[2] / 2) ** 2) / 300.0)
    confocal = ndimage.gaussian_filter(obj, 0.8) + 2.0 * body
    widefield = ndimage.gaussian_filter(obj, 0.8) + 0.5
    return TrainingPair(
        f"pair{seed}",
        f"cell{seed}",
        widefield.astype(np.float32),
        confocal.astype(np.float32),
        VOXEL_UM,
    )


def test_coarse_stage_learns_a_broad_faint_body() -> None:
    fine = random_checkpoint(FINE, seed=2)
    with torch.no_grad():  # an identity fine network: output = input
        state = {k: v.clone() for k, v in fine.state_dict.items()}
        state["head.weight"].zero_()
        state["head.bias"].zero_()
    fine = replace(fine, state_dict=state)
    pairs = [hazy_pair(s) for s in (1, 2, 3)]
    config = CoarseTrainingConfig(
        stage=STAGE,
        patch_shape=(8, 8, 8),
        batch_size=2,
        steps_per_epoch=10,
        max_epochs=8,
        patience=8,
        learning_rate=3e-3,
        n_val_patches=4,
        seed=5,
        device="cpu",
        num_threads=1,
    )
    result = train_coarse_stage(fine, pairs[:2], pairs[2:], config)
    metrics = result.checkpoint.metrics
    assert metrics["coarse_val_loss"] < 0.5 * metrics["coarse_val_loss_identity"]
    coarse = result.checkpoint.coarse
    assert coarse is not None
    assert CoarseTrainingConfig.from_dict(coarse.training["config"]) == config
    assert coarse.training["val_pair_ids"] == ["pair3"]
    again = train_coarse_stage(fine, pairs[:2], pairs[2:], config)
    for name, weights in coarse.state_dict.items():
        assert torch.equal(weights, again.checkpoint.coarse.state_dict[name]), name  # type: ignore[union-attr]
    # continuing with a vanishing learning rate: the stage it started from
    frozen = train_coarse_stage(
        result.checkpoint,
        pairs[:2],
        pairs[2:],
        replace(config, learning_rate=1e-12, max_epochs=1),
    ).checkpoint
    assert frozen.coarse is not None
    for name, weights in coarse.state_dict.items():
        assert torch.allclose(weights, frozen.coarse.state_dict[name], atol=1e-8)
    assert frozen.metrics["coarse_val_loss"] == pytest.approx(
        metrics["coarse_val_loss"], rel=1e-4
    )
    record = frozen.coarse.training
    assert record["continued_from"]["epochs_run"] == coarse.training["epochs_run"]
    assert record["seconds_total"] == pytest.approx(
        coarse.training["seconds"] + record["seconds"], abs=0.01
    )


def test_coarse_training_refuses_a_stage_that_does_not_fit() -> None:
    pairs = [hazy_pair(1), hazy_pair(2)]
    wide = UNetConfig(depth=1, base_channels=4, in_channels=3, pool_z=False)
    config = CoarseTrainingConfig(
        stage=CoarseStageConfig(unet=wide), patch_shape=(8, 8, 8)
    )
    with pytest.raises(EnhanceError, match="does not fit a 1-channel model"):
        train_coarse_stage(random_checkpoint(FINE), pairs[:1], pairs[1:], config)
    small = CoarseTrainingConfig(stage=STAGE, patch_shape=(8, 64, 64))
    with pytest.raises(EnhanceError, match="coarse patch"):
        train_coarse_stage(random_checkpoint(FINE), pairs[:1], pairs[1:], small)


def test_coarse_input_stacks_the_prediction_last() -> None:
    x = np.random.default_rng(0).random((2, 4, 8, 8)).astype(np.float32)
    fine = np.full((4, 8, 8), 7.0, np.float32)
    out = coarse_input(x, fine, (1, 4, 4))
    assert out.shape == (3, 4, 2, 2) and np.allclose(out[-1], 7.0)
    assert out[0, 0, 0, 0] == pytest.approx(x[0, 0, :4, :4].mean(), rel=1e-6)
    with pytest.raises(EnhanceError, match="do not match"):
        coarse_input(x, fine[:2], (1, 4, 4))


def test_checkpoint_refuses_coarse_stage_with_missing_weights(tmp_path: Path) -> None:
    checkpoint: Checkpoint = replace(random_checkpoint(FINE), coarse=random_stage())
    path = checkpoint.save(tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw["coarse_state_dict"].pop("head.bias")
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="coarse stage's weights do not fit"):
        load_checkpoint(path)
