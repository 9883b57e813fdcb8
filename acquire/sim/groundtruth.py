"""Ground truth of a simulated scope, for tests, benchmarks and demos only.

The acquisition controller must never call anything here: on a real microscope
the mount and the specimen are unknown. Tests and benchmarks use these helpers
to check what the controller measured against what is really there.

Heights and focus: a sample point at height ``h`` above the glass is in focus
when the nominal focal plane is ``F(h)`` above the glass, where ``F`` is the
focal shift of the camera's optics (:func:`acquire.sim.focal_shift.focal_shift`:
the identity when the sample is index-matched, about 1.2-1.6 x the height for
water under oil). The glass is the coverslip surface at the optical axis, as
in the renderer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from acquire.sim.camera import SpecimenCamera
from acquire.sim.focal_shift import FocalShift, focal_shift
from acquire.sim.psf import DZ_FINE_UM

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray
    from pymmcore_plus import CMMCorePlus

    from acquire.config.objectives import Objective
    from acquire.sim.mount import Mount
    from acquire.sim.specimen import Specimen


def simulated_camera(core: CMMCorePlus, label: str | None = None) -> SpecimenCamera:
    """The simulated camera device loaded in ``core``.

    Parameters
    ----------
    core : CMMCorePlus
        A UniMMCore with a simulated camera loaded.
    label : str, optional
        Device label; defaults to the core's current camera.

    Returns
    -------
    SpecimenCamera
        The device object.

    Raises
    ------
    LookupError
        If that device is not a simulated camera.

    """
    label = label or core.getCameraDevice()
    devices = getattr(core, "_pydevices", None)
    if (
        devices is None
        or label not in devices
        or not isinstance(devices[label], SpecimenCamera)
    ):
        raise LookupError(f"{label!r} is not a simulated pairscope camera")
    device = devices[label]
    assert isinstance(device, SpecimenCamera)
    return device


def mount_of(core: CMMCorePlus) -> Mount:
    """The hidden mount of the scope driven by ``core``."""
    return simulated_camera(core).mount()


def specimen_of(core: CMMCorePlus) -> Specimen:
    """The simulated specimen on the scope driven by ``core``."""
    return simulated_camera(core).specimen()


def focal_shift_of(core: CMMCorePlus, objective: Objective | None = None) -> FocalShift:
    """Focal shift ``F`` of the scope's optics (camera, sample medium, objective).

    Parameters
    ----------
    core : CMMCorePlus
        A UniMMCore with a simulated camera loaded.
    objective : Objective, optional
        Defaults to the objective in the light path now.

    Returns
    -------
    FocalShift
        ``nominal_focus_um(h)`` (F) and ``depth_um(nominal)`` (its inverse);
        ``identity`` when the sample is index-matched.

    """
    camera = simulated_camera(core)
    if objective is None:
        objective = camera.read_scope_state().objective
    return focal_shift(camera.optical_setup(objective))


def stage_position_of(
    core: CMMCorePlus, xyh_um: ArrayLike, *, objective: Objective | None = None
) -> NDArray[np.float64]:
    """Stage (X, Y, Z) that centres and focuses sample point(s) ``(x, y, h)``.

    The focus is the nominal one at which the point is in best focus: glass
    plus ``F(h)`` (see the module notes), for the objective in the light path
    unless ``objective`` is given.
    """
    mount = mount_of(core)
    shift = focal_shift_of(core, objective)
    if shift.identity:
        return mount.sample_to_stage(xyh_um)
    sample = np.asarray(xyh_um, dtype=np.float64)
    physical = mount.sample_to_physical(sample)
    glass = mount.surface_height_um(physical[..., :2])
    physical[..., 2] = glass + shift.nominal_focus_um(sample[..., 2])
    return mount.physical_to_stage(physical)


def stage_position_of_cell(
    core: CMMCorePlus, cell_index: int, *, height_um: float = 2.0
) -> tuple[float, float, float]:
    """Stage position of a cell's centre, focused ``height_um`` above the glass.

    ``cell_index`` counts the procedural cells and then the volume cells
    (``Specimen.all_cells``); the focus is glass plus ``F(height_um)``.
    """
    cells = specimen_of(core).all_cells
    if not 0 <= cell_index < len(cells):
        raise IndexError(
            f"cell {cell_index} does not exist (specimen has {len(cells)})"
        )
    x, y = cells[cell_index].centre_um
    stage = stage_position_of(core, (x, y, height_um))
    return float(stage[0]), float(stage[1]), float(stage[2])


def landed_position(core: CMMCorePlus) -> tuple[tuple[float, float], float]:
    """Where the optical axis and the focal plane really are, landing errors included.

    Call it after a snap at the core's current position: it reads the same
    landing errors that snap used (a fresh position would draw new ones).

    Parameters
    ----------
    core : CMMCorePlus
        A UniMMCore with a simulated camera loaded.

    Returns
    -------
    tuple
        Physical ``(x, y)`` of the optical axis in um, and the physical height
        of the rendered focal plane in um (quantised like the renderer's).

    """
    camera = simulated_camera(core)
    axis_xy, focus_z = camera.physical_position(camera.read_scope_state())
    rendered_z = round(focus_z / DZ_FINE_UM) * DZ_FINE_UM
    return (float(axis_xy[0]), float(axis_xy[1])), float(rendered_z)
