"""Open, describe and close a microscope described by a Micro-Manager config.

pairscope owns the core's lifetime: a process that ran an acquisition and exits
with the core still alive can abort in Micro-Manager's C++ teardown, so every
core opened here is closed with `close_core` (or used through `scope`).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pymmcore_plus import DeviceType

from acquire.config.adapters import default_adapter_paths
from acquire.config.check import validate_config
from acquire.config.errors import ConfigError, ProblemLog
from acquire.config.file_rules import check_roles
from acquire.config.model import (
    DEFAULT_OBJECTIVE_DEVICE,
    SIM_MODULE_PREFIX,
    ParsedConfig,
)
from acquire.config.objectives import parse_objective_label

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import numpy as np
    from numpy.typing import NDArray
    from pymmcore_plus import CMMCorePlus
    from pymmcore_plus.experimental.unicore import UniMMCore

__all__ = [
    "DeviceInfo",
    "ObjectiveInfo",
    "ScopeDescription",
    "close_core",
    "describe_scope",
    "illumination",
    "objective_device",
    "open_core",
    "scope",
    "set_objective",
    "snap",
    "use_scope",
]

_LOAD_ERROR_RE = re.compile(r"at line (\d+):")
_EXEC_PREFIX_RE = re.compile(r"^Error executing command '\w+' with arguments \[.*?\]: ")
_MDA_STOP_TIMEOUT_S = 10.0


def _load_error(exc: Exception, cfg: ParsedConfig) -> ConfigError:
    """Turn the loader's error into a `ConfigError` with the file and line."""
    message = str(exc).strip()
    match = _LOAD_ERROR_RE.search(message)
    number = int(match.group(1)) if match else None
    line = next((ln.text for ln in cfg.lines if ln.number == number), None)
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    if isinstance(root, KeyError) and root.args:
        detail = str(root.args[0])  # str(KeyError) is the key's repr
    else:
        detail = str(root) or type(root).__name__
    detail = _EXEC_PREFIX_RE.sub("", " ".join(detail.split()))
    what = f"Micro-Manager could not load this line: {detail}"
    if line is not None and line.startswith("Property,Core,Initialize,1"):
        hint = (
            "A device failed to initialise: check that it is switched on and "
            "connected, and its port and pre-init settings above this line."
        )
    else:
        hint = "Fix the line or the device it names (see docs/configs.md)."
    return ConfigError(what, path=cfg.path, line_number=number, line=line, hint=hint)


def open_core(
    path: Path | str, *, adapter_paths: Iterable[Path | str] | None = None
) -> UniMMCore:
    """Validate and load a configuration into a new core.

    Parameters
    ----------
    path : Path or str
        Micro-Manager ``.cfg`` file (``#py`` lines for Python devices).
    adapter_paths : iterable of Path or str, optional
        Folders with adapter libraries; `default_adapter_paths` if None.

    Returns
    -------
    UniMMCore
        The loaded core, simulated cameras attached to it. Close it with
        `close_core` (or use `scope`).

    Raises
    ------
    ConfigError
        The file fails validation, or loading it fails (with the line).

    """
    from pymmcore_plus.experimental.unicore import UniMMCore

    paths = [Path(p) for p in adapter_paths] if adapter_paths is not None else None
    search = paths if paths is not None else default_adapter_paths()
    # roles are checked on the loaded core: Micro-Manager assigns a sole camera,
    # shutter, focus drive or XY stage to its role even when the file does not
    cfg = validate_config(path, adapter_paths=search, require_roles=False)
    core = UniMMCore()
    try:
        core.setDeviceAdapterSearchPaths([str(p) for p in search])
        try:
            core.loadSystemConfiguration(str(cfg.path))
        except Exception as exc:
            raise _load_error(exc, cfg) from exc
        _check_roles(core, cfg.path)
        if _declares_simulated_devices(cfg):
            _attach_simulators(core)
    except BaseException:
        close_core(core)
        raise
    return core


def _check_roles(core: CMMCorePlus, path: Path) -> None:
    """Refuse a loaded configuration without a camera, shutter, focus or XY stage."""
    assigned: dict[str, str] = {
        "Camera": str(core.getCameraDevice()),
        "Shutter": str(core.getShutterDevice()),
        "Focus": str(core.getFocusDevice()),
        "XYStage": str(core.getXYStageDevice()),
    }
    problems = ProblemLog(path)
    check_roles(ParsedConfig(path=path, roles=assigned), problems)
    problems.raise_first()


def _declares_simulated_devices(cfg: ParsedConfig) -> bool:
    """Whether the file loads a Python device from pairscope's simulator."""
    return any(
        decl.python and decl.library.startswith(SIM_MODULE_PREFIX)
        for decl in cfg.devices.values()
    )


def _attach_simulators(core: UniMMCore) -> list[str]:
    """Give the simulated cameras the core they image through."""
    # only a config that declares simulated devices gets here: a real scope's
    # run never imports the simulator
    camera = importlib.import_module("acquire.sim.camera")
    attached: list[str] = camera.attach_simulators(core)
    return attached


