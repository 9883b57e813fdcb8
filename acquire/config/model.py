"""What a checked configuration file declares: devices, roles, pixel sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from acquire.config.parse import ConfigLine

__all__ = [
    "CORE_LABEL",
    "DEFAULT_OBJECTIVE_DEVICE",
    "SIM_MODULE_PREFIX",
    "DeviceDecl",
    "ParsedConfig",
    "PixelPreset",
]

#: Label of Micro-Manager's core pseudo-device.
CORE_LABEL = "Core"
#: Modules whose Python devices parse objective labels (the simulated cameras).
SIM_MODULE_PREFIX = "acquire.sim"
#: Default of the simulated cameras' ``ObjectiveDevice`` property.
DEFAULT_OBJECTIVE_DEVICE = "Objective"


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
    device_properties : dict
        Device label -> {property: value} from its ``Property`` lines.

    """

    path: Path
    lines: list[ConfigLine] = field(default_factory=list)
    devices: dict[str, DeviceDecl] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    state_labels: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)
    pixel_presets: dict[str, PixelPreset] = field(default_factory=dict)
    objective_devices: list[str] = field(default_factory=list)
    device_properties: dict[str, dict[str, str]] = field(default_factory=dict)
