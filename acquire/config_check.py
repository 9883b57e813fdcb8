"""Pre-load checks of Micro-Manager configuration files, with file and line.

Micro-Manager reports a broken configuration file late and vaguely: a missing
adapter library surfaces as a failed ``loadDevice`` after earlier devices were
already opened, a forgotten pixel-size configuration as a silent pixel size of
zero. `validate_config` reads the file first, as the loader will (including the
``#py `` lines of pymmcore-plus' ``UniMMCore``), and stops with a `ConfigError`
that names the file, the line and how to fix it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymmcore_plus import DeviceType, find_micromanager

from acquire.sim.objective import parse_objective_label

__all__ = [
    "PY_PREFIX",
    "AdapterIndex",
    "ConfigError",
    "ConfigLine",
    "DeviceDecl",
    "ParsedConfig",
    "PixelPreset",
    "default_adapter_paths",
    "parse_config",
    "validate_config",
]

#: Prefix of lines that only pymmcore-plus' UniMMCore reads (comments elsewhere).
PY_PREFIX = "#py "
#: Label of Micro-Manager's core pseudo-device.
CORE_LABEL = "Core"
#: Modules whose Python devices parse objective labels (the simulated cameras).
SIM_MODULE_PREFIX = "acquire.sim"
#: Default of the simulated cameras' ``ObjectiveDevice`` property.
DEFAULT_OBJECTIVE_DEVICE = "Objective"

# Number of fields after the command word that each command accepts.
_FIELD_COUNTS: dict[str, tuple[int, ...]] = {
    "Device": (3,),
    "pyDevice": (3,),
    "Property": (2, 3),
    "Delay": (2,),
    "FocusDirection": (2,),
    "Label": (3,),
    "ConfigGroup": (1, 4, 5),
    "ConfigPixelSize": (4,),
    "PixelSize_um": (2,),
    "PixelSizeAffine": (7,),
    "PixelSizeAngle_dxdz": (2,),
    "PixelSizeAngle_dydz": (2,),
    "PixelSizeOptimalZ_Um": (2,),
    "Parent": (2,),
}
_FIELD_NAMES: dict[str, str] = {
    "Device": "Device,<label>,<adapter library>,<device name>",
    "pyDevice": "#py pyDevice,<label>,<python module>,<class name>",
    "Property": "Property,<device>,<property>,<value>",
    "Delay": "Delay,<device>,<delay ms>",
    "FocusDirection": "FocusDirection,<device>,<-1|0|1>",
    "Label": "Label,<device>,<state>,<label>",
    "ConfigGroup": "ConfigGroup,<group>,<preset>,<device>,<property>,<value>",
    "ConfigPixelSize": "ConfigPixelSize,<preset>,<device>,<property>,<value>",
    "PixelSize_um": "PixelSize_um,<preset>,<um per pixel>",
    "PixelSizeAffine": "PixelSizeAffine,<preset>,<a>,<b>,<c>,<d>,<e>,<f>",
    "PixelSizeAngle_dxdz": "PixelSizeAngle_dxdz,<preset>,<angle>",
    "PixelSizeAngle_dydz": "PixelSizeAngle_dydz,<preset>,<angle>",
    "PixelSizeOptimalZ_Um": "PixelSizeOptimalZ_Um,<preset>,<um>",
    "Parent": "Parent,<device>,<hub device>",
}
_REMOVED_COMMANDS = {
    "Config": "the obsolete 'Config' command is ignored by Micro-Manager",
    "Equipment": "the 'Equipment' command was removed from the config format",
    "ImageSynchro": "the 'ImageSynchro' command was removed from the config format",
}
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
_REQUIRED_ROLES: dict[str, str] = {
    "Camera": "camera",
    "Shutter": "shutter",
    "Focus": "focus drive",
    "XYStage": "XY stage",
}
# A comment that was probably meant as a "#py " line ("# py pyDevice,...").
_MISSPELLED_PY = re.compile(
    r"^#\s*py\s+(?P<rest>(?:" + "|".join(_FIELD_COUNTS) + r"),.*)$", re.IGNORECASE
)
# Anything that names a magnification ("40x", "63X"): a label of an objective.
_MAGNIFICATION_RE = re.compile(r"\d+(?:\.\d+)?\s*x(?![a-z])", re.IGNORECASE)


class ConfigError(Exception):
    """A configuration file that cannot be used, with where and how to fix it.

    Parameters
    ----------
    what : str
        What is wrong, one sentence.
    path : Path or str
        The configuration file.
    line_number : int or None
        1-based line number, or None for problems of the whole file.
    line : str or None
        The offending line as written in the file.
    hint : str
        How to fix it, one or two sentences.

    """

    def __init__(
        self,
        what: str,
        *,
        path: Path | str,
        line_number: int | None = None,
        line: str | None = None,
        hint: str = "",
    ) -> None:
        self.what = what.rstrip(". ")
        self.path = Path(path)
        self.line_number = line_number
        self.line = line
        self.hint = hint.strip()
        super().__init__(str(self))

    @property
    def location(self) -> str:
        """``<file>:<line>`` (or only the file for whole-file problems)."""
        if self.line_number is None:
            return str(self.path)
        return f"{self.path}:{self.line_number}"

    def __str__(self) -> str:
        text = f"{self.location}: {self.what}."
        return f"{text} {self.hint}" if self.hint else text


@dataclass(frozen=True)
class ConfigLine:
    """One command line of a configuration file.

    Attributes
    ----------
    number : int
        1-based line number in the file.
    text : str
        The line as written (surrounding whitespace removed).
    command : str
        First field (``Device``, ``Property``, ``pyDevice`` ...).
    fields : tuple of str
        The fields after the command.
    python_only : bool
        True for lines written with the ``#py `` prefix.

    """

    number: int
    text: str
    command: str
    fields: tuple[str, ...]
    python_only: bool


@dataclass(frozen=True)
class DeviceDecl:
    """A device declared by a ``Device`` or ``#py pyDevice`` line."""

    label: str
    library: str
    device_name: str
    line_number: int
    python: bool


