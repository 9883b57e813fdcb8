"""Inference engines: ONNX Runtime gives what torch gives, and names are checked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_enhance_coarse import random_stage
from test_enhance_model import VOXEL_UM, random_checkpoint
from typer.testing import CliRunner

from acquire.cli.main import app
from enhance.engines import onnxruntime_available, resolve_engine
from enhance.errors import EnhanceError
from enhance.predict import Enhancer
from enhance.unet import UNetConfig

needs_onnxruntime = pytest.mark.skipif(
    not onnxruntime_available(), reason="onnxruntime is a dependency; not installed"
)


@needs_onnxruntime
@pytest.mark.parametrize("pool_z", [True, False])
def test_onnxruntime_matches_torch_on_fine_and_coarse_stages(pool_z: bool) -> None:
    fine = UNetConfig(depth=2, base_channels=4, pool_z=pool_z)
    checkpoint = replace(random_checkpoint(fine, seed=6), coarse=random_stage(7))
    stack = 100 + 50 * np.random.default_rng(4).random((13, 70, 58)).astype(np.float32)
    results = {}
    for engine in ("torch", "onnxruntime"):
        enhancer = Enhancer(checkpoint, device="cpu", engine=engine)
        assert enhancer.engine_name == engine
        # several tiles, each shape the exported graph was not traced with
        results[engine] = enhancer.predict(
            stack,
            voxel_size_um=VOXEL_UM,
            tile_shape=(16, 32, 24),
            overlap=(4, 8, 8),
            batch_size=2,
        )
    a, b = results["torch"].image, results["onnxruntime"].image
    assert results["torch"].n_tiles > 4
    assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()
    # and the correction is not trivially zero: the networks did work
    assert np.abs(a - stack).max() > 1e-2 * np.abs(stack).max()


def test_engine_names_are_checked() -> None:
    cpu = torch.device("cpu")
    assert resolve_engine("torch", cpu) == "torch"
    # torch on channels-last tensors is the faster CPU path (bench/engines.py)
    assert resolve_engine("auto", cpu) == "torch"
    with pytest.raises(EnhanceError, match="unknown inference engine 'tensorrt'"):
        resolve_engine("tensorrt", cpu)


def test_enhance_refuses_an_unknown_engine_before_writing(tmp_path: Path) -> None:
    model = Path(__file__).resolve().parents[2] / "enhance" / "models"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "enhance",
            str(model / "demo_widefield_to_confocal.pt"),
            str(tmp_path / "missing.ome.tif"),
            "--out",
            str(out),
            "--engine",
            "tensorrt",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "unknown inference engine 'tensorrt'" in result.output
    assert not out.exists()
