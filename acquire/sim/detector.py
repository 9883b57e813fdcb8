"""Physically faithful detector models for simulated cameras.

Two detectors are modelled, both turning an image of *expected detected photons*
per pixel (one frame, exposure already included) into the integer image in ADU
that the real device would return:

* :class:`SCMOSDetector` -- a scientific CMOS camera (Hamamatsu ORCA-Flash4.0
  defaults): Poisson photo-electrons and dark electrons, Gaussian read noise,
  full-well saturation, linear conversion to ADU, offset and ADC clipping.
* :class:`PMTDetector` -- a confocal photomultiplier (Zeiss LSM 710-like):
  Poisson photo-electrons and dark counts, stochastic multiplication gain with
  an excess noise factor, Gaussian electronic noise, offset and ADC clipping.

Both expose the photon-transfer model of their output (variance as a function
of mean, :meth:`~SCMOSDetector.expected_variance_adu2`) for tests and for
calibration code.

Notes
-----
``SCMOSDetector.expose`` is on the simulated camera's hot path, so it avoids
the slow generic NumPy samplers while staying deterministic for a given
:class:`numpy.random.Generator` state (all randomness is drawn from
``rng.bit_generator.random_raw`` in a fixed order):

* Gaussian variates come from a float32 Box-Muller transform of 32-bit
  uniforms (tails reach 6.7 sigma, far beyond what a frame can show).
* Poisson variates with mean below 48 e- are sampled *exactly* by table-driven
  inversion (see :func:`_poisson_small`); above that the Poisson count and the
  read noise are merged into one Gaussian of variance ``mean + read_noise**2``,
  which reproduces the mean and variance exactly (skewness error < 0.15; the
  electron lattice is blurred away by the read noise and ADU rounding anyway).

"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol, overload

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Detector", "PMTDetector", "SCMOSDetector"]

VALID_BIT_DEPTHS: Final[frozenset[int]] = frozenset({8, 12, 14, 16})
"""ADC bit depths accepted by the detector models."""

_QUANTISATION_VAR_ADU2: Final = 1.0 / 12.0
"""Variance added by rounding a smooth signal to integer ADU."""

# --- exact small-mean Poisson sampler: table geometry ------------------------
_GRID_LOG2_STEPS_PER_E: Final = 4
"""log2 of the number of Poisson-table rows per electron of mean (step 1/16)."""
_GRID_STEPS_PER_E: Final = 1 << _GRID_LOG2_STEPS_PER_E
_POISSON_TABLE_MAX_E: Final = 48.0
"""Means below this are sampled exactly; at or above it a Gaussian is used."""
_TABLE_ROWS: Final = int(_POISSON_TABLE_MAX_E) * _GRID_STEPS_PER_E
_TABLE_COLS: Final = 128
"""Counts 0..127 are representable; P(N > 127 | mean < 48) < 1e-17."""
_GUIDE_BITS: Final = 10
"""log2 of the number of guide buckets per table row."""
_DIRTY_FLAG: Final = 0x80
_COUNT_MASK: Final = 0x7F
_TWO32: Final = 4294967296.0


class Detector(Protocol):
    """What a simulated camera needs from a detector model."""

    @property
    def bit_depth(self) -> int:
        """ADC bit depth; output values lie in ``[0, 2**bit_depth - 1]``."""

    def expose(
        self,
        photons: NDArray[np.floating],
        rng: np.random.Generator,
        *,
        exposure_ms: float,
    ) -> NDArray[np.uint16]:
        """Convert expected detected photons per pixel to a noisy ADU image."""


# --- random variates -----------------------------------------------------------


def _standard_normal_f32(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
    """Draw ``n`` standard-normal float32 variates (Box-Muller on 32-bit words).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; advanced by ``ceil(n / 2)`` 64-bit words.
    n : int
        Number of variates.

    Returns
    -------
    numpy.ndarray
        1-D float32 array of length ``n``.

    """
    half = (n + 1) // 2
    words = rng.bit_generator.random_raw(half).view(np.uint32)
    out = np.empty(2 * half, dtype=np.float32)
    radius = out[:half]
    angle = out[half:]
    radius[...] = words[:half]
    angle[...] = words[half:]
    # (w + 0.5) / 2**32 lies in (0, 1]: the log is finite and |z| <= 6.7.
    radius *= np.float32(1.0 / _TWO32)
    radius += np.float32(0.5 / _TWO32)
    np.log(radius, out=radius)
    radius *= np.float32(-2.0)
    np.sqrt(radius, out=radius)
    angle *= np.float32(2.0 * math.pi / _TWO32)
    cosine = np.cos(angle)
    np.sin(angle, out=angle)
    angle *= radius  # second half: r sin(theta)
    radius *= cosine  # first half: r cos(theta)
    return out[:n]


@cache
def _poisson_tables() -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Build the inversion tables of :func:`_poisson_small` (once per process).

    Row ``j`` describes Poisson(``j / 16``). ``thresholds[j, m]`` is the CDF at
    ``m`` scaled to 32-bit integers, so that for a uniform 32-bit word ``u`` the
    count ``#{m : thresholds[j, m] <= u}`` is Poisson distributed (each
    probability exact to 2**-32). ``guide[j, b]`` holds that count at the start
    of bucket ``b`` (the top ``_GUIDE_BITS`` bits of ``u``), with
    ``_DIRTY_FLAG`` set when a CDF step falls inside the bucket.

    Returns
    -------
    guide : numpy.ndarray
        Flat uint8 array of shape ``(_TABLE_ROWS << _GUIDE_BITS,)``.
    thresholds : numpy.ndarray
        Flat int64 array of shape ``(_TABLE_ROWS * _TABLE_COLS,)``.

    """
    means = np.arange(_TABLE_ROWS, dtype=np.float64) / _GRID_STEPS_PER_E
    counts = np.arange(_TABLE_COLS, dtype=np.float64)
    # log pmf = k log(mean) - mean - log(k!), with 0 * log(0) = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        k_log_mean = counts[None, :] * np.log(means)[:, None]
    k_log_mean[:, 0] = 0.0
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(counts[1:]))))
    pmf = np.exp(k_log_mean - means[:, None] - log_factorial[None, :])
    cdf = np.cumsum(pmf, axis=1)
    thresholds = np.minimum(np.rint(cdf * _TWO32), _TWO32).astype(np.int64)
    thresholds[:, -1] = 1 << 32  # the last count absorbs the (negligible) tail

    bucket_width = 1 << (32 - _GUIDE_BITS)
    bucket_start = np.arange(1 << _GUIDE_BITS, dtype=np.int64) * bucket_width
    # One searchsorted over all rows: shift row j by j * 2**33 to keep it sorted.
    row_shift = (np.arange(_TABLE_ROWS, dtype=np.int64) << 33)[:, None]
    flat_thresholds = (thresholds + row_shift).ravel()
    row_base = np.arange(_TABLE_ROWS, dtype=np.int64)[:, None] * _TABLE_COLS
    lo = np.searchsorted(flat_thresholds, (bucket_start + row_shift).ravel(), "right")
    hi = np.searchsorted(
        flat_thresholds, (bucket_start + bucket_width - 1 + row_shift).ravel(), "right"
    )
    lo = lo.reshape(_TABLE_ROWS, -1) - row_base
    hi = hi.reshape(_TABLE_ROWS, -1) - row_base
    guide = (lo | np.where(hi > lo, _DIRTY_FLAG, 0)).astype(np.uint8).ravel()
    return guide, thresholds.ravel()