@dataclass
class PixelPreset:
    """A pixel-size configuration (``ConfigPixelSize`` + ``PixelSize_um``)."""

    name: str
    line_number: int
    settings: list[tuple[str, str, str]] = field(default_factory=list)
    pixel_size_um: float | None = None


@dataclass
class ParsedConfig:
    """What a configuration file declares, as found by `validate_config`.

    Attributes
    ----------
    path : Path
        The configuration file (absolute).
    lines : list of ConfigLine
        Its command lines, in order.
    devices : dict
        Device label -> `DeviceDecl`.
    roles : dict
        Core role (``Camera``, ``Shutter``, ``Focus``, ``XYStage`` ...) -> label.
    state_labels : dict
        Device label -> {state: (label, line number)} from ``Label`` lines.
    pixel_presets : dict
        Preset name -> `PixelPreset`.
    objective_devices : list of str
        Labels of the objective turrets.

    """

    path: Path
    lines: list[ConfigLine] = field(default_factory=list)
    devices: dict[str, DeviceDecl] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    state_labels: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)
    pixel_presets: dict[str, PixelPreset] = field(default_factory=dict)
    objective_devices: list[str] = field(default_factory=list)
    device_properties: dict[str, dict[str, str]] = field(default_factory=dict)


class AdapterIndex:
    """Which Micro-Manager adapter libraries a search path holds.

    Asks a bare ``pymmcore.CMMCore`` (the same lookup the loader does), so the
    platform's library naming (``mmgr_dal_X.dll``, ``libmmgr_dal_X.so.0``) is
    handled by Micro-Manager itself.

    Parameters
    ----------
    search_paths : sequence of Path
        Folders searched for adapter libraries, in order.

    """

    def __init__(self, search_paths: Sequence[Path]) -> None:
        import pymmcore

        self.search_paths = [Path(p) for p in search_paths]
        self._core = pymmcore.CMMCore()
        self._core.setDeviceAdapterSearchPaths([str(p) for p in self.search_paths])
        self._names = frozenset(self._core.getDeviceAdapterNames())
        self._devices: dict[str, tuple[dict[str, int], str | None]] = {}
        self._creatable: dict[tuple[str, str], bool] = {}

    @property
    def library_names(self) -> frozenset[str]:
        """Names of the adapter libraries found in the search path."""
        return self._names

    def has_library(self, library: str) -> bool:
        """Whether the adapter library is in the search path."""
        return library in self._names

    def devices(self, library: str) -> tuple[dict[str, int], str | None]:
        """Devices the library registers (name -> device type) or a load error.

        Parameters
        ----------
        library : str
            Adapter library name.

        Returns
        -------
        tuple
            ``(devices, error)``: ``error`` is the loader's message when the
            library exists but cannot be opened (missing vendor driver).

        """
        if library not in self._devices:
            try:
                names = self._core.getAvailableDevices(library)
                types = self._core.getAvailableDeviceTypes(library)
                self._devices[library] = (dict(zip(names, types, strict=True)), None)
            except RuntimeError as exc:
                self._devices[library] = ({}, str(exc).strip())
        return self._devices[library]

    def can_create(self, library: str, name: str) -> bool:
        """Whether the library creates device ``name`` (hub peripherals).

        Constructs and destroys the device without initialising it, as
        Micro-Manager's configuration wizard does.
        """
        key = (library, name)
        if key not in self._creatable:
            label = "pairscope-probe"
            try:
                self._core.loadDevice(label, library, name)
            except RuntimeError:
                self._creatable[key] = False
            else:
                self._core.unloadDevice(label)
                self._creatable[key] = True
        return self._creatable[key]


