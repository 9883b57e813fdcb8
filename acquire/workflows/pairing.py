"""Register wide-field stacks against their confocal partners into the paired database.

A :class:`Pairer` holds what pairing needs from relocation (the stage
transform and both scopes' calibrations) and the confocal partners (by
position name). Given a wide-field stack it predicts the registration's
initial estimate, registers, stores the pair (accepted or flagged) and, for an
accepted pair, feeds the measured error into the closed-loop correction. It is
used live (as the consumer of the acquisition's processing queue) and offline
(``pairscope pairs build``).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from acquire.errors import UserError
from acquire.storage.reader import (
    StoredStack,
    committed_stacks,
    read_stack,
    stack_centre_um,
    stack_folder,
)
from acquire.workflows.pair_geometry import (
    ClosedLoopCorrection,
    StackPlacement,
    initial_estimate,
    measured_centre,
)
from correlate.pairdb import DuplicatePairError, PairDatabase, StackMeta
from correlate.registration import (
    PairRegistration,
    PairTransform,
    RegistrationError,
    register_pair,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from numpy.typing import NDArray

    from acquire.hardware.consumers import CompletedStack
    from correlate.stage.camera_calibration import PixelCalibration
    from correlate.stage.transform import StageTransform

logger = logging.getLogger(__name__)

__all__ = [
    "CommittedPairing",
    "PairOutcome",
    "Pairer",
    "WidefieldStack",
    "pair_committed_stacks",
]


@dataclass(frozen=True)
class WidefieldStack:
    """A wide-field stack to pair: pixels (z, y, x) and how it was taken."""

    name: str
    position_name: str
    data: NDArray[Any]
    voxel_size_um: tuple[float, float, float]
    stage_xyz_um: tuple[float, float, float]
    objective: str | None
    acquired_at: str | None
    source: str

    @classmethod
    def from_completed(cls, stack: CompletedStack) -> WidefieldStack:
        """From a stack handed over by the acquisition (first channel)."""
        planes = list(stack.metadata.get("planes", []))
        return cls._from_parts(
            stack.name,
            str(stack.metadata.get("position_name", "")),
            stack.data,
            stack.voxel_size_um,
            planes,
            str(stack.path),
        )

    @classmethod
    def from_stored(cls, stack: StoredStack) -> WidefieldStack:
        """From a stack read back from a dataset (first channel)."""
        return cls._from_parts(
            stack.name,
            stack.position_name,
            stack.data,
            stack.voxel_size_um,
            stack.planes,
            str(stack.path),
        )

    @classmethod
    def _from_parts(
        cls,
        name: str,
        position_name: str,
        data: NDArray[Any],
        voxel_size_um: tuple[float, float, float],
        planes: list[dict[str, Any]],
        source: str,
    ) -> WidefieldStack:
        first = planes[0] if planes else {}
        return cls(
            name=name,
            position_name=position_name,
            data=np.asarray(data)[0] if np.ndim(data) == 4 else np.asarray(data),
            voxel_size_um=voxel_size_um,
            stage_xyz_um=stack_centre_um(planes, where=f"stack {name}"),
            objective=first.get("objective"),
            acquired_at=first.get("timestamp"),
            source=source,
        )


@dataclass(frozen=True)
class ConfocalPartner:
    """A confocal stack (z, y, x) with its placement on scope A."""

    name: str
    data: NDArray[Any]
    placement: StackPlacement
    meta: StackMeta


@dataclass(frozen=True)
class PairOutcome:
    """What happened to one wide-field stack."""

    stack: str
    position_name: str
    pair_id: str | None
    accepted: bool
    reason: str
    metrics: Mapping[str, float]
    start_offset_um: float
    """How far the stack's centre was from the partner's true place (lateral)."""
    prediction_error_um: tuple[float, float, float]
    """Measured minus predicted stage position of the partner, before correction."""
    measured_stage_xyz_um: tuple[float, float, float]
    """Where registration puts the partner's centre on this scope's stage."""
    already_stored: bool = False
    """The same pair (pixels, grid, cell) was in the database: nothing added."""


class Pairer:
    """Pairs wide-field stacks with confocal partners into a database.

    Parameters
    ----------
    database : PairDatabase
        Where pairs go.
    transform : StageTransform
        Scope A (confocal) stage -> scope B (wide-field) stage.
    partners : mapping
        Position name -> confocal partner.
    widefield_calibration : PixelCalibration
        Scope B's camera calibration for the objective of its stacks.
    widefield_scope : str
        Name of scope B.
    correction : ClosedLoopCorrection, optional
        Updated with every accepted pair's measured error.
    on_outcome : callable, optional
        Called with each :class:`PairOutcome` (progress display).

    """

    def __init__(
        self,
        database: PairDatabase,
        transform: StageTransform,
        partners: Mapping[str, ConfocalPartner],
        *,
        widefield_calibration: PixelCalibration,
        widefield_scope: str,
        correction: ClosedLoopCorrection | None = None,
        on_outcome: Callable[[PairOutcome], None] | None = None,
    ) -> None:
        self.database = database
        self.transform = transform
        self.partners = dict(partners)
        self.widefield_calibration = widefield_calibration
        self.widefield_scope = widefield_scope
        self.correction = correction or ClosedLoopCorrection()
        self.on_outcome = on_outcome
        self.outcomes: list[PairOutcome] = []
        self._lock = threading.Lock()

    def __call__(self, stack: CompletedStack) -> None:
        """Consumer for the acquisition's processing queue."""
        self.pair(WidefieldStack.from_completed(stack))

    def predicted_stage(self, position_name: str) -> NDArray[np.float64]:
        """Scope B stage (x, y, z) the transform predicts for a partner."""
        partner = self._partner(position_name)
        return self.transform.apply(np.asarray(partner.placement.stage_xyz_um))

    def pair(self, stack: WidefieldStack) -> PairOutcome:
        """Register one wide-field stack against its partner and store the pair."""
        try:
            return self._pair(stack)
        finally:
            self.correction.mark_done()

    def _pair(self, stack: WidefieldStack) -> PairOutcome:
        partner = self._partner(stack.position_name)
        placement = StackPlacement(
            stack.stage_xyz_um, stack.voxel_size_um, self.widefield_calibration
        )
        initial = initial_estimate(partner.placement, placement, self.transform)
        try:
            result = register_pair(
                stack.data,
                partner.data,
                widefield_voxel_um=stack.voxel_size_um,
                confocal_voxel_um=partner.placement.voxel_size_um,
                initial=initial,
            )
        except RegistrationError as failure:
            raise UserError(
                f"wide-field stack {stack.name} and confocal stack "
                f"{partner.name} cannot be registered: {failure}",
                "Check (or re-acquire) that stack; the pairs already in the "
                "database are kept.",
            ) from failure
        metrics = {
            k: math.nan if v is None else float(v)
            for k, v in result.quality.to_dict().items()
        }
        metrics["overlap"] = metrics["overlap_fraction"]
        metrics["rotation_deg"] = result.rotation_deg
        metrics["scale"] = result.scale
        metrics["axial_scale"] = result.transform.axial_scale
        already_stored = False
        try:
            pair_id = self._store(stack, partner, result, initial, metrics)
        except DuplicatePairError as duplicate:
            # a rerun over the same pixels (a resumed run, a second build):
            # the registration still measures where the cell is
            pair_id, already_stored = duplicate.pair_id, True
            logger.info("%s: already in the database as pair %s", stack.name, pair_id)
        measured = measured_centre(result.transform, placement)
        predicted = self.predicted_stage(stack.position_name)
        error = measured - predicted
        start = float(np.hypot(*(measured[:2] - np.asarray(stack.stage_xyz_um[:2]))))
        if result.accepted:
            self.correction.add(error)
        outcome = PairOutcome(
            stack=stack.name,
            position_name=stack.position_name,
            pair_id=pair_id,
            accepted=result.accepted,
            reason=result.reason,
            metrics=metrics,
            start_offset_um=start,
            prediction_error_um=(float(error[0]), float(error[1]), float(error[2])),
            measured_stage_xyz_um=(
                float(measured[0]),
                float(measured[1]),
                float(measured[2]),
            ),
            already_stored=already_stored,
        )
        with self._lock:
            self.outcomes.append(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def _store(
        self,
        stack: WidefieldStack,
        partner: ConfocalPartner,
        result: PairRegistration,
        initial: PairTransform,
        metrics: dict[str, float],
    ) -> str:
        """Add the registered pair to the database; its id."""
        return self.database.add_pair(
            widefield=result.aligned_widefield,
            confocal=result.confocal,
            voxel_size_um=partner.placement.voxel_size_um,
            cell_id=stack.position_name,
            transform={
                "registered": result.transform.to_dict(),
                "initial": initial.to_dict(),
                "stage_transform": self.transform.to_dict(),
            },
            metrics=metrics,
            accepted=result.accepted,
            reason=result.reason,
            widefield_meta=StackMeta(
                scope=self.widefield_scope,
                objective=stack.objective,
                stage_xyz_um=stack.stage_xyz_um,
                voxel_size_um=stack.voxel_size_um,
                acquired_at=stack.acquired_at,
                source=stack.source,
            ),
            confocal_meta=partner.meta,
        )

    def _partner(self, position_name: str) -> ConfocalPartner:
        partner = self.partners.get(position_name)
        if partner is None:
            raise UserError(
                f"no confocal stack for position {position_name!r} "
                f"(partners: {', '.join(sorted(self.partners)) or 'none'})",
                "Acquire the confocal stacks at the session's targets, with the "
                "same position names.",
            )
        return partner


def partner_from_stored(
    stack: StoredStack, calibrations: Mapping[str, PixelCalibration]
) -> ConfocalPartner:
    """A confocal partner from a stack of scope A's dataset."""
    objective = stack.objective()
    calibration = calibrations.get(objective or "")
    if calibration is None:
        raise UserError(
            f"{stack.path}: no camera calibration for objective {objective!r} in "
            f"the session (it has {', '.join(sorted(calibrations)) or 'none'})",
            "Record the fiducials on scope A with the objective of its stacks "
            "(pairscope fiducials --fine-objective ...).",
        )
    placement = StackPlacement(stack.stage_xyz_um(), stack.voxel_size_um, calibration)
    meta = StackMeta(
        scope=stack.scope_name or "confocal",
        objective=objective,
        stage_xyz_um=placement.stage_xyz_um,
        voxel_size_um=stack.voxel_size_um,
        acquired_at=stack.planes[0].get("timestamp") if stack.planes else None,
        source=str(stack.path),
    )
    return ConfocalPartner(stack.name, stack.data[0], placement, meta)


@dataclass(frozen=True)
class CommittedPairing:
    """What pairing a dataset's committed stacks did.

    Attributes
    ----------
    outcomes : list of PairOutcome
        The stacks registered now.
    skipped : dict of str to str
        Stack name -> pair id, for stacks whose pair was already stored.

    """

    outcomes: list[PairOutcome]
    skipped: dict[str, str]


def pair_committed_stacks(
    pairer: Pairer,
    dataset: Path,
    *,
    match: Callable[[WidefieldStack], WidefieldStack | None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CommittedPairing:
    """Register every committed stack of a dataset that has no pair yet.

    A stack whose pair (the same wide-field and confocal sources) is in the
    database is skipped without registering it again, so a build or a paired
    acquisition interrupted at any point completes what is missing when run
    again.

    Parameters
    ----------
    pairer : Pairer
        Database, transform and partners.
    dataset : Path
        A wide-field dataset.
    match : callable, optional
        Gives the stack its partner's position name (None: no partner, the
        stack is skipped); default: the stack's own position name.
    progress : callable, optional
        One line per stack.

    Returns
    -------
    CommittedPairing

    """
    say = progress or (lambda _line: None)
    database = pairer.database
    partner_sources = {
        database.resolve_source(p.meta.source) for p in pairer.partners.values()
    }
    # a wide-field stack images one target: paired with any of these
    # partners, it is done, and its pixels need not even be read
    done = {
        widefield: pair_id
        for (widefield, confocal), pair_id in database.pairs_by_sources().items()
        if confocal in partner_sources
    }
    outcomes: list[PairOutcome] = []
    skipped: dict[str, str] = {}
    for name in committed_stacks(dataset):
        pair_id = done.get(database.resolve_source(str(stack_folder(dataset, name))))
        if pair_id is not None:
            say(f"{name}: already in the database as pair {pair_id}; skipped")
            skipped[name] = pair_id
            continue
        stored = WidefieldStack.from_stored(read_stack(dataset, name))
        stack = stored if match is None else match(stored)
        if stack is None:
            say(f"{name}: no imported stack falls in its field; skipped")
            continue
        if stack.position_name not in pairer.partners:
            say(f"{name}: no confocal stack at {stack.position_name!r}; skipped")
            continue
        outcome = pairer.pair(stack)
        say(f"{name}: {'paired' if outcome.accepted else 'flagged'} ({outcome.reason})")
        outcomes.append(outcome)
    return CommittedPairing(outcomes, skipped)
