"""``pairscope demo``: the whole correlative workflow on the simulated twin scopes.

1. The confocal (scope A) finds the holder's fiducials and acquires stacks at
   N cells (chosen from the simulated specimen, as a user would click them).
2. The sample moves to the wide-field (scope B) under another random mount.
3. The wide-field finds the fiducials, relocates, acquires at the cells and
   registers each stack on the fly into the paired database (closed loop).
4. The bundled demo model (trained by ``pairscope train`` on simulated pairs
   of other cells) is used.
5. New wide-field stacks at the cells are enhanced live.
6. The model is scored against Richardson-Lucy and raw wide-field on the
   demo's pairs (cells the model never saw), and a report is written:
   ``report.md`` and ``report.json`` with PNG figures.

The run is written into a hidden sibling folder that is renamed into place at
the end, so a failed run leaves nothing behind. The demo's stages are
perfectly repeatable, so that relocation and registration can be checked
against the simulator's truth to a fraction of a pixel
(``bench/relocation.py`` measures relocation with 0.2 um repeatability).
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import useq

from acquire.config.bundled import bundled_config
from acquire.errors import UserError
from acquire.hardware.microscope import scope
from acquire.paths import check_output_folder
from acquire.storage.session import Target
from acquire.storage.writer_lock import (
    LOCK_NAME,
    OWNER_NAME,
    acquire_writer_lock,
)
from acquire.workflows.acquisition import AcquisitionRequest, run_acquisition
from acquire.workflows.cleanup import abandoned_partials
from acquire.workflows.demo_options import check_sample_medium, check_seed
from acquire.workflows.paired_run import (
    PairedRunRequest,
    PairedRunResult,
    run_paired_acquisition,
)
from acquire.workflows.relocation import load_holder, record_fiducials

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

__all__ = [
    "BUNDLED_MODEL",
    "FULL_PLAN",
    "QUICK_PLAN",
    "DemoPlan",
    "DemoProgress",
    "run_demo",
]

BUNDLED_MODEL = "demo_widefield_to_confocal.pt"
"""File name of the demo model inside ``enhance/models``."""

FAST_STAGE_VELOCITY = 1000.0
"""Demo XY stage velocity without real timing (its default, 10, is a real
stage's mm/s: 30 ms per field of the fiducial search)."""

DemoProgress = Callable[[str, int, int], None]
"""Called as ``progress(step, done, total)``."""


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run.

    Attributes
    ----------
    n_positions : int
        Cells imaged on both scopes.
    n_planes : int
        Planes per stack.
    z_step_um : float
        Plane spacing (the demo model's voxel depth).
    widefield_px : int
        Wide-field camera field (square); it must cover the confocal's 51 um.
    live_positions : int
        Cells re-imaged with live enhancement.
    evaluation_crop_px : int or None
        Score the model on the central region of each pair only (speed).
    rl_candidates : tuple of int
        Richardson-Lucy iteration counts tried; the best is the baseline.

    """

    n_positions: int
    n_planes: int
    z_step_um: float
    widefield_px: int
    live_positions: int
    evaluation_crop_px: int | None
    rl_candidates: tuple[int, ...]


FULL_PLAN = DemoPlan(6, 41, 0.25, 512, 2, 256, (5, 10, 20, 40, 80))
QUICK_PLAN = DemoPlan(3, 21, 0.25, 384, 1, 256, (5, 10, 20, 40))


def bundled_model() -> Path:
    """Path of the demo model shipped with pairscope."""
    resource = importlib.resources.files("enhance").joinpath("models", BUNDLED_MODEL)
    if not resource.is_file():
        raise UserError(
            f"the bundled demo model enhance/models/{BUNDLED_MODEL} is missing",
            "Reinstall pairscope, or pass --model with a model of pairscope train.",
        )
    return Path(str(resource))


def _config(
    folder: Path,
    name: str,
    seed: int,
    plan: DemoPlan,
    real: bool,
    sample_medium: str = "matched",
) -> Path:
    """A copy of a shipped demo config with this run's mount and specimen."""
    with importlib.resources.as_file(bundled_config(f"demo_{name}.cfg")) as path:
        text = path.read_text(encoding="utf-8")
    mount_seed = 1000 + 2 * seed + (name == "widefield")
    text += (
        f"\n#py Property,Camera,SpecimenSeed,{seed}"
        f"\n#py Property,Camera,MountSeed,{mount_seed}"
        f"\n#py Property,Camera,RealTiming,{'Yes' if real else 'No'}"
        "\n#py Property,Camera,StageRepeatabilityUm,0"
        "\n#py Property,Camera,FocusRepeatabilityUm,0\n"
    )
    if not real:
        # Micro-Manager's demo XY stage travels at 10 um/ms; without real
        # timing it arrives at once (about 30 ms saved per search field)
        text += f"Property,XYStage,Velocity,{FAST_STAGE_VELOCITY}\n"
    if sample_medium != "matched":
        text += f"#py Property,Camera,SampleMedium,{sample_medium}\n"
    if name == "widefield":
        text += (
            f"#py Property,Camera,SensorWidthPx,{plan.widefield_px}\n"
            f"#py Property,Camera,SensorHeightPx,{plan.widefield_px}\n"
        )
    out = folder / f"{name}.cfg"
    out.write_text(text, encoding="utf-8")
    return out


def _cells(core: CMMCorePlus, n: int) -> list[tuple[int, tuple[float, float, float]]]:
    """N cells spread over the specimen, with their stage position on this scope."""
    from acquire.sim import groundtruth

    count = len(groundtruth.specimen_of(core).cells)
    if n > count:
        raise UserError(
            f"--positions {n} exceeds the {count} cells of the specimen",
            f"Use at most {count}.",
        )
    chosen = np.linspace(0, count - 1, n).round().astype(int)
    return [
        (int(c), groundtruth.stage_position_of_cell(core, int(c), height_um=2.0))
        for c in chosen
    ]


def _sequence(
    targets: list[tuple[str, tuple[float, float, float]]], plan: DemoPlan
) -> useq.MDASequence:
    """A stack of the demo's z plan at each target, position by position."""
    return useq.MDASequence(
        stage_positions=tuple(
            useq.Position(x=x, y=y, z=z, name=name) for name, (x, y, z) in targets
        ),
        z_plan=useq.ZRangeAround(
            range=plan.z_step_um * (plan.n_planes - 1), step=plan.z_step_um
        ),
        axis_order=("p", "c", "z"),
    )


@dataclass
class DemoResult:
    """Where the demo wrote its report, and its headline numbers."""

    folder: Path
    report_md: Path
    metrics: dict[str, Any]


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    seed: int = 0,
    positions: int | None = None,
    model: Path | None = None,
    real_timing: bool = False,
    sample_medium: str = "matched",
    progress: DemoProgress | None = None,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the whole correlative workflow on the simulated scopes.

    Parameters
    ----------
    out : Path
        New (or empty) output folder; its parent must exist.
    quick : bool
        `QUICK_PLAN` (3 cells, 21 planes, about 2 minutes) instead of
        `FULL_PLAN`.
    seed : int
        Specimen seed; the hidden mounts derive from it.
    positions : int, optional
        Cells to image (default: the plan's).
    model : Path, optional
        Model checkpoint (default: the bundled demo model).
    real_timing : bool
        Let the simulated cameras wait the real exposure times and the demo
        XY stage take its real travel time.
    sample_medium : str
        Mounting medium of the simulated sample on both scopes (see
        `SAMPLE_MEDIA`): ``"matched"`` to the immersion oil (the default and
        the bundled model's training data), or water, glycerol, a hardening
        mountant: depth-dependent aberration and focal shift.
    progress : callable, optional
        Called as ``progress(step, done, total)``.
    log : callable, optional
        Receives one line per step.

    Returns
    -------
    DemoResult

    Raises
    ------
    UserError
        ``out`` holds other data, bad ``seed`` or ``positions``, or the
        bundled model or configurations are missing.

    """
    folder = check_output_folder(out)
    check_seed(seed)
    check_sample_medium(sample_medium)
    plan = QUICK_PLAN if quick else FULL_PLAN
    if positions is not None:
        if positions < 2:
            raise UserError(f"--positions {positions} is too few", "Use 2 or more.")
        plan = replace(
            plan,
            n_positions=positions,
            live_positions=min(plan.live_positions, positions),
        )
    model_path = Path(model) if model is not None else bundled_model()
    if not model_path.is_file():
        raise UserError(f"model {model_path} does not exist", "Check --model.")
    step = progress or (lambda _s, _d, _t: None)
    say = log or (lambda _line: None)
    for removed in remove_abandoned_partials(folder):
        say(f"removed {removed.name}, left by a demo that was stopped")
    partial = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.partial")
    partial.mkdir()
    claim = acquire_writer_lock(partial)  # tells a later run this one is alive
    try:
        metrics = _run(
            partial, plan, seed, model_path, real_timing, sample_medium, step, say
        )
        claim.release()
        for name in (LOCK_NAME, OWNER_NAME):
            (partial / name).unlink(missing_ok=True)
        if folder.exists():
            folder.rmdir()
        partial.replace(folder)
    finally:
        claim.release()
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return DemoResult(folder, folder / "report.md", metrics)


def remove_abandoned_partials(folder: Path) -> list[Path]:
    """Delete the work folders that stopped demos left beside ``folder``.

    A demo works in a hidden ``.NAME.XXXXXXXX.partial`` folder and renames it
    when done; a killed demo leaves it behind. One whose lock no process
    holds is abandoned; one still locked belongs to a demo that is running.

    Parameters
    ----------
    folder : Path
        The demo's output folder.

    Returns
    -------
    list of Path
        The folders removed.

    """
    removed = []
    for stale in abandoned_partials(folder):
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    return removed


def _run(
    work: Path,
    plan: DemoPlan,
    seed: int,
    model: Path,
    real_timing: bool,
    sample_medium: str,
    step: DemoProgress,
    say: Callable[[str], None],
) -> dict[str, Any]:
    from acquire.workflows.demo_report import DemoRecord, write_report

    started = time.perf_counter()
    (work / "configs").mkdir()
    confocal = _config(
        work / "configs", "confocal", seed, plan, real_timing, sample_medium
    )
    widefield = _config(
        work / "configs", "widefield", seed, plan, real_timing, sample_medium
    )
    holder = load_holder(Path(str(bundled_config("demo_holder.json"))))
    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)

    def frame_counter(name: str, total: int) -> Callable[[Any], None]:
        count = [0]

        def connect(controller: Any) -> None:
            def on_frame(*_args: Any) -> None:
                count[0] += 1
                step(name, count[0], total)

            controller.events.frame_acquired.connect(on_frame)

        return connect

    frames = plan.n_positions * plan.n_planes
    session = work / "session.json"
    # each scope's configuration is loaded once, for all of its steps
    with scope(confocal) as confocal_core:
        cells = _cells(confocal_core, plan.n_positions)
        targets = [(f"cell{c:02d}", xyz) for c, xyz in cells]
        step("confocal: fiducials", 0, 1)
        t0 = time.perf_counter()
        record_fiducials(
            confocal,
            session,
            holder,
            targets=tuple(Target(name, xyz) for name, xyz in targets),
            core=confocal_core,
            progress=say,
        )
        step("confocal: fiducials", 1, 1)
        timed("confocal_fiducials_s", t0)

        t0 = time.perf_counter()
        step("confocal: stacks", 0, frames)
        run_acquisition(
            AcquisitionRequest(_sequence(targets, plan), confocal, work / "confocal"),
            core=confocal_core,
            connect=frame_counter("confocal: stacks", frames),
        )
        timed("confocal_stacks_s", t0)

    with scope(widefield) as widefield_core:
        t0 = time.perf_counter()
        step("wide-field: stacks", 0, frames)
        paired: PairedRunResult = run_paired_acquisition(
            PairedRunRequest(
                session=session,
                confocal_dataset=work / "confocal",
                config=widefield,
                out=work / "widefield",
                database=work / "pairs",
                wait_for_registration=True,
            ),
            core=widefield_core,
            progress=say,
            on_outcome=lambda o: say(
                f"{o.position_name}: {'paired' if o.accepted else 'flagged'}"
            ),
            connect=frame_counter("wide-field: stacks", frames),
        )
        timed("widefield_relocate_acquire_register_s", t0)

        t0 = time.perf_counter()
        live = _live(work, widefield_core, widefield, paired, plan, model, step)
        timed("live_enhancement_s", t0)

        record = DemoRecord(
            work=work,
            plan=plan,
            seed=seed,
            model=model,
            confocal_config=confocal,
            widefield_config=widefield,
            session=session,
            cells=cells,
            paired=paired,
            live=live,
            timings=timings,
            sample_medium=sample_medium,
            widefield_core=widefield_core,
        )
        t0 = time.perf_counter()
        step("report", 0, 1)
        metrics = write_report(record, say=say)
        step("report", 1, 1)
        timed("evaluation_and_report_s", t0)
    metrics["timings_s"] = {
        **timings,
        "total_s": round(time.perf_counter() - started, 1),
    }
    (work / "report.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics


def _live(
    work: Path,
    core: CMMCorePlus,
    widefield: Path,
    paired: PairedRunResult,
    plan: DemoPlan,
    model: Path,
    step: DemoProgress,
) -> Any:
    """Re-image the first cells on the wide-field with live enhancement."""
    from acquire.workflows.live_enhance import run_live_enhancement

    chosen = paired.relocated[: plan.live_positions]
    targets = [(t.name, t.stage_xyz_um) for t in chosen]
    sequence = _sequence(targets, plan)
    step("live enhancement", 0, len(targets))
    done = [0]

    def on_enhanced(_stack: Any) -> None:
        done[0] += 1
        step("live enhancement", done[0], len(targets))

    return run_live_enhancement(
        AcquisitionRequest(sequence, widefield, work / "live"),
        model,
        core=core,
        queue_size=len(targets),
        threads=2,
        on_enhanced=on_enhanced,
    )
