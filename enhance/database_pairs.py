"""Training pairs from the paired-image database (one split at a time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from enhance.data import TrainingPair, trim_to_overlap
from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from correlate.pairdb import PairDatabase

__all__ = ["load_split"]


def load_split(
    database: PairDatabase,
    split: str,
    *,
    limit: int | None = None,
    trim: bool = True,
) -> list[TrainingPair]:
    """The accepted pairs of one split, loaded into memory.

    Parameters
    ----------
    database : PairDatabase
        An open paired-image database.
    split : {"train", "val", "test"}
        Which split; splits are made by cell, so no cell is in two of them.
    limit : int, optional
        Load at most this many pairs (in catalog order).
    trim : bool, optional
        Cut off the border planes where the wide-field stack did not cover
        the confocal grid (`enhance.data.trim_to_overlap`), as training,
        evaluation and live use see them. Default True.

    Returns
    -------
    list of TrainingPair
        Wide-field (on the confocal grid) and confocal stacks with their ids.

    Raises
    ------
    EnhanceError
        The split holds no accepted pair.

    """
    records = database.records(split)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise EnhanceError(
            f"the {split} split of {database.path} holds no accepted pair",
            "add pairs of more cells (pairscope pairs acquire/build); every split "
            "needs at least one cell",
        )
    pairs = []
    for record in records:
        widefield, confocal = database.load(record.pair_id)
        pair = TrainingPair(
            pair_id=record.pair_id,
            cell_id=record.cell_id,
            widefield=widefield,
            confocal=confocal,
            voxel_size_um=record.voxel_size_um,
        )
        pairs.append(trim_to_overlap(pair) if trim else pair)
    return pairs
