"""Where a confocal stack should sit inside a wide-field stack, from the stages.

Relocation gives the stage-to-stage transform (scope A -> scope B) and each
scope's camera calibration (pixels -> stage). Together they predict the
:class:`~correlate.registration.PairTransform` of a confocal stack taken at
stage position ``A`` into a wide-field stack taken at ``B``: the registration's
initial estimate. Conversely, a registration measures where the confocal
stack's centre really is on stage B, which corrects the positions still to
visit (closed-loop refinement).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from correlate.registration import PairTransform

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from correlate.stage.camera_calibration import PixelCalibration
    from correlate.stage.transform import StageTransform

__all__ = ["ClosedLoopCorrection", "StackPlacement", "initial_estimate"]


@dataclass(frozen=True)
class StackPlacement:
    """How one stack was taken: stage centre, voxel size and camera calibration.

    Attributes
    ----------
    stage_xyz_um : tuple of float
        Stage x, y of the stack and the z of its middle plane.
    voxel_size_um : tuple of float
        (dz, dy, dx) of the stack.
    calibration : PixelCalibration
        Camera pixels -> stage um for the objective used.

    """

    stage_xyz_um: tuple[float, float, float]
    voxel_size_um: tuple[float, float, float]
    calibration: PixelCalibration

    def um_to_stage(self) -> NDArray[np.float64]:
        """2x2: stack (x, y) um along the camera axes -> stage (x, y) um."""
        _, dy, dx = self.voxel_size_um
        return self.calibration.pixel_to_stage @ np.diag([1.0 / dx, 1.0 / dy])


def initial_estimate(
    confocal: StackPlacement, widefield: StackPlacement, transform: StageTransform
) -> PairTransform:
    """The confocal-to-wide-field stack transform the stages predict.

    Parameters
    ----------
    confocal : StackPlacement
        The confocal stack, on scope A.
    widefield : StackPlacement
        The wide-field stack, on scope B.
    transform : StageTransform
        Scope A stage -> scope B stage.

    Returns
    -------
    PairTransform
        Confocal stack coordinates -> wide-field stack coordinates.

    """
    to_stage_a = confocal.um_to_stage()
    from_stage_b = np.linalg.inv(widefield.um_to_stage())
    linear_xy = from_stage_b @ transform.matrix[:, :2] @ to_stage_a
    # Only the orientation (rotation, flip) of this chain is kept: the stacks'
    # voxel sizes are physical, so their relative scale is 1, while camera
    # calibrations carry a bias of up to ~1 % on undersampled images
    # (pixel locking) that would otherwise become a false scale.
    u, _, vt = np.linalg.svd(linear_xy)
    orientation_xy = u @ vt
    matrix_yx = orientation_xy[::-1, ::-1]  # (x, y) order -> (y, x) order
    centre_b = transform.apply(np.asarray(confocal.stage_xyz_um))
    offset_xy = from_stage_b @ (centre_b[:2] - np.asarray(widefield.stage_xyz_um[:2]))
    tz = float(centre_b[2] - widefield.stage_xyz_um[2])
    return PairTransform.from_arrays(matrix_yx, [tz, offset_xy[1], offset_xy[0]])


def measured_centre(
    registered: PairTransform, widefield: StackPlacement
) -> NDArray[np.float64]:
    """Stage B (x, y, z) where the confocal stack's centre really is."""
    tz, ty, tx = registered.translation_um
    offset = widefield.um_to_stage() @ np.array([tx, ty])
    x, y, z = widefield.stage_xyz_um
    return np.array([x + offset[0], y + offset[1], z + tz])


@dataclass
class ClosedLoopCorrection:
    """Running correction of the stage transform from registered pairs.

    Each accepted registration measures the error of the transform's
    prediction at one target; later targets are shifted by the mean error so
    far. Relocation errors are smooth across a coverslip (they come from the
    fiducials' localisation), so neighbours share most of them. Thread-safe:
    the registration worker adds, the acquisition thread reads (and may wait
    for the registrations of the stacks before it).

    Attributes
    ----------
    errors_um : list of ndarray
        Measured prediction error (x, y, z) of each accepted pair, in order.

    """

    errors_um: list[NDArray[np.float64]] = field(default_factory=list)
    stacks_done: int = 0
    _changed: threading.Condition = field(
        default_factory=threading.Condition, repr=False
    )

    def add(self, error_um: NDArray[np.float64]) -> None:
        """Record the error of one prediction (measured - predicted)."""
        with self._changed:
            self.errors_um.append(np.asarray(error_um, dtype=np.float64))

    def mark_done(self) -> None:
        """Count a stack whose registration ended (accepted, flagged or failed)."""
        with self._changed:
            self.stacks_done += 1
            self._changed.notify_all()

    def wait_for(self, n_stacks: int, *, timeout_s: float = 60.0) -> bool:
        """Block until ``n_stacks`` registrations ended; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self.stacks_done >= n_stacks, timeout=timeout_s
            )

    def offset(self) -> tuple[float, float, float]:
        """Offset to add to the next predicted position: the mean error so far."""
        with self._changed:
            if not self.errors_um:
                return (0.0, 0.0, 0.0)
            mean = np.mean(self.errors_um, axis=0)
        return (float(mean[0]), float(mean[1]), float(mean[2]))