def close_core(core: CMMCorePlus) -> None:
    """Stop, close the shutter and unload every device of ``core``.

    Parameters
    ----------
    core : CMMCorePlus
        A core from `open_core`. Drop your own references to it afterwards;
        this function collects garbage so the C++ core is destroyed now.

    """
    with contextlib.suppress(Exception):
        if core.mda.is_running():
            core.mda.cancel()
            deadline = time.monotonic() + _MDA_STOP_TIMEOUT_S
            while core.mda.is_running() and time.monotonic() < deadline:
                time.sleep(0.01)
    with contextlib.suppress(Exception):
        if core.isSequenceRunning():
            core.stopSequenceAcquisition()
    with contextlib.suppress(Exception):
        if core.getShutterDevice():
            core.setShutterOpen(False)
    with contextlib.suppress(Exception):
        core.unloadAllDevices()
    gc.collect()


@contextlib.contextmanager
def scope(
    path: Path | str, *, adapter_paths: Iterable[Path | str] | None = None
) -> Iterator[UniMMCore]:
    """Open a configuration for the duration of a ``with`` block.

    Parameters
    ----------
    path : Path or str
        Micro-Manager ``.cfg`` file.
    adapter_paths : iterable of Path or str, optional
        Folders with adapter libraries; `default_adapter_paths` if None.

    Yields
    ------
    UniMMCore
        The loaded core; it is closed when the block ends, even on errors.

    """
    core = open_core(path, adapter_paths=adapter_paths)
    try:
        yield core
    finally:
        close_core(core)
        del core
        gc.collect()


@contextlib.contextmanager
def use_scope(
    path: Path | str,
    core: CMMCorePlus | None = None,
    *,
    adapter_paths: Iterable[Path | str] | None = None,
) -> Iterator[CMMCorePlus]:
    """The core a workflow runs on: the caller's, or the config's for the block.

    A window or a workflow that already holds the scope passes its core, so
    the configuration is loaded once per session, not once per step; a
    command-line run passes none and the configuration is opened here.

    Parameters
    ----------
    path : Path or str
        The ``.cfg`` file ``core`` was loaded from (or is to be loaded from).
    core : CMMCorePlus, optional
        An open core; it is used as it is and left open.
    adapter_paths : iterable of Path or str, optional
        Folders with adapter libraries, when the configuration is opened here.

    Yields
    ------
    CMMCorePlus
        ``core`` itself, or a core opened from ``path`` and closed after the
        block (see `scope`).

    """
    if core is not None:
        yield core
        return
    with scope(path, adapter_paths=adapter_paths) as opened:
        yield opened


@contextlib.contextmanager
def illumination(core: CMMCorePlus) -> Iterator[None]:
    """Keep the core's shutter open for the block, then close it.

    Auto-shutter is switched off inside the block (a Python camera does not
    open a C++ shutter by itself) and restored afterwards.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded core with a shutter device.

    Yields
    ------
    None
        Inside the block the shutter is open.

    """
    auto = core.getAutoShutter()
    has_shutter = bool(core.getShutterDevice())
    core.setAutoShutter(False)
    try:
        if has_shutter:
            core.setShutterOpen(True)
            core.waitForDevice(core.getShutterDevice())
        yield
    finally:
        try:
            if has_shutter:
                core.setShutterOpen(False)
        finally:
            core.setAutoShutter(auto)


def snap(core: CMMCorePlus) -> NDArray[np.generic]:
    """Open the shutter, snap one image, close the shutter.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded core with a camera.

    Returns
    -------
    numpy.ndarray
        The image (rows, columns).

    """
    with illumination(core):
        core.snapImage()
    image: NDArray[np.generic] = core.getImage()
    return image


def objective_device(core: CMMCorePlus) -> str | None:
    """Label of the objective turret, or None if there is none.

    The camera's ``ObjectiveDevice`` property (simulated cameras) wins; then
    the State device used by the pixel-size configurations; then a device
    labelled ``Objective``.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded core.

    Returns
    -------
    str or None
        The turret's device label.

    """
    loaded = set(core.getLoadedDevices())
    camera = core.getCameraDevice()
    if camera and core.hasProperty(camera, "ObjectiveDevice"):
        label = core.getProperty(camera, "ObjectiveDevice")
        if label in loaded:
            return str(label)
    for preset in core.getAvailablePixelSizeConfigs():
        data = core.getPixelSizeConfigData(preset).dict()
        for device, props in data.items():
            if {"Label", "State"} & set(props) and device in loaded:
                return str(device)
    if DEFAULT_OBJECTIVE_DEVICE in loaded:
        return DEFAULT_OBJECTIVE_DEVICE
    return None


