"""``pairscope acquire``: from a sequence file and a config to a committed dataset.

This module wires the pieces together: strict sequence validation, stage soft
limits, the plan's caps, the dataset's identity (so ``--resume`` never mixes two
different acquisitions), illumination, and the controller.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acquire._version import __version__
from acquire.config.stage_limits import read_stage_limits
from acquire.errors import UserError
from acquire.hardware.controller import (
    AcquisitionController,
    AcquisitionResult,
    PositionOffset,
)
from acquire.hardware.microscope import use_scope
from acquire.hardware.retry import RetryPolicy
from acquire.sequence.limits import SequenceLimits
from acquire.sequence.plan import AcquisitionPlan, plan_acquisition
from acquire.sequence.read import check_sequence, load_sequence
from acquire.storage.dataset import Dataset
from acquire.storage.recorded_paths import record_path

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import useq
    from pymmcore_plus import CMMCorePlus

    from acquire.hardware.consumers import StackQueue


@dataclass(frozen=True)
class AcquisitionRequest:
    """Everything the user asked for: what to acquire, on which scope, where.

    ``sequence`` is a sequence file (read strictly with `load_sequence`) or a
    sequence built in code (checked with `check_sequence`).
    """

    sequence: Path | useq.MDASequence
    config_path: Path
    out: Path
    resume: bool = False
    limits: SequenceLimits = field(default_factory=SequenceLimits)
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)


def sequence_sha256(sequence: useq.MDASequence) -> str:
    """Hash of the validated sequence (canonical JSON), for dataset identity."""
    text = json.dumps(sequence.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """Hash of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scope_identity(core: CMMCorePlus, config_path: Path) -> dict[str, Any]:
    """What identifies the microscope: config, camera and loaded devices."""
    devices = {
        str(label): f"{core.getDeviceLibrary(label)}/{core.getDeviceName(label)}"
        for label in core.getLoadedDevices()
        if label != "Core"
    }
    return {
        "name": config_path.stem,
        "host": platform.node(),
        "camera": core.getCameraDevice(),
        "devices": devices,
    }


def check_channel_presets(
    core: CMMCorePlus, sequence: useq.MDASequence, *, where: str
) -> None:
    """Refuse channels whose preset this scope does not have, before any work.

    Found mid-run, an unknown preset stopped the acquisition with a dataset
    that only the unchanged (wrong) sequence could resume.

    Raises
    ------
    UserError
        Naming the channel, its group and the presets the group has.

    """
    for index, channel in enumerate(sequence.channels):
        group = channel.group or str(core.getChannelGroup())
        if not group or not core.isGroupDefined(group):
            groups = sorted(str(g) for g in core.getAvailableConfigGroups())
            raise UserError(
                f"{where}: channels[{index}] ({channel.config!r}) needs the "
                f"configuration group {group!r}, which this scope does not define",
                f"Set 'group:' to one of {groups}.",
            )
        presets = [str(p) for p in core.getAvailableConfigs(group)]
        if channel.config not in presets:
            raise UserError(
                f"{where}: channels[{index}] asks for preset {channel.config!r} of "
                f"group {group!r}, which this scope does not have",
                f"Use one of {presets}.",
            )


def check_autofocus_devices(
    core: CMMCorePlus, sequence: useq.MDASequence, *, where: str
) -> None:
    """Refuse an autofocus plan this scope cannot carry out, before any work.

    pymmcore-plus runs the core's autofocus device (its AutoFocus role) and
    first sets ``autofocus_device_name``, the autofocus offset drive (a stage
    device), to ``autofocus_motor_offset``. Without an autofocus device it
    only logs "No autofocus device found", so a run whose stacks were meant
    to be autofocused ended "complete" without it.

    Raises
    ------
    UserError
        The scope has no autofocus device, or the offset drive named is not
        one of its stage devices.

    """
    import pymmcore_plus

    plans = [sequence.autofocus_plan] + [
        getattr(p.sequence, "autofocus_plan", None) for p in sequence.stage_positions
    ]
    plans = [plan for plan in plans if plan is not None]
    if not plans:
        return
    if not core.getAutoFocusDevice():
        raise UserError(
            f"{where}: autofocus_plan needs the scope's autofocus device, and "
            "this scope has none",
            "Remove autofocus_plan, or load the autofocus device in the "
            "configuration and give it the role (Property,Core,AutoFocus,<label>).",
        )
    stages = sorted(
        str(label)
        for label in core.getLoadedDevicesOfType(pymmcore_plus.DeviceType.Stage)
    )
    for plan in plans:
        drive = plan.autofocus_device_name
        if plan.autofocus_motor_offset is not None and drive and drive not in stages:
            raise UserError(
                f"{where}: autofocus_plan sets the offset of {drive!r}, which is "
                f"not a stage device of this scope (its stage devices: {stages})",
                "Name the autofocus offset drive in autofocus_device_name, or "
                "leave it out to use the autofocus device's own offset.",
            )


