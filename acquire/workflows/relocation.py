"""``pairscope fiducials`` and ``pairscope relocate``: the two halves of relocation.

Scope A finds the holder's marks and records them with its targets in a
session file; scope B finds the same marks, fits the stage-to-stage transform
and maps the targets into its own coordinates, each with a predicted error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from acquire.errors import UserError
from acquire.hardware.microscope import objective_device, use_scope
from acquire.paths import check_new_file
from acquire.sequence.read import load_sequence
from acquire.storage.recorded_paths import record_path
from acquire.storage.session import (
    CorrelationSession,
    Target,
    load_session,
    save_session,
)
from acquire.workflows.fiducial_search import FiducialSurvey, find_fiducials
from acquire.workflows.flat_fields import FlatField, check_flat_fields
from correlate.fiducials.marks import Holder
from correlate.stage.fit_transform import fit_stage_transform
from correlate.stage.transform import StageTransform, TransformError

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

Progress = Callable[[str], None]


def load_holder(path: Path) -> Holder:
    """Read a holder description (JSON, as `hardware_configs/demo_holder.json`)."""
    try:
        data = json.loads(Path(path).read_text())
        holder = Holder.from_dict(data)
    except FileNotFoundError:
        raise UserError(
            f"{path}: no such holder file", "Check the --holder path."
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{path} is not a holder description: {error}",
            "Give a JSON file like hardware_configs/demo_holder.json.",
        ) from None
    if not holder.marks:
        raise UserError(
            f"{path} describes no marks",
            'List the holder\'s fiducial marks under "marks" (see '
            "hardware_configs/demo_holder.json).",
        )
    return holder


def load_targets(path: Path | None) -> tuple[Target, ...]:
    """Targets from a useq sequence's stage positions (each needs x, y and z)."""
    if path is None:
        return ()
    sequence = load_sequence(path)
    targets = []
    for index, position in enumerate(sequence.stage_positions):
        if position.x is None or position.y is None or position.z is None:
            raise UserError(
                f"{path}: stage position {index} has no x, y and z",
                "Give every target position all three coordinates.",
            )
        name = position.name or f"target{index}"
        targets.append(Target(name, (position.x, position.y, position.z)))
    return tuple(targets)


def _objectives(
    core: CMMCorePlus, search: str | None, fine: str | None
) -> tuple[str, str]:
    """Search objective (default: lowest magnification) and fine one (current)."""
    from acquire.config.objectives import parse_objective_label

    turret = objective_device(core)
    if not turret:
        raise UserError(
            "the configuration has no objective turret", "See docs/configs.md."
        )
    labels = [str(label) for label in core.getStateLabels(turret)]
    usable = {}
    for label in labels:
        try:
            usable[label] = parse_objective_label(label).magnification
        except ValueError:
            continue
    for name, chosen in (("--search-objective", search), ("--fine-objective", fine)):
        if chosen is not None and chosen not in labels:
            raise UserError(
                f"{name} {chosen!r} is not on the turret", f"Choose one of {labels}."
            )
    search = search or min(usable, key=usable.__getitem__)
    fine = fine or str(core.getStateLabel(turret))
    return search, fine


def survey(
    core: CMMCorePlus,
    holder: Holder,
    *,
    search_objective: str | None,
    fine_objective: str | None,
    progress: Progress | None,
    flat_fields: Mapping[str, FlatField] | None = None,
    dark_level: float = 0.0,
) -> FiducialSurvey:
    """Find the holder's marks on this scope (frames flat-fielded if given)."""
    search, fine = _objectives(core, search_objective, fine_objective)
    if flat_fields:
        turret = objective_device(core) or ""  # checked by _objectives
        check_flat_fields(
            flat_fields,
            objectives=[str(label) for label in core.getStateLabels(turret)],
            frame_shape=(int(core.getImageHeight()), int(core.getImageWidth())),
            dark_level=dark_level,
        )
    return find_fiducials(
        core,
        holder,
        search_objective=search,
        fine_objective=fine,
        flat_fields=flat_fields,
        dark_level=dark_level,
        progress=progress,
    )


