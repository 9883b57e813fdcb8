"""The error that says what is wrong and how to fix it, shared by every package.

`acquire`, `correlate` and `enhance` each raise their own kinds of mistake
(`acquire.errors.UserError`, `correlate.pairdb.PairDatabaseError`,
`enhance.errors.EnhanceError`); all carry the same two parts, joined into
the one message a front end prints as it stands. It lives here because
`correlate` is the package the other two may both import.
"""

from __future__ import annotations

__all__ = ["HintedError"]


class HintedError(Exception):
    """A mistake described in two parts: what is wrong, and how to fix it.

    ``str()`` is ``"<what>. <hint>"``, one message.

    Parameters
    ----------
    what : str
        What is wrong (one sentence, naming the path, option or data).
    hint : str
        How to fix it.

    """

    def __init__(self, what: str, hint: str = "") -> None:
        self.what = what.rstrip(". ")
        self.hint = hint.strip()
        super().__init__(f"{self.what}. {self.hint}".strip())