def build_plan(core: CMMCorePlus, request: AcquisitionRequest) -> AcquisitionPlan:
    """Validate the sequence against this scope and the caps."""
    if isinstance(request.sequence, Path):
        sequence = load_sequence(request.sequence)
        where = str(request.sequence)
    else:
        where = "the sequence"
        sequence = check_sequence(request.sequence, source=where)
    check_channel_presets(core, sequence, where=where)
    check_autofocus_devices(core, sequence, where=where)
    return plan_acquisition(
        sequence,
        frame_shape=(int(core.getImageHeight()), int(core.getImageWidth())),
        bytes_per_pixel=int(core.getBytesPerPixel()),
        default_exposure_ms=float(core.getExposure()),
        pixel_size_um=float(core.getPixelSizeUm()) or None,
        limits=request.limits,
        stage_limits=read_stage_limits(request.config_path),
    )


def open_dataset(
    core: CMMCorePlus, request: AcquisitionRequest, plan: AcquisitionPlan
) -> Dataset:
    """Create the dataset, or reopen it for ``--resume`` if it is the same one."""
    identity = {
        "sequence_sha256": sequence_sha256(plan.sequence),
        "config_sha256": file_sha256(request.config_path),
    }
    if request.resume:
        return Dataset.resume(request.out, identity=identity)
    manifest = {
        **identity,
        "sequence": plan.sequence.model_dump(mode="json"),
        "config_path": record_path(request.config_path, relative_to=request.out),
        "software": {"name": "pairscope", "version": __version__},
        "scope": scope_identity(core, request.config_path),
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "planned": {
            "frames": plan.n_frames,
            "stacks": len(plan.stacks),
            "bytes": plan.total_bytes,
            "estimated_duration_s": plan.estimated_duration_s,
        },
    }
    return Dataset.create(request.out, manifest)


def dry_run(
    request: AcquisitionRequest, *, core: CMMCorePlus | None = None
) -> AcquisitionPlan:
    """Validate and plan without moving anything or writing a byte.

    ``core``, if given, is the open scope of ``request.config_path``; else the
    configuration is opened for the check.
    """
    with use_scope(request.config_path, core) as scope_core:
        return build_plan(scope_core, request)


def run_acquisition(
    request: AcquisitionRequest,
    *,
    core: CMMCorePlus | None = None,
    consumers: Sequence[StackQueue] = (),
    connect: Any = None,
    position_offset: PositionOffset | None = None,
) -> AcquisitionResult:
    """Run (or resume) an acquisition.

    Parameters
    ----------
    request : AcquisitionRequest
        Sequence, config, output and policies.
    core : CMMCorePlus, optional
        The open scope of ``request.config_path`` (a window's, or a workflow's
        that already used it); it stays open. If None, the configuration is
        opened for the run and closed after it.
    consumers : sequence of StackQueue, optional
        Live processing of committed stacks.
    connect : callable, optional
        Called with the controller before it runs, to connect progress
        displays to ``controller.events``.
    position_offset : callable, optional
        Stage offset for each position, asked when its stack begins
        (closed-loop refinement; see :class:`AcquisitionController`).

    Returns
    -------
    AcquisitionResult
        How the run ended.

    """
    with use_scope(request.config_path, core) as scope_core:
        plan = build_plan(scope_core, request)
        dataset = open_dataset(scope_core, request, plan)
        controller = AcquisitionController(
            scope_core,
            plan,
            dataset,
            scope_name=request.config_path.stem,
            retry_policy=request.retry_policy,
            consumers=consumers,
            position_offset=position_offset,
        )
        if connect is not None:
            connect(controller)
        auto_shutter = scope_core.getAutoShutter()
        scope_core.setAutoShutter(False)  # the engine opens the shutter per exposure
        try:
            with _quiet_mda_log():
                return controller.run()
        finally:
            scope_core.setAutoShutter(auto_shutter)


@contextlib.contextmanager
def _quiet_mda_log() -> Iterator[None]:
    """Keep pymmcore-plus from logging every event (about 3 ms per frame).

    pairscope's journal and manifest record what was acquired; warnings and
    errors still reach the log.
    """
    mda_logger = logging.getLogger("pymmcore-plus")
    level = mda_logger.level
    mda_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        mda_logger.setLevel(level)
