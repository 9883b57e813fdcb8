"""Uneven illumination and autofluorescence of the simulated scopes.

Real wide-field fields are not evenly lit: the objective and the tube optics
vignette (the corners of the field get less light, more so at low
magnification), the lamp's field is often off-centre or tilted, and the
mountant and the glass glow faintly. A confocal's scan field vignettes as
well at low zoom. Each simulated camera models these through properties, all
off by default (the frame is then bit for bit what it was before):

``Vignetting``
    Relative loss of light at the corner of the field, as a fraction:
    ``"0.2"`` for every objective, or per magnification
    ``"10x:0.35 40x:0.15 63x:0.1"`` (space separated: Micro-Manager config
    values cannot hold commas; ``*:0.1`` sets the rest). The profile is
    ``1 - v (r / r_corner)**2`` about the sensor's centre, the leading term
    of the cos**4 law.
``IlluminationTiltPercent``, ``IlluminationTiltDeg``
    A linear tilt of the illumination field: its brightness changes by this
    percentage (peak to peak) across the field's diagonal, rising towards
    the direction given in degrees from the image's column axis towards its
    row axis.
``AutofluorescencePerUm2``, ``AutofluorescenceVariation``
    A smooth autofluorescent background (photons per ms per um^2 at nominal
    illumination) that varies by up to the given fraction across the sample
    on scales of 150-600 um. It is the mountant's glow: it belongs to the
    sample (it moves with the stage), a wide-field camera sees all of it at
    any focus, a confocal only while its section lies in the mountant above
    the glass (:func:`mountant_fraction`); it is lit by the same uneven field
    as everything else.

Dust and debris are emitters on the coverslip: :mod:`acquire.sim.debris`.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from acquire.sim.mount import Mount
    from acquire.sim.render import CameraGeometry

Float32Array = NDArray[np.float32]

#: Autofluorescence varies on these sample scales (um): three plane waves.
AUTOFLUORESCENCE_WAVELENGTHS_UM = (150.0, 600.0)


@dataclass(frozen=True)
class Illumination:
    """How one camera's field is lit (all zero: evenly, no autofluorescence).

    Attributes
    ----------
    vignetting : tuple of (float or None, float)
        (magnification, corner loss) pairs; magnification None applies to
        every objective without its own entry.
    tilt : float
        Peak-to-peak change of brightness across the field's diagonal
        (fraction).
    tilt_direction_deg : float
        Direction in which the brightness rises, from the column axis
        towards the row axis.
    autofluorescence_per_um2 : float
        Mean autofluorescence, photons per ms per um^2.
    autofluorescence_variation : float
        Its relative variation across the sample, in [0, 0.9].

    """

    vignetting: tuple[tuple[float | None, float], ...] = ()
    tilt: float = 0.0
    tilt_direction_deg: float = 0.0
    autofluorescence_per_um2: float = 0.0
    autofluorescence_variation: float = 0.0

    def corner_loss(self, magnification: float) -> float:
        """Vignetting at the field's corner with this objective."""
        default = 0.0
        for mag, loss in self.vignetting:
            if mag is None:
                default = loss
            elif math.isclose(mag, magnification, rel_tol=1e-6):
                return loss
        return default

    def is_even(self, magnification: float) -> bool:
        """Whether this objective's field is evenly lit and dark."""
        return (
            self.corner_loss(magnification) == 0.0
            and self.tilt == 0.0
            and self.autofluorescence_per_um2 == 0.0
        )


def parse_vignetting(text: str) -> tuple[tuple[float | None, float], ...]:
    """Parse a ``Vignetting`` property value.

    Parameters
    ----------
    text : str
        ``""`` (none), ``"0.2"`` (every objective) or space-separated
        ``"<magnification>x:<loss>"`` entries, ``"*:<loss>"`` for the rest.

    Returns
    -------
    tuple of (float or None, float)
        (magnification, loss) pairs, None for every objective.

    Raises
    ------
    ValueError
        An entry that is not of that form, or a loss outside [0, 0.9].

    """
    entries: list[tuple[float | None, float]] = []
    for part in str(text).split():
        key, sep, value = part.rpartition(":")
        try:
            loss = float(value)
            if not sep or key == "*":
                magnification = None
            else:
                magnification = float(key.lower().removesuffix("x"))
                if not magnification > 0:
                    raise ValueError
        except ValueError:
            raise ValueError(
                f"Vignetting entry {part!r} is not '<loss>' or "
                "'<magnification>x:<loss>'; e.g. '0.2' or '10x:0.35 40x:0.15'"
            ) from None
        if not 0.0 <= loss <= 0.9:
            raise ValueError(
                f"Vignetting entry {part!r}: the loss at the field's corner must "
                f"lie in [0, 0.9] (a fraction), got {loss:g}"
            )
        entries.append((magnification, loss))
    return tuple(entries)


