"""Live enhancement: every completed wide-field stack through the model, beside the raw.

A :class:`LiveEnhancer` is the consumer of an acquisition's bounded processing
queue. It resamples each raw stack onto the model's voxel grid (the confocal
grid it was trained on: finer than the wide-field camera's), enhances it with
tiled inference and commits the result, crash-safe, to a second dataset
``<raw dataset>-enhanced`` with the same stack names. When the model falls
behind, stacks are dropped and counted; acquisition never waits. Torch gets
one thread by default, so the other cores stay with acquisition.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from acquire.errors import UserError
from acquire.hardware.consumers import CompletedStack, StackQueue
from acquire.storage.dataset import Dataset
from acquire.storage.recorded_paths import record_path
from acquire.storage.spec import StackSpec
from acquire.workflows.acquisition import AcquisitionRequest, run_acquisition
from enhance.voxels import resample_stack

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pymmcore_plus import CMMCorePlus

    from acquire.hardware.controller import AcquisitionController, AcquisitionResult
    from enhance.predict import Enhancer

__all__ = [
    "EnhancedStack",
    "LiveEnhancer",
    "LiveRunResult",
    "enhanced_dataset_path",
    "run_live_enhancement",
]

OnEnhanced = Callable[["EnhancedStack"], None]


@dataclass(frozen=True)
class EnhancedStack:
    """A raw stack and its enhanced version (for displays).

    Attributes
    ----------
    name : str
        Stack name (the same in both datasets).
    raw : ndarray
        Raw (z, y, x) stack on the camera grid.
    raw_voxel_size_um : tuple of float
        Its (dz, dy, dx).
    enhanced : ndarray
        Enhanced (z, y, x) stack on the model's grid.
    voxel_size_um : tuple of float
        The model's (dz, dy, dx).
    latency_s : float
        From the stack's commit to the enhanced stack's commit.

    """

    name: str
    raw: NDArray[Any]
    raw_voxel_size_um: tuple[float, float, float]
    enhanced: NDArray[np.float32]
    voxel_size_um: tuple[float, float, float]
    latency_s: float


def enhanced_dataset_path(raw: Path) -> Path:
    """Where the enhanced stacks of a raw dataset go: ``<raw>-enhanced``."""
    raw = Path(raw)
    return raw.with_name(raw.name + "-enhanced")


def load_enhancer(model: Path, *, threads: int = 1) -> Enhancer:
    """The model, ready for stack after stack, with a bounded thread count."""
    import torch

    from enhance.errors import EnhanceError
    from enhance.predict import Enhancer

    torch.set_num_threads(max(1, threads))
    try:
        return Enhancer(model, device="auto")
    except EnhanceError as error:
        raise UserError(
            str(error), "Give a model file written by pairscope train."
        ) from None


@dataclass
class LiveEnhancer:
    """Consumer that enhances and stores each completed stack.

    Parameters
    ----------
    enhancer : Enhancer
        The loaded model.
    out : Path
        Dataset folder of the enhanced stacks (created on first use).
    on_enhanced : callable, optional
        Called with each :class:`EnhancedStack`, from the worker thread.
    manifest : mapping, optional
        Extra manifest keys of the enhanced dataset (e.g. the raw dataset).

    """

    enhancer: Enhancer
    out: Path
    on_enhanced: OnEnhanced | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    _dataset: Dataset | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def _output(self) -> Dataset:
        with self._lock:
            if self._dataset is None:
                checkpoint = self.enhancer.checkpoint
                self._dataset = Dataset.create(
                    self.out,
                    {
                        **self.manifest,
                        "kind": "enhanced",
                        "model": {
                            "voxel_size_um": list(checkpoint.voxel_size_um),
                            "software_version": checkpoint.software_version,
                            "created_utc": checkpoint.created_utc,
                            "provenance": checkpoint.provenance.to_dict(),
                        },
                    },
                )
            return self._dataset

    def __call__(self, stack: CompletedStack) -> None:
        """Enhance one committed stack and commit the result."""
        started = time.perf_counter()
        raw = np.asarray(stack.data)[0]
        voxel = self.enhancer.checkpoint.voxel_size_um
        on_grid = resample_stack(raw, stack.voxel_size_um, voxel)
        enhanced = self.enhancer.predict(on_grid, voxel_size_um=voxel).image
        dataset = self._output()
        writer = dataset.begin_stack(
            StackSpec(
                name=stack.name,
                n_channels=1,
                n_planes=int(enhanced.shape[0]),
                shape_yx=(int(enhanced.shape[1]), int(enhanced.shape[2])),
                dtype="float32",
                voxel_size_um=voxel,
                channel_names=("enhanced",),
                position_name=str(stack.metadata.get("position_name", "")),
                scope_name=str(stack.metadata.get("scope_name", "")),
            )
        )
        for z, plane in enumerate(enhanced):
            writer.write_plane(0, z, plane, {"source_stack": stack.name, "z": z})
        writer.commit()
        latency = time.perf_counter() - started
        self.latencies_s.append(latency)
        if self.on_enhanced is not None:
            self.on_enhanced(
                EnhancedStack(
                    stack.name, raw, stack.voxel_size_um, enhanced, voxel, latency
                )
            )

    def finish(self) -> None:
        """Mark the enhanced dataset complete (if anything was written)."""
        if self._dataset is not None:
            self._dataset.mark_complete()


@dataclass
class LiveRunResult:
    """An acquisition with live enhancement."""

    acquisition: AcquisitionResult
    enhanced_dataset: Path
    enhanced: int
    dropped: int
    failed: int
    latencies_s: list[float]


def run_live_enhancement(
    request: AcquisitionRequest,
    model: Path,
    *,
    core: CMMCorePlus | None = None,
    out_enhanced: Path | None = None,
    queue_size: int = 1,
    threads: int = 1,
    on_enhanced: OnEnhanced | None = None,
    connect: Callable[[AcquisitionController], None] | None = None,
) -> LiveRunResult:
    """Acquire as ``pairscope acquire`` does, enhancing each stack as it completes.

    Parameters
    ----------
    request : AcquisitionRequest
        The acquisition.
    model : Path
        Checkpoint of ``pairscope train``.
    core : CMMCorePlus, optional
        The open scope of ``request.config_path``; it stays open. If None,
        the configuration is opened for the run.
    out_enhanced : Path, optional
        Enhanced dataset (default: ``<out>-enhanced``); must not exist.
    queue_size : int, optional
        Stacks waiting for the model; more are dropped.
    threads : int, optional
        Torch CPU threads.
    on_enhanced : callable, optional
        Called with each enhanced stack.
    connect : callable, optional
        Called with the acquisition controller before it runs.

    Returns
    -------
    LiveRunResult

    """
    target = out_enhanced or enhanced_dataset_path(request.out)
    if target.exists() and any(target.iterdir()):
        raise UserError(
            f"{target} already exists and is not empty",
            "Choose another --out, or move the old enhanced stacks away.",
        )
    live = LiveEnhancer(
        load_enhancer(model, threads=threads),
        target,
        on_enhanced=on_enhanced,
        manifest={
            "raw_dataset": record_path(Path(request.out), relative_to=target),
            "model_file": record_path(Path(model), relative_to=target),
        },
    )
    queue = StackQueue(live, maxsize=queue_size, name="enhance")
    acquisition = run_acquisition(
        request, core=core, consumers=[queue], connect=connect
    )
    live.finish()
    return LiveRunResult(
        acquisition=acquisition,
        enhanced_dataset=target,
        enhanced=queue.stats.processed,
        dropped=queue.stats.dropped,
        failed=queue.stats.failed,
        latencies_s=list(live.latencies_s),
    )
