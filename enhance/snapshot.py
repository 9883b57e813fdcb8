"""Training snapshots: where a run stands, saved as it goes, to continue after a kill.

A model file (`enhance.checkpoint`) holds the best weights of a finished run.
A snapshot holds what continuing an unfinished run exactly needs: the current
and best weights, the optimiser, learning-rate schedule and gradient-scaler
states, the random states, the epochs run and the patience count. A run
resumed from the snapshot of epoch k continues as if it had never stopped
(same patches, same losses, on the same machine and device).

A snapshot also records a fingerprint of its run (the training settings and
the pairs of each split); resuming with other settings or other data is
refused, since the result would be neither run.

Files are written durably: a temporary file, flushed and fsync'd, renamed
over the old snapshot, and the folder fsync'd, so a kill or a power cut at any
moment leaves the previous snapshot or the new one, never a torn file. They
are read with ``weights_only=True``: a crafted file runs no code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from enhance.errors import EnhanceError
from enhance.state_files import cpu_state, save_durably

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "SNAPSHOT_FORMAT",
    "EpochRecord",
    "TrainingSnapshot",
    "load_snapshot",
    "save_snapshot",
]

SNAPSHOT_FORMAT = "pairscope-training-snapshot"
_SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class EpochRecord:
    """Losses of one epoch (normalised units)."""

    epoch: int
    train_loss: float
    val_loss: float
    learning_rate: float
    seconds: float


@dataclass(frozen=True, eq=False)
class TrainingSnapshot:
    """A training run at the end of an epoch.

    Attributes
    ----------
    epoch : int
        Epochs completed.
    model_state, best_state : dict of str to Tensor
        Current weights, and those of the best epoch so far.
    optimiser_state, scheduler_state, scaler_state : dict
        ``state_dict()`` of the Adam optimiser, the plateau schedule and the
        mixed-precision gradient scaler.
    best_loss : float
        Best validation loss so far.
    best_epoch : int
        Its epoch.
    stale : int
        Epochs since the best one (patience count).
    history : tuple of EpochRecord
        Every epoch so far.
    numpy_rng_state : dict
        ``bit_generator.state`` of the patch sampler.
    torch_rng_state : Tensor
        ``torch.get_rng_state()``.
    elapsed_s : float
        Training time spent so far (counts against ``max_duration_s``).

    """

    epoch: int
    model_state: dict[str, torch.Tensor]
    optimiser_state: dict[str, Any]
    scheduler_state: dict[str, Any]
    scaler_state: dict[str, Any]
    best_loss: float
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    stale: int
    history: tuple[EpochRecord, ...]
    numpy_rng_state: dict[str, Any]
    torch_rng_state: torch.Tensor
    elapsed_s: float


def save_snapshot(
    path: Path, snapshot: TrainingSnapshot, *, fingerprint: Mapping[str, Any]
) -> Path:
    """Write a snapshot durably (see module notes).

    Parameters
    ----------
    path : Path
        The snapshot file.
    snapshot : TrainingSnapshot
        The state to save.
    fingerprint : Mapping
        JSON-safe description of the run (settings and pairs).

    Returns
    -------
    Path
        ``path``.

    """
    payload = {
        "format": SNAPSHOT_FORMAT,
        "format_version": _SNAPSHOT_VERSION,
        "fingerprint_json": json.dumps(fingerprint, sort_keys=True),
        "history_json": json.dumps([asdict(r) for r in snapshot.history]),
        "numpy_rng_json": json.dumps(snapshot.numpy_rng_state),
        "epoch": snapshot.epoch,
        "model_state": cpu_state(snapshot.model_state),
        "best_state": cpu_state(snapshot.best_state),
        "optimiser_state": snapshot.optimiser_state,
        "scheduler_state": snapshot.scheduler_state,
        "scaler_state": snapshot.scaler_state,
        "best_loss": snapshot.best_loss,
        "best_epoch": snapshot.best_epoch,
        "stale": snapshot.stale,
        "torch_rng_state": snapshot.torch_rng_state,
        "elapsed_s": snapshot.elapsed_s,
    }
    return save_durably(payload, path)


def load_snapshot(path: Path, *, fingerprint: Mapping[str, Any]) -> TrainingSnapshot:
    """Read a snapshot of this very run.

    Parameters
    ----------
    path : Path
        The snapshot file.
    fingerprint : Mapping
        The run being resumed (see `save_snapshot`); it must equal the saved one.

    Returns
    -------
    TrainingSnapshot

    Raises
    ------
    EnhanceError
        The file is missing, unreadable, not a snapshot, or of another run
        (naming the settings that differ).

    """
    if not path.is_file():
        raise EnhanceError(
            f"there is no interrupted training to resume: {path} does not exist",
            "start the training without --resume",
        )
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(raw, dict) or raw.get("format") != SNAPSHOT_FORMAT:
            raise ValueError("not a pairscope training snapshot")
        if raw.get("format_version") != _SNAPSHOT_VERSION:
            raise ValueError(f"snapshot format version {raw.get('format_version')}")
        saved = json.loads(raw["fingerprint_json"])
        history = tuple(EpochRecord(**r) for r in json.loads(raw["history_json"]))
        snapshot = TrainingSnapshot(
            epoch=int(raw["epoch"]),
            model_state=dict(raw["model_state"]),
            optimiser_state=dict(raw["optimiser_state"]),
            scheduler_state=dict(raw["scheduler_state"]),
            scaler_state=dict(raw["scaler_state"]),
            best_loss=float(raw["best_loss"]),
            best_epoch=int(raw["best_epoch"]),
            best_state=dict(raw["best_state"]),
            stale=int(raw["stale"]),
            history=history,
            numpy_rng_state=dict(json.loads(raw["numpy_rng_json"])),
            torch_rng_state=raw["torch_rng_state"],
            elapsed_s=float(raw["elapsed_s"]),
        )
    except Exception as exc:  # torch and json raise many types for bad files
        summary = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise EnhanceError(
            f"{path} is not a readable training snapshot ({summary})",
            "start the training again without --resume (delete the file)",
        ) from None
    expected = json.loads(json.dumps(fingerprint, sort_keys=True))
    if saved != expected:
        differ = sorted(
            k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k)
        )
        raise EnhanceError(
            f"{path} is the snapshot of another run (it differs in "
            f"{', '.join(differ)})",
            "resume with the same database and options as the interrupted run, "
            "or start a new training without --resume",
        )
    return snapshot