def _get_vignetting(device: Any) -> str:
    return str(device.__dict__.get("_vignetting_text", ""))


def _set_vignetting(device: Any, value: str) -> None:
    parse_vignetting(str(value))  # raises ValueError where the value is set
    device.__dict__["_vignetting_text"] = str(value).strip()


def register_illumination_properties(device: Any) -> None:
    """Add the illumination properties (see the module notes) to a camera."""
    add = device.register_property
    add(
        "Vignetting",
        default_value="",
        getter=_get_vignetting,
        setter=_set_vignetting,
    )
    add("IlluminationTiltPercent", default_value=0.0, limits=(0.0, 100.0))
    add("IlluminationTiltDeg", default_value=0.0, limits=(-180.0, 180.0))
    add("AutofluorescencePerUm2", default_value=0.0, limits=(0.0, 1e5))
    add("AutofluorescenceVariation", default_value=0.5, limits=(0.0, 0.9))


def illumination_of(device: Any) -> Illumination:
    """The illumination a camera's properties describe."""
    prop = device.get_property_value
    return Illumination(
        vignetting=parse_vignetting(_get_vignetting(device)),
        tilt=float(prop("IlluminationTiltPercent")) / 100.0,
        tilt_direction_deg=float(prop("IlluminationTiltDeg")),
        autofluorescence_per_um2=float(prop("AutofluorescencePerUm2")),
        autofluorescence_variation=float(prop("AutofluorescenceVariation")),
    )


@functools.lru_cache(maxsize=16)
def relative_illumination(
    shape: tuple[int, int], corner_loss: float, tilt: float, tilt_direction_deg: float
) -> Float32Array:
    """Relative brightness of the field at every pixel (1 on the axis).

    Parameters
    ----------
    shape : tuple of int
        (rows, cols) of the frame.
    corner_loss : float
        Vignetting: the loss at the field's corner.
    tilt : float
        Peak-to-peak change across the field's diagonal.
    tilt_direction_deg : float
        Direction of rising brightness.

    Returns
    -------
    ndarray of float32
        Read-only (cached) array of the frame's shape.

    """
    rows, cols = shape
    r = np.arange(rows, dtype=np.float64)[:, None] - (rows - 1) / 2
    c = np.arange(cols, dtype=np.float64)[None, :] - (cols - 1) / 2
    corner = math.hypot((rows - 1) / 2, (cols - 1) / 2) or 1.0
    vignette = 1.0 - corner_loss * (r * r + c * c) / corner**2
    a = math.radians(tilt_direction_deg)
    slope = 1.0 + 0.5 * tilt * (c * math.cos(a) + r * math.sin(a)) / corner
    field = np.asarray(vignette * slope, dtype=np.float32)
    field.setflags(write=False)
    return field


def _autofluorescence_waves(seed: int) -> NDArray[np.float64]:
    """Three plane waves (kx, ky, phase) drawn from the specimen's seed."""
    digest = hashlib.blake2b(f"autofluorescence {seed}".encode(), digest_size=8)
    rng = np.random.default_rng(int.from_bytes(digest.digest(), "little"))
    low, high = AUTOFLUORESCENCE_WAVELENGTHS_UM
    wavelength = np.exp(rng.uniform(math.log(low), math.log(high), 3))
    angle = rng.uniform(0.0, 2.0 * math.pi, 3)
    k = 2.0 * math.pi / wavelength
    return np.column_stack(
        (k * np.cos(angle), k * np.sin(angle), rng.uniform(0, 2 * math.pi, 3))
    )


