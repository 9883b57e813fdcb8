"""Ground truth of a simulated scope, for tests, benchmarks and demos only.

The acquisition controller must never call anything here: on a real microscope
the mount and the specimen are unknown. Tests and benchmarks use these helpers
to check what the controller measured against what is really there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from acquire.sim.camera import SpecimenCamera
from acquire.sim.mount import Mount
from acquire.sim.psf import DZ_FINE_UM
from acquire.sim.specimen import Specimen

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus


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


def stage_position_of(core: CMMCorePlus, xyh_um: ArrayLike) -> NDArray[np.float64]:
    """Stage (X, Y, Z) that centres and focuses sample point(s) ``(x, y, h)``."""
    return mount_of(core).sample_to_stage(xyh_um)


def stage_position_of_cell(
    core: CMMCorePlus, cell_index: int, *, height_um: float = 2.0
) -> tuple[float, float, float]:
    """Stage position of a cell's centre, focused ``height_um`` above the glass."""
    cells = specimen_of(core).cells
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
    axis_xy, focus_z = camera._physical_position(camera.read_scope_state())
    rendered_z = round(focus_z / DZ_FINE_UM) * DZ_FINE_UM
    return (float(axis_xy[0]), float(axis_xy[1])), float(rendered_z)