def _poisson_small(
    mean: NDArray[np.float32], rng: np.random.Generator
) -> NDArray[np.float32]:
    """Draw exact Poisson variates for means in ``[0, 48)``.

    The mean is split as ``mean = j / 16 + r`` with ``0 <= r < 1/16``, and the
    count as the sum of independent Poisson(``j / 16``) and Poisson(``r``)
    variates. The first is sampled by table inversion of a 32-bit word (a
    guide-table lookup, refined for the few words falling on a CDF step), the
    second by inversion of a second 32-bit word, which is zero with probability
    ``exp(-r)`` and only needs float64 work on the rare non-zero cases.

    Parameters
    ----------
    mean : numpy.ndarray
        1-D float32 array of means, all in ``[0, 48)``.
    rng : numpy.random.Generator
        Source of randomness; advanced by ``mean.size`` 64-bit words.

    Returns
    -------
    numpy.ndarray
        1-D float32 array of counts.

    """
    guide, thresholds = _poisson_tables()
    n = mean.size
    words = rng.bit_generator.random_raw(n).view(np.uint32)
    u_table = words[:n]
    u_rest = words[n:]

    scaled = mean * np.float32(_GRID_STEPS_PER_E)
    row_f = np.floor(scaled)
    np.subtract(scaled, row_f, out=scaled)  # r * 16, exact in float32
    frac = scaled
    row_f *= np.float32(1 << _GUIDE_BITS)
    guide_index = row_f.astype(np.int32)  # row << _GUIDE_BITS
    guide_index |= (u_table >> np.uint32(32 - _GUIDE_BITS)).view(np.int32)
    entry = guide.take(guide_index)
    counts = entry & np.uint8(_COUNT_MASK)
    dirty = entry >= _DIRTY_FLAG
    # P(Poisson(r) >= 1) <= r, and u_rest < P * 2**32 implies u_rest <= bound.
    rest_bound = frac * np.float32((1 << (32 - _GRID_LOG2_STEPS_PER_E)) * (1 + 2**-20))
    maybe_rest = u_rest <= rest_bound.astype(np.uint32)
    needs_work = np.flatnonzero(dirty | maybe_rest)

    result: NDArray[np.float32] = counts.astype(np.float32)
    if needs_work.size == 0:
        return result

    sub_row = (guide_index[needs_work] >> _GUIDE_BITS).astype(np.int64) * _TABLE_COLS
    sub_count = counts[needs_work].astype(np.int64)
    sub_u = u_table[needs_work]
    # Table part: walk the CDF from the guide's lower bound inside dirty buckets.
    active = np.flatnonzero(dirty[needs_work])
    while active.size:
        step = sub_u[active] >= thresholds.take(sub_row[active] + sub_count[active])
        active = active[step]
        sub_count[active] += 1
    # Remainder part: inversion of Poisson(r) through its survival function.
    candidates = np.flatnonzero(maybe_rest[needs_work])
    if candidates.size:
        sel = needs_work[candidates]
        r = frac[sel].astype(np.float64) / _GRID_STEPS_PER_E
        w = (u_rest[sel].astype(np.float64) + 0.5) / _TWO32
        survival = -np.expm1(-r)  # P(N >= 1)
        pmf = r * np.exp(-r)  # P(N = 1)
        extra = np.zeros(sel.size, dtype=np.int64)
        m = 1
        hit = w < survival
        while hit.any():
            extra += hit
            survival -= pmf  # P(N >= m + 1)
            m += 1
            pmf *= r / m
            hit = w < survival
        sub_count[candidates] += extra
    result[needs_work] = sub_count
    return result