def autofluorescence(
    illumination: Illumination,
    *,
    geometry: CameraGeometry,
    mount: Mount,
    axis_xy_um: tuple[float, float],
    specimen_seed: int,
) -> Float32Array:
    """Autofluorescence photons per ms in each pixel (before illumination).

    The pattern is fixed to the sample: pixel ``(row, col)`` sees the sample
    point under it, as the renderer's pixels do.
    """
    rows, cols = geometry.shape
    to_stage = geometry.pixel_to_stage
    centre = np.array([(cols - 1) / 2, (rows - 1) / 2])
    # the sample point of three pixels fixes the (affine) map of all
    pixels = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # (col, row)
    physical = (pixels - centre) @ to_stage.T + np.asarray(axis_xy_um)
    xyz = np.column_stack((physical, np.zeros(3)))
    sample = mount.physical_to_sample(xyz)[:, :2]
    origin, along_col, along_row = (
        sample[0],
        sample[1] - sample[0],
        sample[2] - sample[0],
    )
    waves = _autofluorescence_waves(specimen_seed)
    total = np.zeros((rows, cols))
    r = np.arange(rows, dtype=np.float64)[:, None]
    c = np.arange(cols, dtype=np.float64)[None, :]
    for kx, ky, phase in waves:
        k_col = kx * along_col[0] + ky * along_col[1]
        k_row = kx * along_row[0] + ky * along_row[1]
        start = kx * origin[0] + ky * origin[1] + phase
        total += np.cos(start + k_col * c + k_row * r)
    variation = illumination.autofluorescence_variation
    level = illumination.autofluorescence_per_um2 * geometry.pixel_size_um**2
    return np.asarray(level * (1.0 + variation * total / 3.0), dtype=np.float32)


def mountant_fraction(
    depth_um: float,
    *,
    numerical_aperture: float,
    immersion_index: float,
    wavelength_um: float,
) -> float:
    """Part of a confocal's optical section that lies in the mountant.

    The mountant fills the half-space above the glass; a confocal's response
    to a half-space of fluorophore rises from 0 (focus deep in the glass) to
    1 (focus deep in the sample) over its axial resolution: modelled as a
    Gaussian edge whose width is the axial FWHM
    ``0.88 lambda / (n - sqrt(n**2 - NA**2))``.

    Parameters
    ----------
    depth_um : float
        Height of the focal plane above the glass surface.
    numerical_aperture, immersion_index : float
        The objective's.
    wavelength_um : float
        Emission wavelength.

    Returns
    -------
    float
        In [0, 1].

    """
    n = immersion_index
    na = min(numerical_aperture, 0.999 * n)
    fwhm_um = 0.88 * wavelength_um / (n - math.sqrt(n * n - na * na))
    sigma_um = fwhm_um / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return 0.5 * (1.0 + math.erf(depth_um / (math.sqrt(2.0) * sigma_um)))


def illuminate(
    rate: Float32Array,
    illumination: Illumination,
    *,
    magnification: float,
    geometry: CameraGeometry,
    mount: Mount,
    axis_xy_um: tuple[float, float],
    specimen_seed: int,
    autofluorescence_fraction: float = 1.0,
) -> Float32Array:
    """The frame's photon rates under the camera's illumination.

    ``autofluorescence_fraction`` scales the autofluorescence (a confocal
    sees only the part of its section that lies in the mountant:
    :func:`mountant_fraction`). Returns ``rate`` itself (not a copy) when the
    field is evenly lit and dark, so frames stay exactly what they were
    without these properties.
    """
    if illumination.is_even(magnification):
        return rate
    field = relative_illumination(
        (int(rate.shape[0]), int(rate.shape[1])),
        illumination.corner_loss(magnification),
        illumination.tilt,
        illumination.tilt_direction_deg,
    )
    lit = rate * field
    if illumination.autofluorescence_per_um2 > 0 and autofluorescence_fraction > 0:
        lit += (field * np.float32(autofluorescence_fraction)) * autofluorescence(
            illumination,
            geometry=geometry,
            mount=mount,
            axis_xy_um=axis_xy_um,
            specimen_seed=specimen_seed,
        )
    out: Float32Array = np.maximum(lit, 0.0).astype(np.float32)
    return out


__all__ = [
    "Illumination",
    "autofluorescence",
    "illuminate",
    "illumination_of",
    "mountant_fraction",
    "parse_vignetting",
    "register_illumination_properties",
    "relative_illumination",
]
