"""Software autofocus: a z scan scored by image sharpness, then a finer one.

Used to find the coverslip (where the fiducial marks lie) on a sample mounted
at an unknown height, and to measure each mark's focus height precisely.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from acquire.config.stage_limits import StageLimits, read_stage_limits
from acquire.hardware.microscope import illumination
from correlate.focus_metric import focus_peak, sharpness

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus


_MIN_FOCUS_CONTRAST = 1.5
"""A focus peak must be this many times the scan's median sharpness."""


class FocusError(RuntimeError):
    """No focus was found in the scanned range."""


@dataclass(frozen=True)
class FocusResult:
    """Best focus of one autofocus run."""

    z_um: float
    z_scanned_um: tuple[float, ...]
    sharpness: tuple[float, ...]


def stage_limits_of(core: CMMCorePlus) -> StageLimits:
    """Soft limits from the loaded config's ``#pairscope`` lines (none if absent)."""
    path = core.systemConfigurationFile()
    return read_stage_limits(Path(path)) if path else StageLimits()


def _scan(core: CMMCorePlus, z_values: np.ndarray, limits: StageLimits) -> list[float]:
    scores = []
    with illumination(core):
        for z in z_values:
            problem = limits.violation(None, None, float(z))
            if problem:
                scores.append(-np.inf)
                continue
            core.setPosition(float(z))
            core.waitForDevice(core.getFocusDevice())
            core.snapImage()
            scores.append(sharpness(core.getImage()))
    return scores


def autofocus(
    core: CMMCorePlus,
    *,
    range_um: float,
    step_um: float,
    fine_range_um: float | None = None,
    fine_step_um: float | None = None,
) -> FocusResult:
    """Find the sharpest focus around the current z and move there.

    Parameters
    ----------
    core : CMMCorePlus
        A loaded core with a camera, focus drive and shutter.
    range_um : float
        Full width of the coarse scan, centred on the current z.
    step_um : float
        Coarse step.
    fine_range_um, fine_step_um : float, optional
        A second scan around the coarse peak (default: +-2 coarse steps, in
        steps of a fifth of the coarse step).

    Returns
    -------
    FocusResult
        Best focus (the stage is left there) and the scanned curve.

    Raises
    ------
    FocusError
        The peak is at an end of the scan (focus may lie outside it), or no
        position inside the stage's soft limits was scanned.

    """
    if range_um <= 0 or step_um <= 0:
        raise ValueError("autofocus needs a positive range and step")
    limits = stage_limits_of(core)
    start = float(core.getPosition())
    n = round(range_um / step_um) + 1
    coarse = start + (np.arange(n) - (n - 1) / 2) * step_um
    scores = _scan(core, coarse, limits)
    if not np.isfinite(scores).any():
        raise FocusError("every autofocus position is outside the soft limits")
    curve = np.nan_to_num(scores, neginf=0.0)
    peak, interior = focus_peak(coarse, curve)
    # a curve of noise alone has a maximum too; a focus must stand out of it
    contrast = curve.max() / max(float(np.median(curve[curve > 0])), 1e-12)
    if not interior or contrast < _MIN_FOCUS_CONTRAST:
        core.setPosition(start)
        raise FocusError(
            f"no focus within {start:.1f} +- {range_um / 2:.1f} um (no sharp peak "
            "inside the scan); start closer to the sample or widen the range"
        )
    fine_step = fine_step_um or step_um / 5
    fine_half = (fine_range_um or 4 * step_um) / 2
    fine = peak + np.arange(-fine_half, fine_half + fine_step / 2, fine_step)
    fine_scores = _scan(core, fine, limits)
    best, _ = focus_peak(fine, np.nan_to_num(fine_scores, neginf=0.0))
    core.setPosition(best)
    core.waitForDevice(core.getFocusDevice())
    return FocusResult(
        best,
        tuple(float(z) for z in np.concatenate([coarse, fine])),
        tuple(float(s) for s in [*scores, *fine_scores]),
    )
