"""SIGKILL an acquisition mid-stack, again and again, and resume it each time.

The final dataset must hold exactly the pixels of an uninterrupted run with the
same seeds: no duplicates, no gaps, nothing half-written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
import zarr
from acquire_helpers import (
    cell_positions,
    pairscope,
    read_dataset,
    small_config,
    write_sequence,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

PLANES = 9


def planes_on_disk(out: Path) -> int:
    """Planes committed (journal) plus planes written to staging so far."""
    journal = out / "journal.jsonl"
    committed = 0
    if journal.exists():
        committed = sum(
            1 for line in journal.read_text().splitlines() if line.strip().endswith("}")
        )
    staging = out / ".staging"
    partial = 0
    if staging.exists():
        partial = sum(1 for p in staging.glob("*.ome.zarr/0/c/**/*") if p.is_file())
    return committed * PLANES + partial


def start(
    sequence: Path, config: Path, out: Path, *, resume: bool
) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        "-m",
        "acquire.cli.main",
        "acquire",
        str(sequence),
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    if resume:
        args.append("--resume")
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def kill_when(
    proc: subprocess.Popen[str], out: Path, planes: int, timeout_s: float = 120
) -> bool:
    """SIGKILL once `planes` planes are on disk; False if the run ended first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if planes_on_disk(out) >= planes:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("acquisition made no progress")


def assert_consistent(out: Path) -> None:
    """Every journaled stack is complete and readable; nothing else looks committed."""
    lines = (
        [
            line
            for line in (out / "journal.jsonl").read_text().splitlines()
            if line.strip()
        ]
        if (out / "journal.jsonl").exists()
        else []
    )
    names = []
    for line in lines:
        try:
            names.append(json.loads(line)["stack"])
        except json.JSONDecodeError:
            assert line is lines[-1], "only the last journal line may be torn"
    assert len(names) == len(set(names)), "a stack was committed twice"
    for name in names:
        data = zarr.open_group(out / f"{name}.ome.zarr", mode="r")["0"][:]
        assert data.shape == (1, PLANES, 96, 96)


def test_kill_at_five_points_and_resume_gives_the_uninterrupted_dataset(
    tmp_path: Path,
) -> None:
    config = small_config(tmp_path, real_timing=True)
    positions = cell_positions(config, [0, 1, 2])
    sequence = write_sequence(
        tmp_path / "seq.yaml", positions, planes=PLANES, step_um=0.5, exposure_ms=40
    )

    reference = tmp_path / "reference"
    done = pairscope("acquire", sequence, "--config", config, "--out", reference)
    assert done.returncode == 0, done.stderr

    out = tmp_path / "resumed"
    # mid-stack kill points, in planes on disk: inside stack 0, 1 and 2
    kill_points = [3, 7, 11, 16, 22]
    kills = 0
    for i, planes in enumerate(kill_points):
        proc = start(sequence, config, out, resume=i > 0)
        if kill_when(proc, out, planes):
            kills += 1
            assert_consistent(out)
    assert kills >= 5
    final = pairscope("acquire", sequence, "--config", config, "--out", out, "--resume")
    assert final.returncode == 0, final.stderr
    assert_consistent(out)

    expected, got = read_dataset(reference), read_dataset(out)
    assert sorted(got) == sorted(expected) == [f"t0000_p000{i}_g0000" for i in range(3)]
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    journal = [
        json.loads(line)["stack"]
        for line in (out / "journal.jsonl").read_text().splitlines()
        if line.strip().endswith("}")
    ]
    assert sorted(journal) == sorted(expected)  # no duplicates, no gaps
