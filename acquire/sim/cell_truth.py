"""Ground truth of one simulated cell: shape, nucleus, fibres and adhesions.

Coordinates are sample micrometres (see :mod:`acquire.sim.specimen`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AdhesionTruth",
    "CellTruth",
    "FibreTruth",
    "NucleolusTruth",
    "NucleusTruth",
    "round_um",
    "xyz_tuple",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class NucleolusTruth:
    """A darker nucleolus inside the nucleus.

    Attributes
    ----------
    centre_um : tuple of float
        Sample (x, y, h).
    radii_um : tuple of float
        Semi-axes (lateral, lateral, axial).
    darkness : float
        Fractional brightness reduction at its centre.

    """

    centre_um: tuple[float, float, float]
    radii_um: tuple[float, float, float]
    darkness: float


@dataclass(frozen=True)
class NucleusTruth:
    """Ellipsoidal nucleus with chromatin texture.

    Attributes
    ----------
    centre_um : tuple of float
        Sample (x, y, h) of the ellipsoid's centre.
    semi_axes_um : tuple of float
        Two lateral semi-axes and the axial semi-axis.
    orientation_deg : float
        Direction of the first lateral semi-axis, counter-clockwise from +x.
    bottom_um, top_um : float
        Heights of the nucleus' lowest and highest points.
    nucleoli : tuple of NucleolusTruth
        The darker nucleoli.
    photons_per_ms : float
        Summed brightness of the nucleus' emitters.

    """

    centre_um: tuple[float, float, float]
    semi_axes_um: tuple[float, float, float]
    orientation_deg: float
    bottom_um: float
    top_um: float
    nucleoli: tuple[NucleolusTruth, ...]
    photons_per_ms: float


@dataclass(frozen=True)
class FibreTruth:
    """One actin fibre.

    Attributes
    ----------
    index : int
        Fibre index within its cell.
    kind : str
        ``"ventral"`` (along the glass, adhesions at both ends), ``"dorsal"``
        (rising from a peripheral adhesion over the nucleus) or ``"cap"``
        (perinuclear actin cap arching over the nucleus, adhesions at both
        ends).
    path_um : tuple of tuple of float
        Sample (x, y, h) along the fibre, every ~0.5 um, ends included.
    length_um : float
        Arc length of the fibre.
    photons_per_ms_per_um : float
        Linear brightness.
    adhesions : tuple of int
        Indices (within the cell) of the adhesions at its ends.

    """

    index: int
    kind: str
    path_um: tuple[tuple[float, float, float], ...]
    length_um: float
    photons_per_ms_per_um: float
    adhesions: tuple[int, ...]


@dataclass(frozen=True)
class AdhesionTruth:
    """A focal adhesion: an elongated Gaussian blob on the glass.

    Attributes
    ----------
    index : int
        Adhesion index within its cell.
    fibre : int
        Index of the fibre it anchors.
    centre_um : tuple of float
        Sample (x, y, h).
    orientation_deg : float
        Direction of its long axis (along the fibre, pointing outwards).
    fwhm_um : tuple of float
        Full widths at half maximum: length, width, thickness.
    photons_per_ms : float
        Summed brightness.

    """

    index: int
    fibre: int
    centre_um: tuple[float, float, float]
    orientation_deg: float
    fwhm_um: tuple[float, float, float]
    photons_per_ms: float


@dataclass(frozen=True)
class CellTruth:
    """Ground truth of one adherent cell.

    The footprint is an ellipse (``semi_axes_um``, rotated by
    ``orientation_deg``) whose radius is modulated by
    ``1 + sum(a * cos(k * theta + phase))`` over ``outline_harmonics``
    (``(k, a, phase_rad)``), theta measured from the major axis.

    Attributes
    ----------
    index : int
        Cell index.
    identity : str
        Unique name, e.g. ``"C07"``.
    centre_um : tuple of float
        Sample (x, y) of the footprint's centre.
    orientation_deg : float
        Direction of the major axis, counter-clockwise from +x.
    semi_axes_um : tuple of float
        Major and minor semi-axes of the unmodulated ellipse.
    outline_harmonics : tuple of tuple
        ``(order, relative amplitude, phase in radians)``.
    outline_um : tuple of tuple of float
        Sample (x, y) of the footprint's outline polygon.
    height_um : float
        Highest point of the cell (above the nucleus' top).
    lamella_height_um : float
        Thickness of the cell at its edge.
    dome_height_um : float
        Peak of the cytoplasm's dome, not counting the bulge over the nucleus.
    nucleus : NucleusTruth
        The nucleus.
    fibres : tuple of FibreTruth
        Actin fibres.
    adhesions : tuple of AdhesionTruth
        Focal adhesions.
    cytoplasm_photons_per_ms : float
        Summed brightness of the cytoplasm's emitters.

    """

    index: int
    identity: str
    centre_um: tuple[float, float]
    orientation_deg: float
    semi_axes_um: tuple[float, float]
    outline_harmonics: tuple[tuple[int, float, float], ...]
    outline_um: tuple[tuple[float, float], ...]
    height_um: float
    lamella_height_um: float
    dome_height_um: float
    nucleus: NucleusTruth
    fibres: tuple[FibreTruth, ...]
    adhesions: tuple[AdhesionTruth, ...]
    cytoplasm_photons_per_ms: float


def xyz_tuple(values: FloatArray) -> tuple[float, float, float]:
    """The first three values of an array as a tuple of Python floats."""
    return (float(values[0]), float(values[1]), float(values[2]))


def round_um(x: float | np.floating[Any]) -> float:
    """Round a coordinate to 0.1 nm for compact ground truth."""
    return round(float(x), 4)
