"""Richardson-Lucy deconvolution with a wide-field PSF: the classical baseline.

The stack is padded by reflection (half the PSF on every side, then up to a
fast FFT length) so the circular convolution of the FFT does not wrap bright
structures from one edge to the other, and iterated (Richardson 1972, Lucy
1974)::

    estimate <- estimate * correlate(observed / convolve(estimate, psf), psf)

starting from the observed stack. Values are kept non-negative; ratios use a
floor of ``eps`` times the stack maximum. RL has no stopping rule: noise grows
with iterations. :func:`tune_iterations` picks the count that maximises PSNR
against the confocal on a validation pair, so the baseline is as good as it
can be made on data the model also had.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from enhance.errors import EnhanceError
from enhance.metrics import image_metrics

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

__all__ = ["RLTuning", "richardson_lucy", "richardson_lucy_series", "tune_iterations"]

DEFAULT_ITERATIONS = 20
DEFAULT_CANDIDATES = (5, 10, 20, 40, 80)


def richardson_lucy_series(
    stack: ArrayLike,
    psf: ArrayLike,
    *,
    iterations: Sequence[int],
    background: float = 0.0,
    eps: float = 1e-6,
    workers: int | None = None,
) -> dict[int, NDArray[np.float32]]:
    """Richardson-Lucy estimates after each of several iteration counts.

    Parameters
    ----------
    stack : array_like
        ``(z, y, x)`` observed stack.
    psf : array_like
        ``(z, y, x)`` PSF, centred (peak at the middle voxel), no larger than
        the stack padded by half the PSF; normalised here to unit sum.
    iterations : sequence of int
        Iteration counts (>= 0) at which to keep the estimate.
    background : float
        Constant subtracted from the stack first (camera offset).
    eps : float
        Floor of the blurred estimate, relative to the stack maximum.
    workers : int, optional
        Threads for ``scipy.fft`` (``None``: all CPUs).

    Returns
    -------
    dict of int to ndarray
        float32 estimates, same shape as ``stack``.

    """
    observed = np.clip(
        np.asarray(stack, dtype=np.float32) - np.float32(background), 0, None
    )
    kernel = np.asarray(psf, dtype=np.float64)
    if observed.ndim != 3 or kernel.ndim != 3:
        raise EnhanceError(f"stack {observed.shape} and PSF {kernel.shape} must be 3-D")
    if kernel.sum() <= 0 or np.any(kernel < 0):
        raise EnhanceError("the PSF must be non-negative with a positive sum")
    wanted = sorted({int(i) for i in iterations})
    if not wanted or wanted[0] < 0:
        raise EnhanceError(f"iterations {list(iterations)} must be non-negative counts")
    workers = -1 if workers is None else workers
    kernel = (kernel / kernel.sum()).astype(np.float32)
    half = [s // 2 for s in kernel.shape]
    fast = [
        scipy.fft.next_fast_len(n + 2 * h, real=True)
        for n, h in zip(observed.shape, half, strict=True)
    ]
    pads = [(h, f - n - h) for n, h, f in zip(observed.shape, half, fast, strict=True)]
    padded: NDArray[np.float32] = np.pad(observed, pads, mode="reflect")
    if any(k > f for k, f in zip(kernel.shape, fast, strict=True)):
        raise EnhanceError(
            f"PSF {kernel.shape} is larger than the padded stack {tuple(fast)}"
        )
    embedded = np.zeros(fast, dtype=np.float32)
    embedded[tuple(slice(0, k) for k in kernel.shape)] = kernel
    embedded = np.roll(embedded, [-h for h in half], axis=(0, 1, 2))
    otf = scipy.fft.rfftn(embedded, workers=workers)
    otf_conj = np.conj(otf)
    floor = np.float32(eps * max(float(observed.max()), 1e-30))
    crop = tuple(slice(h, h + n) for h, n in zip(half, observed.shape, strict=True))

    def convolve(
        a: NDArray[np.float32], transfer: NDArray[np.complex64]
    ) -> NDArray[np.float32]:
        spectrum = scipy.fft.rfftn(a, workers=workers) * transfer
        return np.asarray(
            scipy.fft.irfftn(spectrum, s=fast, workers=workers), dtype=np.float32
        )

    estimate = padded.copy()
    results: dict[int, NDArray[np.float32]] = {}
    for i in range(wanted[-1] + 1):
        if i in wanted:
            results[i] = estimate[crop].copy()
        if i == wanted[-1]:
            break
        blurred = np.maximum(convolve(estimate, otf), floor)
        ratio = (padded / blurred).astype(np.float32, copy=False)
        estimate *= convolve(ratio, otf_conj)
        np.clip(estimate, 0, None, out=estimate)
    return results


def richardson_lucy(
    stack: ArrayLike,
    psf: ArrayLike,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    background: float = 0.0,
    eps: float = 1e-6,
    workers: int | None = None,
) -> NDArray[np.float32]:
    """Richardson-Lucy deconvolution; parameters as :func:`richardson_lucy_series`.

    Returns
    -------
    ndarray
        float32 estimate after ``iterations`` iterations, same shape as ``stack``,
        on the stack's intensity scale (RL conserves total flux).

    """
    return richardson_lucy_series(
        stack,
        psf,
        iterations=[iterations],
        background=background,
        eps=eps,
        workers=workers,
    )[iterations]


@dataclass(frozen=True)
class RLTuning:
    """Result of :func:`tune_iterations`.

    Attributes
    ----------
    iterations : int
        Count with the highest PSNR.
    psnr_db : dict of int to float
        PSNR (after affine intensity matching) for each candidate.
    estimate : ndarray of float32
        The tuning stack deconvolved with ``iterations`` (reusable when that
        stack is also scored).

    """

    iterations: int
    psnr_db: dict[int, float]
    estimate: NDArray[np.float32] = field(repr=False)


def tune_iterations(
    widefield: ArrayLike,
    confocal: ArrayLike,
    psf: ArrayLike,
    *,
    candidates: Sequence[int] = DEFAULT_CANDIDATES,
    background: float = 0.0,
    workers: int | None = None,
) -> RLTuning:
    """Pick the RL iteration count that best reproduces a confocal stack.

    One RL run up to the largest candidate; each candidate's estimate is
    scored by PSNR against ``confocal`` after affine intensity matching.
    """
    target = np.asarray(confocal, dtype=np.float32)
    series = richardson_lucy_series(
        widefield, psf, iterations=candidates, background=background, workers=workers
    )
    psnr = {n: image_metrics(est, target).psnr_db for n, est in series.items()}
    best = max(psnr, key=lambda n: psnr[n])
    return RLTuning(iterations=best, psnr_db=psnr, estimate=series[best])
