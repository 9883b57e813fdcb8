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

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import useq

from acquire.errors import UserError
from acquire.hardware.consumers import StackQueue
from acquire.hardware.microscope import objective_device, use_scope
from acquire.storage.manifest import read_manifest
from acquire.storage.reader import committed_stacks, read_stack
from acquire.storage.recorded_paths import record_path
from acquire.storage.session import load_session
from acquire.workflows.acquisition import AcquisitionRequest, run_acquisition
from acquire.workflows.pair_geometry import ClosedLoopCorrection
from acquire.workflows.pairing import (
    ConfocalPartner,
    Pairer,
    PairOutcome,
    pair_committed_stacks,
    partner_from_stored,
)
from acquire.workflows.relocation import RelocatedTarget, relocate
from correlate.pairdb import PairDatabase, PairDatabaseError
from correlate.stage.camera_calibration import PixelCalibration
from correlate.stage.transform import StageTransform

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

    from acquire.hardware.controller import (
        AcquisitionController,
        AcquisitionResult,
        PositionOffset,
    )

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
    resume : bool
        Complete the interrupted run in ``out`` (see `run_paired_acquisition`).

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
    resume: bool = False


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
    skipped: dict[str, str] = field(default_factory=dict)
    """Resumed runs: stacks whose pair was stored before (stack -> pair id)."""


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


