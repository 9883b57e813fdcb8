"""psfmodels' vectorial PSF in short calls, so other threads keep running.

``psfmodels.vectorial_psf`` holds Python's global interpreter lock for its
whole call: a PSF table of a few hundred planes took 0.4 s per call, during
which the window (whose simulated camera computes it on a worker thread on
first use) froze. Each plane is computed on its own, so calling it a few
planes at a time gives the same values bit for bit and lets the GUI thread in
between.

Even so, calls of 50 to 100 ms each (a single 511 x 511 plane, which cannot
be split, took 0.1 to 0.2 s) added up to stalls of 0.1 to 0.2 s in the
window (``bench/gui_stall.py``). So a thread other than the main one (the
window's workers, an acquisition's engine thread) has its planes computed in
a helper process (:mod:`acquire.sim.psf_helper`), whose lock is its own and
in which the same calls give the same values; the main thread (the command
line, scripts) computes them itself, and so does any thread if the helper
cannot run.
"""

from __future__ import annotations

import atexit
import logging
import pickle
import subprocess
import sys
import threading
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import psfmodels

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["vectorial_psf_planes"]

#: Pixels computed per call (about 50 ms on one 2020s CPU core).
PIXELS_PER_CALL = 120_000

_log = logging.getLogger(__name__)
_HELPER_STOP_S = 5.0


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
    if z.size and threading.current_thread() is not threading.main_thread():
        planes = _HELPER.compute(z, nx, opts)
        if planes is not None:
            return planes
    return planes_in_calls(z, nx, opts)


def planes_in_calls(
    z: NDArray[np.float64], nx: int, opts: dict[str, Any]
) -> NDArray[np.float64]:
    """The planes, computed :data:`PIXELS_PER_CALL` pixels (or one plane) a call."""
    per_call = max(1, PIXELS_PER_CALL // (nx * nx))
    chunks = [
        np.asarray(psfmodels.vectorial_psf(z[i : i + per_call].copy(), nx=nx, **opts))
        for i in range(0, z.size, per_call)
    ]
    if not chunks:
        return np.zeros((0, nx, nx), dtype=np.float64)
    return np.concatenate(chunks)


class _Helper:
    """The helper process; one request at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self.failed = False

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        if self.process is None:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "acquire.sim.psf_helper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            atexit.register(self.stop)
        assert self.process.stdin is not None and self.process.stdout is not None
        return self.process.stdin, self.process.stdout

    def compute(
        self, z: NDArray[np.float64], nx: int, opts: dict[str, Any]
    ) -> NDArray[np.float64] | None:
        """The planes, or None when the helper cannot run (it is not retried)."""
        with self.lock:
            if self.failed:
                return None
            try:
                requests, replies = self._pipes()
                pickle.dump((z, nx, opts), requests, protocol=pickle.HIGHEST_PROTOCOL)
                requests.flush()
                status, value = pickle.load(replies)  # waits without the GIL
            # no interpreter to start (an embedded Python), a dead or mute helper
            except (
                OSError,
                ValueError,
                TypeError,
                EOFError,
                pickle.PickleError,
            ) as error:
                _log.warning("PSF helper process failed (%s); computing here", error)
                self.failed = True
                self.stop()
                return None
        if status != "ok":
            raise ValueError(f"psfmodels in the helper process: {value}")
        planes: NDArray[np.float64] = value
        return planes

    def stop(self) -> None:
        """End the helper process (its input closes; killed if it hangs)."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=_HELPER_STOP_S)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()


_HELPER = _Helper()
