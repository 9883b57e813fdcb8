"""Choice of the torch device and of the CPU thread count."""

from __future__ import annotations

import os

import torch

from enhance.errors import EnhanceError

__all__ = ["configure_threads", "select_device"]


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