def paired_sequence(
    targets: tuple[RelocatedTarget, ...],
    partner: ConfocalPartner,
    channel: tuple[str, str] | None,
) -> useq.MDASequence:
    """A useq sequence: the relocated targets, each with the partner's z plan."""
    n_planes = int(partner.data.shape[0])
    dz = float(partner.placement.voxel_size_um[0])
    half = (n_planes - 1) / 2
    return useq.MDASequence(
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


@dataclass(frozen=True)
class _Relocation:
    """Where the targets are on scope B and what acquires them there."""

    transform: StageTransform
    targets: tuple[RelocatedTarget, ...]
    calibration: PixelCalibration
    objective: str | None
    marks_b: dict[str, tuple[float, float, float]]
    sequence: useq.MDASequence

    def to_manifest(self, request: PairedRunRequest) -> dict[str, Any]:
        """What the dataset records: enough to resume and to pair it offline."""
        return {
            "session": record_path(request.session, relative_to=request.out),
            "confocal_dataset": record_path(
                request.confocal_dataset, relative_to=request.out
            ),
            "stage_transform": self.transform.to_dict(),
            "objective": self.objective,
            "calibration": self.calibration.to_dict(),
            "targets": [dataclasses.asdict(t) for t in self.targets],
            "marks_b": {k: list(v) for k, v in self.marks_b.items()},
        }


def _relocate_now(
    request: PairedRunRequest,
    partners: dict[str, ConfocalPartner],
    say: Progress,
    core: CMMCorePlus,
) -> _Relocation:
    """Find the marks on scope B, map the targets and plan their stacks."""
    turret = objective_device(core)
    objective = request.objective or (
        str(core.getStateLabel(turret)) if turret else None
    )
    group = core.getChannelGroup()
    channel = (group, str(core.getCurrentConfig(group))) if group else None
    transform, relocated, found = relocate(
        request.session,
        request.config,
        core=core,
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
    return _Relocation(
        transform=transform,
        targets=targets,
        calibration=calibration,
        objective=objective,
        marks_b=found.positions(),
        sequence=paired_sequence(targets, partners[targets[0].name], channel),
    )


def _recorded_relocation(out: Path) -> _Relocation:
    """The relocation and sequence an interrupted paired run recorded."""
    manifest = read_manifest(out)
    recorded = manifest.get("relocation")
    hint = (
        "Resume a dataset written by `pairscope pairs acquire`, or start a new "
        "one (a new --out, without --resume)."
    )
    if not isinstance(recorded, dict) or "targets" not in recorded:
        raise UserError(f"{out} records no paired run that can be resumed", hint)
    try:
        return _Relocation(
            transform=StageTransform.from_dict(recorded["stage_transform"]),
            targets=tuple(
                RelocatedTarget(
                    name=str(t["name"]),
                    stage_xyz_um=(
                        float(t["stage_xyz_um"][0]),
                        float(t["stage_xyz_um"][1]),
                        float(t["stage_xyz_um"][2]),
                    ),
                    predicted_tre_um=float(t["predicted_tre_um"]),
                    predicted_z_error_um=float(t["predicted_z_error_um"]),
                    too_uncertain=bool(t["too_uncertain"]),
                )
                for t in recorded["targets"]
            ),
            calibration=PixelCalibration.from_dict(recorded["calibration"]),
            objective=recorded.get("objective"),
            marks_b={
                str(k): (float(v[0]), float(v[1]), float(v[2]))
                for k, v in recorded.get("marks_b", {}).items()
            },
            sequence=useq.MDASequence.model_validate(manifest["sequence"]),
        )
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise UserError(
            f"{out}: the recorded relocation cannot be read ({error})", hint
        ) from None


def run_paired_acquisition(
    request: PairedRunRequest,
    *,
    core: CMMCorePlus | None = None,
    progress: Progress | None = None,
    on_outcome: Callable[[PairOutcome], None] | None = None,
    connect: Callable[[AcquisitionController], None] | None = None,
) -> PairedRunResult:
    """Relocate, acquire at every target and pair each stack as it completes.

    With ``request.resume``, an interrupted run is completed instead: its
    recorded relocation and sequence are used again (the sample has not
    moved), its committed stacks that have no pair yet are registered, and
    only the stacks it did not commit are acquired.

    Parameters
    ----------
    request : PairedRunRequest
        Inputs and options.
    core : CMMCorePlus, optional
        The open scope of ``request.config``; it stays open. If None, the
        configuration is opened once for the relocation and the acquisition.
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
        Bad inputs (session, partners, database, a dataset that cannot be
        resumed), or relocation failed.

    """
    say = progress or (lambda _line: None)
    session = load_session(request.session)
    partners = load_partners(
        request.confocal_dataset, session.calibrations, progress=say
    )
    database = open_or_create_database(request.database)
    with use_scope(request.config, core) as scope_core:
        return _relocate_acquire_and_pair(
            request, partners, database, scope_core, say, on_outcome, connect
        )


def _relocate_acquire_and_pair(
    request: PairedRunRequest,
    partners: dict[str, ConfocalPartner],
    database: PairDatabase,
    core: CMMCorePlus,
    say: Progress,
    on_outcome: Callable[[PairOutcome], None] | None,
    connect: Callable[[AcquisitionController], None] | None,
) -> PairedRunResult:
    if request.resume:
        located = _recorded_relocation(request.out)
        say(f"resuming {request.out} with its recorded relocation")
    else:
        located = _relocate_now(request, partners, say, core)
    correction = ClosedLoopCorrection()
    pairer = Pairer(
        database,
        located.transform,
        partners,
        widefield_calibration=located.calibration,
        widefield_scope=request.config.stem,
        correction=correction,
        on_outcome=on_outcome,
    )
    skipped: dict[str, str] = {}
    if request.resume:
        earlier = pair_committed_stacks(pairer, request.out, progress=say)
        skipped = earlier.skipped
    queue = StackQueue(pairer, maxsize=request.queue_size, name="registration")

    controllers: list[AcquisitionController] = []
    pixel_um: list[float] = []

    def prepare(controller: AcquisitionController) -> None:
        controllers.append(controller)
        turret = objective_device(controller.core)
        if turret and located.objective:
            controller.core.setStateLabel(turret, located.objective)
            controller.core.waitForDevice(turret)
        pixel_um.append(float(controller.core.getPixelSizeUm()))
        # what resuming and offline pairing (pairs build) need
        controller.dataset.update_manifest(relocation=located.to_manifest(request))
        if connect is not None:
            connect(controller)

    acquisition = run_acquisition(
        AcquisitionRequest(
            located.sequence, request.config, request.out, resume=request.resume
        ),
        core=core,
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
        relocated=located.targets,
        transform=located.transform,
        marks_b=located.marks_b,
        widefield_pixel_um=(
            pixel_um[0] if pixel_um else located.calibration.pixel_size_um
        ),
        outcomes=list(pairer.outcomes),
        applied_offsets_um=dict(controllers[0].applied_offsets) if controllers else {},
        registration_failures=queue.stats.failed,
        skipped=skipped,
    )
