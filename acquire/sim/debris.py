"""Dust and debris on the simulated coverslip.

Real coverslips carry fluorescent dust, fibres and flakes of the mark layer,
often right beside the marks (where the holder was handled, or where the
marks were etched). The simulated cameras add them through two properties
(off by default):

``DebrisPerMm2``
    Particles per mm^2 scattered over the whole coverslip region.
``DebrisNearMarks``
    Particles placed beside each fiducial mark, 0.5-10 um beyond the mark's
    outer radius.

Particles are ellipses 0.8-5 um across and, one in five, fibres 5-25 um long
and 0.4-0.8 um wide, lying on the glass (0.1-0.6 um high), as bright per
area as 0.3-2 times a mark. They are part of the sample: both scopes see the
same particles when they are given the same values, and they move with the
stage. They are not marks; the ground truth (the specimen) does not list
them.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from acquire.sim.emitters import Emitters
from acquire.sim.specimen import FIDUCIAL_PHOTONS_PER_MS_PER_UM2, Specimen

if TYPE_CHECKING:
    from acquire.sim.targets import EmitterSource

FloatArray = NDArray[np.float64]

#: Emitters of a particle sit on a square lattice this fine (um).
DEBRIS_LATTICE_UM = 0.1
#: Particles beside a mark lie this far beyond its outer radius (um).
NEAR_GAP_UM = (0.5, 10.0)
#: Fraction of particles that are fibres.
FIBRE_FRACTION = 0.2


@dataclass(frozen=True)
class Debris:
    """How much debris a camera's properties put on the coverslip."""

    per_mm2: float = 0.0
    near_marks: int = 0

    @property
    def is_clean(self) -> bool:
        """No debris at all."""
        return self.per_mm2 <= 0.0 and self.near_marks <= 0


def register_debris_properties(device: object) -> None:
    """Add ``DebrisPerMm2`` and ``DebrisNearMarks`` to a camera."""
    add = device.register_property  # type: ignore[attr-defined]
    add("DebrisPerMm2", default_value=0.0, limits=(0.0, 1e4))
    add("DebrisNearMarks", default_value=0, limits=(0, 50))


def debris_of(device: object) -> Debris:
    """The debris a camera's properties describe."""
    prop = device.get_property_value  # type: ignore[attr-defined]
    return Debris(float(prop("DebrisPerMm2")), int(prop("DebrisNearMarks")))


def _particle(
    rng: np.random.Generator, centre: tuple[float, float]
) -> tuple[FloatArray, float]:
    """Lattice emitter positions (x, y) of one particle and its brightness."""
    if rng.random() < FIBRE_FRACTION:
        half_long = float(rng.uniform(2.5, 12.5))
        half_short = float(rng.uniform(0.2, 0.4))
    else:
        half_long = float(rng.uniform(0.4, 2.5))
        half_short = half_long * float(rng.uniform(0.4, 1.0))
    angle = float(rng.uniform(0.0, math.pi))
    step = DEBRIS_LATTICE_UM
    n = math.ceil(half_long / step) + 1
    grid = (np.arange(-n, n + 1) + 0.5) * step
    u, v = np.meshgrid(grid, grid)
    inside = (u / half_long) ** 2 + (v / half_short) ** 2 <= 1.0
    u, v = u[inside], v[inside]
    cos, sin = math.cos(angle), math.sin(angle)
    xy = np.column_stack((centre[0] + u * cos - v * sin, centre[1] + u * sin + v * cos))
    brightness = float(rng.uniform(0.3, 2.0))
    return xy, brightness


@functools.lru_cache(maxsize=8)
def _debris_emitters(
    seed: int,
    width_um: float,
    height_um: float,
    marks: tuple[tuple[float, float, float], ...],
    debris: Debris,
) -> Emitters:
    digest = hashlib.blake2b(f"debris {seed}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    centres: list[tuple[float, float]] = []
    n_scattered = int(rng.poisson(debris.per_mm2 * width_um * height_um * 1e-6))
    for _ in range(n_scattered):
        centres.append(
            (
                float(rng.uniform(-width_um / 2, width_um / 2)),
                float(rng.uniform(-height_um / 2, height_um / 2)),
            )
        )
    for x, y, radius in marks:
        for _ in range(debris.near_marks):
            distance = radius + float(rng.uniform(*NEAR_GAP_UM)) + 1.0
            phi = float(rng.uniform(0.0, 2.0 * math.pi))
            centres.append((x + distance * math.cos(phi), y + distance * math.sin(phi)))
    xyz_parts = []
    photons_parts = []
    per_emitter = FIDUCIAL_PHOTONS_PER_MS_PER_UM2 * DEBRIS_LATTICE_UM**2
    for centre in centres:
        xy, brightness = _particle(rng, centre)
        height = float(rng.uniform(0.1, 0.6))
        xyz_parts.append(np.column_stack((xy, np.full(len(xy), height))))
        photons_parts.append(np.full(len(xy), brightness * per_emitter))
    if not xyz_parts:
        return Emitters(np.empty((0, 3), np.float32), np.empty(0, np.float32))
    xyz = np.concatenate(xyz_parts).astype(np.float32)
    photons = np.concatenate(photons_parts).astype(np.float32)
    xyz.setflags(write=False)
    photons.setflags(write=False)
    return Emitters(xyz, photons)


def debris_emitters(specimen: Specimen, debris: Debris) -> Emitters:
    """All debris particles of a specimen (cached; read-only arrays)."""
    marks = tuple(
        (float(m.centre_um[0]), float(m.centre_um[1]), float(m.radius_um))
        for m in specimen.fiducials
    )
    return _debris_emitters(
        specimen.seed, specimen.width_um, specimen.height_um, marks, debris
    )


class DebrisSpecimen:
    """An emitter source with the coverslip's dust and debris added.

    Parameters
    ----------
    source : EmitterSource
        What else is on the coverslip (the specimen, perhaps altered).
    specimen : Specimen
        The specimen (its seed, region and marks place the debris).
    debris : Debris
        How much debris.

    """

    def __init__(self, source: EmitterSource, specimen: Specimen, debris: Debris):
        self.source = source
        self.debris = debris_emitters(specimen, debris)

    def emitters_in_box(
        self, x_min_um: float, x_max_um: float, y_min_um: float, y_max_um: float
    ) -> Emitters:
        """Emitters in the box: the source's and the debris'."""
        found = self.source.emitters_in_box(x_min_um, x_max_um, y_min_um, y_max_um)
        d = self.debris.xyz_um
        inside = (
            (d[:, 0] >= x_min_um)
            & (d[:, 0] <= x_max_um)
            & (d[:, 1] >= y_min_um)
            & (d[:, 1] <= y_max_um)
        )
        if not inside.any():
            return found
        return Emitters(
            np.concatenate([found.xyz_um, d[inside]]),
            np.concatenate([found.photons_per_ms, self.debris.photons_per_ms[inside]]),
        )


__all__ = [
    "Debris",
    "DebrisSpecimen",
    "debris_emitters",
    "debris_of",
    "register_debris_properties",
]
