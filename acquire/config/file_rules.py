"""Checks of a configuration file as a whole, after its lines are read.

Missing adapter libraries are reported together, on the first line that names
one; the roles pairscope needs are reported without a line. Every objective
(a state label naming a magnification) needs a pixel-size configuration, and
the simulated cameras must understand its label.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from acquire.config.adapters import AdapterIndex, pymmcore_version
from acquire.config.model import (
    DEFAULT_OBJECTIVE_DEVICE,
    SIM_MODULE_PREFIX,
    ParsedConfig,
)
from acquire.config.objectives import parse_objective_label
from acquire.config.parse import PY_PREFIX, ConfigLine

if TYPE_CHECKING:
    from acquire.config.errors import ProblemLog

__all__ = [
    "check_missing_libraries",
    "check_objectives",
    "check_pixel_presets",
    "check_roles",
    "find_objective_devices",
]

_REQUIRED_ROLES: dict[str, str] = {
    "Camera": "camera",
    "Shutter": "shutter",
    "Focus": "focus drive",
    "XYStage": "XY stage",
}
# Anything that names a magnification ("40x", "63X"): a label of an objective.
_MAGNIFICATION_RE = re.compile(r"\d+(?:\.\d+)?\s*x(?![a-z])", re.IGNORECASE)


def check_missing_libraries(
    cfg: ParsedConfig,
    missing: dict[str, list[int]],
    adapters: AdapterIndex,
    log: ProblemLog,
) -> None:
    """Report all missing adapter libraries as one problem, on the first line.

    Parameters
    ----------
    cfg : ParsedConfig
        The checked file.
    missing : dict
        Library -> numbers of the lines that name it.
    adapters : AdapterIndex
        The adapter libraries that were searched.
    log : ProblemLog
        Receives the problem.

    """
    if not missing:
        return
    by_line = sorted((numbers[0], library) for library, numbers in missing.items())
    first_number, first_library = by_line[0]
    others = ", ".join(f"{lib!r} (line {n})" for n, lib in by_line[1:])
    searched = "; ".join(str(p) for p in adapters.search_paths) or "none"
    what = (
        f"adapter library {first_library!r} not found in the adapter search "
        f"path ({searched})"
    )
    if others:
        what += f"; also missing: {others}"
    found = ", ".join(sorted(adapters.library_names)) or "none"
    log.add(
        _line_at(cfg, first_number),
        what,
        "Install a Micro-Manager build with this adapter whose device "
        f"interface matches pymmcore {pymmcore_version()} and pass its "
        "folder with --adapter-path (or set MICROMANAGER_PATH), or fix the "
        f"library name (found: {found}).",
    )


def check_roles(cfg: ParsedConfig, log: ProblemLog) -> None:
    """Report each of camera, shutter, focus drive and XY stage that is unset.

    Parameters
    ----------
    cfg : ParsedConfig
        The checked file.
    log : ProblemLog
        Receives the problems (without a line).

    """
    for role, name in _REQUIRED_ROLES.items():
        if not cfg.roles.get(role):
            py = PY_PREFIX if role == "Camera" else ""
            log.add(
                None,
                f"no {name} is set (pairscope needs a camera, shutter, focus "
                "drive and XY stage)",
                f"Add '{py}Property,Core,{role},<device label>' at the end "
                "of the file.",
            )


def find_objective_devices(cfg: ParsedConfig) -> list[str]:
    """Labels of the objective turrets.

    Parameters
    ----------
    cfg : ParsedConfig
        The checked file.

    Returns
    -------
    list of str
        The devices the pixel-size configurations set by label or state, then
        the ``ObjectiveDevice`` of each simulated camera; else a device
        labelled ``Objective``, if any.

    """
    turrets: list[str] = []
    for preset in cfg.pixel_presets.values():
        for label, prop, _ in preset.settings:
            if prop in ("Label", "State") and label not in turrets:
                turrets.append(label)
    for label in cfg.device_properties:
        decl = cfg.devices.get(label)
        if decl is not None and decl.library.startswith(SIM_MODULE_PREFIX):
            objective = _objective_device_of(cfg, label)
            if objective in cfg.devices and objective not in turrets:
                turrets.append(objective)
    if not turrets and DEFAULT_OBJECTIVE_DEVICE in cfg.devices:
        turrets.append(DEFAULT_OBJECTIVE_DEVICE)
    return turrets


def check_pixel_presets(cfg: ParsedConfig, log: ProblemLog) -> None:
    """Report pixel-size configurations without a size or with unknown labels.

    Parameters
    ----------
    cfg : ParsedConfig
        The checked file.
    log : ProblemLog
        Receives the problems (on each configuration's first line).

    """
    for preset in cfg.pixel_presets.values():
        line = _line_at(cfg, preset.line_number)
        if preset.pixel_size_um is None:
            log.add(
                line,
                f"pixel-size configuration {preset.name!r} has no size",
                f"Add 'PixelSize_um,{preset.name},<um per pixel>' after it.",
            )
        for label, prop, value in preset.settings:
            labels = cfg.state_labels.get(label)
            if prop != "Label" or not labels:
                continue
            defined = [text for text, _ in labels.values()]
            if value not in defined:
                log.add(
                    line,
                    f"pixel-size configuration {preset.name!r} refers to "
                    f"{label} label {value!r}, which no Label line defines",
                    f"Use one of: {', '.join(repr(t) for t in defined)}.",
                )


def check_objectives(cfg: ParsedConfig, log: ProblemLog) -> None:
    """Report objectives without a pixel size or unknown to the simulation.

    Parameters
    ----------
    cfg : ParsedConfig
        The checked file, its ``objective_devices`` found.
    log : ProblemLog
        Receives the problems (on each objective's ``Label`` line).

    """
    sim_turrets = _sim_objective_devices(cfg)
    for turret in cfg.objective_devices:
        for state, (text, number) in sorted(cfg.state_labels.get(turret, {}).items()):
            if not _MAGNIFICATION_RE.search(text):
                continue  # "Empty", "Position-3": not an objective
            line = _line_at(cfg, number)
            if not _has_pixel_size(cfg, turret, state, text):
                log.add(
                    line,
                    f"objective {text!r} (state {state} of {turret!r}) has no "
                    "pixel-size configuration",
                    f"Add 'ConfigPixelSize,<name>,{turret},Label,{text}' and "
                    "'PixelSize_um,<name>,<um per pixel>' (camera pixel size "
                    "/ magnification).",
                )
            elif turret in sim_turrets:
                try:
                    parse_objective_label(text)
                except ValueError as exc:
                    log.add(
                        line,
                        f"the simulated camera cannot use this objective: {exc}",
                        "Write the label as '<name> <mag>x/<NA> <immersion>', "
                        "e.g. 'Plan-Apochromat 40x/1.3 Oil'.",
                    )


def _sim_objective_devices(cfg: ParsedConfig) -> set[str]:
    """The turrets whose labels the simulated (Python) cameras parse."""
    return {
        _objective_device_of(cfg, decl.label)
        for decl in cfg.devices.values()
        if decl.python and decl.library.startswith(SIM_MODULE_PREFIX)
    }


def _objective_device_of(cfg: ParsedConfig, camera: str) -> str:
    """The ``ObjectiveDevice`` property of a simulated camera (or its default)."""
    props = cfg.device_properties.get(camera, {})
    return props.get("ObjectiveDevice", DEFAULT_OBJECTIVE_DEVICE)


def _has_pixel_size(cfg: ParsedConfig, turret: str, state: int, text: str) -> bool:
    """Whether a sized pixel-size configuration selects this objective."""
    for preset in cfg.pixel_presets.values():
        if preset.pixel_size_um is None:
            continue
        for label, prop, value in preset.settings:
            if label != turret:
                continue
            if (prop == "Label" and value == text) or (
                prop == "State" and value.strip() == str(state)
            ):
                return True
    return False


def _line_at(cfg: ParsedConfig, number: int) -> ConfigLine:
    """The command line with this number."""
    return next(line for line in cfg.lines if line.number == number)
