"""The learned linear wide-field-to-confocal filter and two-channel models."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from scipy import ndimage
from test_enhance_model import random_checkpoint

from enhance.checkpoint import Checkpoint, load_checkpoint
from enhance.data import TrainingPair
from enhance.errors import CheckpointError, EnhanceError
from enhance.normalization import PercentileNormalization
from enhance.predict import predict_stack
from enhance.training import TrainingConfig, train_model
from enhance.transfer import TransferFunction, fit_transfer_function, network_input
from enhance.unet import UNet3D, UNetConfig

if TYPE_CHECKING:
    from pathlib import Path

VOXEL_UM = (0.25, 0.1, 0.1)
SIGMA_UM = (0.25, 0.12, 0.12)
"""A Gaussian 'microscope' between the two stacks: the filter to recover."""
GAIN, OFFSET = 2.0, 3.0


def textured_stack(seed: int, shape: tuple[int, int, int] = (32, 64, 64)) -> np.ndarray:
    """Smooth random texture (power at every frequency the filter passes)."""
    rng = np.random.default_rng(seed)
    return (5.0 + ndimage.gaussian_filter(rng.normal(size=shape), 0.7)).astype(
        np.float32
    )


def known_filter(stack: np.ndarray) -> np.ndarray:
    """``GAIN`` times a Gaussian blur of the stack's deviation, plus an offset.

    Zero outside the stack (``mode="constant"`` after removing the mean), as the
    fitted filter assumes.
    """
    sigma_vox = [s / v for s, v in zip(SIGMA_UM, VOXEL_UM, strict=True)]
    mean = float(stack.mean())
    blurred = ndimage.gaussian_filter(stack - mean, sigma_vox, mode="constant")
    return (GAIN * blurred + GAIN * mean + OFFSET).astype(np.float32)


def fitted() -> TransferFunction:
    wide = [textured_stack(seed) for seed in range(4)]
    return fit_transfer_function(
        wide, [known_filter(w) for w in wide], voxel_size_um=VOXEL_UM
    )


def test_gains_match_the_gaussian_transfer_function() -> None:
    transfer = fitted()
    centre = transfer.gain.shape[0] // 2
    for kz_bin, kr_bin in [(0, 1), (0, 8), (2, 10), (-3, 25), (8, 20)]:
        kz = kz_bin * transfer.kz_step_per_um
        kr = kr_bin * transfer.kr_step_per_um
        # Fourier transform of a unit Gaussian: exp(-2 pi^2 sigma^2 k^2)
        expected = GAIN * np.exp(
            -2 * np.pi**2 * (SIGMA_UM[0] ** 2 * kz**2 + SIGMA_UM[1] ** 2 * kr**2)
        )
        got = transfer.gain[centre + kz_bin, kr_bin]
        # ~5 % low: blur leaking out of a finite stack is cut from the target
        error = abs(got - expected)
        assert error < 0.1 * expected + 0.01 * GAIN, (kz_bin, kr_bin, got, expected)


def test_applying_the_fit_reproduces_the_filter_on_new_stacks() -> None:
    transfer = fitted()
    new = textured_stack(99, shape=(20, 40, 56))  # another shape than the fit's
    predicted = transfer.apply(new)
    truth = known_filter(new)
    assert predicted.shape == new.shape and predicted.dtype == np.float32
    # means: DC gain maps the mean of w to the mean of c (gain and offset)
    assert abs(transfer.dc_gain() - (GAIN * 5.0 + OFFSET) / 5.0) < 0.05
    deviation = predicted - predicted.mean()
    reference = truth - truth.mean()
    r = np.corrcoef(deviation.ravel(), reference.ravel())[0, 1]
    assert r > 0.995
    assert np.sqrt(np.mean((deviation - reference) ** 2)) < 0.08 * reference.std()


def test_record_round_trip_and_bad_records() -> None:
    transfer = fitted()
    again = TransferFunction.from_dict(transfer.to_dict(), transfer.gain)
    np.testing.assert_array_equal(again.gain, transfer.gain)
    assert again.voxel_size_um == VOXEL_UM and again.n_pairs == 4
    with pytest.raises(EnhanceError, match="damaged transfer"):
        TransferFunction.from_dict(transfer.to_dict(), transfer.gain[:, :-1])
    with pytest.raises(EnhanceError, match="matching, non-empty"):
        fit_transfer_function([], [], voxel_size_um=VOXEL_UM)
    with pytest.raises(EnhanceError, match="differ in shape"):
        fit_transfer_function(
            [textured_stack(0)],
            [textured_stack(1, shape=(24, 48, 40))],
            voxel_size_um=VOXEL_UM,
        )


def test_network_input_channels() -> None:
    stack = textured_stack(5)
    assert network_input(stack, None).shape == (1, *stack.shape)
    both = network_input(stack, fitted())
    assert both.shape == (2, *stack.shape)
    np.testing.assert_array_equal(both[0], stack)


def two_channel_pair(seed: int) -> TrainingPair:
    wide = textured_stack(seed, shape=(24, 48, 48))
    return TrainingPair(
        f"pair{seed}", f"cell{seed}", wide, known_filter(wide), VOXEL_UM
    )


def test_two_channel_model_trains_from_the_filter_and_round_trips(
    tmp_path: Path,
) -> None:
    config = TrainingConfig(
        unet=UNetConfig(depth=1, base_channels=4, in_channels=2),
        patch_shape=(8, 16, 16),
        batch_size=2,
        steps_per_epoch=4,
        max_epochs=3,
        learning_rate=3e-3,
        loss="mse",
        n_val_patches=4,
        seed=3,
        device="cpu",
        num_threads=1,
    )
    train, val = [two_channel_pair(1), two_channel_pair(2)], [two_channel_pair(3)]
    result = train_model(train, val, config)
    checkpoint = result.checkpoint
    assert checkpoint.transfer is not None and checkpoint.transfer.n_pairs == 2
    # the identity loss is the filter's own: far below the raw wide-field's,
    # since the target is exactly a filtered wide-field stack
    norm = config.normalization
    raw_loss = float(
        np.mean(
            [
                np.mean((norm.apply(p.widefield) - norm.apply(p.confocal)) ** 2)
                for p in val
            ]
        )
    )
    assert checkpoint.metrics["val_loss_identity"] < 0.1 * raw_loss
    path = checkpoint.save(tmp_path / "two.pt")
    loaded = load_checkpoint(path)
    assert loaded.transfer is not None
    np.testing.assert_array_equal(loaded.transfer.gain, checkpoint.transfer.gain)
    stack = textured_stack(7, shape=(12, 40, 36))
    before = predict_stack(checkpoint, stack, voxel_size_um=VOXEL_UM).image
    after = predict_stack(path, stack, voxel_size_um=VOXEL_UM).image
    np.testing.assert_array_equal(before, after)


def test_two_channel_tiled_inference_matches_whole_stack() -> None:
    config = UNetConfig(depth=1, base_channels=2, in_channels=2)
    checkpoint = random_checkpoint(config, transfer=fitted())
    stack = textured_stack(8, shape=(12, 40, 45))
    whole = predict_stack(
        checkpoint,
        stack,
        voxel_size_um=VOXEL_UM,
        tile_shape=(256, 256, 256),
        normalized_output=True,
    )
    tiled = predict_stack(
        checkpoint,
        stack,
        voxel_size_um=VOXEL_UM,
        tile_shape=(28, 32, 32),
        normalized_output=True,
    )
    assert whole.n_tiles == 1 and tiled.n_tiles >= 8
    assert np.max(np.abs(tiled.image - whole.image)) < 1e-4


def test_channel_count_and_filter_must_agree() -> None:
    model = UNet3D(UNetConfig(depth=1, base_channels=2, in_channels=2))
    with pytest.raises(CheckpointError, match="needs learned transfer"):
        Checkpoint(
            unet=model.config,
            state_dict=model.state_dict(),
            normalization=PercentileNormalization(),
            voxel_size_um=VOXEL_UM,
        )