def default_adapter_paths() -> list[Path]:
    """Folders searched for Micro-Manager adapter libraries by default.

    Returns
    -------
    list of Path
        Micro-Manager's installation as pymmcore-plus finds it (the
        ``MICROMANAGER_PATH`` environment variable first), then the simulated
        adapters of the ``mm-test-adapters`` package.

    """
    paths: list[Path] = []
    with contextlib.suppress(Exception):
        found = find_micromanager()
        if isinstance(found, str) and found:
            paths.append(Path(found))
    with contextlib.suppress(ImportError):
        import mm_test_adapters

        paths.append(Path(mm_test_adapters.device_adapter_path()))
    unique: list[Path] = []
    for path in paths:
        if path.resolve() not in [p.resolve() for p in unique]:
            unique.append(path)
    return unique


def _pymmcore_version() -> str:
    """Version of pymmcore (its 4th number is the device interface)."""
    import pymmcore

    return str(getattr(pymmcore, "__version__", "?"))


def _split_line(raw: str) -> tuple[str, bool] | None:
    """Return (command text, python_only) or None for blank/comment lines."""
    line = raw.rstrip("\r").strip()
    if not line:
        return None
    python_only = line.startswith(PY_PREFIX)
    if python_only:
        line = line[len(PY_PREFIX) :].lstrip()
    if line.startswith("#"):
        return None
    return line, python_only


def _parse_line(number: int, raw: str, path: Path) -> ConfigLine | None:
    """Parse one raw line (None for blanks and comments)."""
    stripped = raw.strip()
    if not stripped.startswith(PY_PREFIX) and (m := _MISSPELLED_PY.match(stripped)):
        raise ConfigError(
            "this line is a comment, so it is ignored; it looks like a Python-"
            "device line",
            path=path,
            line_number=number,
            line=stripped,
            hint=f"Write it exactly as '{PY_PREFIX}{m.group('rest')}' "
            "('#py' followed by one space).",
        )
    split = _split_line(raw)
    if split is None:
        return None
    text, python_only = split
    command, *fields = text.split(",")
    line = ConfigLine(number, stripped, command, tuple(fields), python_only)
    if command in _REMOVED_COMMANDS:
        raise ConfigError(
            _REMOVED_COMMANDS[command],
            path=path,
            line_number=number,
            line=stripped,
            hint="Delete this line.",
        )
    if command not in _FIELD_COUNTS:
        known = ", ".join(sorted(_FIELD_COUNTS))
        raise ConfigError(
            f"unknown command {command!r} in line {stripped!r}",
            path=path,
            line_number=number,
            line=stripped,
            hint=f"A line starts with one of: {known}; fields are separated by "
            "commas. Comments start with '#'.",
        )
    if len(fields) not in _FIELD_COUNTS[command]:
        counts = " or ".join(str(n) for n in _FIELD_COUNTS[command])
        raise ConfigError(
            f"{command} line has {len(fields)} field(s) after the command, "
            f"expected {counts}: {stripped!r}",
            path=path,
            line_number=number,
            line=stripped,
            hint=f"The form is '{_FIELD_NAMES[command]}'. A comma inside a value "
            "is not allowed.",
        )
    if command == "pyDevice" and not python_only:
        raise ConfigError(
            "a pyDevice line without the '#py ' prefix stops Micro-Manager from "
            "loading this file",
            path=path,
            line_number=number,
            line=stripped,
            hint=f"Write it as '{PY_PREFIX}{stripped}'.",
        )
    return line