def _poisson_f32(
    mean: NDArray[np.float32], rng: np.random.Generator
) -> NDArray[np.float32]:
    """Draw exact Poisson variates for any non-negative float32 means.

    Parameters
    ----------
    mean : numpy.ndarray
        1-D float32 array of finite, non-negative means.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        1-D float32 array of counts.

    """
    large = mean >= _POISSON_TABLE_MAX_E
    if not large.any():
        return _poisson_small(mean, rng)
    small_idx = np.flatnonzero(~large)
    large_idx = np.flatnonzero(large)
    counts = np.empty_like(mean)
    counts[small_idx] = _poisson_small(mean[small_idx], rng)
    counts[large_idx] = rng.poisson(mean[large_idx].astype(np.float64))
    return counts


# --- validation helpers ----------------------------------------------------------


def _check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _check_positive(name: str, value: float) -> None:
    _check_finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _check_at_least(name: str, value: float, minimum: float) -> None:
    _check_finite(name, value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    _check_at_least(name, value, 0)


def _check_quantum_efficiency(value: float) -> None:
    _check_finite("quantum_efficiency", value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"quantum_efficiency must be in (0, 1], got {value!r}")


def _check_bit_depth(value: int) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value not in VALID_BIT_DEPTHS
    ):
        raise ValueError(
            f"bit_depth must be one of {sorted(VALID_BIT_DEPTHS)}, got {value!r}"
        )


