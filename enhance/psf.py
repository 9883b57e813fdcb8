"""Wide-field PSF for deconvolution, computed with ``psfmodels``.

Gibson-Lanni/Aguet vectorial model for an index-matched oil objective (the
immersion, coverslip and mountant share one refractive index, the point source
sits at the coverslip), sampled at the voxel centres with 3x oversampling and
normalised to unit sum. It is the same physics the project's simulator uses
for wide-field kernels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import psfmodels

from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["WidefieldOptics", "default_psf_shape", "widefield_psf"]

_MAX_PSF_XY_PX = 129


@dataclass(frozen=True)
class WidefieldOptics:
    """Optics of the wide-field microscope whose stacks are deconvolved.

    Attributes
    ----------
    numerical_aperture : float
        Objective NA.
    immersion_index : float
        Refractive index of immersion oil, coverslip and mountant.
    emission_wavelength_um : float
        Centre of the detected emission band.

    """

    numerical_aperture: float = 1.3
    immersion_index: float = 1.518
    emission_wavelength_um: float = 0.52

    def __post_init__(self) -> None:
        if not 0 < self.numerical_aperture < self.immersion_index:
            raise EnhanceError(
                f"NA {self.numerical_aperture} must lie in (0, immersion index "
                f"{self.immersion_index})"
            )
        if self.emission_wavelength_um <= 0:
            raise EnhanceError(
                f"emission wavelength {self.emission_wavelength_um} um must be > 0"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary."""
        return asdict(self)


def default_psf_shape(
    stack_shape: tuple[int, ...],
    voxel_size_um: tuple[float, float, float],
    optics: WidefieldOptics,
) -> tuple[int, int, int]:
    """A PSF shape for deconvolving a stack: odd, as deep as the stack.

    Laterally wide enough for the defocus blur disc at half the stack depth
    plus six diffraction lengths, at most 129 pixels and the stack's width.
    """
    nz = stack_shape[0] if stack_shape[0] % 2 else stack_shape[0] + 1
    sin_a = optics.numerical_aperture / optics.immersion_index
    tan_a = sin_a / math.sqrt(1 - sin_a**2)
    radius_um = (nz // 2) * voxel_size_um[0] * tan_a
    radius_um += 6 * optics.emission_wavelength_um / optics.numerical_aperture
    half = math.ceil(radius_um / min(voxel_size_um[1], voxel_size_um[2]))
    widest = min(max(stack_shape[1], stack_shape[2]), _MAX_PSF_XY_PX)
    nxy = min(2 * half + 1, widest if widest % 2 else widest - 1)
    return (nz, nxy, nxy)


def widefield_psf(
    optics: WidefieldOptics,
    *,
    voxel_size_um: tuple[float, float, float],
    shape: tuple[int, int, int],
) -> NDArray[np.float32]:
    """Wide-field 3-D PSF, centred, unit sum.

    Parameters
    ----------
    optics : WidefieldOptics
        NA, immersion index and emission wavelength.
    voxel_size_um : tuple of float
        ``(dz, dy, dx)`` in um; ``dy`` must equal ``dx`` within 1 %.
    shape : tuple of int
        ``(z, y, x)``, each odd; ``y`` must equal ``x``.

    Returns
    -------
    ndarray
        float32 PSF with its peak at the centre voxel.

    Raises
    ------
    EnhanceError
        For even sizes, non-square planes or anisotropic pixels.

    """
    nz, ny, nx = (int(s) for s in shape)
    if min(nz, ny, nx) < 1 or not (nz % 2 and ny % 2 and nx % 2) or ny != nx:
        raise EnhanceError(
            f"PSF shape {shape} must be odd sizes with equal y and x",
            "e.g. (41, 65, 65)",
        )
    dz, dy, dx = (float(v) for v in voxel_size_um)
    if min(dz, dy, dx) <= 0 or abs(dy - dx) > 0.01 * dx:
        raise EnhanceError(f"voxel size {voxel_size_um} must be positive with dy == dx")
    return _cached_psf(optics, dz, dx, nz, nx).copy()


@lru_cache(maxsize=8)
def _cached_psf(
    optics: WidefieldOptics, dz: float, dxy: float, nz: int, nxy: int
) -> NDArray[np.float32]:
    n = optics.immersion_index
    psf = np.asarray(
        psfmodels.make_psf(
            nz,
            nxy,
            dxy=dxy,
            dz=dz,
            NA=optics.numerical_aperture,
            wvl=optics.emission_wavelength_um,
            ns=n,
            ni=n,
            ni0=n,
            ng=n,
            ng0=n,
            model="vectorial",
            normalize=False,
        ),
        dtype=np.float64,
    )
    psf = np.clip(psf, 0, None)
    normalised: NDArray[np.float32] = (psf / psf.sum()).astype(np.float32)
    return normalised
