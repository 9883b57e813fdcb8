"""The demo run: the same simulated cells imaged on a wide-field and a confocal.

Each demo scope runs a useq MDA (cells x z-planes) aimed at real cells of the
simulated specimen; every stack is saved as an OME-TIFF with its voxel size,
next to ``ground_truth.json`` (the hidden mounts, for checking only). The run
is written into a hidden sibling folder that is renamed into place at the end,
so a failed run leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import math
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from acquire.bundled_configs import bundled_config
from acquire.errors import UserError
from acquire.hardware import describe_scope, illumination, scope
from acquire.ome_tiff import OmeImage, write_ome_tiff
from acquire.paths import check_output_folder
from acquire.storage.jsonsafe import json_safe

__all__ = [
    "DEMO_SCOPES",
    "FULL_PLAN",
    "GROUND_TRUTH_FILE",
    "QUICK_PLAN",
    "DemoPlan",
    "ProgressCallback",
    "StackResult",
    "check_seed",
    "run_demo",
]

DEMO_SCOPES: dict[str, str] = {
    "widefield": "demo_widefield.cfg",
    "confocal": "demo_confocal.cfg",
}
"""Demo scope name -> its configuration file in ``hardware_configs/``."""

GROUND_TRUTH_FILE = "ground_truth.json"
"""Name of the ground-truth file in the output folder."""

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(scope_name, frames_done, frames_total)``."""


@dataclass(frozen=True)
class DemoPlan:
    """How many cells and planes the demo acquires on each scope."""

    n_positions: int
    n_planes: int
    z_step_um: float
    focus_height_um: float = 2.0


FULL_PLAN = DemoPlan(n_positions=2, n_planes=21, z_step_um=0.25)
QUICK_PLAN = DemoPlan(n_positions=1, n_planes=11, z_step_um=0.5)


@dataclass
class StackResult:
    """One saved z-stack (a row of the demo summary)."""

    scope_name: str
    path: Path
    shape: tuple[int, ...]
    pixel_size_um: float
    z_step_um: float
    minimum: int
    maximum: int
    seconds: float


def check_seed(seed: int | None) -> None:
    """Check a ``--seed`` value.

    Parameters
    ----------
    seed : int or None
        Specimen seed (None: the configurations' own).

    Raises
    ------
    UserError
        ``seed`` is outside ``0 <= seed < 2**31``.

    """
    if seed is not None and not 0 <= seed < 2**31:
        raise UserError(f"--seed {seed} is out of range", "Use 0 <= seed < 2**31.")


class _StackCollector:
    """Collects MDA frames into one (planes, rows, cols) array per position."""

    def __init__(self, plan: DemoPlan, shape: tuple[int, int], dtype: Any) -> None:
        self.stacks = [
            np.zeros((plan.n_planes, *shape), dtype=dtype)
            for _ in range(plan.n_positions)
        ]
        self.positions: list[list[tuple[float, float, float]]] = [
            [(math.nan, math.nan, math.nan)] * plan.n_planes
            for _ in range(plan.n_positions)
        ]
        self.received = [0] * plan.n_positions
        self.exposure_ms = math.nan
        self.on_frame: Callable[[], None] = lambda: None

    def frame_ready(self, image: NDArray[Any], event: Any, meta: Any) -> None:
        p_index = int(event.index.get("p", 0))
        z_index = int(event.index.get("z", 0))
        self.stacks[p_index][z_index] = image
        pos = meta.get("position", {}) if isinstance(meta, dict) else {}
        self.positions[p_index][z_index] = (
            float(pos.get("x", event.x_pos or 0.0)),
            float(pos.get("y", event.y_pos or 0.0)),
            float(pos.get("z", event.z_pos or 0.0)),
        )
        if isinstance(meta, dict) and "exposure_ms" in meta:
            self.exposure_ms = float(meta["exposure_ms"])
        self.received[p_index] += 1
        self.on_frame()


def _demo_sequence(core: Any, plan: DemoPlan) -> tuple[Any, list[dict[str, Any]]]:
    """The useq sequence aimed at real cells, and what it aims at."""
    import useq

    from acquire.sim.groundtruth import stage_position_of_cell

    targets = []
    positions = []
    for cell in range(plan.n_positions):
        x, y, z = stage_position_of_cell(core, cell, height_um=plan.focus_height_um)
        targets.append({"cell": cell, "stage_position_um": [x, y, z]})
        positions.append(useq.Position(x=x, y=y, z=z, name=f"cell{cell:02d}"))
    half = (plan.n_planes - 1) / 2
    z_plan = useq.ZRelativePositions(
        relative=[(k - half) * plan.z_step_um for k in range(plan.n_planes)]
    )
    channels = []
    group = core.getChannelGroup()
    if group:
        preset = core.getCurrentConfig(group)
        channels.append(useq.Channel(config=preset, group=group, exposure=None))
    sequence = useq.MDASequence(
        stage_positions=tuple(positions),
        z_plan=z_plan,
        channels=tuple(channels),
        axis_order=("p", "c", "z"),
    )
    return sequence, targets


