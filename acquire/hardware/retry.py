"""How often, and how patiently, a failed snap or stage move is retried.

Kept apart from the engine (which imports pymmcore-plus) so that the command
line can show its defaults without loading Micro-Manager.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


def _is_finite_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a failed snap or stage move is retried.

    Attempt ``k`` (``k >= 2``) starts ``backoff_ms * backoff_factor**(k - 2)``
    ms after attempt ``k - 1`` failed.

    Parameters
    ----------
    max_attempts : int
        Attempts per snap and per move, the first one included (>= 1; 1 means
        no retries).
    backoff_ms : float
        Wait before the first retry, in ms (>= 0).
    backoff_factor : float
        Each further wait is this many times longer (>= 1).
    give_up_on : tuple of exception types
        Errors that mean the device refused the request itself (an invalid
        position or setting): they are not retried. ``ValueError`` by default,
        which is what UniMMCore Python devices raise for values out of range.

    Raises
    ------
    ValueError
        A parameter out of range.

    """

    max_attempts: int = 3
    backoff_ms: float = 50.0
    backoff_factor: float = 2.0
    give_up_on: tuple[type[Exception], ...] = (ValueError,)

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(
                "RetryPolicy.max_attempts must be a whole number >= 1 (the first "
                f"try counts; 1 means no retries), got {attempts!r}"
            )
        if not _is_finite_number(self.backoff_ms) or self.backoff_ms < 0:
            raise ValueError(
                "RetryPolicy.backoff_ms must be a finite number of ms >= 0, "
                f"got {self.backoff_ms!r}"
            )
        if not _is_finite_number(self.backoff_factor) or self.backoff_factor < 1:
            raise ValueError(
                "RetryPolicy.backoff_factor must be a finite number >= 1 (waits "
                f"never shrink), got {self.backoff_factor!r}"
            )
        if not isinstance(self.give_up_on, tuple) or not all(
            isinstance(error, type) and issubclass(error, Exception)
            for error in self.give_up_on
        ):
            raise ValueError(
                "RetryPolicy.give_up_on must be a tuple of Exception subclasses, "
                f"got {self.give_up_on!r}"
            )

    def delays_ms(self) -> tuple[float, ...]:
        """Waits before each retry, in ms (``max_attempts - 1`` of them).

        Returns
        -------
        tuple of float
            ``(backoff_ms, backoff_ms * backoff_factor, ...)``.

        """
        return tuple(
            self.backoff_ms * self.backoff_factor**k
            for k in range(self.max_attempts - 1)
        )
