"""Where a simulated scope starts: over a cell, in focus.

Micro-Manager's demo stages start at (0, 0, 0), which on the simulated
coverslip is an empty field far out of focus: a first snap showed noise. A
microscopist opens the software with the sample under the objective, so a
simulated camera with ``StartOnCell`` set to ``Yes`` (the demo configurations)
moves the stage, once the configuration is loaded, to the cell nearest the
stage origin and focuses on its middle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

#: Height above the glass the start focuses on: the middle of a demo cell.
START_HEIGHT_UM = 2.0


def nearest_cell_position(
    core: CMMCorePlus, xy_um: tuple[float, float] = (0.0, 0.0)
) -> tuple[int, tuple[float, float, float]]:
    """The cell whose stage position is nearest ``xy_um``, and that position.

    Parameters
    ----------
    core : CMMCorePlus
        A core with a simulated camera attached.
    xy_um : tuple of float, optional
        Stage (x, y) to measure from.

    Returns
    -------
    index : int
        Index into the specimen's ``all_cells``.
    stage_xyz_um : tuple of float
        Stage (x, y, z) that centres the cell and focuses
        :data:`START_HEIGHT_UM` above the glass, with the objective now in
        the light path.

    Raises
    ------
    LookupError
        The specimen has no cells.

    """
    from acquire.sim import groundtruth

    cells = groundtruth.specimen_of(core).all_cells
    if not cells:
        raise LookupError("the simulated specimen has no cells")
    sample_xyh = [(*cell.centre_um, START_HEIGHT_UM) for cell in cells]
    stage = groundtruth.stage_position_of(core, sample_xyh)
    index = int(np.argmin(np.hypot(stage[:, 0] - xy_um[0], stage[:, 1] - xy_um[1])))
    x, y, z = (float(v) for v in stage[index])
    return index, (x, y, z)


def start_on_nearest_cell(core: CMMCorePlus) -> tuple[float, float, float] | None:
    """Move the stage over the cell nearest the origin and focus on it.

    Returns
    -------
    tuple of float or None
        The stage (x, y, z) it moved to; None when the specimen has no cells
        (the stage stays where it is).

    """
    try:
        _, (x, y, z) = nearest_cell_position(core)
    except LookupError:
        return None
    core.setXYPosition(x, y)
    core.waitForDevice(core.getXYStageDevice())
    core.setPosition(z)
    core.waitForDevice(core.getFocusDevice())
    return x, y, z