def _check_offset(value: float, bit_depth: int) -> None:
    _check_non_negative("offset_adu", value)
    if value > (1 << bit_depth) - 1:
        raise ValueError(
            f"offset_adu must not exceed the {bit_depth}-bit range, got {value!r}"
        )


def _mean_electrons(
    photons: NDArray[np.floating],
    quantum_efficiency: float,
    dark_per_ms: float,
    exposure_ms: float,
) -> tuple[NDArray[np.float32], float, float]:
    """Expected photo- plus dark electrons per pixel, validated.

    Returns
    -------
    mean : numpy.ndarray
        Fresh C-order float32 array of ``QE * photons + dark_per_ms * exposure_ms``.
    lowest, highest : float
        Smallest and largest element of ``mean`` (0 for an empty array).

    Raises
    ------
    ValueError
        If ``exposure_ms`` is negative or not finite, or any photon value is
        negative or not finite.

    """
    _check_non_negative("exposure_ms", exposure_ms)
    mean = np.multiply(
        np.asarray(photons), np.float32(quantum_efficiency), dtype=np.float32, order="C"
    )
    lowest = highest = np.float32(0.0)
    if mean.size:
        lowest, highest = mean.min(), mean.max()
        if not (lowest >= 0.0 and math.isfinite(highest)):
            raise ValueError("photons must be finite and non-negative")
    dark = np.float32(dark_per_ms * exposure_ms)
    if dark > 0.0:
        mean += dark
        # float32 rounding is monotonic: the extremes move exactly like the data.
        lowest, highest = lowest + dark, highest + dark
    return mean, float(lowest), float(highest)


def _to_adu(
    signal_adu: NDArray[np.float32], offset_adu: float, ceiling_adu: int
) -> NDArray[np.uint16]:
    """Add the offset, round to nearest and clip to ``[0, ceiling_adu]`` (in place).

    Parameters
    ----------
    signal_adu : numpy.ndarray
        Float32 signal in ADU above the offset; overwritten.
    offset_adu : float
        Constant offset in ADU.
    ceiling_adu : int
        Largest output value.

    Returns
    -------
    numpy.ndarray
        uint16 image of the same shape.

    """
    signal_adu += np.float32(offset_adu + 0.5)
    np.clip(signal_adu, np.float32(0.0), np.float32(ceiling_adu), out=signal_adu)
    return signal_adu.astype(np.uint16)  # truncation of values >= 0 is floor


# --- detectors ---------------------------------------------------------------------


class _Response(NamedTuple):
    """Coefficients of a detector's mean output and photon-transfer curve."""

    adu_per_electron: float
    """Mean output per (photo-)electron, in ADU."""
    dark_e_per_ms: float
    """Dark electrons (or counts) per millisecond of exposure."""
    variance_slope: float
    """Output variance per ADU of mean signal above the offset."""
    noise_var_adu2: float
    """Signal-independent output variance, before the ADU rounding."""


