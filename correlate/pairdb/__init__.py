"""The paired-image database: registered wide-field/confocal stacks of the same cells.

A folder with an SQLite catalog and one OME-Zarr (NGFF 0.5) per pair; splits
by cell; OME-TIFF import of stacks acquired elsewhere; PNG montages. Plain
arrays, numbers and JSON values in and out: it depends on no other part of
pairscope.

The names below load their modules when first used, so importing this
package (e.g. for `PairDatabaseError` or `SPLITS`) does not load zarr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.lazy_exports import lazy_facade

if TYPE_CHECKING:
    from correlate.pairdb.database import PairDatabase
    from correlate.pairdb.errors import DuplicatePairError, PairDatabaseError
    from correlate.pairdb.montage import montage_array, write_montage_png
    from correlate.pairdb.ome_import import ImportedStack, read_ome_tiff_stack
    from correlate.pairdb.records import CHANNELS, SPLITS, PairRecord, StackMeta
    from correlate.pairdb.splits import (
        DEFAULT_FRACTIONS,
        assign_splits,
        cell_unit_hash,
    )

_HOMES = {
    "CHANNELS": "records",
    "DEFAULT_FRACTIONS": "splits",
    "SPLITS": "records",
    "DuplicatePairError": "errors",
    "ImportedStack": "ome_import",
    "PairDatabase": "database",
    "PairDatabaseError": "errors",
    "PairRecord": "records",
    "StackMeta": "records",
    "assign_splits": "splits",
    "cell_unit_hash": "splits",
    "montage_array": "montage",
    "read_ome_tiff_stack": "ome_import",
    "write_montage_png": "montage",
}

__all__ = [
    "CHANNELS",
    "DEFAULT_FRACTIONS",
    "SPLITS",
    "DuplicatePairError",
    "ImportedStack",
    "PairDatabase",
    "PairDatabaseError",
    "PairRecord",
    "StackMeta",
    "assign_splits",
    "cell_unit_hash",
    "montage_array",
    "read_ome_tiff_stack",
    "write_montage_png",
]


__getattr__, __dir__ = lazy_facade(__name__, _HOMES)
