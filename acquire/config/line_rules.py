"""Checks of each configuration line against the lines above it.

Reads the lines in file order, as Micro-Manager's loader does: a device label
must be declared before it is used, a pixel-size configuration before its size
is set. Fills a `ParsedConfig` with what the lines declare and records every
problem in a `ProblemLog`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pymmcore_plus import DeviceType

from acquire.config.model import CORE_LABEL, DeviceDecl, ParsedConfig, PixelPreset
from acquire.config.parse import PY_PREFIX, ConfigLine
from acquire.config.pydevices import python_device_problem

if TYPE_CHECKING:
    from collections.abc import Callable

    from acquire.config.adapters import AdapterIndex
    from acquire.config.errors import ProblemLog

__all__ = ["check_lines"]

# Core properties whose value names a device (a role).
_ROLE_PROPERTIES = (
    "Camera",
    "Shutter",
    "Focus",
    "XYStage",
    "AutoFocus",
    "SLM",
    "Galvo",
)


def check_lines(
    cfg: ParsedConfig, adapters: AdapterIndex, log: ProblemLog
) -> dict[str, list[int]]:
    """Check ``cfg.lines`` in order and fill ``cfg`` with what they declare.

    Parameters
    ----------
    cfg : ParsedConfig
        The file with its parsed lines; devices, roles, state labels, pixel
        presets and device properties are filled in.
    adapters : AdapterIndex
        The adapter libraries the loader will find.
    log : ProblemLog
        Receives every problem.

    Returns
    -------
    dict
        Adapter library not in the search path -> numbers of the ``Device``
        lines that name it (reported together, by the whole-file checks).

    """
    checker = _LineChecker(cfg, adapters, log)
    for line in cfg.lines:
        checker.check(line)
    return checker.missing_libraries


class _LineChecker:
    """The rule of each command, with the state the earlier lines left."""

    def __init__(
        self, cfg: ParsedConfig, adapters: AdapterIndex, log: ProblemLog
    ) -> None:
        self.cfg = cfg
        self.adapters = adapters
        self.problem = log.add
        self.missing_libraries: dict[str, list[int]] = {}
        self.handlers: dict[str, Callable[[ConfigLine], None]] = {
            "Device": self.on_device,
            "pyDevice": self.on_py_device,
            "Property": self.on_property,
            "Label": self.on_label,
            "ConfigGroup": self.on_config_group,
            "ConfigPixelSize": self.on_config_pixel_size,
            "PixelSize_um": self.on_pixel_size,
            "PixelSizeAffine": self.on_affine,
            "Parent": self.on_parent,
            "Delay": self.on_delay,
            "FocusDirection": self.on_focus_direction,
        }

    def check(self, line: ConfigLine) -> None:
        handler = self.handlers.get(line.command)
        if handler is not None:
            handler(line)
        elif line.command.startswith("PixelSize"):
            self.preset(line, line.fields[0])
            self.number(line, line.fields[1], "value")

    # -- helpers ---------------------------------------------------------------
    def declare(self, line: ConfigLine, label: str) -> bool:
        """Check that ``label`` may name a new device."""
        if not label:
            self.problem(line, "empty device label", "Give the device a label.")
            return False
        if label.lower() == CORE_LABEL.lower():
            self.problem(line, f"the label {label!r} is reserved", "Use another label.")
            return False
        if label in self.cfg.devices:
            first = self.cfg.devices[label].line_number
            self.problem(
                line,
                f"device label {label!r} is already used (line {first})",
                "Give each device its own label.",
            )
            return False
        return True

    def device(self, line: ConfigLine, label: str) -> DeviceDecl | None:
        """Check that ``label`` names a declared device usable on this line."""
        if label == CORE_LABEL:
            return None
        decl = self.cfg.devices.get(label)
        if decl is None:
            known = ", ".join(self.cfg.devices) or "none yet"
            self.problem(
                line,
                f"unknown device label {label!r}",
                "Declare it with a 'Device' (or '#py pyDevice') line above this "
                f"one, or fix the spelling (declared so far: {known}).",
            )
            return None
        if decl.python and not line.python_only:
            self.problem(
                line,
                f"{label!r} is a Python device, but this line lacks the '#py ' prefix",
                f"Write it as '{PY_PREFIX}{line.text}', so that Micro-Manager, "
                "which does not know Python devices, skips it.",
            )
        return decl

    def number(
        self, line: ConfigLine, value: str, what: str, *, integer: bool = False
    ) -> float | None:
        """The finite number ``value`` (None, with a problem, if it is not one)."""
        try:
            number = float(int(value)) if integer else float(value)
        except ValueError:
            kind = "an integer" if integer else "a number"
            self.problem(line, f"{what} {value!r} is not {kind}", f"Use {kind}.")
            return None
        if not math.isfinite(number):
            self.problem(line, f"{what} {value!r} is not finite", "Use a number.")
            return None
        return number

    def preset(self, line: ConfigLine, name: str) -> PixelPreset | None:
        """The pixel-size configuration ``name`` declared above this line."""
        preset = self.cfg.pixel_presets.get(name)
        if preset is None:
            self.problem(
                line,
                f"pixel-size configuration {name!r} is not defined yet",
                f"Put 'ConfigPixelSize,{name},<device>,<property>,<value>' "
                "lines before this one.",
            )
        return preset

    def check_device_name(self, line: ConfigLine, library: str, name: str) -> None:
        """Check that the adapter library opens and provides device ``name``."""
        devices, error = self.adapters.devices(library)
        if error is not None:
            self.problem(
                line,
                f"adapter library {library!r} was found but cannot be opened ({error})",
                "Install the vendor's driver/SDK that this adapter needs (for "
                "Hamamatsu cameras: DCAM-API) and use the adapters of a matching "
                "Micro-Manager version.",
            )
            return
        if name in devices:
            return
        # Hub adapters may create peripherals they do not register: ask the
        # adapter to create the device (no hardware is touched before init).
        has_hub = any(kind == int(DeviceType.Hub) for kind in devices.values())
        if has_hub and self.adapters.can_create(library, name):
            return
        self.problem(
            line,
            f"adapter library {library!r} has no device {name!r}",
            f"Use one of: {', '.join(sorted(devices))}.",
        )

    # -- commands --------------------------------------------------------------
    def on_device(self, line: ConfigLine) -> None:
        label, library, name = line.fields
        if not self.declare(line, label):
            return
        python = False
        if not self.adapters.has_library(library):
            if python_device_problem(library, name) is None:
                self.problem(
                    line,
                    f"{library}.{name} is a Python device on a 'Device' line; "
                    "Micro-Manager cannot load this file",
                    f"Write it as '{PY_PREFIX}pyDevice,{label},{library},{name}'.",
                )
                python = True
            else:
                self.missing_libraries.setdefault(library, []).append(line.number)
        else:
            self.check_device_name(line, library, name)
        self.cfg.devices[label] = DeviceDecl(label, library, name, line.number, python)

    def on_py_device(self, line: ConfigLine) -> None:
        label, module_name, class_name = line.fields
        if not self.declare(line, label):
            return
        if self.adapters.has_library(module_name):
            self.check_device_name(line, module_name, class_name)
            self.cfg.devices[label] = DeviceDecl(
                label, module_name, class_name, line.number, False
            )
            return
        self.cfg.devices[label] = DeviceDecl(
            label, module_name, class_name, line.number, True
        )
        error = python_device_problem(module_name, class_name)
        if error is not None:
            what, hint = error
            self.problem(line, what, hint)

    def on_property(self, line: ConfigLine) -> None:
        label, prop = line.fields[0], line.fields[1]
        value = line.fields[2] if len(line.fields) > 2 else ""
        if label != CORE_LABEL:
            if self.device(line, label) is not None:
                props = self.cfg.device_properties.setdefault(label, {})
                props[prop] = value
            return
        if prop == "Initialize":
            if value not in ("0", "1"):
                self.problem(
                    line,
                    f"Core Initialize must be 0 or 1, not {value!r}",
                    "Use 'Property,Core,Initialize,0' at the start and "
                    "'Property,Core,Initialize,1' after the pre-init settings.",
                )
        elif prop == "AutoShutter":
            if value not in ("0", "1"):
                self.problem(
                    line, f"AutoShutter must be 0 or 1, not {value!r}", "Use 0 or 1."
                )
        elif prop in _ROLE_PROPERTIES:
            if value:
                self.device(line, value)
            self.cfg.roles[prop] = value

    def on_label(self, line: ConfigLine) -> None:
        label, state_text, state_label = line.fields
        if self.device(line, label) is None:
            return
        state = self.number(line, state_text, "state", integer=True)
        if state is None:
            return
        if state < 0 or not state_label:
            self.problem(
                line,
                "a state label needs a state >= 0 and a non-empty label",
                "Use 'Label,<device>,<state>,<label>', states counting from 0.",
            )
            return
        self.cfg.state_labels.setdefault(label, {})[int(state)] = (
            state_label,
            line.number,
        )

    def on_config_group(self, line: ConfigLine) -> None:
        if len(line.fields) >= 4:
            self.device(line, line.fields[2])

    def on_config_pixel_size(self, line: ConfigLine) -> None:
        name, label, prop, value = line.fields
        self.device(line, label)
        preset = self.cfg.pixel_presets.setdefault(name, PixelPreset(name, line.number))
        preset.settings.append((label, prop, value))

    def on_pixel_size(self, line: ConfigLine) -> None:
        name, value = line.fields
        preset = self.preset(line, name)
        size = self.number(line, value, "pixel size")
        if preset is None or size is None:
            return
        if size <= 0:
            self.problem(
                line,
                f"pixel size {value!r} um must be positive",
                "Use the sample-plane pixel size: camera pixel / magnification.",
            )
            return
        preset.pixel_size_um = size

    def on_affine(self, line: ConfigLine) -> None:
        self.preset(line, line.fields[0])
        for value in line.fields[1:]:
            self.number(line, value, "affine element")

    def on_parent(self, line: ConfigLine) -> None:
        self.device(line, line.fields[0])
        self.device(line, line.fields[1])

    def on_delay(self, line: ConfigLine) -> None:
        self.device(line, line.fields[0])
        delay = self.number(line, line.fields[1], "delay")
        if delay is not None and delay < 0:
            self.problem(line, "a delay cannot be negative", "Use a delay >= 0 ms.")

    def on_focus_direction(self, line: ConfigLine) -> None:
        self.device(line, line.fields[0])
        value = self.number(line, line.fields[1], "focus direction", integer=True)
        if value is not None and value not in (-1, 0, 1):
            self.problem(
                line,
                f"focus direction must be -1, 0 or 1, not {line.fields[1]!r}",
                "Use 1 when a larger Z moves towards the sample, -1 otherwise.",
            )
