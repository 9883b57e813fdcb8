"""``pairscope pairs build``: pair stacks that are already acquired.

The wide-field dataset of ``pairs acquire`` records the relocation it used
(stage transform, objective, camera calibration, session, confocal dataset).
From that, its stacks can be paired again later, or on another PC, against
the confocal dataset or against confocal OME-TIFF stacks exported from a
microscope that Micro-Manager does not drive (e.g. ZEN). Imported stacks are
matched to the wide-field stack nearest to where the transform puts them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acquire.errors import UserError
from acquire.storage.manifest import read_manifest
from acquire.storage.recorded_paths import resolve_recorded_path
from acquire.storage.session import load_session
from acquire.workflows.pair_geometry import StackPlacement
from acquire.workflows.paired_run import load_partners, open_or_create_database
from acquire.workflows.pairing import (
    ConfocalPartner,
    Pairer,
    PairOutcome,
    WidefieldStack,
    pair_committed_stacks,
)
from correlate.pairdb import PairDatabaseError, StackMeta, read_ome_tiff_stack
from correlate.stage.camera_calibration import PixelCalibration
from correlate.stage.transform import StageTransform

__all__ = ["build_pairs_offline", "partner_from_tiff"]

Progress = Callable[[str], None]


def _relocation_of(dataset: Path) -> dict[str, Any]:
    relocation = read_manifest(dataset).get("relocation")
    if not isinstance(relocation, dict):
        raise UserError(
            f"{dataset} records no relocation",
            "Give a wide-field dataset written by `pairscope pairs acquire`.",
        )
    return relocation


def _recorded_confocal(dataset: Path, relocation: dict[str, Any]) -> Path:
    recorded = relocation.get("confocal_dataset")
    if not recorded:
        raise UserError(
            f"{dataset} records no confocal dataset",
            "Name scope A's dataset with --confocal (or its stacks with "
            "--confocal-tiff).",
        )
    return resolve_recorded_path(str(recorded), relative_to=dataset)


def partner_from_tiff(
    path: Path, calibrations: dict[str, PixelCalibration]
) -> ConfocalPartner:
    """A confocal partner from an OME-TIFF stack (stage position required).

    Without a pairscope calibration for its objective, the image axes are
    taken to be the stage axes at the OME pixel size; registration absorbs a
    residual rotation of a few degrees.
    """
    try:
        stack = read_ome_tiff_stack(path)
    except PairDatabaseError as error:
        raise UserError(str(error), "Export the stack as OME-TIFF.") from None
    if stack.stage_xyz_um is None:
        raise UserError(
            f"{path}: the OME metadata hold no stage position",
            "Export with stage positions (ZEN: include the acquisition metadata).",
        )
    dz, dy, dx = stack.voxel_size_um
    calibration = calibrations.get(stack.objective or "") or PixelCalibration(
        np.diag([dx, dy])
    )
    x, y, z_first = stack.stage_xyz_um
    centre = (x, y, z_first + dz * (stack.data.shape[0] - 1) / 2)
    placement = StackPlacement(centre, stack.voxel_size_um, calibration)
    meta = StackMeta(
        scope=stack.microscope or "imported confocal",
        objective=stack.objective,
        stage_xyz_um=centre,
        voxel_size_um=stack.voxel_size_um,
        acquired_at=stack.acquired_at,
        source=str(path),
    )
    return ConfocalPartner(Path(path).name, stack.data, placement, meta)


def _nearest_partner(
    stack: WidefieldStack, predicted: dict[str, np.ndarray]
) -> str | None:
    """Partner whose predicted place lies inside this stack's field, nearest first."""
    _, ny, nx = stack.data.shape
    _, dy, dx = stack.voxel_size_um
    reach = 0.5 * min(ny * dy, nx * dx)
    best, best_distance = None, reach
    for name, xyz in predicted.items():
        distance = float(np.hypot(*(xyz[:2] - np.asarray(stack.stage_xyz_um[:2]))))
        if distance < best_distance:
            best, best_distance = name, distance
    return best


def build_pairs_offline(
    widefield_dataset: Path,
    database: Path,
    *,
    confocal_dataset: Path | None = None,
    confocal_tiffs: Sequence[Path] = (),
    progress: Progress | None = None,
) -> list[PairOutcome]:
    """Register every stack of a wide-field dataset against its partner.

    Parameters
    ----------
    widefield_dataset : Path
        Dataset of ``pairs acquire`` (it records the relocation).
    database : Path
        Paired database (created if missing).
    confocal_dataset : Path, optional
        Scope A's dataset; default: the one the relocation recorded.
    confocal_tiffs : sequence of Path, optional
        Confocal OME-TIFF stacks instead of a dataset.
    progress : callable, optional
        One line per step.

    Returns
    -------
    list of PairOutcome

    """
    say = progress or (lambda _line: None)
    relocation = _relocation_of(widefield_dataset)
    transform = StageTransform.from_dict(relocation["stage_transform"])
    calibration = PixelCalibration.from_dict(relocation["calibration"])
    recorded_session = relocation.get("session")
    session_path = (
        resolve_recorded_path(str(recorded_session), relative_to=widefield_dataset)
        if recorded_session
        else None
    )
    calibrations = (
        dict(load_session(session_path).calibrations)
        if session_path is not None and session_path.is_file()
        else {}
    )
    if confocal_tiffs:
        partners = {
            p.name: p
            for p in (partner_from_tiff(t, calibrations) for t in confocal_tiffs)
        }
    else:
        partners = load_partners(
            confocal_dataset or _recorded_confocal(widefield_dataset, relocation),
            calibrations,
            progress=say,
        )
    pairer = Pairer(
        open_or_create_database(database),
        transform,
        partners,
        widefield_calibration=calibration,
        widefield_scope=str(read_manifest(widefield_dataset)["scope"]["name"]),
    )
    predicted = {name: pairer.predicted_stage(name) for name in partners}

    def nearest(stack: WidefieldStack) -> WidefieldStack | None:
        name = _nearest_partner(stack, predicted)
        return None if name is None else dataclasses.replace(stack, position_name=name)

    done = pair_committed_stacks(
        pairer,
        widefield_dataset,
        match=nearest if confocal_tiffs else None,
        progress=say,
    )
    if done.skipped:
        say(
            f"{len(done.skipped)} stacks were paired before and skipped; "
            f"{len(done.outcomes)} new"
        )
    return done.outcomes
