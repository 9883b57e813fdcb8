"""One line for a failed operation: the user's mistake, or an unexpected error."""

from __future__ import annotations

from acquire.cli_common import USER_ERRORS
from enhance.errors import EnhanceError

__all__ = ["GUI_USER_ERRORS", "describe_error"]

GUI_USER_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, EnhanceError)
"""Errors a user can cause and fix: shown as their own message."""


def describe_error(error: BaseException) -> str:
    """The message the window shows for ``error`` (one line, no traceback).

    Parameters
    ----------
    error : BaseException
        What an operation raised.

    Returns
    -------
    str
        The error's own message for user errors (what, where, how to fix);
        ``"unexpected error: <type>: <message>"`` for anything else.

    """
    if isinstance(error, GUI_USER_ERRORS):
        return " ".join(str(error).split()) or type(error).__name__
    detail = " ".join(str(error).split()) or "no details"
    return f"unexpected error: {type(error).__name__}: {detail}"
