"""Hand completed stacks to live processing without ever blocking acquisition.

Registration and enhancement take longer than acquiring a stack at times; a
microscope must not wait for them. A :class:`StackQueue` holds a bounded number
of stacks for one worker thread: when it is full, a new stack is dropped (and
counted) instead of blocking the acquisition thread or growing memory.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from numpy.typing import NDArray

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompletedStack:
    """A committed z-stack, as handed to live consumers.

    Attributes
    ----------
    name : str
        Stack name in the dataset, e.g. ``"t0000_p0001_g0000"``.
    path : Path
        The committed OME-Zarr image.
    data : ndarray
        Pixels, axes (c, z, y, x).
    voxel_size_um : tuple of float
        (z, y, x) voxel size.
    metadata : mapping
        Per-plane and stack metadata.

    """

    name: str
    path: Path
    data: NDArray[Any]
    voxel_size_um: tuple[float, float, float]
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ConsumerStats:
    """What happened to the stacks offered to one consumer."""

    offered: int = 0
    processed: int = 0
    dropped: int = 0
    failed: int = 0
    seconds_per_stack: list[float] = field(default_factory=list)


class StackQueue:
    """A bounded queue feeding one consumer on its own thread.

    Parameters
    ----------
    consumer : callable
        Called with each :class:`CompletedStack`, on the queue's thread.
    maxsize : int, optional
        Stacks held while the consumer is busy; more are dropped.
    name : str, optional
        Name used in logs and reports.

    """

    def __init__(
        self,
        consumer: Callable[[CompletedStack], None],
        *,
        maxsize: int = 2,
        name: str = "",
    ) -> None:
        if maxsize < 1:
            raise ValueError("a stack queue must hold at least one stack")
        self.name = name or getattr(consumer, "__name__", "consumer")
        self.stats = ConsumerStats()
        self._consumer = consumer
        self._queue: queue.Queue[CompletedStack | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(
            target=self._work, name=f"pairscope-{self.name}", daemon=True
        )
        self._thread.start()

    def offer(self, stack: CompletedStack) -> bool:
        """Queue a stack if there is room; never blocks.

        Returns
        -------
        bool
            False if the stack was dropped because the consumer is behind.

        """
        self.stats.offered += 1
        try:
            self._queue.put_nowait(stack)
        except queue.Full:
            self.stats.dropped += 1
            logger.warning("%s is behind: dropped stack %s", self.name, stack.name)
            return False
        return True

    def close(self, timeout_s: float | None = None) -> ConsumerStats:
        """Let the consumer finish what is queued, then stop its thread."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        return self.stats

    def _work(self) -> None:
        while True:
            stack = self._queue.get()
            if stack is None:
                return
            started = time.perf_counter()
            try:
                self._consumer(stack)
            except Exception:  # a broken consumer must not stop acquisition
                self.stats.failed += 1
                logger.exception("%s failed on stack %s", self.name, stack.name)
            else:
                self.stats.processed += 1
                self.stats.seconds_per_stack.append(time.perf_counter() - started)
