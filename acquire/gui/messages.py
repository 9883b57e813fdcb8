"""One line for a failed operation: the user's mistake, or an unexpected error."""

from __future__ import annotations

from acquire.errors import DeviceFailure, user_error_types
from acquire.hardware.engine import AcquisitionFault

__all__ = ["describe_error"]


def describe_error(error: BaseException) -> str:
    """The message the window shows for ``error`` (one line, no traceback).

    Parameters
    ----------
    error : BaseException
        What an operation raised.

    Returns
    -------
    str
        The error's own message for user errors and failed devices (what,
        where, how to fix); ``"unexpected error: <type>: <message>"`` for
        anything else.

    """
    if isinstance(error, (*user_error_types(), DeviceFailure, AcquisitionFault)):
        return " ".join(str(error).split()) or type(error).__name__
    detail = " ".join(str(error).split()) or "no details"
    return f"unexpected error: {type(error).__name__}: {detail}"
