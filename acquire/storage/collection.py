"""The dataset folder as one OME-Zarr collection that lists its stacks.

Each committed stack is its own OME-Zarr image (``NAME.ome.zarr``). Once one
is committed, the dataset folder is also a Zarr v3 group in the
bioformats2raw layout of OME-Zarr 0.5 (the only way the format has to
collect several images): its ``zarr.json`` carries
``"bioformats2raw.layout": 3`` and ``OME/zarr.json`` lists the committed
stacks under ``series``. A viewer given the dataset folder (napari with
napari-ome-zarr, or any OME-Zarr reader) then finds every stack; each
stack's own translation places it on the stage.

``OME/zarr.json`` is rewritten atomically after every commit (the root's
once); they are an
index, never the record of what is committed (that is the journal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acquire.storage.durable import write_json_atomic
from acquire.storage.ngff import NGFF_VERSION

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = ["BF2RAW_LAYOUT", "OME_GROUP", "write_collection_index"]

BF2RAW_LAYOUT = 3
"""bioformats2raw layout version (OME-Zarr's transitional collection spec)."""
OME_GROUP = "OME"
"""Sub-group whose attributes list the collection's images."""


def _group(attributes: dict[str, object]) -> dict[str, object]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def write_collection_index(dataset: Path, stack_folders: Iterable[str]) -> None:
    """Make ``dataset`` an OME-Zarr collection listing ``stack_folders``.

    Parameters
    ----------
    dataset : Path
        The dataset folder.
    stack_folders : iterable of str
        Folder names of the committed stacks (``NAME.ome.zarr``), relative
        to ``dataset``; listed sorted (acquisition order for pairscope's
        ``tTTTT_pPPPP_gGGGG`` names). Nothing is written for none.

    Raises
    ------
    OSError
        A file cannot be written.

    """
    series = sorted(stack_folders)
    if not series:
        return
    ome = dataset / OME_GROUP
    ome.mkdir(exist_ok=True)
    write_json_atomic(
        ome / "zarr.json",
        _group({"ome": {"version": NGFF_VERSION, "series": series}}),
    )
    root = dataset / "zarr.json"
    if not root.is_file():  # the same every time: written once
        write_json_atomic(
            root,
            _group(
                {
                    "ome": {
                        "version": NGFF_VERSION,
                        "bioformats2raw.layout": BF2RAW_LAYOUT,
                    }
                }
            ),
        )