def parse_config(path: Path | str) -> list[ConfigLine]:
    """Read the command lines of a configuration file.

    Parameters
    ----------
    path : Path or str
        The ``.cfg`` file.

    Returns
    -------
    list of ConfigLine
        Command lines in file order (comments and blank lines dropped).

    Raises
    ------
    ConfigError
        Missing/unreadable file, unknown command or wrong number of fields.

    """
    cfg = Path(path).expanduser()
    text = _read_text(cfg)
    lines, problems = _parse_lines(text, cfg)
    if problems:
        raise problems[0]
    return lines


def _read_text(cfg: Path) -> str:
    """Read a configuration file, or raise `ConfigError` saying why not."""
    if not cfg.exists():
        raise ConfigError(
            "configuration file not found",
            path=cfg,
            hint="Check the path; the demo configurations are in "
            "hardware_configs/ (demo_widefield.cfg, demo_confocal.cfg).",
        )
    if not cfg.is_file():
        raise ConfigError(
            "this is a folder, not a configuration file",
            path=cfg,
            hint="Pass a Micro-Manager .cfg file.",
        )
    try:
        return cfg.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return cfg.read_text(encoding="latin-1")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the file ({exc.strerror})",
            path=cfg,
            hint="Check the file permissions.",
        ) from exc


