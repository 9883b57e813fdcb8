"""How fast ``pairscope --help`` and ``--version`` answer, and what they import.

The command line imports a workflow (pymmcore-plus, useq-schema, scipy,
torch, zarr) only in the command that runs it. This measures, in fresh
processes, the wall time of ``pairscope --version`` and ``pairscope --help``
(median of several runs) and the modules ``import acquire.cli.main`` loads,
with ``python -X importtime`` for the slowest.

Usage::

    python bench/startup.py [--runs 7]

Prints a summary and writes ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "startup.json"
TARGET_S = 1.0
HEAVY = ("torch", "pymmcore_plus", "useq", "scipy", "zarr", "skimage", "PySide6")
CLI = "from acquire.cli.main import main; main()"


def _wall_s(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", CLI, *args],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _imports() -> tuple[dict[str, bool], list[tuple[str, float]]]:
    probe = (
        "import json, sys, acquire.cli.main, correlate, enhance; "
        f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))"
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    loaded = json.loads(proc.stdout)
    cumulative = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            cumulative.append((parts[2].rstrip(), int(parts[1]) / 1e6))
    # top-level imports only (nested ones are indented below their parent)
    top = sorted(
        ((name.strip(), s) for name, s in cumulative if not name.startswith("  ")),
        key=lambda item: -item[1],
    )[:8]
    return loaded, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    version_s = _wall_s(["--version"], args.runs)
    help_s = _wall_s(["--help"], args.runs)
    loaded, top = _imports()
    result = {
        "benchmark": "startup",
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "runs": args.runs,
        "target_s": TARGET_S,
        "version_s": round(version_s, 3),
        "help_s": round(help_s, 3),
        "heavy_modules_loaded": loaded,
        "slowest_imports_s": [[name, round(s, 3)] for name, s in top],
    }
    print(
        f"pairscope --version {version_s:.2f} s, --help {help_s:.2f} s "
        f"(target {TARGET_S:.1f} s, median of {args.runs})"
    )
    print("heavy modules loaded by import acquire.cli.main:", loaded)
    for name, seconds in top:
        print(f"  {seconds:6.3f} s  {name}")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
