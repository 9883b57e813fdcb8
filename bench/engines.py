"""Inference engines side by side on the CPU: the path before, torch, ONNX Runtime.

The bundled demo model enhances synthetic wide-field stacks of 21 and 41
planes of 512 x 512 (its voxel size, so nothing is resampled) with each
engine, in one run on the same machine: the path before this bench's change
(torch eager on contiguous tensors, 3 x 3 tiles on a 512 x 512 field), torch
as it runs now (channels-last tensors, 2 x 2 tiles) and ONNX Runtime (same
tiles). The outputs are compared with the path before.

Usage::

    python bench/engines.py [--threads 2] [--repeats 2]

Prints a table and writes ``bench/results/engines.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from enhance import device, predict
from enhance.engines import onnxruntime_available, resolve_engine
from enhance.predict import Enhancer

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "enhance" / "models" / "demo_widefield_to_confocal.pt"
RESULTS = ROOT / "bench" / "results" / "engines.json"
SHAPES = ((21, 512, 512), (41, 512, 512))


def _stack(shape: tuple[int, int, int]) -> np.ndarray:
    """Blurred random structure on a camera offset (what the model expects)."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    structure = ndimage.gaussian_filter(rng.random(shape), (1.5, 2.0, 2.0))
    stack: np.ndarray = (100 + 400 * structure + rng.normal(0, 3, shape)).astype(
        np.float32
    )
    return stack


#: The CPU path before channels-last tensors and larger tiles: torch eager on
#: contiguous tensors, tiles with cores of at most 64 x 192 x 192.
BEFORE = "torch (before)"
BEFORE_CORE_SHAPE = (64, 192, 192)


@contextlib.contextmanager
def _path_of(configuration: str) -> Iterator[None]:
    """Within it, the enhancement path of ``configuration`` (the defaults' own,
    or the path before: contiguous tensors and smaller tiles)."""
    if configuration != BEFORE:
        yield
        return
    layout, core_shape = device.memory_format_for, predict.DEFAULT_CORE_SHAPE
    device.memory_format_for = lambda _device: torch.contiguous_format
    predict.DEFAULT_CORE_SHAPE = BEFORE_CORE_SHAPE
    try:
        yield
    finally:
        device.memory_format_for, predict.DEFAULT_CORE_SHAPE = layout, core_shape


def _timed(
    configuration: str, stack: np.ndarray, repeats: int
) -> tuple[dict[str, Any], np.ndarray]:
    engine = "torch" if configuration == BEFORE else configuration
    with _path_of(configuration):
        started = time.perf_counter()
        enhancer = Enhancer(MODEL, device="cpu", engine=engine)
        load_s = time.perf_counter() - started
        voxel = enhancer.checkpoint.voxel_size_um
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = enhancer.predict(stack, voxel_size_um=voxel)
            times.append(time.perf_counter() - started)
    best = min(times)
    row = {
        "engine": configuration,
        "shape_zyx": list(stack.shape),
        "load_s": round(load_s, 3),
        "seconds": round(best, 3),
        "mvoxel_per_s": round(stack.size / best / 1e6, 4),
        "tiles": result.n_tiles,
        "tile_shape": list(result.tile_shape),
        "peak_rss_mb": _peak_rss_mb(),
    }
    return row, result.image


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far (None where unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configurations = [BEFORE, "torch"] + (
        ["onnxruntime"] if onnxruntime_available() else []
    )
    rows: list[dict[str, Any]] = []
    for shape in SHAPES:
        stack = _stack(shape)
        outputs = {}
        for configuration in configurations:
            row, outputs[configuration] = _timed(configuration, stack, args.repeats)
            reference = outputs[BEFORE]
            row["max_relative_difference_to_before"] = float(
                np.abs(outputs[configuration] - reference).max()
                / np.abs(reference).max()
            )
            rows.append(row)
            print(
                f"{configuration:15s} {shape}: {row['seconds']:6.2f} s, "
                f"{row['mvoxel_per_s']:.3f} Mvoxel/s, {row['tiles']} tiles "
                f"(load {row['load_s']:.2f} s), difference to before "
                f"{row['max_relative_difference_to_before']:.1e}",
                flush=True,
            )

    def seconds(engine: str, shape: tuple[int, int, int]) -> float:
        return float(
            next(
                r["seconds"]
                for r in rows
                if r["engine"] == engine and r["shape_zyx"] == list(shape)
            )
        )

    speedups = {
        configuration: {
            "x".join(map(str, shape)): round(
                seconds(BEFORE, shape) / seconds(configuration, shape), 2
            )
            for shape in SHAPES
        }
        for configuration in configurations[1:]
    }
    default = resolve_engine("auto", torch.device("cpu"))
    summary = {
        "benchmark": "engines",
        "model": MODEL.name,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "before": f"torch eager, contiguous tensors, cores <= {BEFORE_CORE_SHAPE}",
        "default_cpu_engine": default,
        "rows": rows,
        "speedup_over_before": speedups,
    }
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"speed-up over {BEFORE}: {speedups}; the CPU default ('auto') is {default}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