class _LinearDetector(ABC):
    """What both detector models share: a linear mean and an integer ADC output.

    The mean output is ``offset + gain * (QE * photons + dark * exposure_ms)``
    ADU and its variance ``slope * (mean - offset) + noise_var + 1/12`` ADU^2
    (the photon-transfer curve, 1/12 for the rounding to integer ADU).
    Subclasses are frozen dataclasses holding the parameters; they supply
    these coefficients (:meth:`_response`), their own parameter checks and the
    noisy signal itself.
    """

    quantum_efficiency: float
    offset_adu: float
    bit_depth: int

    def __post_init__(self) -> None:
        _check_quantum_efficiency(self.quantum_efficiency)
        self._check_parameters()
        _check_bit_depth(self.bit_depth)
        _check_offset(self.offset_adu, self.bit_depth)

    @abstractmethod
    def _check_parameters(self) -> None:
        """Validate the detector's own parameters, raising ValueError."""

    @abstractmethod
    def _response(self) -> _Response:
        """The gain, dark signal and photon-transfer coefficients."""

    @abstractmethod
    def _signal_adu(
        self,
        mean_e: NDArray[np.float32],
        lowest_e: float,
        highest_e: float,
        rng: np.random.Generator,
    ) -> NDArray[np.float32]:
        """Noisy signal in ADU above the offset for 1-D mean electrons.

        ``mean_e`` is a fresh array that may be overwritten; ``lowest_e`` and
        ``highest_e`` are its extremes.
        """

    @property
    def _ceiling_adu(self) -> int:
        """Largest value the detector outputs."""
        return self.max_adu

    @property
    def max_adu(self) -> int:
        """Largest value the ADC can return, ``2**bit_depth - 1``."""
        return (1 << self.bit_depth) - 1

    def expose(
        self,
        photons: NDArray[np.floating],
        rng: np.random.Generator,
        *,
        exposure_ms: float,
    ) -> NDArray[np.uint16]:
        """Simulate one frame of the detector.

        Parameters
        ----------
        photons : numpy.ndarray
            Expected detected photons per pixel for this frame (exposure time
            or pixel dwell already included), any shape, finite and
            non-negative.
        rng : numpy.random.Generator
            Source of randomness; the result is a deterministic function of
            its state.
        exposure_ms : float
            Exposure time (camera) or pixel dwell (PMT) in milliseconds; only
            scales the dark signal.

        Returns
        -------
        numpy.ndarray
            uint16 image in ADU with the shape of ``photons``.

        Raises
        ------
        ValueError
            If ``photons`` has negative or non-finite values, or ``exposure_ms``
            is negative or not finite.

        """
        mean, lowest, highest = _mean_electrons(
            photons,
            self.quantum_efficiency,
            self._response().dark_e_per_ms,
            exposure_ms,
        )
        signal = self._signal_adu(mean.reshape(-1), lowest, highest, rng)
        return _to_adu(signal, self.offset_adu, self._ceiling_adu).reshape(mean.shape)

    @overload
    def expected_mean_adu(self, photons: float, *, exposure_ms: float) -> float: ...
    @overload
    def expected_mean_adu(
        self, photons: NDArray[np.floating], *, exposure_ms: float
    ) -> NDArray[np.float64]: ...
    def expected_mean_adu(
        self, photons: NDArray[np.floating] | float, *, exposure_ms: float
    ) -> NDArray[np.float64] | float:
        """Noise-free mean output (before saturation and ADC clipping).

        Parameters
        ----------
        photons : numpy.ndarray or float
            Expected detected photons per pixel.
        exposure_ms : float
            Exposure time or pixel dwell in milliseconds (scales the dark
            signal).

        Returns
        -------
        numpy.ndarray or float
            ``offset + gain * (QE * photons + dark * exposure_ms)`` in ADU; a
            float for a float input.

        """
        response = self._response()
        electrons = (
            self.quantum_efficiency * np.asarray(photons, dtype=np.float64)
            + response.dark_e_per_ms * exposure_ms
        )
        mean = self.offset_adu + response.adu_per_electron * electrons
        if isinstance(photons, np.ndarray):
            return mean
        return float(mean)

    @overload
    def expected_variance_adu2(self, mean_adu: float) -> float: ...
    @overload
    def expected_variance_adu2(
        self, mean_adu: NDArray[np.floating]
    ) -> NDArray[np.float64]: ...
    def expected_variance_adu2(
        self, mean_adu: NDArray[np.floating] | float
    ) -> NDArray[np.float64] | float:
        """Photon-transfer model: output variance for a given mean output.

        ``var = slope * (mean - offset) + noise_var + 1/12`` with the
        detector's slope and signal-independent noise (see the class notes);
        ``mean - offset`` is clamped at zero. Valid below saturation and away
        from ADC clipping.

        Parameters
        ----------
        mean_adu : numpy.ndarray or float
            Mean output in ADU.

        Returns
        -------
        numpy.ndarray or float
            Variance in ADU^2; a float for a float input.

        """
        signal = np.maximum(
            np.asarray(mean_adu, dtype=np.float64) - self.offset_adu, 0.0
        )
        response = self._response()
        var = (
            response.variance_slope * signal
            + response.noise_var_adu2
            + _QUANTISATION_VAR_ADU2
        )
        if isinstance(mean_adu, np.ndarray):
            return var
        return float(var)


