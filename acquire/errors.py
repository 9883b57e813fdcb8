"""The error raised for a mistake in what the user asked for.

The command line prints a `UserError` as one message and exits with code 2;
anything else that goes wrong is a crash (code 1).
"""

from __future__ import annotations

from correlate.errors import HintedError

__all__ = ["DeviceFailure", "UserError", "user_error_types"]


class UserError(HintedError):
    """A mistake in what the user asked for: what, where, and how to fix it.

    Parameters
    ----------
    what : str
        What is wrong (one sentence, naming the path or option).
    hint : str
        How to fix it.

    """


class DeviceFailure(HintedError):
    """A device that failed while in use (not the user's mistake, theirs to check).

    Parameters
    ----------
    what : str
        What failed (the device and the action).
    hint : str
        What to check.

    """


def user_error_types() -> tuple[type[Exception], ...]:
    """Every error a user can cause and fix: shown as its own message.

    `UserError` and its kinds (sequences, datasets, stage limits), and the
    errors of parts that cannot depend on this package: configuration
    parsing, the pair database, registration and the enhancement model.
    Imported when asked, so that a command line that fails on nothing does
    not pay for importing them.
    """
    from acquire.config.errors import ConfigError
    from correlate.pairdb.errors import PairDatabaseError
    from correlate.registration.errors import RegistrationError
    from enhance.errors import EnhanceError

    return (UserError, ConfigError, PairDatabaseError, RegistrationError, EnhanceError)
