"""Write a trained model as one file another tool can run: TorchScript or ONNX.

The whole model (normalisation, Fourier filter, fine U-Net, coarse stage,
inverse normalisation; `enhance.whole_model.WholeModel`) is exported for one
``(z, y, x)`` stack shape. Each file is checked before the export counts: it
is loaded back (``torch.jit.load``; an ONNX Runtime CPU session) and run on a
seeded test stack, and its output must equal the torch module's within
`MAX_RELATIVE_DIFFERENCE` of the output's range. The folder holds the files,
the test input and output (``.npy``) and ``export.json``: the shape, voxel
size, the checkpoint's metadata (training provenance included), the check's
result and the software versions.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from enhance.errors import EnhanceError
from enhance.whole_model import WholeModel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from enhance.checkpoint import Checkpoint

__all__ = [
    "EXPORT_FORMATS",
    "MAX_RELATIVE_DIFFERENCE",
    "ExportFormat",
    "ExportResult",
    "export_model",
    "sample_stack",
]

ExportFormat = Literal["torchscript", "onnx"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("torchscript", "onnx")
MAX_RELATIVE_DIFFERENCE = 1e-4
"""Largest difference from the torch module, over the output's range."""
FILE_NAMES: dict[ExportFormat, str] = {
    "torchscript": "model.torchscript.pt",
    "onnx": "model.onnx",
}
ONNX_OPSET = 20
"""The ONNX opset written (DFT with onesided output: the Fourier filter)."""


@dataclass(frozen=True)
class ExportResult:
    """What `export_model` wrote.

    Attributes
    ----------
    folder : Path
        The export folder.
    files : dict
        Format -> model file.
    relative_difference : dict
        Format -> largest difference from the torch module over the output
        range, on the test stack.

    """

    folder: Path
    files: dict[str, Path]
    relative_difference: dict[str, float]


def sample_stack(shape: tuple[int, int, int], *, seed: int = 0) -> NDArray[np.float32]:
    """A seeded stack with a background, noise and bright structure.

    Parameters
    ----------
    shape : tuple of int
        ``(z, y, x)``.
    seed : int
        Random seed.

    Returns
    -------
    ndarray of float32
        Raw-like intensities (background 100, structure up to about 600).

    """
    rng = np.random.default_rng(seed)
    stack = 100.0 + 10.0 * rng.standard_normal(shape)
    z, y, x = (np.arange(n, dtype=np.float64) for n in shape)
    for _ in range(6):
        cz, cy, cx = (rng.uniform(0.2, 0.8) * n for n in shape)
        sz, sy, sx = (rng.uniform(0.04, 0.12) * n + 1.0 for n in shape)
        stack += 500.0 * (
            np.exp(-0.5 * ((z - cz) / sz) ** 2)[:, None, None]
            * np.exp(-0.5 * ((y - cy) / sy) ** 2)[None, :, None]
            * np.exp(-0.5 * ((x - cx) / sx) ** 2)[None, None, :]
        )
    return stack.astype(np.float32)