@dataclass(frozen=True)
class SCMOSDetector(_LinearDetector):
    """Scientific CMOS camera (Hamamatsu ORCA-Flash4.0 V3-like defaults).

    Parameters
    ----------
    quantum_efficiency : float
        Probability that a photon reaching the pixel yields a photo-electron,
        in (0, 1]. ORCA-Flash4.0 V3: ~0.7 at 550 nm.
    read_noise_e : float
        RMS read noise in electrons (>= 0); ORCA-Flash4.0 V3: 1.4-1.6 e- rms.
    gain_adu_per_e : float
        Conversion gain in ADU per electron (> 0); ORCA: 0.46 e-/ADU.
    offset_adu : float
        Constant offset (bias) added to every pixel, in ADU.
    full_well_e : float
        Full-well capacity in electrons; larger signals saturate.
    dark_current_e_per_ms : float
        Dark current in electrons per pixel per millisecond. The default,
        6e-5 e-/ms, is the ORCA-Flash4.0 V3 specification of 0.06 e-/px/s
        (air cooled to -10 degC).
    bit_depth : int
        ADC bit depth, one of 8, 12, 14, 16.

    Notes
    -----
    Per pixel, with mean ``lam = QE * photons + dark * exposure_ms`` electrons::

        electrons = min(Poisson(lam) + Normal(0, read_noise_e**2), full_well_e)
        adu = clip(round(gain * electrons + offset), 0, 2**bit_depth - 1)

    For ``lam >= 48`` the Poisson count and the read noise are drawn as a single
    Gaussian of the same mean and variance (see the module notes). Read noise
    of a saturated pixel is not modelled: saturated pixels read
    ``round(gain * full_well_e + offset)`` (or the ADC maximum if lower).

    The photon-transfer model (:meth:`expected_variance_adu2`) is
    ``var = gain * (mean - offset) + (read_noise_e * gain)**2 + 1/12``: the
    shot noise of ``(mean - offset) / gain`` electrons, the read noise and the
    rounding to integer ADU.

    """

    quantum_efficiency: float = 0.7
    read_noise_e: float = 1.5
    gain_adu_per_e: float = 2.17
    offset_adu: float = 100.0
    full_well_e: float = 30000.0
    dark_current_e_per_ms: float = 6e-5
    bit_depth: int = 16

    def _check_parameters(self) -> None:
        _check_non_negative("read_noise_e", self.read_noise_e)
        _check_positive("gain_adu_per_e", self.gain_adu_per_e)
        _check_positive("full_well_e", self.full_well_e)
        _check_non_negative("dark_current_e_per_ms", self.dark_current_e_per_ms)

    def _response(self) -> _Response:
        return _Response(
            adu_per_electron=self.gain_adu_per_e,
            dark_e_per_ms=self.dark_current_e_per_ms,
            variance_slope=self.gain_adu_per_e,
            noise_var_adu2=(self.read_noise_e * self.gain_adu_per_e) ** 2,
        )

    @property
    def _ceiling_adu(self) -> int:
        return self.saturation_adu

    @property
    def saturation_adu(self) -> int:
        """Output of a saturated pixel: full well or ADC maximum, whichever is lower."""
        full_well_adu = math.floor(
            self.full_well_e * self.gain_adu_per_e + self.offset_adu + 0.5
        )
        return min(self.max_adu, full_well_adu)

    def _signal_adu(
        self,
        mean_e: NDArray[np.float32],
        lowest_e: float,
        highest_e: float,
        rng: np.random.Generator,
    ) -> NDArray[np.float32]:
        # Reused in place: the read noise, then the electrons, then the ADU.
        signal = _standard_normal_f32(rng, mean_e.size)
        read_var = np.float32(self.read_noise_e**2)
        if highest_e < _POISSON_TABLE_MAX_E:  # exact Poisson everywhere
            signal *= np.float32(self.read_noise_e)
            signal += _poisson_small(mean_e, rng)
        elif lowest_e >= _POISSON_TABLE_MAX_E:  # Gaussian everywhere
            std = mean_e + read_var
            np.sqrt(std, out=std)
            signal *= std
            signal += mean_e
        else:
            gaussian = mean_e >= _POISSON_TABLE_MAX_E
            # std = sqrt(lam + read_var) on Gaussian pixels, read noise elsewhere.
            std = np.multiply(mean_e, gaussian)
            std += read_var
            np.sqrt(std, out=std)
            signal *= std
            exact = np.flatnonzero(~gaussian)
            mean_e[exact] = _poisson_small(mean_e[exact], rng)
            signal += mean_e
        signal *= np.float32(self.gain_adu_per_e)
        return signal


