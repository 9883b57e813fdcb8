"""Torch state on disk: durable writes and CPU copies of state dicts.

Model files (`enhance.checkpoint`) and training snapshots
(`enhance.snapshot`) are both written here: a temporary file, flushed and
fsync'd, renamed into place, the folder fsync'd, so a kill or a power cut
leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from correlate.pairdb.store import fsync_dir

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["cpu_state", "save_durably"]


def cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of a state dict (training cannot change it)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_durably(payload: Mapping[str, Any], target: Path) -> Path:
    """``torch.save`` to a temporary file, fsync it, rename it into place.

    Parameters
    ----------
    payload : Mapping
        Tensors and plain data.
    target : Path
        The file to (re)place.

    Returns
    -------
    Path
        ``target``.

    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as handle:
        torch.save(dict(payload), handle)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(target)
    fsync_dir(target.parent)
    return target
