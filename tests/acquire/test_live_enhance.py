"""Live enhancement: every raw stack of an acquisition enhanced beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import yaml
from acquire_helpers import cell_positions, small_config

from acquire.storage.reader import committed_stacks, read_stack
from acquire.workflows.acquisition import AcquisitionRequest
from acquire.workflows.live_enhance import enhanced_dataset_path, run_live_enhancement
from enhance.checkpoint import Checkpoint, TrainingProvenance
from enhance.normalization import PercentileNormalization
from enhance.predict import predict_stack
from enhance.unet import UNet3D, UNetConfig

if TYPE_CHECKING:
    from pathlib import Path

MODEL_VOXEL_UM = (0.25, 0.1, 0.1)


def tiny_model(path: Path) -> Path:
    """A small random-weight U-Net at the demo confocal grid."""
    import torch

    torch.manual_seed(0)
    config = UNetConfig(depth=1, base_channels=2)
    checkpoint = Checkpoint(
        unet=config,
        state_dict=UNet3D(config).state_dict(),
        normalization=PercentileNormalization(),
        voxel_size_um=MODEL_VOXEL_UM,
        provenance=TrainingProvenance(
            catalog_sha256=None,
            train_pair_ids=(),
            val_pair_ids=(),
            train_cell_ids=(),
            val_cell_ids=(),
        ),
        metrics={},
        training={},
        seed=0,
    )
    return checkpoint.save(path)


def write_sequence(path: Path, positions: list[tuple[float, float, float]]) -> Path:
    data = {
        "stage_positions": [{"x": x, "y": y, "z": z} for x, y, z in positions],
        "z_plan": {"range": 1.0, "step": 0.25},
        "channels": [{"config": "GFP", "group": "Channel", "exposure": 10.0}],
        "axis_order": "tpgcz",
    }
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_raw_stack_is_enhanced_like_offline(tmp_path: Path) -> None:
    from enhance.voxels import resample_stack

    config = small_config(tmp_path, sensor_px=48)
    positions = cell_positions(config, [0, 1, 2])
    sequence = write_sequence(tmp_path / "seq.yaml", positions)
    model = tiny_model(tmp_path / "tiny.pt")
    out = tmp_path / "raw"
    seen: list[str] = []
    result = run_live_enhancement(
        AcquisitionRequest(sequence, config, out),
        model,
        queue_size=8,
        on_enhanced=lambda s: seen.append(s.name),
    )
    assert result.acquisition.status == "complete"
    raw_names = committed_stacks(out)
    assert len(raw_names) == 3
    assert result.enhanced + result.dropped == 3 and result.failed == 0
    assert result.enhanced_dataset == enhanced_dataset_path(out)
    enhanced_names = committed_stacks(result.enhanced_dataset)
    assert sorted(enhanced_names) == sorted(seen)
    assert len(enhanced_names) == result.enhanced and set(enhanced_names) <= set(
        raw_names
    )
    assert len(result.latencies_s) == result.enhanced
    for name in enhanced_names:
        raw = read_stack(out, name)
        enhanced = read_stack(result.enhanced_dataset, name)
        assert enhanced.voxel_size_um == pytest.approx(MODEL_VOXEL_UM)
        on_grid = resample_stack(raw.data[0], raw.voxel_size_um, MODEL_VOXEL_UM)
        # the demo camera's 0.1625 um pixels become 0.1 um ones
        assert on_grid.shape[1] == round(48 * raw.voxel_size_um[1] / 0.1)
        expected = predict_stack(
            model, on_grid, voxel_size_um=MODEL_VOXEL_UM, device="cpu"
        ).image
        assert enhanced.data.shape == (1, *expected.shape)
        np.testing.assert_allclose(enhanced.data[0], expected, rtol=1e-5, atol=1e-3)


def test_existing_enhanced_output_is_refused(tmp_path: Path) -> None:
    from acquire.errors import UserError

    config = small_config(tmp_path, sensor_px=48)
    sequence = write_sequence(tmp_path / "seq.yaml", cell_positions(config, [0]))
    model = tiny_model(tmp_path / "tiny.pt")
    out = tmp_path / "raw"
    taken = enhanced_dataset_path(out)
    taken.mkdir()
    (taken / "old").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        run_live_enhancement(AcquisitionRequest(sequence, config, out), model)
    assert not out.exists()
