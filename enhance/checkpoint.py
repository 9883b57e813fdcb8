"""Model checkpoints: one versioned file with weights and everything to use them.

A checkpoint is a single ``torch.save`` file holding a plain dictionary::

    {"format": "pairscope-enhance-checkpoint", "format_version": 2,
     "metadata_json": "<JSON text>", "state_dict": {name: tensor},
     "transfer_gain": complex tensor or None,
     "coarse_state_dict": {name: tensor} or None}

It loads with ``torch.load(..., weights_only=True)``: no pickled code runs. The
JSON metadata holds the architecture, the voxel size the model was trained
for, the normalisation, the training-data provenance (catalog sha256, pair and
cell ids), metrics, the training settings and seed, the software version, the
creation time and the command line if given.

``transfer_gain`` is the gain table of the learned linear filter
(:mod:`enhance.transfer`) of a two-channel model; its bin widths are in the
metadata. ``coarse_state_dict`` holds the weights of the coarse stage
(:mod:`enhance.coarse`), if the model has one; its architecture and training
record are in the metadata.

Readers refuse files whose ``format_version`` is not in
:data:`READABLE_VERSIONS`: a change to the architecture or normalisation
semantics must bump it. Version 2 added the learned linear filter, version 3
the coarse stage (a version-2 file reads as a model without one).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from enhance.coarse import CoarseStage, CoarseStageConfig
from enhance.errors import CheckpointError, EnhanceError
from enhance.normalization import PercentileNormalization
from enhance.state_files import cpu_state, save_durably
from enhance.transfer import TransferFunction
from enhance.unet import UNet3D, UNetConfig, unet_with_weights

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "Checkpoint",
    "TrainingProvenance",
    "checkpoint_from_payload",
    "load_checkpoint",
    "software_version",
]

FORMAT_NAME = "pairscope-enhance-checkpoint"
FORMAT_VERSION = 3
READABLE_VERSIONS = (2, 3)
"""Versions this release reads (written: :data:`FORMAT_VERSION`)."""


def software_version() -> str:
    """Installed pairscope version, or ``"unknown"`` when not installed."""
    try:
        return importlib.metadata.version("pairscope")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class TrainingProvenance:
    """Which data a model was trained on.

    Attributes
    ----------
    catalog_sha256 : str or None
        Hash of the paired-image database catalog, given by the caller.
    train_pair_ids, val_pair_ids : tuple of str
        Pairs of the training and validation splits.
    train_cell_ids, val_cell_ids : tuple of str
        Cells of those splits (sorted, unique).

    """

    catalog_sha256: str | None = None
    train_pair_ids: tuple[str, ...] = ()
    val_pair_ids: tuple[str, ...] = ()
    train_cell_ids: tuple[str, ...] = ()
    val_cell_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary."""
        return {
            "catalog_sha256": self.catalog_sha256,
            "train_pair_ids": list(self.train_pair_ids),
            "val_pair_ids": list(self.val_pair_ids),
            "train_cell_ids": list(self.train_cell_ids),
            "val_cell_ids": list(self.val_cell_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingProvenance:
        """Inverse of :meth:`to_dict`."""
        return cls(
            catalog_sha256=data["catalog_sha256"],
            train_pair_ids=tuple(str(v) for v in data["train_pair_ids"]),
            val_pair_ids=tuple(str(v) for v in data["val_pair_ids"]),
            train_cell_ids=tuple(str(v) for v in data["train_cell_ids"]),
            val_cell_ids=tuple(str(v) for v in data["val_cell_ids"]),
        )


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A trained model with everything needed to apply and trace it.

    Attributes
    ----------
    unet : UNetConfig
        Architecture.
    state_dict : mapping of str to torch.Tensor
        Weights (on the CPU).
    normalization : PercentileNormalization
        Intensity normalisation of inputs and targets.
    voxel_size_um : tuple of float
        ``(dz, dy, dx)`` of the training data in um.
    transfer : TransferFunction or None
        Learned linear filter whose output is the network's second input
        channel; present exactly when ``unet.in_channels == 2``.
    coarse : CoarseStage or None
        Coarse stage applied after the network (:mod:`enhance.coarse`).
    provenance : TrainingProvenance
        Training data.
    metrics : dict of str to float
        Validation (and later test) metrics.
    training : dict
        JSON-safe training settings and summary (epochs run, best epoch, ...).
    seed : int or None
        Seed of the training run.
    command_line : tuple of str or None
        Command that made the model, if given.
    software_version : str
        pairscope version that wrote the file.
    created_utc : str
        ISO 8601 creation time.

    """

    unet: UNetConfig
    state_dict: Mapping[str, torch.Tensor]
    normalization: PercentileNormalization
    voxel_size_um: tuple[float, float, float]
    transfer: TransferFunction | None = None
    coarse: CoarseStage | None = None
    provenance: TrainingProvenance = field(default_factory=TrainingProvenance)
    metrics: Mapping[str, float] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    command_line: tuple[str, ...] | None = None
    software_version: str = field(default_factory=software_version)
    created_utc: str = field(default_factory=_utc_now)

    def __post_init__(self) -> None:
        if (self.transfer is not None) != (self.unet.in_channels == 2):
            raise CheckpointError(
                f"a {self.unet.in_channels}-channel U-Net "
                f"{'needs' if self.unet.in_channels == 2 else 'takes no'} "
                "learned transfer function",
                "the file was edited or written by a different program; re-train",
            )
        if (
            self.coarse is not None
            and self.coarse.config.unet.in_channels != self.unet.in_channels + 1
        ):
            raise CheckpointError(
                f"the coarse stage takes {self.coarse.config.unet.in_channels} "
                f"channels, not the network's {self.unet.in_channels} plus its "
                "prediction",
                "the file was edited or written by a different program; re-train",
            )

    def build_model(self, device: torch.device | str = "cpu") -> UNet3D:
        """The network with these weights, in eval mode, on ``device``.

        Raises
        ------
        CheckpointError
            If the weights do not fit the architecture.

        """
        return unet_with_weights(self.unet, self.state_dict, device)

    def metadata(self) -> dict[str, Any]:
        """All fields except the weights, as a JSON-safe dictionary."""
        return {
            "unet": self.unet.to_dict(),
            "normalization": self.normalization.to_dict(),
            "voxel_size_um": list(self.voxel_size_um),
            "transfer": None if self.transfer is None else self.transfer.to_dict(),
            "coarse": None if self.coarse is None else self.coarse.metadata(),
            "provenance": self.provenance.to_dict(),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "training": dict(self.training),
            "seed": self.seed,
            "command_line": None
            if self.command_line is None
            else list(self.command_line),
            "software_version": self.software_version,
            "created_utc": self.created_utc,
        }

    def with_metrics(self, metrics: Mapping[str, float]) -> Checkpoint:
        """Copy with ``metrics`` merged into the recorded metrics."""
        return replace(self, metrics={**self.metrics, **metrics})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the checkpoint atomically and durably (fsync'd temporary file, rename).

        Returns
        -------
        Path
            The file written.

        """
        target = Path(path)
        try:
            text = json.dumps(self.metadata(), allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise EnhanceError(f"checkpoint metadata is not JSON-safe: {exc}") from exc
        payload = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "metadata_json": text,
            "state_dict": cpu_state(self.state_dict),
            "transfer_gain": None
            if self.transfer is None
            else torch.from_numpy(self.transfer.gain.copy()),
            "coarse_state_dict": None
            if self.coarse is None
            else cpu_state(self.coarse.state_dict),
        }
        return save_durably(payload, target)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a checkpoint written by :meth:`Checkpoint.save`.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    Checkpoint

    Raises
    ------
    CheckpointError
        If the file is missing, not a torch file, corrupt, another program's
        file, of another format version, or its weights do not fit its
        architecture.

    """
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(
            f"model file {source} does not exist", "give the path of a trained model"
        )
    try:
        raw = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable files
        summary = (
            str(exc).strip().splitlines()[0][:200]
            if str(exc).strip()
            else type(exc).__name__
        )
        if "Weights only load failed" in str(exc):
            # torch's own advice (load with weights_only=False) would run
            # whatever code the file carries: never repeat it
            summary = (
                "it holds Python objects besides tensors and plain data, which "
                "pairscope never loads: a file from another program, or crafted"
            )
        raise CheckpointError(
            f"{source} is not a readable torch checkpoint (corrupt, truncated or "
            f"another file type: {summary})",
            "re-copy the file or re-train the model",
        ) from exc
    return checkpoint_from_payload(raw, source=str(source))


def checkpoint_from_payload(raw: object, *, source: str) -> Checkpoint:
    """Validate a loaded payload dictionary and build the checkpoint.

    Raises
    ------
    CheckpointError
        See :func:`load_checkpoint`.

    """
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{source} is a torch file but not a pairscope enhancement model "
            f"(no 'format': {FORMAT_NAME!r} entry)",
            "models from CAREamics, CSBDeep or plain state dicts cannot be used "
            "directly; train one with pairscope",
        )
    version = raw.get("format_version")
    if version not in READABLE_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise CheckpointError(
            f"{source} has checkpoint format version {version!r}; this pairscope "
            f"({software_version()}) reads versions {readable}",
            "use the pairscope release that wrote the model, or re-train it",
        )
    try:
        meta = json.loads(raw["metadata_json"])
        state = raw["state_dict"]
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise TypeError("state_dict is not a mapping of tensors")
        voxel = tuple(float(v) for v in meta["voxel_size_um"])
        if len(voxel) != 3:
            raise ValueError(f"voxel_size_um {voxel} does not have 3 entries")
        command = meta["command_line"]
        transfer = None
        if meta["transfer"] is not None:
            gain = raw["transfer_gain"]
            if not isinstance(gain, torch.Tensor):
                raise TypeError("transfer_gain is not a tensor")
            transfer = TransferFunction.from_dict(meta["transfer"], gain.numpy())
        coarse = None
        if meta.get("coarse") is not None:
            coarse_state = raw["coarse_state_dict"]
            if not isinstance(coarse_state, dict) or not all(
                isinstance(v, torch.Tensor) for v in coarse_state.values()
            ):
                raise TypeError("coarse_state_dict is not a mapping of tensors")
            coarse = CoarseStage(
                config=CoarseStageConfig.from_dict(meta["coarse"]["config"]),
                state_dict=coarse_state,
                training=dict(meta["coarse"]["training"]),
            )
        checkpoint = Checkpoint(
            unet=UNetConfig.from_dict(meta["unet"]),
            state_dict=state,
            normalization=PercentileNormalization.from_dict(meta["normalization"]),
            voxel_size_um=(voxel[0], voxel[1], voxel[2]),
            transfer=transfer,
            coarse=coarse,
            provenance=TrainingProvenance.from_dict(meta["provenance"]),
            metrics={str(k): float(v) for k, v in meta["metrics"].items()},
            training=dict(meta["training"]),
            seed=None if meta["seed"] is None else int(meta["seed"]),
            command_line=None if command is None else tuple(str(c) for c in command),
            software_version=str(meta["software_version"]),
            created_utc=str(meta["created_utc"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError, EnhanceError) as exc:
        raise CheckpointError(
            f"{source} is a pairscope model file with damaged metadata ({exc})",
            "re-copy the file or re-train the model",
        ) from exc
    checkpoint.build_model()  # raises CheckpointError if weights do not fit
    if checkpoint.coarse is not None:
        checkpoint.coarse.build_model()
    return checkpoint
