"""Cost of verifying a committed stack's checksum on every read.

``acquire.storage.reader.read_stack`` hashes the pixels it read and compares
them with the SHA-256 the journal recorded at commit. This measures, in one
run on the same stacks, the time of a read with that check against a plain
zarr read of the same array, and sets the difference beside the time
``pairs build`` spends per pair (its registration) so the ratio the issue
asks about (within 5 % of today's time) is visible.

Usage::

    python bench/stack_read.py [--quick]

Prints a table and writes ``bench/results/stack_read.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "stack_read.json"
SHAPE_ZYX = (41, 512, 512)  # a wide-field stack as the registration bench has it


def _dataset_with_stacks(folder: Path, n_stacks: int) -> Path:
    from acquire.storage.dataset import Dataset
    from acquire.storage.spec import StackSpec

    dataset = Dataset.create(folder / "run", {"bench": "stack_read"})
    rng = np.random.default_rng(0)
    for index in range(n_stacks):
        spec = StackSpec(
            name=f"s{index:03d}",
            n_channels=1,
            n_planes=SHAPE_ZYX[0],
            shape_yx=(SHAPE_ZYX[1], SHAPE_ZYX[2]),
            dtype="uint16",
            voxel_size_um=(0.25, 0.1625, 0.1625),
            channel_names=("widefield",),
            position_name=f"p{index}",
            scope_name="bench",
        )
        writer = dataset.begin_stack(spec)
        for z in range(SHAPE_ZYX[0]):
            plane = rng.integers(100, 4000, SHAPE_ZYX[1:], dtype=np.uint16)
            writer.write_plane(0, z, plane, {"stage_x_um": 0.0, "stage_y_um": 0.0})
        writer.commit()
    return dataset.path


def _best_of(repeats: int, action: object) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 stacks, 2 repeats")
    args = parser.parse_args()
    from acquire.storage.reader import read_stack

    n_stacks, repeats = (2, 2) if args.quick else (6, 5)
    registration = json.loads((ROOT / "bench/results/registration.json").read_text())
    seconds_per_pair = float(registration["summary"]["own"]["ours"]["seconds_mean"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="pairscope-read-") as tmp:
        dataset = _dataset_with_stacks(Path(tmp), n_stacks)
        for index in range(n_stacks):
            name = f"s{index:03d}"
            array_path = dataset / f"{name}.ome.zarr" / "0"
            plain = _best_of(
                repeats, lambda p=array_path: np.asarray(zarr.open_array(p)[...])
            )
            verified = _best_of(repeats, lambda n=name: read_stack(dataset, n))
            rows.append(
                {"stack": name, "plain_read_s": plain, "read_stack_s": verified}
            )
    plain_s = float(np.median([r["plain_read_s"] for r in rows]))
    verified_s = float(np.median([r["read_stack_s"] for r in rows]))
    # pairs build reads two stacks (wide-field and confocal) per pair
    extra_per_pair_s = 2 * (verified_s - plain_s)
    summary = {
        "stack_shape_zyx": list(SHAPE_ZYX),
        "stack_megabytes": float(np.prod(SHAPE_ZYX) * 2 / 1e6),
        "plain_zarr_read_s": plain_s,
        "read_stack_with_checksum_s": verified_s,
        "extra_per_pair_s": extra_per_pair_s,
        "registration_seconds_per_pair": seconds_per_pair,
        "extra_fraction_of_pairs_build": extra_per_pair_s / seconds_per_pair,
        "target_fraction": 0.05,
    }
    result = {
        "benchmark": "stack_read",
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "summary": summary,
        "per_stack": rows,
    }
    out = RESULTS.with_name("stack_read_quick.json") if args.quick else RESULTS
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
