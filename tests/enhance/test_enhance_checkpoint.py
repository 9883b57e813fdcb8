"""Model files: round trip, validation, and the voxel-size contract."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from enhance.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Checkpoint,
    TrainingProvenance,
    load_checkpoint,
    software_version,
)
from enhance.errors import CheckpointError, VoxelSizeError
from enhance.normalization import PercentileNormalization
from enhance.predict import Enhancer, enhance_stack, predict_stack
from enhance.unet import UNet3D, UNetConfig

if TYPE_CHECKING:
    from pathlib import Path

VOXEL_UM = (0.25, 0.1, 0.1)


def make_checkpoint(*, identity: bool = False) -> Checkpoint:
    config = UNetConfig(depth=1, base_channels=3, kernel_size=3, pool_z=False)
    torch.manual_seed(3)
    model = UNet3D(config)
    if identity:
        torch.nn.init.zeros_(model.head.weight)
        torch.nn.init.zeros_(model.head.bias)
    return Checkpoint(
        unet=config,
        state_dict=model.state_dict(),
        normalization=PercentileNormalization(low_percentile=2.0, high_percentile=99.5),
        voxel_size_um=VOXEL_UM,
        provenance=TrainingProvenance(
            catalog_sha256="ab" * 32,
            train_pair_ids=("p1", "p2"),
            val_pair_ids=("p3",),
            train_cell_ids=("c1",),
            val_cell_ids=("c2",),
        ),
        metrics={"val_loss": 0.125},
        training={"config": {"patch_shape": [8, 16, 16]}, "best_epoch": 4},
        seed=11,
        command_line=("pairscope", "train", "db", "--out", "m.pt"),
    )


def stack(seed: int = 0, shape: tuple[int, int, int] = (6, 24, 24)) -> np.ndarray:
    return (100 + 40 * np.random.default_rng(seed).random(shape)).astype(np.float32)


def test_round_trip_keeps_outputs_and_metadata(tmp_path: Path) -> None:
    checkpoint = make_checkpoint()
    path = checkpoint.save(tmp_path / "model.pt")
    loaded = load_checkpoint(path)
    assert loaded.metadata() == checkpoint.metadata()
    assert loaded.unet == checkpoint.unet
    assert loaded.normalization == checkpoint.normalization
    assert loaded.provenance.catalog_sha256 == "ab" * 32
    assert loaded.command_line == checkpoint.command_line
    assert loaded.seed == 11
    assert loaded.software_version == software_version() != ""
    data = stack()
    before = enhance_stack(checkpoint, data, voxel_size_um=VOXEL_UM)
    after = enhance_stack(path, data, voxel_size_um=VOXEL_UM)
    np.testing.assert_array_equal(before, after)
    # a plain weights-only load works: no pickled code in the file
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT_NAME and raw["format_version"] == FORMAT_VERSION
    meta = json.loads(raw["metadata_json"])
    assert meta["voxel_size_um"] == list(VOXEL_UM)
    assert meta["provenance"]["train_pair_ids"] == ["p1", "p2"]
    assert meta["normalization"]["method"] == "percentile"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


def test_garbage_and_truncated_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("not a model\n")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(text)
    good = make_checkpoint().save(tmp_path / "model.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(truncated)


def test_foreign_torch_files(tmp_path: Path) -> None:
    plain = tmp_path / "state_dict.pt"
    torch.save(UNet3D(UNetConfig(depth=1, base_channels=2)).state_dict(), plain)
    with pytest.raises(CheckpointError, match="not a pairscope enhancement model"):
        load_checkpoint(plain)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match="not a pairscope enhancement model"):
        load_checkpoint(tensor)


def test_other_format_version_is_refused(tmp_path: Path) -> None:
    path = make_checkpoint().save(tmp_path / "model.pt")
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=f"version {FORMAT_VERSION + 1}"):
        load_checkpoint(path)


def test_damaged_metadata_and_mismatched_weights(tmp_path: Path) -> None:
    path = make_checkpoint().save(tmp_path / "model.pt")
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["metadata_json"])
    del meta["voxel_size_um"]
    torch.save({**raw, "metadata_json": json.dumps(meta)}, tmp_path / "nometa.pt")
    with pytest.raises(CheckpointError, match="damaged metadata"):
        load_checkpoint(tmp_path / "nometa.pt")
    meta = json.loads(raw["metadata_json"])
    meta["unet"]["base_channels"] = 5
    torch.save({**raw, "metadata_json": json.dumps(meta)}, tmp_path / "wide.pt")
    with pytest.raises(CheckpointError, match="do not fit the recorded architecture"):
        load_checkpoint(tmp_path / "wide.pt")
    # metadata asking for a network of terabytes is refused, not allocated
    for key, value, message in (
        ("base_channels", 100_000, "base_channels 100000 outside 1..256"),
        ("depth", 5, "2048 channels at the bottom, more than 1024"),
        ("kernel_size", 101, "kernel_size 101 must be odd, 1..9"),
    ):
        meta = json.loads(raw["metadata_json"])
        meta["unet"][key] = value
        if key == "depth":
            meta["unet"]["base_channels"] = 64  # 64 x 2**5 = 2048 at the bottom
        huge = tmp_path / f"huge_{key}.pt"
        torch.save({**raw, "metadata_json": json.dumps(meta)}, huge)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(huge)


def test_voxel_size_within_tolerance_is_accepted() -> None:
    checkpoint = make_checkpoint()
    data = stack(1)
    exact = enhance_stack(checkpoint, data, voxel_size_um=VOXEL_UM)
    close = enhance_stack(checkpoint, data, voxel_size_um=(0.26, 0.101, 0.099))
    np.testing.assert_array_equal(exact, close)


def test_wrong_voxel_size_is_refused_with_both_sizes() -> None:
    enhancer = Enhancer(make_checkpoint(), device="cpu")
    with pytest.raises(VoxelSizeError) as info:
        enhancer.predict(stack(2), voxel_size_um=(0.5, 0.2, 0.2))
    message = str(info.value)
    assert "(0.5, 0.2, 0.2)" in message and "(0.25, 0.1, 0.1)" in message
    assert "resample=True" in message


def test_wrong_voxel_size_is_resampled_on_request() -> None:
    # an identity model isolates the resampling: out ~= in, same shape
    checkpoint = make_checkpoint(identity=True)
    z = np.linspace(0, 1, 10)[:, None, None]
    yx = np.linspace(0, 1, 30)
    smooth = (
        100 + 50 * z * np.sin(3 * yx)[None, :, None] * np.cos(2 * yx)[None, None, :]
    )
    smooth = smooth.astype(np.float32)
    result = predict_stack(
        checkpoint, smooth, voxel_size_um=(0.5, 0.2, 0.2), resample=True
    )
    assert result.resampled
    assert result.image.shape == smooth.shape
    np.testing.assert_allclose(result.image, smooth, atol=0.02 * np.ptp(smooth))


def test_a_file_carrying_python_objects_is_refused_without_torch_advice(
    tmp_path: Path,
) -> None:
    import datetime

    path = tmp_path / "objects.pt"
    torch.save({"weights": torch.zeros(2), "made": datetime.date(2020, 1, 1)}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "holds Python objects besides tensors" in message
    assert "weights_only" not in message and "trust" not in message