def _demo_scope(
    name: str,
    config: Path,
    folder: Path,
    plan: DemoPlan,
    *,
    seed: int | None,
    real_timing: bool,
    adapter_paths: list[Path] | None,
    progress: ProgressCallback,
) -> tuple[list[StackResult], dict[str, Any]]:
    """Acquire and save the demo stacks on one scope; return rows + ground truth."""
    from acquire.sim.groundtruth import mount_of, specimen_of

    with scope(config, adapter_paths=adapter_paths) as core:
        camera = core.getCameraDevice()
        if seed is not None:
            core.setProperty(camera, "SpecimenSeed", seed)
        core.setProperty(camera, "RealTiming", "Yes" if real_timing else "No")
        desc = describe_scope(core)
        sequence, targets = _demo_sequence(core, plan)
        collector = _StackCollector(
            plan,
            (desc.image_height_px, desc.image_width_px),
            np.dtype(f"uint{8 if desc.bit_depth <= 8 else 16}"),
        )
        total = plan.n_positions * plan.n_planes
        progress(name, 0, total)

        def on_frame() -> None:
            progress(name, sum(collector.received), total)

        collector.on_frame = on_frame
        core.mda.events.frameReady.connect(collector.frame_ready)
        started = time.perf_counter()
        try:
            with illumination(core):
                core.mda.run(sequence)
        finally:
            core.mda.events.frameReady.disconnect(collector.frame_ready)
        seconds = time.perf_counter() - started
        missing = total - sum(collector.received)
        if missing:
            raise RuntimeError(
                f"{name}: {missing} frame(s) were not acquired (see the "
                "pymmcore-plus log); nothing was saved for this scope"
            )
        objective = next(
            (o for o in desc.objectives if o.label == desc.current_objective), None
        )
        rows = []
        for target, stack, planes in zip(
            targets, collector.stacks, collector.positions, strict=True
        ):
            path = folder / f"{name}_cell{target['cell']:02d}.ome.tif"
            image = OmeImage(
                data=stack,
                pixel_size_um=desc.pixel_size_um,
                z_step_um=plan.z_step_um,
                positions_um=planes,
                exposure_ms=collector.exposure_ms,
                objective=objective,
                camera=camera,
                channel=sequence.channels[0].config if sequence.channels else "",
                annotations={
                    "pairscope.scope": name,
                    "pairscope.config": str(config),
                    "pairscope.objective": desc.current_objective or "",
                    "pairscope.cell": str(target["cell"]),
                },
            )
            write_ome_tiff(path, image)
            rows.append(
                StackResult(
                    name,
                    path,
                    stack.shape,
                    desc.pixel_size_um,
                    plan.z_step_um,
                    int(stack.min()),
                    int(stack.max()),
                    seconds / plan.n_positions,
                )
            )
        truth = {
            "specimen": specimen_of(core).ground_truth(),
            "config": str(config),
            "specimen_seed": int(core.getProperty(camera, "SpecimenSeed")),
            "mount_seed": int(core.getProperty(camera, "MountSeed")),
            "mount": json_safe(dataclasses.asdict(mount_of(core)), where="mount"),
            "targets": targets,
        }
    return rows, truth


def _no_progress(name: str, done: int, total: int) -> None:
    """Default progress callback: report nothing."""


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    seed: int | None = None,
    real_timing: bool = False,
    adapter_paths: list[Path] | None = None,
    progress: ProgressCallback | None = None,
) -> list[StackResult]:
    """Image the same simulated cells on the demo wide-field and confocal scopes.

    Parameters
    ----------
    out : Path
        New (or empty) output folder; its parent must exist.
    quick : bool
        Use `QUICK_PLAN` (1 cell x 11 planes) instead of `FULL_PLAN` (2 x 21).
    seed : int or None
        Specimen seed for both scopes (None: the configurations' own).
    real_timing : bool
        Let the simulated cameras wait the real exposure times.
    adapter_paths : list of Path or None
        Folders with Micro-Manager adapter libraries (None: the defaults).
    progress : callable or None
        Called as ``progress(scope_name, frames_done, frames_total)`` when a
        scope starts and after every frame.

    Returns
    -------
    list of StackResult
        One row per saved stack, paths inside the final folder; the ground
        truth is in ``out / GROUND_TRUTH_FILE``.

    Raises
    ------
    UserError
        ``out`` is not a new or empty folder, ``seed`` is out of range, or the
        shipped configurations are missing.
    ConfigError
        A demo configuration does not load.

    """
    folder = check_output_folder(out)
    check_seed(seed)
    report = progress or _no_progress
    plan = QUICK_PLAN if quick else FULL_PLAN
    resources = {name: bundled_config(cfg) for name, cfg in DEMO_SCOPES.items()}
    partial = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.partial")
    partial.mkdir()
    try:
        rows: list[StackResult] = []
        truth: dict[str, Any] = {
            "note": "simulation ground truth: hidden from the controller, for "
            "checking registration and relocation only",
            "specimen": {},
            "scopes": {},
        }
        for name, resource in resources.items():
            with importlib.resources.as_file(resource) as config:
                scope_rows, scope_truth = _demo_scope(
                    name,
                    config,
                    partial,
                    plan,
                    seed=seed,
                    real_timing=real_timing,
                    adapter_paths=adapter_paths,
                    progress=report,
                )
            rows += scope_rows
            truth["specimen"] = scope_truth.pop("specimen")
            truth["scopes"][name] = scope_truth
        truth_path = partial / GROUND_TRUTH_FILE
        truth_path.write_text(json.dumps(truth, indent=2), encoding="utf-8")
        if folder.exists():
            folder.rmdir()
        partial.replace(folder)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    for row in rows:
        row.path = folder / row.path.name
    return rows