def _parse_lines(text: str, cfg: Path) -> tuple[list[ConfigLine], list[ConfigError]]:
    """Parse every line; return the command lines and the malformed ones."""
    lines: list[ConfigLine] = []
    problems: list[ConfigError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            parsed = _parse_line(number, raw, cfg)
        except ConfigError as exc:
            problems.append(exc)
            continue
        if parsed is not None:
            lines.append(parsed)
    return lines, problems


class _Checker:
    """Semantic checks over the parsed lines (collects every problem)."""

    def __init__(
        self,
        path: Path,
        lines: list[ConfigLine],
        adapters: AdapterIndex,
        *,
        require_roles: bool,
    ) -> None:
        self.cfg = ParsedConfig(path=path, lines=lines)
        self.adapters = adapters
        self.require_roles = require_roles
        self.problems: list[ConfigError] = []
        self.missing_libraries: dict[str, list[int]] = {}

    # -- helpers ---------------------------------------------------------------
    def problem(self, line: ConfigLine | None, what: str, hint: str) -> None:
        self.problems.append(
            ConfigError(
                what,
                path=self.cfg.path,
                line_number=None if line is None else line.number,
                line=None if line is None else line.text,
                hint=hint,
            )
        )

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

    # -- commands --------------------------------------------------------------
    def run(self) -> None:
        handlers = {
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
        for line in self.cfg.lines:
            handler = handlers.get(line.command)
            if handler is not None:
                handler(line)
            elif line.command.startswith("PixelSize"):
                self.preset(line, line.fields[0])
                self.number(line, line.fields[1], "value")
        self.check_missing_libraries()
        if self.require_roles:
            self.check_roles()
        self.find_objective_devices()
        self.check_pixel_presets()
        self.check_objectives()

    def declare(self, line: ConfigLine, label: str) -> bool:
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

    def on_device(self, line: ConfigLine) -> None:
        label, library, name = line.fields
        if not self.declare(line, label):
            return
        python = False
        if not self.adapters.has_library(library):
            if _python_device_class(library, name) is not None:
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

    def check_device_name(self, line: ConfigLine, library: str, name: str) -> None:
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
        error = _python_device_problem(module_name, class_name)
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

    def preset(self, line: ConfigLine, name: str) -> PixelPreset | None:
        preset = self.cfg.pixel_presets.get(name)
        if preset is None:
            self.problem(
                line,
                f"pixel-size configuration {name!r} is not defined yet",
                f"Put 'ConfigPixelSize,{name},<device>,<property>,<value>' "
                "lines before this one.",
            )
        return preset

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

    # -- whole-file checks -----------------------------------------------------
    def check_missing_libraries(self) -> None:
        if not self.missing_libraries:
            return
        by_line = sorted(
            (numbers[0], library) for library, numbers in self.missing_libraries.items()
        )
        first_number, first_library = by_line[0]
        line = next(ln for ln in self.cfg.lines if ln.number == first_number)
        others = ", ".join(f"{lib!r} (line {n})" for n, lib in by_line[1:])
        searched = "; ".join(str(p) for p in self.adapters.search_paths) or "none"
        what = (
            f"adapter library {first_library!r} not found in the adapter search "
            f"path ({searched})"
        )
        if others:
            what += f"; also missing: {others}"
        found = ", ".join(sorted(self.adapters.library_names)) or "none"
        self.problem(
            line,
            what,
            "Install a Micro-Manager build with this adapter whose device "
            f"interface matches pymmcore {_pymmcore_version()} and pass its "
            "folder with --adapter-path (or set MICROMANAGER_PATH), or fix the "
            f"library name (found: {found}).",
        )

    def check_roles(self) -> None:
        for role, name in _REQUIRED_ROLES.items():
            if not self.cfg.roles.get(role):
                py = PY_PREFIX if role == "Camera" else ""
                self.problem(
                    None,
                    f"no {name} is set (pairscope needs a camera, shutter, focus "
                    "drive and XY stage)",
                    f"Add '{py}Property,Core,{role},<device label>' at the end "
                    "of the file.",
                )

    def find_objective_devices(self) -> None:
        turrets: list[str] = []
        for preset in self.cfg.pixel_presets.values():
            for label, prop, _ in preset.settings:
                if prop in ("Label", "State") and label not in turrets:
                    turrets.append(label)
        for label, props in self.cfg.device_properties.items():
            decl = self.cfg.devices.get(label)
            if decl is not None and decl.library.startswith(SIM_MODULE_PREFIX):
                objective = props.get("ObjectiveDevice", DEFAULT_OBJECTIVE_DEVICE)
                if objective in self.cfg.devices and objective not in turrets:
                    turrets.append(objective)
        if not turrets and DEFAULT_OBJECTIVE_DEVICE in self.cfg.devices:
            turrets.append(DEFAULT_OBJECTIVE_DEVICE)
        self.cfg.objective_devices = turrets

    def check_pixel_presets(self) -> None:
        for preset in self.cfg.pixel_presets.values():
            line = self.line_at(preset.line_number)
            if preset.pixel_size_um is None:
                self.problem(
                    line,
                    f"pixel-size configuration {preset.name!r} has no size",
                    f"Add 'PixelSize_um,{preset.name},<um per pixel>' after it.",
                )
            for label, prop, value in preset.settings:
                labels = self.cfg.state_labels.get(label)
                if prop != "Label" or not labels:
                    continue
                defined = [text for text, _ in labels.values()]
                if value not in defined:
                    self.problem(
                        line,
                        f"pixel-size configuration {preset.name!r} refers to "
                        f"{label} label {value!r}, which no Label line defines",
                        f"Use one of: {', '.join(repr(t) for t in defined)}.",
                    )

    def check_objectives(self) -> None:
        sim_turrets = self.sim_objective_devices()
        for turret in self.cfg.objective_devices:
            for state, (text, number) in sorted(
                self.cfg.state_labels.get(turret, {}).items()
            ):
                if not _MAGNIFICATION_RE.search(text):
                    continue  # "Empty", "Position-3": not an objective
                line = self.line_at(number)
                if not self.has_pixel_size(turret, state, text):
                    self.problem(
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
                        self.problem(
                            line,
                            f"the simulated camera cannot use this objective: {exc}",
                            "Write the label as '<name> <mag>x/<NA> <immersion>', "
                            "e.g. 'Plan-Apochromat 40x/1.3 Oil'.",
                        )

    def sim_objective_devices(self) -> set[str]:
        turrets = set()
        for decl in self.cfg.devices.values():
            if decl.python and decl.library.startswith(SIM_MODULE_PREFIX):
                props = self.cfg.device_properties.get(decl.label, {})
                turrets.add(props.get("ObjectiveDevice", DEFAULT_OBJECTIVE_DEVICE))
        return turrets

    def has_pixel_size(self, turret: str, state: int, text: str) -> bool:
        for preset in self.cfg.pixel_presets.values():
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

    def line_at(self, number: int) -> ConfigLine:
        return next(line for line in self.cfg.lines if line.number == number)


def _python_device_class(module_name: str, class_name: str) -> type | None:
    """The unicore Device class ``module.class``, or None if it is not one."""
    try:
        module = importlib.import_module(module_name)
    except Exception:
        return None
    cls = getattr(module, class_name, None)
    return cls if _is_unicore_device(cls) else None


def _is_unicore_device(obj: Any) -> bool:
    from pymmcore_plus.experimental.unicore import Device

    return isinstance(obj, type) and issubclass(obj, Device)


def _python_device_problem(module_name: str, class_name: str) -> tuple[str, str] | None:
    """Why ``module.class`` cannot be loaded as a Python device (None if it can)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        return (
            f"Python module {module_name!r} not found (no module {missing!r})",
            "Check the spelling, or install the package that provides it into "
            "the Python environment that runs pairscope.",
        )
    except Exception as exc:
        return (
            f"importing Python module {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}",
            "Fix the error in that module.",
        )
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(
            name
            for name, obj in inspect.getmembers(module, inspect.isclass)
            if _is_unicore_device(obj) and not inspect.isabstract(obj)
        )
        return (
            f"Python module {module_name!r} has no class {class_name!r}",
            f"Use one of its device classes: {', '.join(found) or 'none found'}.",
        )
    if not _is_unicore_device(cls):
        return (
            f"{module_name}.{class_name} is not a pymmcore-plus unicore Device",
            "Point the line at a subclass of "
            "pymmcore_plus.experimental.unicore.Device.",
        )
    return None


def validate_config(
    path: Path | str,
    *,
    adapter_paths: Iterable[Path | str] | None = None,
    require_roles: bool = True,
) -> ParsedConfig:
    """Check a configuration file before loading it.

    Parameters
    ----------
    path : Path or str
        The ``.cfg`` file.
    adapter_paths : iterable of Path or str, optional
        Folders with Micro-Manager adapter libraries, as the loader will use;
        `default_adapter_paths` if None.
    require_roles : bool
        Require a camera, shutter, focus drive and XY stage (pairscope needs
        all four).

    Returns
    -------
    ParsedConfig
        What the file declares.

    Raises
    ------
    ConfigError
        The first problem in file order: missing file; unknown command or wrong
        field count; device label used before it is declared; ``Device`` line
        whose adapter library is not in the search path (all missing libraries
        are listed); ``#py pyDevice`` line whose module does not import or whose
        class is missing or no unicore Device; Python device used on a line
        without ``#py ``; objective label without a pixel-size configuration;
        pixel-size configuration without a size or pointing at an undefined
        label; missing roles.

    """
    cfg_path = Path(path).expanduser().resolve()
    lines, problems = _parse_lines(_read_text(cfg_path), cfg_path)
    search = default_adapter_paths() if adapter_paths is None else adapter_paths
    adapters = AdapterIndex([Path(p) for p in search])
    checker = _Checker(cfg_path, lines, adapters, require_roles=require_roles)
    checker.run()
    problems += checker.problems
    if problems:
        numbered = [p for p in problems if p.line_number is not None]
        if numbered:
            raise min(numbered, key=lambda p: p.line_number or 0)
        raise problems[0]
    return checker.cfg
