"""The demo scopes start over a cell, in focus: the first snap shows one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from acquire_helpers import demo_scope

from acquire.hardware.microscope import scope, snap
from acquire.sim import groundtruth
from acquire.sim.start_position import START_HEIGHT_UM

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"


def bright_over_floor(core: CMMCorePlus) -> float:
    """99.9th percentile of a snap above its median (the camera's floor)."""
    image = np.asarray(snap(core), dtype=np.float64)
    return float(np.percentile(image, 99.9) - np.median(image))


@pytest.mark.parametrize("name", ["widefield", "confocal"])
def test_shipped_demo_config_starts_focused_on_the_nearest_cell(name: str) -> None:
    with scope(CONFIGS / f"demo_{name}.cfg") as core:
        x, y = core.getXYPosition()
        z = core.getPosition()
        on_cell = bright_over_floor(core)
        # the truth, computed independently: every cell's stage position
        cells = groundtruth.specimen_of(core).all_cells
        truth = np.array(
            [
                groundtruth.stage_position_of_cell(core, i, height_um=START_HEIGHT_UM)
                for i in range(len(cells))
            ]
        )
        nearest = truth[np.argmin(np.hypot(truth[:, 0], truth[:, 1]))]
        # Micro-Manager's demo stages land within their step size
        assert np.hypot(x - nearest[0], y - nearest[1]) < 0.1
        assert z == pytest.approx(nearest[2], abs=0.1)
        # the same scope over empty coverslip, 3 mm from any cell, same focus
        far = truth[:, :2].max(axis=0) + 3000.0
        core.setXYPosition(float(far[0]), float(far[1]))
        core.waitForDevice(core.getXYStageDevice())
        empty = bright_over_floor(core)
    assert on_cell > 10 * max(empty, 1.0)


def test_without_start_on_cell_the_stage_stays_at_the_origin(tmp_path: Path) -> None:
    config = demo_scope(tmp_path, "widefield", StartOnCell="No")
    with scope(config) as core:
        assert core.getXYPosition() == pytest.approx((0.0, 0.0), abs=0.1)
        assert core.getPosition() == pytest.approx(0.0, abs=0.1)
