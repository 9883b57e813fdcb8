"""Errors a user of the enhancement library can cause.

Each carries one message: what is wrong, where, and how to fix it. Front ends
(the command line, a live viewer) print it as it stands.
"""

from __future__ import annotations

from correlate.errors import HintedError

__all__ = ["CheckpointError", "EnhanceError", "VoxelSizeError"]


class EnhanceError(HintedError):
    """A mistake in the data or options given to training, prediction or evaluation.

    Parameters
    ----------
    what : str
        What is wrong (one sentence, naming the data or option).
    hint : str
        How to fix it.

    """


class CheckpointError(EnhanceError):
    """A model file that is missing, corrupt, foreign or of an incompatible version."""


class VoxelSizeError(EnhanceError):
    """A stack whose voxel size does not match the one a model was trained for."""
