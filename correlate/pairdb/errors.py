"""The errors the paired-image database raises."""

from __future__ import annotations

from correlate.errors import HintedError

__all__ = ["DuplicatePairError", "PairDatabaseError"]


class PairDatabaseError(HintedError, ValueError):
    """A pair database, a pair or an imported stack cannot be used as asked.

    ``str()`` is one message: what is wrong, the path or pair it concerns,
    and how to fix it.

    Parameters
    ----------
    what : str
        What is wrong (one sentence, naming the path, pair or argument).
    hint : str
        How to fix it.

    """


class DuplicatePairError(PairDatabaseError):
    """The pair (same pixels, grid and cell) is in the database already.

    Parameters
    ----------
    what, hint : str
        As `PairDatabaseError`.
    pair_id : str
        The pair that is there.

    """

    def __init__(self, what: str, hint: str = "", *, pair_id: str) -> None:
        super().__init__(what, hint)
        self.pair_id = pair_id
