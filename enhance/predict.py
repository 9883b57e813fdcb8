"""Tiled 3-D inference with a trained model.

A stack is normalised with its own percentiles (as in training), padded by
reflection, cut into overlapping tiles, passed through the network tile by
tile, and put back together. Each tile carries ``overlap`` voxels of context on
every side that are discarded (they see the tile border), and neighbouring
tiles' kept cores overlap by at least ``blend`` voxels, where they are
cross-faded with a raised-cosine window and normalised by the summed weights.

With ``overlap`` at least the network's receptive radius (the default), a
tile's kept core is exactly what the network gives on the whole stack, so tiled
and whole-stack inference agree to float rounding; tiles then start on the
pooling grid. A smaller ``overlap`` is faster and leaves seams that the blend
hides.

A model with a coarse stage (:mod:`enhance.coarse`) then block-averages the
network input and the fine prediction, runs its coarse network on them (tiled
the same way, always with its full receptive radius as overlap, so the result
does not depend on the tiling) and adds the interpolated correction.

Output units: see :mod:`enhance.normalization` (the input stack's intensity
scale).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from enhance.checkpoint import Checkpoint, load_checkpoint
from enhance.coarse import coarse_input, upsample_correction
from enhance.device import configure_threads, select_device
from enhance.engines import InferenceEngine, make_engine, resolve_engine
from enhance.errors import EnhanceError
from enhance.transfer import network_input
from enhance.voxels import VOXEL_SIZE_RTOL, check_model_grid, resample_stack

if TYPE_CHECKING:
    import os

    import torch
    from numpy.typing import ArrayLike, NDArray

    from enhance.unet import UNetConfig

__all__ = [
    "Enhancer",
    "PredictionResult",
    "enhance_stack",
    "predict_stack",
    "single_tile_padding",
]

DEFAULT_CORE_SHAPE = (64, 256, 256)
"""Largest kept (z, y, x) core of an automatic tile (``overlap`` is added).