def set_objective(core: CMMCorePlus, label: str) -> None:
    """Move the objective turret to the objective called ``label``.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded core.
    label : str
        State label of the objective.

    Raises
    ------
    ValueError
        No turret, or no objective with that label (the message lists them).

    """
    turret = objective_device(core)
    if turret is None:
        raise ValueError("this configuration has no objective turret")
    labels = [lbl for lbl in core.getStateLabels(turret) if lbl]
    if label not in labels:
        sizes = _objective_pixel_sizes(core, turret)
        choices = [lbl for lbl in labels if lbl in sizes] or labels
        raise ValueError(
            f"no objective {label!r} on {turret!r}; choose one of: "
            + ", ".join(repr(lbl) for lbl in choices)
        )
    core.setStateLabel(turret, label)
    core.waitForDevice(turret)
    core.updateSystemStateCache()


@dataclass(frozen=True)
class DeviceInfo:
    """One loaded device."""

    label: str
    device_type: str
    library: str
    name: str
    description: str
    python: bool


@dataclass(frozen=True)
class ObjectiveInfo:
    """One position of the objective turret."""

    state: int
    label: str
    pixel_size_um: float | None
    magnification: float | None
    numerical_aperture: float | None
    immersion: str | None


@dataclass(frozen=True)
class ScopeDescription:
    """What a loaded configuration provides (used by ``pairscope info``).

    Attributes
    ----------
    config_file : Path or None
        The configuration the core was loaded from.
    devices : tuple of DeviceInfo
        Every loaded device except the core.
    objective_device : str or None
        Label of the objective turret.
    objectives : tuple of ObjectiveInfo
        Positions of the turret (pixel size None where none is configured).
    current_objective : str or None
        Label of the objective in the light path.
    pixel_size_um : float
        Current pixel size at the sample (0 if not configured).
    camera, shutter, focus, xy_stage : str
        Labels of the core's role devices ("" if unset).
    image_width_px, image_height_px, bit_depth : int
        The camera's image geometry (0 without a camera).

    """

    config_file: Path | None
    devices: tuple[DeviceInfo, ...]
    objective_device: str | None
    objectives: tuple[ObjectiveInfo, ...]
    current_objective: str | None
    pixel_size_um: float
    camera: str
    shutter: str
    focus: str
    xy_stage: str
    image_width_px: int
    image_height_px: int
    bit_depth: int


def _device_info(core: CMMCorePlus, label: str) -> DeviceInfo:
    is_py = getattr(core, "isPyDevice", None)
    return DeviceInfo(
        label=label,
        device_type=DeviceType(core.getDeviceType(label)).name,
        library=str(core.getDeviceLibrary(label)),
        name=str(core.getDeviceName(label)),
        description=str(core.getDeviceDescription(label)),
        python=bool(is_py(label)) if callable(is_py) else False,
    )


def _objective_pixel_sizes(core: CMMCorePlus, turret: str) -> dict[str, float]:
    """Objective label (or ``"#<state>"``) -> configured pixel size."""
    sizes: dict[str, float] = {}
    for preset in core.getAvailablePixelSizeConfigs():
        props = core.getPixelSizeConfigData(preset).dict().get(turret, {})
        size = float(core.getPixelSizeUmByID(preset))
        if "Label" in props:
            sizes[str(props["Label"])] = size
        if "State" in props:
            sizes[f"#{props['State']}"] = size
    return sizes


def _objectives(core: CMMCorePlus, turret: str) -> tuple[ObjectiveInfo, ...]:
    sizes = _objective_pixel_sizes(core, turret)
    infos = []
    for state, label in enumerate(core.getStateLabels(turret)):
        size = sizes.get(label, sizes.get(f"#{state}"))
        try:
            spec = parse_objective_label(label)
        except ValueError:
            infos.append(ObjectiveInfo(state, label, size, None, None, None))
            continue
        infos.append(
            ObjectiveInfo(
                state,
                label,
                size,
                spec.magnification,
                spec.numerical_aperture,
                spec.immersion,
            )
        )
    return tuple(infos)


def describe_scope(core: CMMCorePlus) -> ScopeDescription:
    """Summarise a loaded core: devices, objectives, pixel sizes, roles.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded core (UniMMCore or plain CMMCorePlus).

    Returns
    -------
    ScopeDescription
        The summary.

    """
    labels = [lbl for lbl in core.getLoadedDevices() if lbl != "Core"]
    turret = objective_device(core)
    camera = core.getCameraDevice()
    config = core.systemConfigurationFile()
    return ScopeDescription(
        config_file=Path(config) if config else None,
        devices=tuple(_device_info(core, label) for label in labels),
        objective_device=turret,
        objectives=_objectives(core, turret) if turret else (),
        current_objective=core.getStateLabel(turret) if turret else None,
        pixel_size_um=float(core.getPixelSizeUm()),
        camera=camera,
        shutter=core.getShutterDevice(),
        focus=core.getFocusDevice(),
        xy_stage=core.getXYStageDevice(),
        image_width_px=int(core.getImageWidth()) if camera else 0,
        image_height_px=int(core.getImageHeight()) if camera else 0,
        bit_depth=int(core.getImageBitDepth()) if camera else 0,
    )
