"""The one error the dataset storage raises."""

from __future__ import annotations

from acquire.errors import UserError

__all__ = ["DatasetError"]


class DatasetError(UserError):
    """A dataset folder or stack cannot be created, written, committed or resumed.

    ``str()`` is one message: what is wrong, the path it concerns, and how to
    fix it. Being a `UserError`, the command line prints it without a traceback.

    Parameters
    ----------
    what : str
        What is wrong, naming the path.
    hint : str
        How to fix it.

    """
