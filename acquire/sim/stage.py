"""Simulated XY and Z stages for UniMMCore, with travel limits and injectable faults.

They stand in for Micro-Manager's DemoCamera stages where a test needs a stage
that can fail on purpose (see :mod:`acquire.sim.faults`). Load them with ``#py``
lines::

    #py pyDevice,XYStage,acquire.sim.stage,SimulatedXYStage
    #py pyDevice,ZStage,acquire.sim.stage,SimulatedZStage

A stage reports exactly the position it was last commanded to (in its own
coordinates, after `set_origin`). It refuses a move outside its travel
(``XMinUm``/``XMaxUm``/``YMinUm``/``YMaxUm``, ``ZMinUm``/``ZMaxUm``, in hardware
coordinates) with a `StageLimitError` and stays where it was. Faults:
``FaultEveryNMoves``, ``FaultPersistFromMove``, ``TimeoutEveryNMoves`` and
``TimeoutMs``; a failed move leaves the stage where it was.
"""

from __future__ import annotations

import math

from pymmcore_plus import FocusDirection
from pymmcore_plus.experimental.unicore import StageDevice, XYStageDevice

from acquire.sim.faults import FaultInjector, register_fault_properties

__all__ = [
    "DEFAULT_XY_TRAVEL_UM",
    "DEFAULT_Z_TRAVEL_UM",
    "SimulatedXYStage",
    "SimulatedZStage",
    "StageLimitError",
]

DEFAULT_XY_TRAVEL_UM = (-50_000.0, 50_000.0)
"""Default travel of each XY axis (a 100 mm x 100 mm motorised stage)."""
DEFAULT_Z_TRAVEL_UM = (-5_000.0, 5_000.0)
"""Default travel of the focus drive."""
_LIMIT_RANGE_UM = (-1e6, 1e6)


class StageLimitError(ValueError):
    """A stage refused a move outside its travel (or to a non-finite position)."""


def _check_axis(
    device: str, axis: str, target_um: float, low_um: float, high_um: float
) -> None:
    """Raise `StageLimitError` unless ``low <= target <= high``."""
    if low_um > high_um:
        raise StageLimitError(
            f"stage {device!r}: {axis} limits are inverted "
            f"({axis.upper()}MinUm={low_um:g} > {axis.upper()}MaxUm={high_um:g}); "
            "fix the limit properties"
        )
    if not math.isfinite(target_um):
        raise StageLimitError(
            f"stage {device!r} refused to move {axis} to {target_um}: not a number"
        )
    if not low_um <= target_um <= high_um:
        raise StageLimitError(
            f"stage {device!r} refused to move {axis} to {target_um:g} um: outside "
            f"its travel [{low_um:g}, {high_um:g}] um "
            f"({axis.upper()}MinUm/{axis.upper()}MaxUm)"
        )


