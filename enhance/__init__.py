"""pairscope enhancement: wide-field to confocal models, training and inference.

A pure library: arrays and metadata in, results out. It never imports
``acquire`` and never touches hardware.

The main entry points are importable from here; each loads its module (and
torch) when first used, so ``import enhance`` alone loads nothing heavy:

* `TrainingConfig`, `train_model`: train a residual 3-D U-Net on pairs
  (`TrainingPair`, or `load_split` from a pair database);
* `Checkpoint`, `load_checkpoint`: model files that carry their own metadata;
* `Enhancer`, `enhance_stack`: tiled inference on a whole stack;
* `evaluate`: the model against Richardson-Lucy and the raw wide field.

Modules: ``data``, ``unet``, ``normalization``, ``patches``, ``training``,
``snapshot``, ``checkpoint``, ``predict``, ``psf``, ``deconvolution``,
``metrics``, ``evaluation``, ``device``, ``errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.lazy_exports import lazy_facade

if TYPE_CHECKING:
    from enhance.checkpoint import Checkpoint, load_checkpoint
    from enhance.data import TrainingPair
    from enhance.database_pairs import load_split
    from enhance.errors import EnhanceError
    from enhance.evaluation import evaluate
    from enhance.predict import Enhancer, enhance_stack
    from enhance.training import TrainingConfig, train_model

__all__ = [
    "Checkpoint",
    "EnhanceError",
    "Enhancer",
    "TrainingConfig",
    "TrainingPair",
    "enhance_stack",
    "evaluate",
    "load_checkpoint",
    "load_split",
    "train_model",
]

_HOMES = {
    "Checkpoint": "checkpoint",
    "EnhanceError": "errors",
    "Enhancer": "predict",
    "TrainingConfig": "training",
    "TrainingPair": "data",
    "enhance_stack": "predict",
    "evaluate": "evaluation",
    "load_checkpoint": "checkpoint",
    "load_split": "database_pairs",
    "train_model": "training",
}


__getattr__, __dir__ = lazy_facade(__name__, _HOMES)
