"""psfmodels' vectorial PSF in short calls, so other threads keep running.

``psfmodels.vectorial_psf`` holds Python's global interpreter lock for its
whole call: a PSF table of a few hundred planes took 0.4 s per call, during
which the window (whose simulated camera computes it on a worker thread on
first use) froze. Each plane is computed on its own, so calling it a few
planes at a time gives the same values bit for bit and lets the GUI thread in
between.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import psfmodels

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["vectorial_psf_planes"]

#: Pixels computed per call (about 50 ms on one 2020s CPU core).
PIXELS_PER_CALL = 120_000


def vectorial_psf_planes(
    zv: NDArray[np.float64], *, nx: int, **opts: Any
) -> NDArray[np.float64]:
    """``psfmodels.vectorial_psf(zv, nx=nx, **options)``, a few planes per call.

    Parameters
    ----------
    zv : ndarray of float64
        The planes' ``zv`` values (psfmodels' defocus convention).
    nx : int
        Side of each plane, in pixels.
    **opts
        Passed on (``dxy``, ``pz``, ``wvl``, ``params``, ``normalize=False``:
        a normalisation over all planes would differ between calls).

    Returns
    -------
    ndarray of float64
        ``(len(zv), nx, nx)`` planes, equal to one call's.

    Raises
    ------
    ValueError
        ``normalize`` is not False.

    """
    if opts.get("normalize", True) is not False:
        raise ValueError("vectorial_psf_planes needs normalize=False")
    z = np.asarray(zv, dtype=np.float64)
    per_call = max(1, PIXELS_PER_CALL // (nx * nx))
    chunks = [
        np.asarray(psfmodels.vectorial_psf(z[i : i + per_call].copy(), nx=nx, **opts))
        for i in range(0, z.size, per_call)
    ]
    if not chunks:
        return np.zeros((0, nx, nx), dtype=np.float64)
    return np.concatenate(chunks)