class SimulatedXYStage(XYStageDevice):
    """Simulated motorised XY stage with travel limits and injectable faults."""

    def __init__(self) -> None:
        super().__init__()
        self._position_um = (0.0, 0.0)  # hardware coordinates
        self._origin_um = (0.0, 0.0)  # hardware position of user (0, 0)
        self.faults = FaultInjector()
        low, high = DEFAULT_XY_TRAVEL_UM
        for axis in ("X", "Y"):
            self.register_property(
                f"{axis}MinUm", default_value=low, limits=_LIMIT_RANGE_UM
            )
            self.register_property(
                f"{axis}MaxUm", default_value=high, limits=_LIMIT_RANGE_UM
            )
        register_fault_properties(self, self.faults, unit="Move")

    def _limits(self, axis: str) -> tuple[float, float]:
        return (
            float(self.get_property_value(f"{axis}MinUm")),
            float(self.get_property_value(f"{axis}MaxUm")),
        )

    def _move_to_hardware(self, x_um: float, y_um: float) -> None:
        """Check faults and limits, then move (hardware coordinates)."""
        label = self.get_label()
        self.faults.check(f"XY stage {label!r} move")
        _check_axis(label, "x", x_um, *self._limits("X"))
        _check_axis(label, "y", y_um, *self._limits("Y"))
        self._position_um = (float(x_um), float(y_um))
        x, y = self.get_position_um()
        self.core.events.XYStagePositionChanged.emit(label, x, y)

    def set_position_um(self, x: float, y: float) -> None:
        """Move to ``(x, y)`` um (stage coordinates).

        Raises
        ------
        SimulatedDeviceError
            An injected fault; the stage did not move.
        StageLimitError
            The target lies outside the travel; the stage did not move.

        """
        ox, oy = self._origin_um
        self._move_to_hardware(float(x) + ox, float(y) + oy)

    def get_position_um(self) -> tuple[float, float]:
        """The last commanded position (stage coordinates)."""
        (x, y), (ox, oy) = self._position_um, self._origin_um
        return x - ox, y - oy

    def home(self) -> None:
        """Move to the hardware origin (0, 0)."""
        self._move_to_hardware(0.0, 0.0)

    def stop(self) -> None:
        """Stop (moves are instantaneous: nothing to do)."""

    def set_origin_x(self) -> None:
        """Make the current X position read 0."""
        self._origin_um = (self._position_um[0], self._origin_um[1])

    def set_origin_y(self) -> None:
        """Make the current Y position read 0."""
        self._origin_um = (self._origin_um[0], self._position_um[1])

    def set_adapter_origin_um(self, x: float, y: float) -> None:
        """Make the current position read ``(x, y)``."""
        px, py = self._position_um
        self._origin_um = (px - float(x), py - float(y))


class SimulatedZStage(StageDevice):
    """Simulated focus drive with travel limits and injectable faults."""

    def __init__(self) -> None:
        super().__init__()
        self._position_um = 0.0  # hardware coordinates
        self._origin_um = 0.0
        self._focus_direction = FocusDirection.Unknown
        self.faults = FaultInjector()
        low, high = DEFAULT_Z_TRAVEL_UM
        self.register_property("ZMinUm", default_value=low, limits=_LIMIT_RANGE_UM)
        self.register_property("ZMaxUm", default_value=high, limits=_LIMIT_RANGE_UM)
        register_fault_properties(self, self.faults, unit="Move")

    def _move_to_hardware(self, z_um: float) -> None:
        label = self.get_label()
        self.faults.check(f"Z stage {label!r} move")
        low = float(self.get_property_value("ZMinUm"))
        high = float(self.get_property_value("ZMaxUm"))
        _check_axis(label, "z", z_um, low, high)
        self._position_um = float(z_um)
        self.core.events.stagePositionChanged.emit(label, self.get_position_um())

    def set_position_um(self, val: float) -> None:
        """Move to ``val`` um (stage coordinates).

        Raises
        ------
        SimulatedDeviceError
            An injected fault; the stage did not move.
        StageLimitError
            The target lies outside the travel; the stage did not move.

        """
        self._move_to_hardware(float(val) + self._origin_um)

    def get_position_um(self) -> float:
        """The last commanded position (stage coordinates)."""
        return self._position_um - self._origin_um

    def home(self) -> None:
        """Move to the hardware origin (0)."""
        self._move_to_hardware(0.0)

    def stop(self) -> None:
        """Stop (moves are instantaneous: nothing to do)."""

    def set_origin(self) -> None:
        """Make the current position read 0."""
        self._origin_um = self._position_um

    def set_adapter_origin_um(self, newZUm: float) -> None:
        """Make the current position read ``newZUm``."""
        self._origin_um = self._position_um - float(newZUm)

    def get_focus_direction(self) -> FocusDirection:
        """Focus direction set by the config (``FocusDirection,<label>,<sign>``)."""
        return self._focus_direction

    def set_focus_direction(self, sign: int) -> None:
        """+1: larger Z moves towards the sample; -1: away; 0: unknown."""
        value = int(sign)
        if value > 0:
            self._focus_direction = FocusDirection.TowardSample
        elif value < 0:
            self._focus_direction = FocusDirection.AwayFromSample
        else:
            self._focus_direction = FocusDirection.Unknown
