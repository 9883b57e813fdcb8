"""Shared helpers for the acquisition tests: small configs, sequences, readers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
import zarr

from acquire.hardware.microscope import close_core, open_core
from acquire.sim import groundtruth
from acquire.workflows.demo import FAST_STAGE_VELOCITY

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]
WIDEFIELD = ROOT / "hardware_configs" / "demo_widefield.cfg"
#: Config line that makes the demo XY stage arrive at once (as the demo does
#: without real timing); the tests time nothing.
FAST_STAGE = f"Property,XYStage,Velocity,{FAST_STAGE_VELOCITY}\n"


def demo_scope(
    folder: Path,
    name: str = "widefield",
    *,
    filename: str | None = None,
    extra: str = "",
    **camera: object,
) -> Path:
    """A shipped demo config with the simulated camera's properties set.

    Parameters
    ----------
    folder : Path
        Where the config is written.
    name : str
        ``"widefield"`` or ``"confocal"`` (``hardware_configs/demo_NAME.cfg``).
    filename : str, optional
        File name (default ``NAME.cfg``).
    extra : str
        Config lines appended last.
    **camera
        ``Camera`` properties (``MountSeed=31``, ``SensorWidthPx=96``...), in
        order; ``RealTiming`` defaults to ``"No"``, and without real timing the
        XY stage arrives at once (`FAST_STAGE`).

    """
    text = (ROOT / "hardware_configs" / f"demo_{name}.cfg").read_text()
    camera.setdefault("RealTiming", "No")
    text += "\n" + "".join(f"#py Property,Camera,{k},{v}\n" for k, v in camera.items())
    if camera["RealTiming"] == "No":
        text += FAST_STAGE
    path = folder / (filename or f"{name}.cfg")
    path.write_text(text + extra)
    return path


def small_config(
    tmp_path: Path, *, sensor_px: int = 96, real_timing: bool = False, extra: str = ""
) -> Path:
    """The demo wide-field config with a small sensor (fast tests)."""
    return demo_scope(
        tmp_path,
        filename=f"small_widefield_{sensor_px}.cfg",
        extra=extra,
        SensorWidthPx=sensor_px,
        SensorHeightPx=sensor_px,
        RealTiming="Yes" if real_timing else "No",
    )


def cell_positions(
    config: Path, cells: list[int], *, height_um: float = 1.0
) -> list[tuple[float, float, float]]:
    """Stage positions of simulated cells (ground truth, for aiming tests only)."""
    core = open_core(config)
    try:
        return [
            groundtruth.stage_position_of_cell(core, c, height_um=height_um)
            for c in cells
        ]
    finally:
        close_core(core)


def write_sequence(
    path: Path,
    positions: list[tuple[float, float, float]],
    *,
    planes: int = 5,
    step_um: float = 0.5,
    exposure_ms: float = 20.0,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A YAML sequence: positions x a z-stack around each, one channel."""
    data: dict[str, Any] = {
        "stage_positions": [
            {"x": round(x, 3), "y": round(y, 3), "z": round(z, 3), "name": f"cell{i}"}
            for i, (x, y, z) in enumerate(positions)
        ],
        "z_plan": {"range": round(step_um * (planes - 1), 6), "step": step_um},
        "channels": [{"config": "GFP", "group": "Channel", "exposure": exposure_ms}],
        "axis_order": "tpgcz",
    }
    data.update(extra or {})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_dataset(path: Path) -> dict[str, np.ndarray]:
    """Every committed stack, read with zarr-python itself (not our code)."""
    names = [
        json.loads(line)["stack"]
        for line in (path / "journal.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return {
        name: np.asarray(zarr.open_group(path / f"{name}.ome.zarr", mode="r")["0"][:])
        for name in names
    }


def timeout_s(seconds: float) -> float:
    """A subprocess time limit, scaled by ``PAIRSCOPE_TEST_TIMEOUT_SCALE``.

    A busy or slow machine (a loaded CI runner, a laptop on battery) sets the
    scale above 1 instead of failing tests that are merely slow there.
    """
    return seconds * float(os.environ.get("PAIRSCOPE_TEST_TIMEOUT_SCALE", "1"))


@dataclass(frozen=True)
class CommandRun:
    """What a ``pairscope`` command printed and returned."""

    returncode: int
    stdout: str
    stderr: str


def pairscope(*args: str | Path, cwd: Path | None = None) -> CommandRun:
    """Run a ``pairscope`` command as a user types it, in this process.

    Typer's ``CliRunner`` calls the same application object as the console
    script, with the same option parsing and error handling; what is saved
    is a new interpreter importing every workflow (about 4 s a command). An
    exception the command does not turn into a message is printed as the
    interpreter would (a traceback on stderr, exit code 1), so the tests that
    refuse bare tracebacks still see one.
    """
    from typer.testing import CliRunner

    from acquire.cli.main import app

    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        result = CliRunner().invoke(app, [str(arg) for arg in args])
    stderr = result.stderr
    error = result.exception
    if error is not None and not isinstance(error, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(
            traceback.format_exception(error)
        )
    return CommandRun(result.exit_code, result.stdout, stderr)


_LOCK_HOLDER = """
import sys, time
from pathlib import Path
from acquire.storage.writer_lock import acquire_writer_lock
claims = [acquire_writer_lock(Path(p)) for p in sys.argv[1:]]
print("holding", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def writer_locks_held_elsewhere(*folders: Path) -> Iterator[int]:
    """Another process holds the writer locks of ``folders`` inside the block.

    Yields its process id; the process is killed when the block ends (the
    operating system then releases its locks, as after a crash).
    """
    child = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, *map(str, folders)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "holding\n", child.communicate()[1]
        yield child.pid
    finally:
        child.kill()
        child.communicate()
