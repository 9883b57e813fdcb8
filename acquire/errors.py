"""The error raised for a mistake in what the user asked for.

The command line prints a `UserError` as one message and exits with code 2;
anything else that goes wrong is a crash (code 1).
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake in what the user asked for: what, where, and how to fix it.

    Parameters
    ----------
    what : str
        What is wrong (one sentence, naming the path or option).
    hint : str
        How to fix it.

    """

    def __init__(self, what: str, hint: str = "") -> None:
        self.what = what.rstrip(". ")
        self.hint = hint.strip()
        super().__init__(f"{self.what}. {self.hint}".strip())