def _versions() -> dict[str, str]:
    versions: dict[str, str] = {"torch": str(torch.__version__)}
    for package in ("pairscope", "onnx", "onnxruntime", "onnxscript"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _relative(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    span = float(np.ptp(b)) or 1.0
    return float(np.max(np.abs(a.astype(np.float64) - b))) / span


def _write_torchscript(module: WholeModel, example: torch.Tensor, path: Path) -> None:
    traced = torch.jit.trace(  # type: ignore[no-untyped-call]
        module, example, check_trace=False
    )
    traced.save(str(path))


def _run_torchscript(path: Path, example: torch.Tensor) -> NDArray[np.float32]:
    loaded = torch.jit.load(  # type: ignore[no-untyped-call]
        str(path), map_location="cpu"
    )
    with torch.no_grad():
        out: NDArray[np.float32] = loaded(example).numpy()
    return out


def _write_onnx(module: WholeModel, example: torch.Tensor, path: Path) -> None:
    try:
        import onnxscript  # noqa: F401 (torch's ONNX exporter writes with it)
    except ImportError as exc:
        raise EnhanceError(
            "ONNX export needs the onnxscript package",
            "pip install onnxscript, or export --format torchscript",
        ) from exc
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=["raw"],
        output_names=["enhanced"],
        opset_version=ONNX_OPSET,
        dynamo=True,
        external_data=False,  # one file, weights inside
        verbose=False,
    )


_ONNX_CHECK = """
import sys
import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], session.run(None, {session.get_inputs()[0].name: x})[0])
"""


def _run_onnx(path: Path, example: torch.Tensor) -> NDArray[np.float32]:
    # In a separate process: with torch 2.13 and onnxruntime 1.32, a
    # TorchScript model loaded after ONNX Runtime ran this graph in the same
    # process crashed with a corrupted heap (free(): corrupted unsorted
    # chunks); the caller's process must stay safe to load one.
    given = path.with_name("check_input.npy")
    result = path.with_name("check_output.npy")
    np.save(given, example.numpy())
    try:
        done = subprocess.run(
            [sys.executable, "-c", _ONNX_CHECK, str(path), str(given), str(result)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            detail = " ".join(done.stderr.split()[-40:]) or f"exit {done.returncode}"
            raise EnhanceError(
                f"ONNX Runtime could not run the exported model ({detail})",
                "check that onnxruntime is installed, or export --format torchscript",
            )
        out: NDArray[np.float32] = np.load(result)
    finally:
        given.unlink(missing_ok=True)
        result.unlink(missing_ok=True)
    return out


def export_model(
    checkpoint: Checkpoint,
    *,
    shape: tuple[int, int, int],
    out: Path,
    formats: Sequence[ExportFormat] = EXPORT_FORMATS,
) -> ExportResult:
    """Export the whole model for stacks of ``shape`` into a new folder.

    Parameters
    ----------
    checkpoint : Checkpoint
        The trained model.
    shape : tuple of int
        ``(z, y, x)`` of the stacks the exported model takes (on the model's
        voxel grid, ``checkpoint.voxel_size_um``).
    out : Path
        The folder to create; it must not exist.
    formats : sequence of {"torchscript", "onnx"}
        What to write.

    Returns
    -------
    ExportResult
        The files and how closely each reproduces the torch module.

    Raises
    ------
    EnhanceError
        ``out`` exists, an unknown format, a shape the model cannot take, or
        an exported file that does not reproduce the model (nothing is left
        behind then).

    """
    out = Path(out)
    if out.exists():
        raise EnhanceError(
            f"export folder {out} already exists",
            "choose a new folder (nothing in it was changed)",
        )
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown or not formats:
        raise EnhanceError(
            f"unknown export format(s) {unknown or list(formats)}",
            f"choose from {', '.join(EXPORT_FORMATS)}",
        )
    module = WholeModel(checkpoint, shape).eval()
    stack = sample_stack(module.shape)
    example = torch.from_numpy(stack)[None, None]
    with torch.no_grad():
        expected: NDArray[np.float32] = module(example).numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    # a sibling folder (the user's permissions, unlike mkdtemp's 0700),
    # renamed into place once every file checked out
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.partial"
    staging.mkdir()
    try:
        files: dict[str, Path] = {}
        differences: dict[str, float] = {}
        writers = {
            "torchscript": (_write_torchscript, _run_torchscript),
            "onnx": (_write_onnx, _run_onnx),
        }
        for fmt in dict.fromkeys(formats):
            write, run = writers[fmt]
            path = staging / FILE_NAMES[fmt]
            write(module, example, path)
            difference = _relative(run(path, example), expected)
            if not difference <= MAX_RELATIVE_DIFFERENCE:
                raise EnhanceError(
                    f"the exported {fmt} model differs from the model by "
                    f"{difference:.2e} of its output range on the test stack",
                    f"limit {MAX_RELATIVE_DIFFERENCE:.0e}; report it with the "
                    "model file",
                )
            files[fmt] = out / FILE_NAMES[fmt]
            differences[fmt] = difference
        # as the model takes and gives them: (batch, channel, z, y, x)
        np.save(staging / "test_input.npy", example.numpy())
        np.save(staging / "test_output.npy", expected)
        record: dict[str, Any] = {
            "format": "pairscope-export",
            "format_version": 1,
            "input": {
                "name": "raw",
                "axes": ["batch", "channel", "z", "y", "x"],
                "shape": [1, 1, *module.shape],
                "dtype": "float32",
            },
            "output": {
                "name": "enhanced",
                "axes": ["batch", "channel", "z", "y", "x"],
                "shape": [1, 1, *module.shape],
                "dtype": "float32",
            },
            "voxel_size_um": list(checkpoint.voxel_size_um),
            "files": {fmt: FILE_NAMES[fmt] for fmt in dict.fromkeys(formats)},
            "check": {
                "test_input": "test_input.npy",
                "test_output": "test_output.npy",
                "max_relative_difference": differences,
                "limit": MAX_RELATIVE_DIFFERENCE,
            },
            "model": checkpoint.metadata(),
            "versions": _versions(),
        }
        (staging / "export.json").write_text(
            json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(folder=out, files=files, relative_difference=differences)
