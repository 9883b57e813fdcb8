"""Inference engines side by side: torch eager against ONNX Runtime on the CPU.

The bundled demo model enhances synthetic wide-field stacks of 21 and 41
planes of 512 x 512 (its voxel size, so nothing is resampled) with each
engine, in one run on the same machine; the outputs are compared.

Usage::

    python bench/engines.py [--threads 2] [--repeats 2]

Prints a table and writes ``bench/results/engines.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from enhance.engines import onnxruntime_available
from enhance.predict import Enhancer

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engines = ["torch"] + (["onnxruntime"] if onnxruntime_available() else [])
    rows: list[dict[str, Any]] = []
    for shape in SHAPES:
        stack = _stack(shape)
        outputs = {}
        for name in engines:
            started = time.perf_counter()
            enhancer = Enhancer(MODEL, device="cpu", engine=name)
            load_s = time.perf_counter() - started
            voxel = enhancer.checkpoint.voxel_size_um
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                result = enhancer.predict(stack, voxel_size_um=voxel)
                times.append(time.perf_counter() - started)
            outputs[name] = result.image
            best = min(times)
            rows.append(
                {
                    "engine": name,
                    "shape_zyx": list(shape),
                    "load_s": round(load_s, 3),
                    "seconds": round(best, 3),
                    "mvoxel_per_s": round(stack.size / best / 1e6, 4),
                    "tiles": result.n_tiles,
                }
            )
            print(
                f"{name:12s} {shape}: {best:6.2f} s, "
                f"{stack.size / best / 1e6:.3f} Mvoxel/s (load {load_s:.2f} s)",
                flush=True,
            )
        if len(outputs) == 2:
            a, b = outputs["torch"], outputs["onnxruntime"]
            difference = float(np.abs(a - b).max() / np.abs(a).max())
            rows[-1]["max_relative_difference_to_torch"] = difference
            print(
                f"  largest difference relative to the output's range: {difference:.1e}"
            )

    def seconds(engine: str, shape: tuple[int, int, int]) -> float:
        return float(
            next(
                r["seconds"]
                for r in rows
                if r["engine"] == engine and r["shape_zyx"] == list(shape)
            )
        )

    speedups = (
        {
            "x".join(map(str, shape)): round(
                seconds("torch", shape) / seconds("onnxruntime", shape), 2
            )
            for shape in SHAPES
        }
        if len(engines) == 2
        else {}
    )
    summary = {
        "benchmark": "engines",
        "model": MODEL.name,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "rows": rows,
        "onnxruntime_speedup": speedups,
    }
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"speed-up of ONNX Runtime over torch: {speedups}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
