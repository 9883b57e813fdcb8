"""The caps on one acquisition's size and duration.

Kept apart from the planner (which imports useq-schema) so that the command
line can show their defaults without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SequenceLimits"]


@dataclass(frozen=True)
class SequenceLimits:
    """Caps that keep a mistyped sequence from filling a disk or a week.

    Attributes
    ----------
    max_frames : int
        Most frames (images) one acquisition may take.
    max_bytes : int
        Most bytes of image data one acquisition may write.
    max_duration_s : float
        Longest estimated duration, in seconds.

    """

    max_frames: int = 200_000
    max_bytes: int = 2 * 10**12
    max_duration_s: float = 7 * 24 * 3600
