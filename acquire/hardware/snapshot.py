"""Snap one image with given settings and return it with its OME metadata.

Settings the devices refuse (an unknown objective, an exposure outside the
camera's limits, a stage position out of travel) are the user's error.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from acquire.errors import UserError
from acquire.hardware.autofocus import stage_limits_of
from acquire.hardware.microscope import describe_scope, scope, set_objective, snap
from acquire.storage.ome_tiff import OmeImage

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pymmcore_plus import CMMCorePlus

__all__ = ["check_camera_exposure", "snap_ome", "take_snapshot"]


def _apply(option: str, action: Callable[[], object]) -> None:
    """Run ``action``; a device that rejects the value is the user's error."""
    try:
        action()
    except (RuntimeError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise UserError(
            f"{option}: the device rejected the value ({detail})",
            "Choose a value within the device's range.",
        ) from None


def check_camera_exposure(core: CMMCorePlus, exposure_ms: float) -> None:
    """Check ``exposure_ms`` against the camera's own ``Exposure`` limits.

    Cameras that publish no limits for their ``Exposure`` property are not
    checked here (they may still reject the value when it is set).

    Parameters
    ----------
    core : CMMCorePlus
        The loaded core; its current camera is checked.
    exposure_ms : float
        Requested exposure time in ms (positive).

    Raises
    ------
    UserError
        ``exposure_ms`` lies outside the camera's limits.

    """
    camera = core.getCameraDevice()
    if not camera or not core.hasProperty(camera, "Exposure"):
        return
    if not core.hasPropertyLimits(camera, "Exposure"):
        return
    low = float(core.getPropertyLowerLimit(camera, "Exposure"))
    high = float(core.getPropertyUpperLimit(camera, "Exposure"))
    if low <= exposure_ms <= high:
        return
    lower = "0 <" if low <= 0 else f"{low:g} <="
    raise UserError(
        f"--exposure-ms {exposure_ms:g} ms is out of range for camera {camera!r}",
        f"Allowed by the camera: {lower} exposure <= {high:g} ms.",
    )


def _check_soft_limits(
    core: CMMCorePlus, xy: tuple[float, float] | None, z: float | None
) -> None:
    """Refuse a position outside the config's stage soft limits before moving."""
    for option, values in (("--xy", xy), ("--z", None if z is None else (z,))):
        if values is not None and not all(math.isfinite(v) for v in values):
            raise UserError(
                f"{option} {' '.join(f'{v:g}' for v in values)} is not a position",
                "Give finite stage coordinates in um.",
            )
    x, y = (None, None) if xy is None else (float(xy[0]), float(xy[1]))
    problem = stage_limits_of(core).violation(x, y, None if z is None else float(z))
    if problem:
        raise UserError(
            f"refusing to move the stage: {problem}",
            "Choose a position inside the soft limits of the config's "
            "#pairscope StageLimitsUm lines (docs/configs.md).",
        )


def take_snapshot(
    config: Path,
    adapter_paths: list[Path] | None,
    *,
    exposure_ms: float,
    objective: str | None,
    xy: tuple[float, float] | None,
    z: float | None,
) -> OmeImage:
    """Open a scope, apply the settings, snap one image and close the scope.

    The shutter is opened only for the snap (see `acquire.hardware.microscope.snap`).

    Parameters
    ----------
    config : Path
        Micro-Manager configuration file.
    adapter_paths : list of Path or None
        Folders with adapter libraries (None: the defaults).
    exposure_ms : float
        Exposure time in ms (positive).
    objective : str or None
        Objective label to switch to (None: keep the current one).
    xy : (float, float) or None
        Stage position in um to move to first (None: stay).
    z : float or None
        Focus position in um (None: stay).

    Returns
    -------
    OmeImage
        One plane, shape (1, rows, columns), with the scope's metadata.

    Raises
    ------
    UserError
        An unknown objective, a value a device rejects, a position outside
        the stage's soft limits, or an objective without a pixel size.
    ConfigError
        The configuration does not load.

    """
    with scope(config, adapter_paths=adapter_paths) as core:
        if objective is not None:
            try:
                set_objective(core, objective)
            except ValueError as exc:
                raise UserError(
                    f"--objective: {exc}", "Run `pairscope info`."
                ) from None
        check_camera_exposure(core, exposure_ms)
        _check_soft_limits(core, xy, z)
        _apply("--exposure-ms", lambda: core.setExposure(exposure_ms))
        if xy is not None:
            _apply("--xy", lambda: core.setXYPosition(*xy))
        if z is not None:
            _apply("--z", lambda: core.setPosition(z))
        core.waitForSystem()
        return snap_ome(core)


def snap_ome(core: CMMCorePlus) -> OmeImage:
    """Snap one image where the scope stands, with its OME metadata.

    Parameters
    ----------
    core : CMMCorePlus
        An open scope (settings, stage and objective as they are).

    Returns
    -------
    OmeImage
        One plane, shape (1, rows, columns): pixel size, stage position,
        exposure, objective, camera, channel and the configuration file.

    Raises
    ------
    UserError
        The current objective has no pixel size.

    """
    desc = describe_scope(core)
    if desc.pixel_size_um <= 0:
        raise UserError(
            f"objective {desc.current_objective!r} has no pixel size in "
            f"{desc.config_file}",
            "Choose a configured objective with --objective, or add a "
            "pixel-size configuration for it (docs/configs.md).",
        )
    image = snap(core)
    x_um, y_um = core.getXYPosition()
    return OmeImage(
        data=image[np.newaxis],
        pixel_size_um=desc.pixel_size_um,
        z_step_um=None,
        positions_um=[(float(x_um), float(y_um), float(core.getPosition()))],
        exposure_ms=float(core.getExposure()),
        objective=next(
            (o for o in desc.objectives if o.label == desc.current_objective), None
        ),
        camera=desc.camera,
        channel=core.getCurrentConfig(core.getChannelGroup())
        if core.getChannelGroup()
        else "",
        annotations={
            "pairscope.config": str(desc.config_file),
            "pairscope.camera": desc.camera,
            "pairscope.objective": desc.current_objective or "",
        },
    )
