"""Train/val/test splits by cell: a deterministic rule over cell hashes.

The rule
--------
Each cell gets a number ``u`` in [0, 1) from the first 8 bytes of the SHA-256
of its id (UTF-8). With fractions (f_train, f_val, f_test), a cell belongs to
``train`` if ``u < f_train``, to ``val`` if ``u < f_train + f_val``, else to
``test`` (its *natural* split). All pairs of a cell share its split, so no cell
leaks between splits, and a cell's natural split depends on nothing but its id
and the fractions: the same in every database, whatever the order pairs were
added in.

Small databases: with 6 cells and 0.7/0.15/0.15, some split would be empty
about half the time. So while a split with a positive fraction is empty and
there are enough cells, the cell whose ``u`` lies nearest to that split's
interval (among splits holding two or more cells) is *borrowed* into it.
Borrowing is a function of the set of cell ids only (order-independent and
stable across re-opening), and stops for good once every split holds a cell
naturally; from then on adding cells never moves a cell. The trade-off: while
a database is small, adding a cell can move a borrowed cell back to its natural
split, so a model trained on an early, small database may have seen a cell that
a later version puts in ``val`` or ``test``. `PairDatabase.catalog_sha256`
changes whenever any split does, so such runs are told apart.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

from correlate.pairdb.errors import PairDatabaseError
from correlate.pairdb.records import SPLITS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["DEFAULT_FRACTIONS", "assign_splits", "cell_unit_hash", "check_fractions"]

#: Default (train, val, test) fractions.
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Return ``fractions`` as a (train, val, test) tuple, checked.

    Parameters
    ----------
    fractions : Sequence[float]
        Three non-negative numbers that sum to 1 (within 1e-9).

    Returns
    -------
    tuple of 3 floats
        The fractions.

    Raises
    ------
    PairDatabaseError
        Not three non-negative numbers summing to 1.

    """
    values = tuple(float(f) for f in fractions)
    if (
        len(values) != 3
        or not all(math.isfinite(f) and f >= 0 for f in values)
        or abs(sum(values) - 1.0) > 1e-9
    ):
        raise PairDatabaseError(
            f"split fractions {values} are not three non-negative numbers summing to 1",
            "Pass (train, val, test), e.g. (0.7, 0.15, 0.15).",
        )
    return values[0], values[1], values[2]


def cell_unit_hash(cell_id: str) -> float:
    """Map a cell id to a number in [0, 1), uniformly, from its SHA-256.

    Parameters
    ----------
    cell_id : str
        The cell's identifier.

    Returns
    -------
    float
        The first 8 bytes of SHA-256(cell_id, UTF-8), big-endian, over 2**64.

    """
    digest = hashlib.sha256(cell_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(
    cell_ids: Iterable[str], fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, str]:
    """Assign each cell to ``train``, ``val`` or ``test`` (module docstring rule).

    Parameters
    ----------
    cell_ids : Iterable[str]
        The cells of a database (duplicates are ignored).
    fractions : Sequence[float], optional
        Target (train, val, test) fractions.

    Returns
    -------
    dict[str, str]
        Split name of each cell.

    """
    train, val, _ = check_fractions(fractions)
    bounds = (0.0, train, train + val, 1.0)
    intervals = {name: (bounds[i], bounds[i + 1]) for i, name in enumerate(SPLITS)}
    unit = {cell: cell_unit_hash(cell) for cell in set(cell_ids)}
    split: dict[str, str] = {}
    for cell, u in unit.items():
        if u < bounds[1]:
            split[cell] = SPLITS[0]
        elif u < bounds[2]:
            split[cell] = SPLITS[1]
        else:
            split[cell] = SPLITS[2]
    fraction = dict(zip(SPLITS, check_fractions(fractions), strict=True))
    wanted = [name for name in SPLITS if fraction[name] > 0]
    if len(unit) < len(wanted):
        return split
    while True:
        counts = dict.fromkeys(SPLITS, 0)
        for name in split.values():
            counts[name] += 1
        empty = [name for name in wanted if counts[name] == 0]
        if not empty:
            return split
        target = empty[0]
        low, high = intervals[target]
        donors = [cell for cell, name in split.items() if counts[name] >= 2]

        def distance(cell: str, low: float = low, high: float = high) -> float:
            u = unit[cell]
            return max(low - u, u - high, 0.0)

        chosen = min(donors, key=lambda cell: (distance(cell), unit[cell], cell))
        split[chosen] = target
