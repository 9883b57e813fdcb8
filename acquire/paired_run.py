"""Paired acquisition on scope B: relocate, acquire, register on the fly, refine.

``pairscope pairs acquire``: with the session and the confocal stacks from
scope A, the wide-field scope finds the fiducials, fits the stage transform,
acquires a stack at every target that has a confocal partner, and registers
each completed stack against its partner through the acquisition's bounded
processing queue into the paired database. Each accepted registration measures
where the target really is; the mean error so far shifts the positions still
to come (closed-loop refinement).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import useq
import yaml

from acquire.acquisition import AcquisitionRequest, run_acquisition
from acquire.consumers import StackQueue
from acquire.controller import (
    AcquisitionController,
    AcquisitionResult,
    PositionOffset,
)
from acquire.correlation_run import RelocatedTarget, relocate
from acquire.errors import UserError
from acquire.hardware import objective_device, scope
from acquire.pair_geometry import ClosedLoopCorrection
from acquire.pairing import ConfocalPartner, Pairer, PairOutcome, partner_from_stored
from acquire.session import load_session
from acquire.storage.reader import committed_stacks, read_stack
from correlate.pairdb import PairDatabase, PairDatabaseError
from correlate.stage_transform import StageTransform

__all__ = ["PairedRunRequest", "PairedRunResult", "run_paired_acquisition"]

Progress = Callable[[str], None]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairedRunRequest:
    """What ``pairscope pairs acquire`` was asked to do.

    Attributes
    ----------
    session : Path
        Correlation session written on scope A (marks and targets).
    confocal_dataset : Path
        Scope A's stacks at the targets (position names = target names).
    config : Path
        Scope B (wide-field) configuration.
    out : Path
        New dataset for scope B's stacks.
    database : Path
        Paired-image database (created if it does not exist).
    objective : str or None
        Turret label of the objective for measuring marks and acquiring
        (default: the config's current one).
    search_objective : str or None
        Low-magnification objective of the mark search (default: lowest).
    closed_loop : bool
        Correct later positions with the registrations so far.
    wait_for_registration : bool
        Closed loop only: before each stack, wait until every stack before it
        is registered, so each position gets the full correction (costs the
        registration time per stack when registration is the slower).
    queue_size : int
        Stacks the registration queue holds while it is busy.

    """

    session: Path
    confocal_dataset: Path
    config: Path
    out: Path
    database: Path
    objective: str | None = None
    search_objective: str | None = None
    closed_loop: bool = True
    wait_for_registration: bool = False
    queue_size: int = 2


@dataclass
class PairedRunResult:
    """How a paired acquisition went."""

    acquisition: AcquisitionResult
    relocated: tuple[RelocatedTarget, ...]
    transform: StageTransform
    marks_b: dict[str, tuple[float, float, float]]
    widefield_pixel_um: float
    outcomes: list[PairOutcome] = field(default_factory=list)
    applied_offsets_um: dict[str, tuple[float, float, float]] = field(
        default_factory=dict
    )
    registration_failures: int = 0


def load_partners(
    dataset: Path, calibrations: Any, *, progress: Progress
) -> dict[str, ConfocalPartner]:
    """Confocal partners by position name, from scope A's dataset."""
    partners: dict[str, ConfocalPartner] = {}
    for name in committed_stacks(dataset):
        stack = read_stack(dataset, name)
        if stack.position_name in partners:
            progress(f"{name}: position {stack.position_name} seen before; kept first")
            continue
        partners[stack.position_name] = partner_from_stored(stack, calibrations)
    if not partners:
        raise UserError(
            f"{dataset} holds no committed stacks",
            "Acquire the confocal stacks at the session's targets first.",
        )
    return partners


def open_or_create_database(path: Path) -> PairDatabase:
    """The paired database at ``path``, created if the folder does not exist."""
    try:
        if Path(path).exists():
            return PairDatabase.open(path)
        return PairDatabase.create(path)
    except PairDatabaseError as error:
        raise UserError(str(error), "Give a paired database folder.") from None


def _sequence_file(
    folder: Path,
    targets: tuple[RelocatedTarget, ...],
    partner: ConfocalPartner,
    channel: tuple[str, str] | None,
) -> Path:
    """A useq sequence: the relocated targets, each with the partner's z plan."""
    n_planes = int(partner.data.shape[0])
    dz = float(partner.placement.voxel_size_um[0])
    half = (n_planes - 1) / 2
    sequence = useq.MDASequence(
        stage_positions=tuple(
            useq.Position(
                x=t.stage_xyz_um[0],
                y=t.stage_xyz_um[1],
                z=t.stage_xyz_um[2],
                name=t.name,
            )
            for t in targets
        ),
        z_plan=useq.ZRelativePositions(
            relative=[round((k - half) * dz, 6) for k in range(n_planes)]
        ),
        channels=(
            (useq.Channel(group=channel[0], config=channel[1], exposure=None),)
            if channel
            else ()
        ),
        axis_order=("p", "c", "z"),
    )
    path = folder / "paired_sequence.yaml"
    path.write_text(
        yaml.safe_dump(sequence.model_dump(mode="json", exclude_unset=True))
    )
    return path


def closed_loop_offset(
    correction: ClosedLoopCorrection, *, wait: bool
) -> PositionOffset:
    """The controller's offset callback: the mean error measured so far."""
    asked = 0

    def offset(_position_name: str) -> tuple[float, float, float]:
        nonlocal asked
        if wait and not correction.wait_for(asked):
            logger.warning("registration is behind: going on without waiting")
        asked += 1
        return correction.offset()

    return offset


def run_paired_acquisition(
    request: PairedRunRequest,
    *,
    progress: Progress | None = None,
    on_outcome: Callable[[PairOutcome], None] | None = None,
    connect: Callable[[AcquisitionController], None] | None = None,
) -> PairedRunResult:
    """Relocate, acquire at every target and pair each stack as it completes.

    Parameters
    ----------
    request : PairedRunRequest
        Inputs and options.
    progress : callable, optional
        Receives one line per step.
    on_outcome : callable, optional
        Called with each registered pair (from the registration thread).
    connect : callable, optional
        Called with the acquisition controller before it runs.

    Returns
    -------
    PairedRunResult

    Raises
    ------
    UserError
        Bad inputs (session, partners, database), or relocation failed.

    """
    say = progress or (lambda _line: None)
    session = load_session(request.session)
    partners = load_partners(
        request.confocal_dataset, session.calibrations, progress=say
    )
    database = open_or_create_database(request.database)
    with scope(request.config) as core:
        turret = objective_device(core)
        objective = request.objective or (
            str(core.getStateLabel(turret)) if turret else None
        )
        group = core.getChannelGroup()
        channel = (group, str(core.getCurrentConfig(group))) if group else None

    transform, relocated, found = relocate(
        request.session,
        request.config,
        search_objective=request.search_objective,
        fine_objective=objective,
        progress=say,
    )
    calibration = found.calibrations.get(objective or "")
    if calibration is None:
        raise UserError(
            f"relocation did not calibrate the objective {objective!r}",
            "Name the acquisition objective with --objective.",
        )
    targets = tuple(t for t in relocated if t.name in partners)
    missing = sorted(set(partners) - {t.name for t in relocated})
    if missing:
        say(f"confocal stacks without a session target (skipped): {missing}")
    if not targets:
        raise UserError(
            "no session target has a confocal stack",
            "Position names of the confocal stacks must be the session's targets.",
        )
    correction = ClosedLoopCorrection()
    pairer = Pairer(
        database,
        transform,
        partners,
        widefield_calibration=calibration,
        widefield_scope=request.config.stem,
        correction=correction,
        on_outcome=on_outcome,
    )
    queue = StackQueue(pairer, maxsize=request.queue_size, name="registration")

    controllers: list[AcquisitionController] = []
    pixel_um: list[float] = []

    def prepare(controller: AcquisitionController) -> None:
        controllers.append(controller)
        if turret and objective:
            controller.core.setStateLabel(turret, objective)
            controller.core.waitForDevice(turret)
        pixel_um.append(float(controller.core.getPixelSizeUm()))
        # what offline pairing (pairs build) needs to pair these stacks again
        controller.dataset.update_manifest(
            relocation={
                "session": str(Path(request.session).resolve()),
                "confocal_dataset": str(Path(request.confocal_dataset).resolve()),
                "stage_transform": transform.to_dict(),
                "objective": objective,
                "calibration": calibration.to_dict(),
            }
        )
        if connect is not None:
            connect(controller)

    with tempfile.TemporaryDirectory(prefix="pairscope-pairs-") as tmp:
        sequence = _sequence_file(
            Path(tmp), targets, partners[targets[0].name], channel
        )
        acquisition = run_acquisition(
            AcquisitionRequest(sequence, request.config, request.out),
            consumers=[queue],
            connect=prepare,
            position_offset=(
                closed_loop_offset(correction, wait=request.wait_for_registration)
                if request.closed_loop
                else None
            ),
        )
    return PairedRunResult(
        acquisition=acquisition,
        relocated=relocated,
        transform=transform,
        marks_b=found.positions(),
        widefield_pixel_um=pixel_um[0] if pixel_um else calibration.pixel_size_um,
        outcomes=list(pairer.outcomes),
        applied_offsets_um=dict(controllers[0].applied_offsets) if controllers else {},
        registration_failures=queue.stats.failed,
    )
