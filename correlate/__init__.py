"""pairscope correlation: fiducials, stage-to-stage transforms, registration.

A pure library: arrays, points and metadata in, results out. It never imports
``acquire`` and never touches hardware.

The main entry points are importable from here; each loads its module when
first used (``import correlate`` alone loads nothing heavy):

* `detect_marks`: fiducial marks in an image, with identities and centres;
* `fit_stage_transform` / `StageTransform`: scope A stage -> scope B stage
  from matched marks, with a predicted error per target;
* `register_pair` / `PairRegistration`: a wide-field stack onto its confocal
  partner, with a quality gate and a predicted error;
* `PairDatabase`: the paired-image database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.lazy_exports import lazy_facade

if TYPE_CHECKING:
    from correlate.fiducials.detect import MarkDetection, detect_marks
    from correlate.pairdb import PairDatabase
    from correlate.registration import (
        PairRegistration,
        PairTransform,
        RegistrationError,
        register_pair,
    )
    from correlate.stage.fit_transform import fit_stage_transform
    from correlate.stage.transform import StageTransform, TransformError

__all__ = [
    "MarkDetection",
    "PairDatabase",
    "PairRegistration",
    "PairTransform",
    "RegistrationError",
    "StageTransform",
    "TransformError",
    "detect_marks",
    "fit_stage_transform",
    "register_pair",
]

_HOMES = {
    "MarkDetection": "fiducials.detect",
    "PairDatabase": "pairdb",
    "PairRegistration": "registration",
    "PairTransform": "registration",
    "RegistrationError": "registration",
    "StageTransform": "stage.transform",
    "TransformError": "stage.transform",
    "detect_marks": "fiducials.detect",
    "fit_stage_transform": "stage.fit_transform",
    "register_pair": "registration",
}


__getattr__, __dir__ = lazy_facade(__name__, _HOMES)
