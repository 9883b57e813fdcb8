"""Choice of the torch device, of the CPU thread count and of the tensor layout."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from numpy.typing import NDArray

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)

__all__ = [
    "configure_threads",
    "memory_format_for",
    "place_model",
    "select_device",
    "to_device",
]


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on.

    Parameters
    ----------
    device : str or torch.device or None
        ``None`` or ``"auto"``: CUDA if available, else Apple MPS, else CPU.
        Anything else is passed to :class:`torch.device`.

    Returns
    -------
    torch.device

    Raises
    ------
    EnhanceError
        If the named device is unknown or not available.

    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise EnhanceError(
            f"unknown device {device!r}", "use 'auto', 'cpu', 'cuda' or 'mps'"
        ) from exc
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise EnhanceError(
            "device 'cuda' asked for, but no CUDA GPU is available",
            "use device 'auto' or 'cpu'",
        )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise EnhanceError(
            "device 'mps' asked for, but MPS is not available",
            "use device 'auto' or 'cpu'",
        )
    return chosen


def configure_threads(num_threads: int | None) -> int:
    """Set torch's intra-op CPU thread count.

    Parameters
    ----------
    num_threads : int or None
        Threads to use; ``None`` keeps torch's choice unless it exceeds the CPUs
        this process may run on (containers often report the host's count).

    Returns
    -------
    int
        The thread count now in effect.

    """
    if num_threads is not None:
        if num_threads < 1:
            raise EnhanceError(f"num_threads must be >= 1, got {num_threads}")
        torch.set_num_threads(num_threads)
        return num_threads
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    if torch.get_num_threads() > available:
        torch.set_num_threads(available)
    return int(torch.get_num_threads())


def memory_format_for(device: torch.device) -> torch.memory_format:
    """Layout of 5-D tensors on ``device``: channels-last on the CPU.

    oneDNN's 3-D convolutions run about twice as fast on channels-last
    tensors on the CPU, forward and backward (``bench/engines.py``); the
    values are the same. Other devices keep the contiguous layout.
    """
    return torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format


def place_model(model: ModuleT, device: torch.device) -> ModuleT:
    """Move ``model`` to ``device`` in that device's layout (in place)."""
    # Module.to takes memory_format at run time; torch's stubs omit it
    model.to(device, memory_format=memory_format_for(device))  # type: ignore[call-overload]
    return model


def to_device(array: NDArray[np.float32], device: torch.device) -> torch.Tensor:
    """A float32 ``(n, c, z, y, x)`` batch as a tensor on ``device``, in its layout."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.to(device, memory_format=memory_format_for(device))
