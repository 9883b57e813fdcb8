"""Register a wide-field z-stack to its confocal partner (3D, sub-voxel).

Conventions
-----------
* A stack is an array ``(nz, ny, nx)`` with voxel ``(dz, dy, dx)`` in um. Its
  **centred stack coordinates** put index ``(k, j, i)`` at
  ``((k - (nz-1)/2) dz, (j - (ny-1)/2) dy, (i - (nx-1)/2) dx)`` um: the
  origin is the middle of the stack, axes follow the array axes.
* A `PairTransform` maps **confocal** coordinates to **wide-field** ones:
  ``[y_w, x_w] = M @ [y_c, x_c] + [ty, tx]`` and ``z_w = z_c + tz``. ``M`` is
  2x2 in (y, x) order and may carry a flip (from the initial estimate);
  rotations are positive when they turn +y towards +x.
* The **common grid** is the confocal grid: `PairRegistration` holds the
  wide-field stack resampled onto it (``aligned_widefield``) and the confocal
  stack as given, both float32.

Method (`register_pair`)
------------------------
Both stacks are compared band-passed (a difference of Gaussians removes the
wide-field haze and background, and pixel noise), on the confocal grid binned
to about 0.2 um. The residual rotation is searched on maximum projections; a
3D cross-correlation then finds the translation; finally the overlap is cut
into tiles whose sub-voxel shifts (upsampled-DFT refinement of plain, not
phase-normalised, cross-correlation peaks) are fitted by a similarity
transform (translation, rotation, and a scale change when it is significant),
twice. A quality gate (overlap, NCC, agreeing tiles) accepts the pair or flags
it with a reason.
"""

from correlate.registration.errors import RegistrationError
from correlate.registration.preprocess import BandPass
from correlate.registration.quality import QualityGate, RegistrationQuality
from correlate.registration.register import (
    AlignmentAssessment,
    PairRegistration,
    assess_alignment,
    register_pair,
)
from correlate.registration.transform import (
    PairTransform,
    TransformDifference,
    rotation_matrix,
    transform_difference,
)

__all__ = [
    "AlignmentAssessment",
    "BandPass",
    "PairRegistration",
    "PairTransform",
    "QualityGate",
    "RegistrationError",
    "RegistrationQuality",
    "TransformDifference",
    "assess_alignment",
    "register_pair",
    "rotation_matrix",
    "transform_difference",
]
