"""Deterministic device faults for the simulated hardware.

A :class:`FaultInjector` counts the operations of one simulated device (snaps of
a camera, moves of a stage) and makes chosen ones fail, so tests can check how
the acquisition engine copes with flaky hardware:

- ``every_n``: every N-th operation fails once (its retry succeeds);
- ``persist_from``: from the N-th operation on, every attempt fails (a device
  that died);
- ``timeout_every_n``: every N-th operation hangs for ``timeout_ms`` once and
  then fails with a timeout.

Operations are numbered from 1 by the ones that *succeeded* so far: the
operation in progress is number ``count + 1`` however often it was retried. A
failing operation raises before the device does anything, so a camera never
fills its buffer and a stage never moves.

Devices expose the settings as Micro-Manager properties through
:func:`register_fault_properties`; changing any of them restarts the count.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from pymmcore_plus.experimental.unicore import Device

__all__ = [
    "FaultInjector",
    "SimulatedDeviceError",
    "SimulatedTimeoutError",
    "register_fault_properties",
]

MAX_FAULT_INDEX = 1_000_000
"""Largest operation number a fault property accepts."""
MAX_TIMEOUT_MS = 60_000.0
"""Longest simulated hang, in ms."""


class SimulatedDeviceError(RuntimeError):
    """A simulated device failed an operation on purpose."""


class SimulatedTimeoutError(SimulatedDeviceError, TimeoutError):
    """A simulated device hung, then gave up on an operation."""


@dataclass
class FaultInjector:
    """Make chosen operations of one simulated device fail.

    Parameters
    ----------
    every_n : int
        Every ``every_n``-th operation fails once; 0 switches this off.
    persist_from : int
        From operation ``persist_from`` on, every attempt fails; 0: off.
    timeout_every_n : int
        Every ``timeout_every_n``-th operation hangs for ``timeout_ms`` once,
        then fails with `SimulatedTimeoutError`; 0: off.
    timeout_ms : float
        How long a simulated hang lasts.

    Attributes
    ----------
    count : int
        Operations that succeeded since the injector was (re)configured.
    attempts : int
        Calls to `check` since then, failed ones included.
    failures : int
        Faults raised since then.

    """

    every_n: int = 0
    persist_from: int = 0
    timeout_every_n: int = 0
    timeout_ms: float = 200.0
    count: int = field(default=0, init=False)
    attempts: int = field(default=0, init=False)
    failures: int = field(default=0, init=False)
    _failed_once: bool = field(default=False, init=False, repr=False)
    _timed_out_once: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ("every_n", "persist_from", "timeout_every_n"):
            setattr(self, name, _as_index(getattr(self, name), name))
        self.timeout_ms = _as_timeout(self.timeout_ms)

    @property
    def enabled(self) -> bool:
        """Whether any fault is switched on."""
        return bool(self.every_n or self.persist_from or self.timeout_every_n)

    def configure(self, **settings: Any) -> None:
        """Change settings (``every_n``, ``persist_from``, ...) and restart the count.

        Parameters
        ----------
        **settings
            New values of `every_n`, `persist_from`, `timeout_every_n` or
            `timeout_ms`.

        Raises
        ------
        ValueError
            Unknown setting, or a value out of range.

        """
        checked: dict[str, float] = {}
        for name, value in settings.items():
            if name == "timeout_ms":
                checked[name] = _as_timeout(value)
            elif name in ("every_n", "persist_from", "timeout_every_n"):
                checked[name] = _as_index(value, name)
            else:
                raise ValueError(f"FaultInjector has no setting {name!r}")
        with self._lock:
            for name, value in checked.items():
                setattr(self, name, value)
            self._restart()

    def reset(self) -> None:
        """Restart the count (settings are kept)."""
        with self._lock:
            self._restart()

    def check(self, op: str) -> None:
        """Fail the operation now starting if it is one chosen to fail.

        Call it first thing in the operation, before touching any state.

        Parameters
        ----------
        op : str
            What is being done, for the message (e.g. ``"Camera snap"``).

        Raises
        ------
        SimulatedTimeoutError
            After sleeping ``timeout_ms``, for a chosen timeout.
        SimulatedDeviceError
            For a chosen failure.

        """
        with self._lock:
            self.attempts += 1
            number = self.count + 1
            error = self._fault_for(op, number)
            if error is None:
                self.count = number
                self._failed_once = self._timed_out_once = False
                return
            self.failures += 1
            hang_s = self.timeout_ms / 1000.0
        if isinstance(error, SimulatedTimeoutError) and hang_s > 0:
            time.sleep(hang_s)
        raise error

    def _fault_for(self, op: str, number: int) -> SimulatedDeviceError | None:
        """The fault for attempt at operation ``number``, if any (lock held)."""
        if self.persist_from and number >= self.persist_from:
            return SimulatedDeviceError(
                f"simulated fault: {op} #{number} failed "
                f"(failing every attempt from #{self.persist_from} on)"
            )
        if (
            self.timeout_every_n
            and number % self.timeout_every_n == 0
            and not self._timed_out_once
        ):
            self._timed_out_once = True
            return SimulatedTimeoutError(
                f"simulated fault: {op} #{number} timed out after "
                f"{self.timeout_ms:g} ms (operations numbered by multiples of "
                f"{self.timeout_every_n} time out once)"
            )
        if self.every_n and number % self.every_n == 0 and not self._failed_once:
            self._failed_once = True
            return SimulatedDeviceError(
                f"simulated fault: {op} #{number} failed "
                f"(operations numbered by multiples of {self.every_n} fail once)"
            )
        return None

    def _restart(self) -> None:
        self.count = self.attempts = self.failures = 0
        self._failed_once = self._timed_out_once = False


def register_fault_properties(
    device: Device, injector: FaultInjector, *, unit: str
) -> None:
    """Expose ``injector``'s settings as properties of ``device``.

    For ``unit="Frame"`` the properties are ``FaultEveryNFrames``,
    ``FaultPersistFromFrame``, ``TimeoutEveryNFrames`` (integers, 0 = off) and
    ``TimeoutMs``. Setting any of them restarts the injector's count.

    Parameters
    ----------
    device : Device
        The UniMMCore Python device (called from its ``__init__``).
    injector : FaultInjector
        The device's injector.
    unit : str
        Singular name of the counted operation, capitalised (``"Frame"``,
        ``"Move"``).

    """
    names = {
        f"FaultEveryN{unit}s": "every_n",
        f"FaultPersistFrom{unit}": "persist_from",
        f"TimeoutEveryN{unit}s": "timeout_every_n",
    }
    for prop, setting in names.items():
        device.register_property(
            prop,
            default_value=int(getattr(injector, setting)),
            limits=(0, MAX_FAULT_INDEX),
            getter=_getter(injector, setting),
            setter=_setter(injector, setting, prop),
        )
    device.register_property(
        "TimeoutMs",
        default_value=float(injector.timeout_ms),
        limits=(0.0, MAX_TIMEOUT_MS),
        getter=_getter(injector, "timeout_ms"),
        setter=_setter(injector, "timeout_ms", "TimeoutMs"),
    )


def _getter(injector: FaultInjector, setting: str) -> Callable[[Any], Any]:
    def get(_device: Any) -> Any:
        return getattr(injector, setting)

    return get


def _setter(
    injector: FaultInjector, setting: str, prop: str
) -> Callable[[Any, Any], None]:
    def set_(_device: Any, value: Any) -> None:
        try:
            injector.configure(**{setting: value})
        except ValueError as exc:
            raise ValueError(f"property {prop!r}: {exc}") from None

    return set_


def _as_index(value: Any, name: str) -> int:
    """An operation number >= 0 (integral floats and strings are accepted)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}") from None
    if not number.is_integer() or not 0 <= number <= MAX_FAULT_INDEX:
        raise ValueError(
            f"{name} must be a whole number in [0, {MAX_FAULT_INDEX}], got {value!r}"
        )
    return int(number)


def _as_timeout(value: Any) -> float:
    try:
        ms = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"timeout_ms must be a number, got {value!r}") from None
    if not 0.0 <= ms <= MAX_TIMEOUT_MS:
        raise ValueError(f"timeout_ms must lie in [0, {MAX_TIMEOUT_MS:g}], got {ms}")
    return ms
