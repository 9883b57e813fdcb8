"""Training losses against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from enhance.errors import EnhanceError
from enhance.losses import SSIM_WEIGHT, make_loss, ssim3d
from enhance.training import TrainingConfig
from enhance.unet import UNetConfig


def test_ssim_matches_scikit_image() -> None:
    rng = np.random.default_rng(0)
    target = rng.random((12, 30, 31))
    prediction = target + 0.3 * rng.random(target.shape)
    expected = structural_similarity(target, prediction, data_range=2.0)
    got = ssim3d(
        torch.from_numpy(prediction)[None],
        torch.from_numpy(target)[None],
        data_range=2.0,
    )
    assert float(got) == pytest.approx(expected, abs=1e-9)


def test_mixed_loss_is_squared_error_plus_weighted_dissimilarity() -> None:
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.random((2, 1, 8, 16, 16)))
    prediction = target + 0.1 * torch.from_numpy(rng.standard_normal(target.shape))
    loss = make_loss("mse+ssim", ssim_data_range=3.0)(prediction, target)
    mse = float(torch.mean((prediction - target) ** 2))
    ssim = np.mean(
        [
            structural_similarity(
                target[i, 0].numpy(), prediction[i, 0].numpy(), data_range=3.0
            )
            for i in range(2)
        ]
    )
    assert float(loss) == pytest.approx(mse + SSIM_WEIGHT * (1 - ssim), rel=1e-6)
    assert float(make_loss("mse+ssim")(target, target)) == pytest.approx(0, abs=1e-9)


def test_ssim_loss_needs_patches_of_seven_voxels() -> None:
    with pytest.raises(EnhanceError, match="too small for the SSIM loss"):
        TrainingConfig(
            unet=UNetConfig(depth=1), patch_shape=(6, 16, 16), loss="mse+ssim"
        )
    with pytest.raises(EnhanceError, match="unknown loss"):
        TrainingConfig(loss="huber")  # type: ignore[arg-type]