A 512 x 512 field runs as 2 x 2 tiles of about 308 x 308 instead of 3 x 3 of
228 x 228: with the 23-voxel context on each side, the tiles then cover 1.45
times the field's pixels instead of 1.78, at the same peak memory
(``bench/engines.py``)."""
DEFAULT_BLEND = 8


@dataclass(frozen=True, eq=False)
class PredictionResult:
    """An enhanced stack and how it was computed.

    Attributes
    ----------
    image : ndarray
        ``(z, y, x)`` float32, same shape as the input.
    n_tiles : int
        Tiles the network ran on.
    tile_shape : tuple of int
        Shape of each tile (with context).
    seconds : float
        Wall time, normalisation and resampling included.
    voxels_per_s : float
        Input voxels per second.
    resampled : bool
        Whether the stack was resampled to the model's voxel size and back.

    """

    image: NDArray[np.float32]
    n_tiles: int
    tile_shape: tuple[int, int, int]
    seconds: float
    voxels_per_s: float
    resampled: bool


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def _ramp(
    length: int, rise: int, *, rise_front: bool, rise_back: bool
) -> NDArray[np.float32]:
    """1-D window: raised-cosine rise over ``rise`` voxels at the chosen ends."""
    window = np.ones(length, dtype=np.float64)
    if rise > 0:
        up = 0.5 - 0.5 * np.cos(np.pi * (np.arange(rise) + 1) / (rise + 1))
        if rise_front:
            window[:rise] = np.minimum(window[:rise], up)
        if rise_back:
            window[length - rise :] = np.minimum(window[length - rise :], up[::-1])
    return window.astype(np.float32)


@dataclass(frozen=True)
class _AxisPlan:
    tile: int
    halo: int
    step: int
    n_tiles: int
    pad_back: int

    @property
    def core(self) -> int:
        return self.tile - 2 * self.halo


def _plan_axis(
    size: int, tile: int | None, halo: int, blend: int, multiple: int, axis: str
) -> _AxisPlan:
    whole = _round_up(size + 2 * halo, multiple)
    if tile is None:
        # fewest tiles with cores of at most the default, split evenly
        n_tiles = math.ceil(size / DEFAULT_CORE_SHAPE["zyx".index(axis)])
        core = math.ceil((size + (n_tiles - 1) * (blend + multiple)) / n_tiles)
        tile = _round_up(core + 2 * halo, multiple)
    tile = min(_round_up(tile, multiple), whole)
    core = tile - 2 * halo
    if core < 1:
        raise EnhanceError(
            f"tile size {tile} along {axis} leaves nothing after {halo} voxels of "
            "overlap on each side",
            f"use a tile of at least {_round_up(2 * halo + 2 * multiple, multiple)} "
            f"along {axis} or a smaller overlap",
        )
    if core >= size:
        return _AxisPlan(tile, halo, multiple, 1, tile - size - halo)
    # tiles start on the pooling grid; the blend shrinks if the core is short
    step = max(((core - min(blend, core - 1)) // multiple) * multiple, multiple)
    if step > core:
        raise EnhanceError(
            f"tile size {tile} along {axis} is too small for {halo} voxels of overlap "
            f"and a {blend}-voxel blend on a pooling grid of {multiple}",
            "use a larger tile or a smaller overlap/blend",
        )
    n_tiles = math.ceil((size - core) / step) + 1
    length = (n_tiles - 1) * step + tile
    return _AxisPlan(tile, halo, step, n_tiles, length - size - halo)


def single_tile_padding(size: int, halo: int, multiple: int) -> tuple[int, int]:
    """Voxels padded before and after an axis that one tile covers whole.

    The padding `Enhancer` gives a stack its tile spans entirely: ``halo``
    in front (reflected), and behind up to the pooling grid's ``multiple``.
    """
    whole = _round_up(size + 2 * halo, multiple)
    plan = _plan_axis(size, whole, halo, 0, multiple, "z")
    return plan.halo, plan.pad_back


class Enhancer:
    """A loaded model, ready to enhance stack after stack (e.g. live).

    Parameters
    ----------
    checkpoint : Checkpoint or str or path-like
        The model, or its file.
    device : str or torch.device, optional
        ``None``/``"auto"``: CUDA, MPS or CPU.
    engine : {"auto", "torch", "onnxruntime"}, optional
        What runs the networks (see `enhance.engines`); ``auto``: torch.

    """

    def __init__(
        self,
        checkpoint: Checkpoint | str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        engine: str = "auto",
    ) -> None:
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = load_checkpoint(checkpoint)
        self.checkpoint = checkpoint
        self.device = select_device(device)
        if self.device.type == "cpu":
            configure_threads(None)
        self.model = checkpoint.build_model(self.device)
        self.coarse_model = (
            None
            if checkpoint.coarse is None
            else checkpoint.coarse.build_model(self.device)
        )
        self.engine_name = resolve_engine(engine, self.device)
        self._engine = make_engine(
            self.engine_name,
            self.model,
            in_channels=checkpoint.unet.in_channels,
            shape_multiple=checkpoint.unet.shape_multiple,
            device=self.device,
        )
        self._coarse_engine = (
            None
            if checkpoint.coarse is None or self.coarse_model is None
            else make_engine(
                self.engine_name,
                self.coarse_model,
                in_channels=checkpoint.coarse.config.unet.in_channels,
                shape_multiple=checkpoint.coarse.config.unet.shape_multiple,
                device=self.device,
            )
        )

    def enhance_normalised(
        self,
        stack: NDArray[np.float32],
        *,
        tile_shape: tuple[int, int, int] | None = None,
        overlap: tuple[int, int, int] | None = None,
        blend: int = DEFAULT_BLEND,
        batch_size: int = 1,
        amp: bool = False,
    ) -> tuple[NDArray[np.float32], int, tuple[int, int, int]]:
        """Run the model on an already normalised stack.

        ``stack`` is ``(z, y, x)`` for a one-channel model, or the
        ``(channels, z, y, x)`` network input (see
        :func:`enhance.transfer.network_input`). The fine network runs tile
        by tile with the given tiling; a coarse stage, if the model has one,
        then runs on the block-averaged stack with its own automatic tiling
        (receptive-radius overlap) and its correction is added.

        Returns
        -------
        image, n_tiles, tile_shape
            The normalised prediction, and the fine network's number of tiles
            and their shape.

        """
        config = self.checkpoint.unet
        if stack.ndim == 3:
            stack = stack[None]
        if stack.ndim != 4 or stack.shape[0] != config.in_channels:
            raise EnhanceError(
                f"the model takes {config.in_channels} input channel(s); got an "
                f"array of shape {stack.shape}"
            )
        fine, n_tiles, shape = self._run_tiled(
            self._engine,
            config,
            stack,
            tile_shape=tile_shape,
            overlap=overlap,
            blend=blend,
            batch_size=batch_size,
            amp=amp,
        )
        coarse = self.checkpoint.coarse
        if coarse is None or self._coarse_engine is None:
            return fine, n_tiles, shape
        factor = coarse.config.factor
        x = coarse_input(stack, fine, factor)
        corrected, _, _ = self._run_tiled(
            self._coarse_engine,
            coarse.config.unet,
            x,
            tile_shape=None,
            overlap=None,
            blend=blend,
            batch_size=1,
            amp=amp,
        )
        correction = upsample_correction(corrected - x[-1], factor, fine.shape)
        return fine + correction, n_tiles, shape

    def _run_tiled(
        self,
        engine: InferenceEngine,
        config: UNetConfig,
        stack: NDArray[np.float32],
        *,
        tile_shape: tuple[int, int, int] | None,
        overlap: tuple[int, int, int] | None,
        blend: int,
        batch_size: int,
        amp: bool,
    ) -> tuple[NDArray[np.float32], int, tuple[int, int, int]]:
        """One network over a ``(channels, z, y, x)`` stack, tile by tile."""
        spatial = stack.shape[1:]
        halo = config.receptive_radius if overlap is None else tuple(overlap)
        if len(halo) != 3 or min(halo) < 0:
            raise EnhanceError(
                f"overlap {overlap} must be three non-negative voxel counts"
            )
        if batch_size < 1:
            raise EnhanceError(f"batch_size must be >= 1, got {batch_size}")
        tiles: tuple[int | None, ...] = (
            (None,) * 3 if tile_shape is None else tuple(tile_shape)
        )
        plans = [
            _plan_axis(size, tile, h, blend, m, axis)
            for size, tile, h, m, axis in zip(
                spatial, tiles, halo, config.shape_multiple, "zyx", strict=True
            )
        ]
        padded = np.pad(
            stack, [(0, 0), *((p.halo, p.pad_back) for p in plans)], mode="reflect"
        ).astype(np.float32, copy=False)
        out = np.zeros(spatial, dtype=np.float32)
        weight_sum = np.zeros(spatial, dtype=np.float32)
        origins = [
            (i, j, k)
            for i in range(plans[0].n_tiles)
            for j in range(plans[1].n_tiles)
            for k in range(plans[2].n_tiles)
        ]
        windows = []
        for plan in plans:
            rise = plan.core - plan.step if plan.n_tiles > 1 else 0
            windows.append(
                [
                    _ramp(
                        plan.core,
                        rise,
                        rise_front=t > 0,
                        rise_back=t < plan.n_tiles - 1,
                    )
                    for t in range(plan.n_tiles)
                ]
            )
        shape = tuple(p.tile for p in plans)
        for first in range(0, len(origins), batch_size):
            batch = origins[first : first + batch_size]
            x = np.stack(
                [
                    padded[
                        (
                            slice(None),
                            *(
                                slice(t * p.step, t * p.step + p.tile)
                                for t, p in zip(o, plans, strict=True)
                            ),
                        )
                    ]
                    for o in batch
                ]
            )
            pred_np = engine.run(x, amp=amp)[:, 0]
            for o, tile_out in zip(batch, pred_np, strict=True):
                dest, src = [], []
                for t, p, size in zip(o, plans, spatial, strict=True):
                    start = t * p.step
                    length = min(p.core, size - start)
                    dest.append(slice(start, start + length))
                    src.append(slice(p.halo, p.halo + length))
                w = (
                    windows[0][o[0]][:, None, None]
                    * windows[1][o[1]][None, :, None]
                    * windows[2][o[2]][None, None, :]
                )[tuple(slice(0, s.stop - s.start) for s in src)]
                out[tuple(dest)] += w * tile_out[tuple(src)]
                weight_sum[tuple(dest)] += w
        return out / weight_sum, len(origins), (shape[0], shape[1], shape[2])

    def predict(
        self,
        stack: ArrayLike,
        *,
        voxel_size_um: tuple[float, float, float],
        tile_shape: tuple[int, int, int] | None = None,
        overlap: tuple[int, int, int] | None = None,
        blend: int = DEFAULT_BLEND,
        batch_size: int = 1,
        resample: bool = False,
        voxel_size_rtol: float = VOXEL_SIZE_RTOL,
        normalized_output: bool = False,
        amp: bool = False,
    ) -> PredictionResult:
        """Enhance one stack; see :func:`predict_stack` for the parameters."""
        started = time.perf_counter()
        data = np.asarray(stack, dtype=np.float32)
        if data.ndim != 3 or min(data.shape) < 1:
            raise EnhanceError(f"expected a (z, y, x) stack, got shape {data.shape}")
        if not np.all(np.isfinite(data)):
            raise EnhanceError("the stack holds NaN or inf values")
        original_shape = data.shape
        resampled = check_model_grid(
            voxel_size_um,
            self.checkpoint.voxel_size_um,
            resample=resample,
            rtol=voxel_size_rtol,
        )
        if resampled:
            data = resample_stack(data, voxel_size_um, self.checkpoint.voxel_size_um)
        norm = self.checkpoint.normalization
        scale = norm.scale(data)
        pred, n_tiles, tile = self.enhance_normalised(
            network_input(norm.apply(data, scale), self.checkpoint.transfer),
            tile_shape=tile_shape,
            overlap=overlap,
            blend=blend,
            batch_size=batch_size,
            amp=amp,
        )
        image = pred if normalized_output else norm.invert(pred, scale)
        if resampled:
            image = resample_stack(
                image,
                self.checkpoint.voxel_size_um,
                voxel_size_um,
                shape=(original_shape[0], original_shape[1], original_shape[2]),
            )
        seconds = time.perf_counter() - started
        return PredictionResult(
            image=image.astype(np.float32, copy=False),
            n_tiles=n_tiles,
            tile_shape=tile,
            seconds=seconds,
            voxels_per_s=float(np.prod(original_shape)) / max(seconds, 1e-9),
            resampled=resampled,
        )


def predict_stack(
    model_or_checkpoint: Enhancer | Checkpoint | str | os.PathLike[str],
    stack: ArrayLike,
    *,
    voxel_size_um: tuple[float, float, float],
    tile_shape: tuple[int, int, int] | None = None,
    overlap: tuple[int, int, int] | None = None,
    blend: int = DEFAULT_BLEND,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    resample: bool = False,
    voxel_size_rtol: float = VOXEL_SIZE_RTOL,
    normalized_output: bool = False,
    amp: bool = False,
) -> PredictionResult:
    """Enhance a wide-field stack with a trained model, with timing.

    Parameters
    ----------
    model_or_checkpoint : Enhancer or Checkpoint or str or path-like
        A loaded model (reused as it is), a checkpoint, or a model file.
    stack : array_like
        ``(z, y, x)`` wide-field stack, any size that fits in memory.
    voxel_size_um : tuple of float
        ``(dz, dy, dx)`` of ``stack`` in um.
    tile_shape : tuple of int, optional
        ``(z, y, x)`` tile size including context (rounded up to the pooling
        grid, capped at what the padded stack needs). ``None``: the fewest
        tiles whose cores are at most ``DEFAULT_CORE_SHAPE``, evenly sized,
        plus the overlap. A tile larger than the stack runs it at once.
    overlap : tuple of int, optional
        Context voxels discarded at each tile side; ``None``: the network's
        receptive radius (exact agreement with whole-stack inference).
    blend : int
        Least overlap, in voxels, of neighbouring tiles' kept cores,
        cross-faded.
    batch_size : int
        Tiles per network call.
    device : str or torch.device, optional
        Where to compute (ignored when an :class:`Enhancer` is given).
    resample : bool
        If the voxel size differs from the model's by more than
        ``voxel_size_rtol``: resample to the model's grid and back (linear
        interpolation) instead of raising :class:`VoxelSizeError`.
    voxel_size_rtol : float
        Accepted relative voxel-size mismatch per axis.
    normalized_output : bool
        Return the network's normalised output instead of mapping it back to
        the input's intensity scale.
    amp : bool
        float16 autocast on CUDA (faster, no longer exact to 1e-4).

    Returns
    -------
    PredictionResult

    Raises
    ------
    VoxelSizeError
        Voxel size mismatch without ``resample``.
    EnhanceError
        Bad stack or tiling options.
    CheckpointError
        Unreadable model file.

    """
    enhancer = (
        model_or_checkpoint
        if isinstance(model_or_checkpoint, Enhancer)
        else Enhancer(model_or_checkpoint, device=device)
    )
    options: dict[str, Any] = {
        "tile_shape": tile_shape,
        "overlap": overlap,
        "blend": blend,
        "batch_size": batch_size,
        "resample": resample,
        "voxel_size_rtol": voxel_size_rtol,
        "normalized_output": normalized_output,
        "amp": amp,
    }
    return enhancer.predict(stack, voxel_size_um=voxel_size_um, **options)


def enhance_stack(
    model_or_checkpoint: Enhancer | Checkpoint | str | os.PathLike[str],
    stack: ArrayLike,
    *,
    voxel_size_um: tuple[float, float, float],
    tile_shape: tuple[int, int, int] | None = None,
    overlap: tuple[int, int, int] | None = None,
    blend: int = DEFAULT_BLEND,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    resample: bool = False,
    voxel_size_rtol: float = VOXEL_SIZE_RTOL,
    normalized_output: bool = False,
    amp: bool = False,
) -> NDArray[np.float32]:
    """Enhanced stack only; parameters as :func:`predict_stack`."""
    return predict_stack(
        model_or_checkpoint,
        stack,
        voxel_size_um=voxel_size_um,
        tile_shape=tile_shape,
        overlap=overlap,
        blend=blend,
        batch_size=batch_size,
        device=device,
        resample=resample,
        voxel_size_rtol=voxel_size_rtol,
        normalized_output=normalized_output,
        amp=amp,
    ).image