def record_fiducials(
    config: Path,
    out: Path,
    holder: Holder,
    *,
    targets: tuple[Target, ...] = (),
    core: CMMCorePlus | None = None,
    search_objective: str | None = None,
    fine_objective: str | None = None,
    flat_fields: Mapping[str, FlatField] | None = None,
    dark_level: float = 0.0,
    progress: Progress | None = None,
) -> tuple[CorrelationSession, FiducialSurvey]:
    """Scope A: find the marks and write the session file.

    ``core``, if given, is the open scope of ``config`` and stays open;
    otherwise the configuration is opened for the search.
    """
    with use_scope(config, core) as scope_core:
        found = survey(
            scope_core,
            holder,
            search_objective=search_objective,
            fine_objective=fine_objective,
            progress=progress,
            flat_fields=flat_fields,
            dark_level=dark_level,
        )
    if len(found.marks) < 3:
        raise UserError(
            f"found only {len(found.marks)} of {len(holder.marks)} marks "
            f"(missing: {', '.join(found.missing)})",
            "At least 3 are needed to relocate; check focus, illumination and "
            "the holder description, then run again.",
        )
    session = CorrelationSession(
        scope=config.stem,
        holder=holder,
        marks=found.positions(),
        targets=targets,
        calibrations=found.calibrations,
        metadata={
            "config_path": record_path(config, relative_to=Path(out).parent),
            "missing_marks": list(found.missing),
        },
    )
    save_session(out, session)
    return session, found


@dataclass(frozen=True)
class RelocatedTarget:
    """A target in scope B's stage coordinates, with its predicted error."""

    name: str
    stage_xyz_um: tuple[float, float, float]
    predicted_tre_um: float
    predicted_z_error_um: float
    too_uncertain: bool


def relocate(
    session_path: Path,
    config: Path,
    *,
    core: CMMCorePlus | None = None,
    max_error_fraction_of_fov: float = 0.1,
    search_objective: str | None = None,
    fine_objective: str | None = None,
    flat_fields: Mapping[str, FlatField] | None = None,
    dark_level: float = 0.0,
    progress: Progress | None = None,
) -> tuple[StageTransform, tuple[RelocatedTarget, ...], FiducialSurvey]:
    """Scope B: find the marks, fit the transform, map the targets.

    ``core``, if given, is the open scope of ``config`` and stays open;
    otherwise the configuration is opened for the search.
    """
    session = load_session(session_path)
    if len(session.marks) < 3:
        # fail before a search of minutes that could never relate the scopes
        raise UserError(
            f"{session_path} records only {len(session.marks)} marks; at least 3 "
            "are needed to relocate",
            "Find the marks on scope A again (pairscope fiducials).",
        )
    with use_scope(config, core) as scope_core:
        found = survey(
            scope_core,
            session.holder,
            search_objective=search_objective,
            fine_objective=fine_objective,
            progress=progress,
            flat_fields=flat_fields,
            dark_level=dark_level,
        )
        fov_um = (
            min(scope_core.getImageWidth(), scope_core.getImageHeight())
            * scope_core.getPixelSizeUm()
        )
    try:
        transform = fit_stage_transform(session.marks, found.positions())
    except TransformError as error:
        raise UserError(
            f"cannot relate the two scopes: {error}",
            "Check that both scopes found the same marks (see the lists above).",
        ) from None
    relocated = []
    if session.targets:
        xyz = np.array([t.stage_xyz_um for t in session.targets], dtype=np.float64)
        mapped = transform.apply(xyz)
        tre = transform.predicted_tre_um(xyz)
        z_error = transform.predicted_z_error_um(xyz)
        for target, b, e, ez in zip(session.targets, mapped, tre, z_error, strict=True):
            relocated.append(
                RelocatedTarget(
                    target.name,
                    (float(b[0]), float(b[1]), float(b[2])),
                    float(e),
                    float(ez),
                    bool(e > max_error_fraction_of_fov * fov_um),
                )
            )
    return transform, tuple(relocated), found


def check_export(path: Path | None, template: Path | None) -> None:
    """Refuse an ``--export`` or ``--template`` that would fail after relocating.

    Raises
    ------
    UserError
        The export file exists or its folder does not; the template is not a
        sequence (one message naming the file and what is wrong).

    """
    if template is not None:
        if path is None:
            raise UserError(
                "--template is used only with --export",
                "Add --export PATH, or leave --template out.",
            )
        load_sequence(template)  # its own clear message if it is not a sequence
    if path is None:
        return
    check_new_file(Path(path), what="sequence file", option="--export")


def export_sequence(
    path: Path, targets: tuple[RelocatedTarget, ...], *, template: Path | None
) -> None:
    """Write the relocated targets as a useq sequence for `pairscope acquire`."""
    data: dict[str, object] = {}
    if template is not None:
        data = dict(yaml.safe_load(Path(template).read_text()) or {})
    data["stage_positions"] = [
        {
            "x": round(t.stage_xyz_um[0], 4),
            "y": round(t.stage_xyz_um[1], 4),
            "z": round(t.stage_xyz_um[2], 4),
            "name": t.name,
        }
        for t in targets
    ]
    check_new_file(Path(path), what="sequence file", option="--export")
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
