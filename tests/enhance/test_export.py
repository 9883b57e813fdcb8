"""The whole model as one torch module, and its TorchScript and ONNX exports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from acquire.cli.export import export_command
from enhance.checkpoint import Checkpoint, load_checkpoint
from enhance.export import (
    _ONNX_CHECK,
    MAX_RELATIVE_DIFFERENCE,
    export_model,
    sample_stack,
)
from enhance.normalization import PercentileNormalization
from enhance.predict import Enhancer
from enhance.unet import UNet3D, UNetConfig
from enhance.whole_model import WholeModel

BUNDLED = Path(__file__).resolve().parents[2] / "enhance" / "models"
MODEL = BUNDLED / "demo_widefield_to_confocal.pt"
SHAPE = (21, 40, 48)

app = typer.Typer()
app.command("export")(export_command)
app.command("unused")(lambda: None)  # a group, so the command name is given
runner = CliRunner()


@pytest.fixture(scope="module")
def bundled() -> Checkpoint:
    return load_checkpoint(MODEL)


def single_tile(checkpoint: Checkpoint, stack: np.ndarray) -> np.ndarray:
    """`Enhancer` with one tile over the whole stack (the same computation)."""
    return (
        Enhancer(checkpoint)
        .predict(stack, voxel_size_um=checkpoint.voxel_size_um, tile_shape=(10**6,) * 3)
        .image
    )


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b)) / np.ptp(b))


def test_the_whole_model_equals_the_numpy_pipeline(bundled: Checkpoint) -> None:
    # the bundled model has all parts: filter, fine U-Net, coarse stage
    assert bundled.transfer is not None and bundled.coarse is not None
    stack = sample_stack(SHAPE, seed=3)
    module = WholeModel(bundled, SHAPE).eval()
    with torch.no_grad():
        out = module(torch.from_numpy(stack)[None, None])[0, 0].numpy()
    expected = single_tile(bundled, stack)
    assert relative(out, expected) < 1e-6
    # the enhancement is not the identity: the model did something
    assert relative(out, stack) > 0.05


def test_a_model_without_filter_or_coarse_stage(tmp_path: Path) -> None:
    config = UNetConfig(depth=1, base_channels=4)
    torch.manual_seed(0)
    checkpoint = Checkpoint(
        unet=config,
        state_dict=UNet3D(config).state_dict(),
        normalization=PercentileNormalization(),
        voxel_size_um=(0.3, 0.1, 0.1),
    )
    shape = (7, 30, 26)  # not a multiple of the pooling grid
    stack = sample_stack(shape, seed=1)
    with torch.no_grad():
        out = WholeModel(checkpoint, shape)(torch.from_numpy(stack)[None, None])
    assert relative(out[0, 0].numpy(), single_tile(checkpoint, stack)) < 1e-6


def test_export_writes_checked_torchscript_and_onnx(
    bundled: Checkpoint, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = export_model(bundled, shape=SHAPE, out=out)
    record = json.loads((out / "export.json").read_text())
    assert record["input"]["shape"] == [1, 1, *SHAPE]
    assert record["voxel_size_um"] == list(bundled.voxel_size_um)
    assert record["model"] == json.loads(json.dumps(bundled.metadata()))
    test_input = np.load(out / "test_input.npy")
    test_output = np.load(out / "test_output.npy")
    assert test_input.shape == test_output.shape == (1, 1, *SHAPE)
    # the test output is what the numpy pipeline gives for the test input
    assert relative(test_output, single_tile(bundled, test_input[0, 0])) < 1e-6
    # the ONNX file, run here independently of the export's own check (in a
    # separate process, as the export does: see enhance.export._run_onnx)
    np.save(tmp_path / "x.npy", test_input)  # (1, 1, z, y, x) as the model takes
    subprocess.run(
        [
            sys.executable,
            "-c",
            _ONNX_CHECK,
            str(result.files["onnx"]),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        check=True,
    )
    onnx_out = np.load(tmp_path / "y.npy")
    assert relative(onnx_out, test_output) < MAX_RELATIVE_DIFFERENCE
    assert result.relative_difference["onnx"] < MAX_RELATIVE_DIFFERENCE
    assert result.relative_difference["torchscript"] < MAX_RELATIVE_DIFFERENCE
    assert sorted(p.name for p in out.iterdir()) == [
        "export.json",
        "model.onnx",
        "model.torchscript.pt",
        "test_input.npy",
        "test_output.npy",
    ]


def test_export_cli_and_its_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "ts"
    result = runner.invoke(
        app,
        [
            "export",
            str(MODEL),
            "--shape",
            "21,32,32",
            "--out",
            str(out),
            "--format",
            "torchscript",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "torchscript:" in result.output
    assert (out / "model.torchscript.pt").is_file() and not (
        out / "model.onnx"
    ).exists()
    stamp = (out / "export.json").stat().st_mtime_ns
    # an existing folder: one message, exit 2, nothing touched
    again = runner.invoke(
        app, ["export", str(MODEL), "--shape", "21,32,32", "--out", str(out)]
    )
    assert again.exit_code == 2 and "already exists" in again.output
    assert (out / "export.json").stat().st_mtime_ns == stamp
    # a shape that is not three positive integers
    bad = runner.invoke(
        app, ["export", str(MODEL), "--shape", "21,0,32", "--out", str(tmp_path / "b")]
    )
    assert bad.exit_code == 2 and "three positive integers" in bad.output
    # a truncated model file
    broken = tmp_path / "broken.pt"
    broken.write_bytes(MODEL.read_bytes()[:1000])
    corrupt = runner.invoke(
        app,
        ["export", str(broken), "--shape", "21,32,32", "--out", str(tmp_path / "c")],
    )
    assert corrupt.exit_code == 2
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    # an unknown format
    unknown = runner.invoke(
        app,
        [
            "export",
            str(MODEL),
            "--shape",
            "21,32,32",
            "--out",
            str(tmp_path / "d"),
            "--format",
            "caffe",
        ],
    )
    assert unknown.exit_code == 2 and "--format" in unknown.output
