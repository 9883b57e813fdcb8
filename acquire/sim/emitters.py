"""Weighted point emitters: what the renderer draws."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


@dataclass(frozen=True)
class Emitters:
    """Point emitters in sample coordinates.

    Attributes
    ----------
    xyz_um : ndarray of float32
        (N, 3): x, y and height h above the coverslip, in um.
    photons_per_ms : ndarray of float32
        (N,): expected detected photons per ms at nominal illumination.

    """

    xyz_um: NDArray[np.float32]
    photons_per_ms: NDArray[np.float32]
