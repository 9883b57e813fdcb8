"""The training recipe: the settings `TrainingConfig()` and `pairscope train` share.

The bundled demo model was trained with these settings (its checkpoint records
them). They live here, in a module that imports nothing heavy, so that the
command line can show them as its option defaults and a notebook's
`TrainingConfig()` trains exactly what ``pairscope train DB --out M`` trains.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RECIPE", "TrainingRecipe"]


@dataclass(frozen=True)
class TrainingRecipe:
    """Default settings of a training run (see `enhance.training.TrainingConfig`).

    Attributes
    ----------
    depth, base_channels : int
        U-Net pooling steps and width.
    linear_filter : bool
        Whether the U-Net corrects a linear wide-field -> confocal filter
        (two input channels) rather than learning from the wide field alone.
    patch_shape : tuple of 3 ints
        (z, y, x) training patch, voxels.
    batch_size, steps_per_epoch, max_epochs, patience, n_val_patches : int
        As `TrainingConfig`.
    learning_rate : float
        Initial Adam learning rate.
    loss : str
        Loss name (`enhance.losses.LOSSES`).
    max_duration_s : float
        Time limit of a run.

    """

    depth: int = 2
    base_channels: int = 8
    linear_filter: bool = True
    patch_shape: tuple[int, int, int] = (16, 64, 64)
    batch_size: int = 4
    steps_per_epoch: int = 25
    max_epochs: int = 200
    patience: int = 20
    learning_rate: float = 1e-3
    loss: str = "mse"
    n_val_patches: int = 32
    max_duration_s: float = 20 * 60.0


RECIPE = TrainingRecipe()
"""The recipe in use."""