@dataclass(frozen=True)
class PMTDetector(_LinearDetector):
    """Confocal photomultiplier tube (Zeiss LSM 710 multi-alkali PMT-like defaults).

    Parameters
    ----------
    quantum_efficiency : float
        Photocathode quantum efficiency in (0, 1] (multi-alkali: ~0.25).
    gain_adu_per_photoelectron : float
        Mean output per photo-electron in ADU, i.e. the combined effect of the
        high voltage ("master gain") and the digitiser; > 0.
    excess_noise_factor : float
        Excess noise factor ``F >= 1`` of the multiplication: the gain of one
        photo-electron has variance ``(F**2 - 1) * gain**2``.
    dark_counts_per_ms : float
        Thermionic dark counts per millisecond of pixel dwell (default 0.2,
        i.e. 200 counts/s, typical of a multi-alkali PMT at room temperature).
    offset_adu : float
        Constant offset in ADU; a small positive value keeps the electronic
        noise from being clipped at zero.
    electronic_noise_adu : float
        RMS Gaussian noise of the amplifier and digitiser in ADU.
    bit_depth : int
        ADC bit depth, one of 8, 12, 14, 16. ``gain_adu_per_photoelectron``
        is not rescaled with it.

    Notes
    -----
    Per pixel, with ``lam = QE * photons + dark_counts_per_ms * exposure_ms``
    (``exposure_ms`` being the pixel dwell)::

        n ~ Poisson(lam)
        s ~ Gamma(shape=n / (F**2 - 1), scale=gain * (F**2 - 1))  (s = 0 if n = 0)
        adu = clip(round(s + offset + Normal(0, electronic_noise**2)), 0, 2**bits - 1)

    so that ``mean = offset + gain * lam`` and
    ``var = F**2 * gain * (mean - offset) + electronic_noise**2 + 1/12``
    (Poisson photo-electrons with multiplication noise, electronic noise and
    rounding to integer ADU). ``F == 1`` gives a noiseless gain,
    ``s = gain * n``.

    """

    quantum_efficiency: float = 0.25
    gain_adu_per_photoelectron: float = 20.0
    excess_noise_factor: float = 1.3
    dark_counts_per_ms: float = 0.2
    offset_adu: float = 10.0
    electronic_noise_adu: float = 1.0
    bit_depth: int = 16

    def _check_parameters(self) -> None:
        _check_positive("gain_adu_per_photoelectron", self.gain_adu_per_photoelectron)
        _check_at_least("excess_noise_factor", self.excess_noise_factor, 1)
        _check_non_negative("dark_counts_per_ms", self.dark_counts_per_ms)
        _check_non_negative("electronic_noise_adu", self.electronic_noise_adu)

    def _response(self) -> _Response:
        return _Response(
            adu_per_electron=self.gain_adu_per_photoelectron,
            dark_e_per_ms=self.dark_counts_per_ms,
            variance_slope=self.excess_noise_factor**2
            * self.gain_adu_per_photoelectron,
            noise_var_adu2=self.electronic_noise_adu**2,
        )

    def _signal_adu(
        self,
        mean_e: NDArray[np.float32],
        lowest_e: float,
        highest_e: float,
        rng: np.random.Generator,
    ) -> NDArray[np.float32]:
        counts = _poisson_f32(mean_e, rng)
        gain = self.gain_adu_per_photoelectron
        excess_var = self.excess_noise_factor**2 - 1.0
        if excess_var == 0.0:
            multiplied = counts * np.float32(gain)
        else:
            multiplied = np.zeros_like(counts)
            lit = np.flatnonzero(counts)
            if lit.size:
                shape_param = counts[lit] / np.float32(excess_var)
                gamma = rng.standard_gamma(shape_param, dtype=np.float32)
                multiplied[lit] = gamma * np.float32(gain * excess_var)
        signal = _standard_normal_f32(rng, mean_e.size)
        signal *= np.float32(self.electronic_noise_adu)
        signal += multiplied
        return signal
