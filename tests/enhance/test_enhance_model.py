"""Training, tiling and normalisation of the enhancement model (tiny, CPU)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from scipy import ndimage

from enhance.checkpoint import Checkpoint
from enhance.data import TrainingPair
from enhance.errors import EnhanceError
from enhance.normalization import PercentileNormalization
from enhance.patches import sample_patches
from enhance.predict import predict_stack
from enhance.training import TrainingConfig, train_model
from enhance.unet import UNet3D, UNetConfig

if TYPE_CHECKING:
    from pathlib import Path

    from enhance.transfer import TransferFunction

VOXEL_UM = (0.25, 0.1, 0.1)


def synthetic_pair(
    seed: int, shape: tuple[int, int, int] = (8, 32, 32)
) -> TrainingPair:
    """Beads seen sharply (confocal) and blurred with haze (wide-field)."""
    rng = np.random.default_rng(seed)
    obj = np.zeros(shape)
    n = int(np.prod(shape) // 200)
    obj[tuple(rng.integers(0, s, n) for s in shape)] = rng.uniform(50, 100, n)
    confocal = ndimage.gaussian_filter(obj, (0.7, 1.0, 1.0))
    widefield = ndimage.gaussian_filter(obj, (2.0, 2.0, 2.0)) + 0.3 * obj.mean()
    return TrainingPair(
        f"pair{seed}",
        f"cell{seed}",
        widefield.astype(np.float32),
        confocal.astype(np.float32),
        VOXEL_UM,
    )


def tiny_config(**changes: object) -> TrainingConfig:
    settings: dict[str, object] = {
        "unet": UNetConfig(depth=1, base_channels=4),
        "patch_shape": (8, 16, 16),
        "batch_size": 2,
        "steps_per_epoch": 4,
        "max_epochs": 1,
        "patience": 3,
        "learning_rate": 3e-3,
        "n_val_patches": 4,
        "seed": 7,
        "device": "cpu",
        "num_threads": 1,
    }
    settings.update(changes)
    return TrainingConfig(**settings)  # type: ignore[arg-type]


def random_checkpoint(
    config: UNetConfig, seed: int = 0, transfer: TransferFunction | None = None
) -> Checkpoint:
    """A network whose output depends strongly on its whole receptive field.

    (At torch's default initialisation a tiny U-Net's correction is ~1e-3 of
    the signal, too weak to expose a tiling error at a 1e-4 tolerance.)
    """
    torch.manual_seed(seed)
    model = UNet3D(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv3d | torch.nn.ConvTranspose3d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.constant_(module.bias, 0.05)
    return Checkpoint(
        unet=config,
        state_dict=model.state_dict(),
        normalization=PercentileNormalization(),
        voxel_size_um=VOXEL_UM,
        transfer=transfer,
    )


def test_tiny_model_overfits_one_pair() -> None:
    pair = synthetic_pair(1)
    result = train_model(
        [pair], [pair], tiny_config(steps_per_epoch=15, max_epochs=6, patience=6)
    )
    metrics = result.checkpoint.metrics
    # the residual net starts near the identity; it must beat it clearly
    assert metrics["val_loss"] < 0.5 * metrics["val_loss_identity"]
    assert result.history[-1].train_loss < 0.5 * result.history[0].train_loss
    assert result.best_epoch == min(result.history, key=lambda r: r.val_loss).epoch
    assert result.checkpoint.provenance.train_pair_ids == ("pair1",)
    recorded = result.checkpoint.training["config"]
    assert TrainingConfig.from_dict(recorded) == tiny_config(
        steps_per_epoch=15, max_epochs=6, patience=6
    )


def test_same_seed_gives_identical_weights() -> None:
    pairs = [synthetic_pair(2), synthetic_pair(3)]
    first = train_model(pairs[:1], pairs[1:], tiny_config())
    second = train_model(pairs[:1], pairs[1:], tiny_config())
    other = train_model(pairs[:1], pairs[1:], tiny_config(seed=8))
    for name, weights in first.checkpoint.state_dict.items():
        assert torch.equal(weights, second.checkpoint.state_dict[name]), name
    assert any(
        not torch.equal(w, other.checkpoint.state_dict[k])
        for k, w in first.checkpoint.state_dict.items()
    )


def test_training_continues_from_a_checkpoint() -> None:
    pair = synthetic_pair(1)
    unet = UNetConfig(depth=1, base_channels=4, in_channels=2)  # with the filter
    first = train_model(
        [pair],
        [pair],
        tiny_config(unet=unet, steps_per_epoch=15, max_epochs=3, patience=3),
    )
    start = first.checkpoint
    # a vanishing learning rate: the continued model is its starting point
    frozen = train_model(
        [pair], [pair], tiny_config(unet=unet, learning_rate=1e-12), initial=start
    ).checkpoint
    for name, weights in start.state_dict.items():
        assert torch.allclose(weights, frozen.state_dict[name], atol=1e-8), name
    assert start.transfer is not None and frozen.transfer is not None
    assert np.array_equal(frozen.transfer.gain, start.transfer.gain)
    # same validation patches: the starting point's validation loss again
    assert frozen.metrics["val_loss"] == pytest.approx(
        start.metrics["val_loss"], rel=1e-4
    )
    assert frozen.training["seconds_total"] == pytest.approx(
        start.training["seconds"] + frozen.training["seconds"], abs=0.01
    )
    assert frozen.training["continued_from"]["created_utc"] == start.created_utc
    with pytest.raises(EnhanceError, match="starting model does not match"):
        train_model(
            [pair],
            [pair],
            tiny_config(unet=UNetConfig(depth=1, base_channels=8, in_channels=2)),
            initial=start,
        )


def test_empty_or_too_small_splits_are_refused() -> None:
    pair = synthetic_pair(4)
    small = synthetic_pair(5, shape=(4, 32, 32))  # fewer planes than a patch
    with pytest.raises(EnhanceError, match="training split holds no pairs"):
        train_model([], [pair], tiny_config())
    with pytest.raises(EnhanceError, match="validation split holds no pairs"):
        train_model([pair], [], tiny_config())
    with pytest.raises(EnhanceError, match="no stack of the training split"):
        train_model([small], [pair], tiny_config())
    with pytest.raises(EnhanceError, match="no stack of the validation split"):
        train_model([pair], [small], tiny_config())


def test_mixed_voxel_sizes_are_refused() -> None:
    pair = synthetic_pair(6)
    coarse = TrainingPair("c", "c", pair.widefield, pair.confocal, (0.5, 0.2, 0.2))
    with pytest.raises(EnhanceError, match="mixes voxel sizes"):
        train_model([pair], [coarse], tiny_config())


def test_patches_share_one_augmentation() -> None:
    rng = np.random.default_rng(0)
    stack = rng.random((6, 20, 20)).astype(np.float32)
    xs, ys = sample_patches(
        [stack], [2 * stack], patch_shape=(4, 8, 8), n_patches=40, rng=rng
    )
    np.testing.assert_allclose(ys, 2 * xs)
    # every patch is a rotated/flipped block of the stack
    windows = np.lib.stride_tricks.sliding_window_view(stack, (4, 8, 8))
    flat = windows.reshape(-1, 4, 8, 8)
    orientations = set()
    for patch in xs:
        for k in range(4):
            for flip in (False, True):
                candidate = np.rot90(patch[:, :, ::-1] if flip else patch, -k, (1, 2))
                if np.any(np.all(flat == candidate, axis=(1, 2, 3))):
                    orientations.add((k, flip))
                    break
            else:
                continue
            break
        else:
            pytest.fail("a patch is no flipped/rotated block of the stack")
    assert len(orientations) >= 4


@pytest.mark.parametrize(
    ("depth", "pool_z", "shape", "tile"),
    [
        (1, True, (12, 40, 45), (28, 32, 32)),
        (1, False, (12, 40, 45), (28, 32, 32)),
        (2, True, (8, 40, 37), (56, 64, 64)),
    ],
)
def test_tiled_inference_matches_whole_stack(
    depth: int, pool_z: bool, shape: tuple[int, int, int], tile: tuple[int, int, int]
) -> None:
    config = UNetConfig(depth=depth, base_channels=2, pool_z=pool_z)
    checkpoint = random_checkpoint(config)
    stack = np.random.default_rng(1).random(shape).astype(np.float32)
    options = {"voxel_size_um": VOXEL_UM, "normalized_output": True}
    whole = predict_stack(checkpoint, stack, tile_shape=(256, 256, 256), **options)
    tiled = predict_stack(
        checkpoint, stack, tile_shape=tile, blend=4, batch_size=3, **options
    )
    assert whole.n_tiles == 1 and tiled.n_tiles >= 8
    assert tiled.image.shape == stack.shape
    assert np.max(np.abs(tiled.image - whole.image)) < 1e-4
    assert tiled.voxels_per_s > 0
    # the check has teeth: with too little context the tiles do differ
    short = predict_stack(
        checkpoint, stack, tile_shape=tile, overlap=(2, 2, 2), blend=4, **options
    )
    assert np.max(np.abs(short.image - whole.image)) > 1e-2


def test_stack_smaller_than_a_tile() -> None:
    checkpoint = random_checkpoint(UNetConfig(depth=2, base_channels=2))
    stack = np.random.default_rng(2).random((3, 9, 11)).astype(np.float32)
    whole = predict_stack(checkpoint, stack, voxel_size_um=VOXEL_UM)
    tiled = predict_stack(
        checkpoint, stack, voxel_size_um=VOXEL_UM, tile_shape=(52, 52, 52)
    )
    assert whole.image.shape == stack.shape
    assert np.max(np.abs(tiled.image - whole.image)) < 1e-4


def identity_checkpoint(config: UNetConfig) -> Checkpoint:
    model = UNet3D(config)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    return Checkpoint(
        unet=config,
        state_dict=model.state_dict(),
        normalization=PercentileNormalization(),
        voxel_size_um=VOXEL_UM,
    )


def test_zero_correction_is_identity_in_input_units() -> None:
    checkpoint = identity_checkpoint(UNetConfig(depth=1, base_channels=4))
    stack = 100 + 50 * np.random.default_rng(4).random((6, 20, 20)).astype(np.float32)
    out = predict_stack(checkpoint, stack, voxel_size_um=VOXEL_UM).image
    np.testing.assert_allclose(out, stack, rtol=1e-5)


def test_blend_weights_cover_every_voxel_once() -> None:
    # many small tiles with little context: the blended weights must still
    # sum to one everywhere, so an identity network returns its input
    checkpoint = identity_checkpoint(UNetConfig(depth=1, base_channels=2))
    stack = 100 + 50 * np.random.default_rng(3).random((13, 41, 39)).astype(np.float32)
    result = predict_stack(
        checkpoint,
        stack,
        voxel_size_um=VOXEL_UM,
        tile_shape=(8, 16, 16),
        overlap=(1, 2, 2),
        blend=3,
    )
    assert result.n_tiles > 20
    np.testing.assert_allclose(result.image, stack, rtol=1e-5)


def test_receptive_radius_is_tight() -> None:
    config = UNetConfig(depth=2, base_channels=2, residual=False)
    torch.manual_seed(0)
    model = UNet3D(config).eval()
    x = torch.randn(1, 1, 56, 56, 56, requires_grad=True)
    reach = 0
    for offset in range(4):  # every position on the pooling grid
        centre = 28 + offset
        model(x)[0, 0, centre, centre, centre].backward()
        assert x.grad is not None
        touched = torch.nonzero(x.grad[0, 0].abs().sum(dim=(1, 2)) > 0).flatten()
        reach = max(reach, centre - int(touched.min()), int(touched.max()) - centre)
        x.grad = None
    assert reach == config.receptive_radius[0]


def test_percentile_normalisation_round_trip() -> None:
    norm = PercentileNormalization(low_percentile=1.0, high_percentile=99.0)
    stack = np.random.default_rng(5).normal(500, 40, (4, 30, 30)).astype(np.float32)
    scale = norm.scale(stack)
    normalised = norm.apply(stack)
    assert np.mean(normalised < 0) == pytest.approx(0.01, abs=0.002)
    assert np.mean(normalised > 1) == pytest.approx(0.01, abs=0.002)
    np.testing.assert_allclose(norm.invert(normalised, scale), stack, rtol=1e-5)
    flat = np.full((2, 4, 4), 3.0, dtype=np.float32)
    assert np.all(np.isfinite(norm.apply(flat)))


def test_a_resumed_run_continues_exactly_where_it_stopped(tmp_path: Path) -> None:
    from enhance.snapshot import TrainingSnapshot, load_snapshot, save_snapshot
    from enhance.training import run_fingerprint

    pairs = [synthetic_pair(2), synthetic_pair(3)]
    config = tiny_config(max_epochs=4, patience=4)
    snapshots: list[TrainingSnapshot] = []
    whole = train_model(
        pairs[:1],
        pairs[1:],
        config,
        on_snapshot=snapshots.append,
        snapshot_every_s=0.0,
    )
    # one per epoch end, but none after the last (the model file is the result)
    assert [s.epoch for s in snapshots] == [1, 2, 3]
    # the run was killed after epoch 2: its snapshot went through a file
    fingerprint = run_fingerprint(config, pairs[:1], pairs[1:])
    path = save_snapshot(tmp_path / "run.resume", snapshots[1], fingerprint=fingerprint)
    state = load_snapshot(path, fingerprint=fingerprint)
    resumed = train_model(pairs[:1], pairs[1:], config, resume=state)
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    assert [r.val_loss for r in resumed.history] == [r.val_loss for r in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    for name, weights in whole.checkpoint.state_dict.items():
        assert torch.equal(weights, resumed.checkpoint.state_dict[name]), name

    # a snapshot resumes only its own run
    changed = tiny_config(max_epochs=4, patience=4, seed=8)
    other = run_fingerprint(changed, pairs[:1], pairs[1:])
    with pytest.raises(EnhanceError, match=r"snapshot of another run .*config"):
        load_snapshot(path, fingerprint=other)
    (tmp_path / "torn.resume").write_bytes(path.read_bytes()[:100])
    with pytest.raises(EnhanceError, match="not a readable training snapshot"):
        load_snapshot(tmp_path / "torn.resume", fingerprint=fingerprint)
