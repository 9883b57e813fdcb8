"""Geometry of one adherent cell in its local frame, and its random draw.

The local frame has u along the cell's major axis, v across it and h the
height above the glass; :meth:`CellShape.to_sample_xyz` maps it to sample
coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["NUCLEUS_CLEARANCE_UM", "CellShape", "draw_cell_shape"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Cytoplasm between the nucleus' top and the cell's top.
NUCLEUS_CLEARANCE_UM = 0.5
_NUCLEUS_SKIRT = 0.5  # width of the membrane's fall beside the nucleus / its radius
#: Orders of the outline's radial harmonics.
_HARMONIC_ORDERS = (2, 3, 4, 5)
_HARMONIC_MAX_AMPLITUDES = (0.03, 0.025, 0.015, 0.01)


@dataclass(frozen=True)
class CellShape:
    """Vectorised geometry of one cell in its local frame.

    Attributes
    ----------
    semi_major_um, semi_minor_um : float
        Semi-axes of the footprint's unmodulated ellipse.
    orientation_rad : float
        Direction of the major axis in the sample frame.
    harmonic_amplitudes, harmonic_phases : tuple of float
        Relative amplitude and phase of the outline's radial harmonics.
    height_um : float
        Highest point of the cell.
    lamella_height_um : float
        Thickness of the cell at its edge.
    dome_height_um : float
        Peak of the cytoplasm's dome, not counting the bulge over the nucleus.
    nucleus_uv_um : tuple of float
        Local (u, v) of the nucleus' centre.
    nucleus_axes_um : tuple of float
        The nucleus' two lateral semi-axes and its axial semi-axis.
    nucleus_h_um : float
        Height of the nucleus' centre.
    nucleus_angle_rad : float
        Direction of the nucleus' first lateral semi-axis in the local frame.

    """

    semi_major_um: float
    semi_minor_um: float
    orientation_rad: float
    harmonic_amplitudes: tuple[float, ...]
    harmonic_phases: tuple[float, ...]
    height_um: float
    lamella_height_um: float
    dome_height_um: float
    nucleus_uv_um: tuple[float, float]
    nucleus_axes_um: tuple[float, float, float]
    nucleus_h_um: float
    nucleus_angle_rad: float

    @property
    def max_radius_um(self) -> float:
        """Upper bound of the footprint's radius."""
        return self.semi_major_um * (1.0 + sum(self.harmonic_amplitudes))

    @property
    def harmonics(self) -> tuple[tuple[int, float, float], ...]:
        """The outline's radial harmonics, ``(order, amplitude, phase_rad)``."""
        return tuple(
            zip(
                _HARMONIC_ORDERS,
                self.harmonic_amplitudes,
                self.harmonic_phases,
                strict=True,
            )
        )

    def boundary_radius(self, theta: FloatArray) -> FloatArray:
        """Footprint radius along local polar angle ``theta``."""
        a, b = self.semi_major_um, self.semi_minor_um
        r_ellipse = a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)
        modulation = np.ones_like(theta)
        for k, amp, phase in self.harmonics:
            modulation += amp * np.cos(k * theta + phase)
        return np.asarray(r_ellipse * modulation, dtype=np.float64)

    def rho(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Normalised footprint radius: 1 on the outline, < 1 inside."""
        # Same as hypot(u, v) / boundary_radius(arctan2(v, u)) without trig:
        # cos/sin of k*theta follow from cos/sin theta by angle addition.
        r = np.hypot(u, v)
        safe = np.where(r > 0.0, r, 1.0)
        c1, s1 = np.where(r > 0.0, u / safe, 1.0), v / safe
        ck, sk = c1, s1
        modulation = np.ones_like(r)
        order = 1
        for k, amp, phase in self.harmonics:
            while order < k:
                ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
                order += 1
            modulation += amp * (ck * math.cos(phase) - sk * math.sin(phase))
        ellipse = np.sqrt((u / self.semi_major_um) ** 2 + (v / self.semi_minor_um) ** 2)
        return np.asarray(ellipse / modulation)

    def nucleus_frame(
        self, u: FloatArray, v: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Coordinates along the nucleus' lateral semi-axes."""
        du = u - self.nucleus_uv_um[0]
        dv = v - self.nucleus_uv_um[1]
        c, s = math.cos(self.nucleus_angle_rad), math.sin(self.nucleus_angle_rad)
        return du * c + dv * s, -du * s + dv * c

    def _nucleus_lateral_q(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Squared normalised lateral radius in the nucleus' outline (1 on it)."""
        p, q = self.nucleus_frame(u, v)
        na, nb, _ = self.nucleus_axes_um
        return np.asarray((p / na) ** 2 + (q / nb) ** 2)

    def nucleus_half_thickness(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Half the nucleus' vertical extent at (u, v); NaN outside it."""
        q = self._nucleus_lateral_q(u, v)
        with np.errstate(invalid="ignore"):
            return np.where(q < 1.0, self.nucleus_axes_um[2] * np.sqrt(1.0 - q), np.nan)

    def nucleus_top(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Height of the nucleus' upper surface at (u, v); NaN outside it."""
        return self.nucleus_h_um + self.nucleus_half_thickness(u, v)

    def nucleus_bottom(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Height of the nucleus' lower surface at (u, v); NaN outside it."""
        return self.nucleus_h_um - self.nucleus_half_thickness(u, v)

    def inside_nucleus(self, u: FloatArray, v: FloatArray, h: FloatArray) -> BoolArray:
        """Whether local points (u, v, h) lie in the nucleus (surface included)."""
        q = self._nucleus_lateral_q(u, v)
        w = (h - self.nucleus_h_um) / self.nucleus_axes_um[2]
        return np.asarray(q + w * w <= 1.0)

    def nucleus_envelope(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Continuous surface draping the nucleus (0 far from it).

        0.5 um above the nucleus' top over it; outside, a skirt falling from
        0.5 um above the nucleus' equator to 0 over half a nucleus radius, so
        the membrane has no vertical walls.
        """
        q = self._nucleus_lateral_q(u, v)
        rim = self.nucleus_h_um + NUCLEUS_CLEARANCE_UM
        over = rim + self.nucleus_axes_um[2] * np.sqrt(np.clip(1.0 - q, 0.0, None))
        fall = np.clip(1.0 - (np.sqrt(q) - 1.0) / _NUCLEUS_SKIRT, 0.0, 1.0)
        return np.where(q < 1.0, over, rim * fall * fall)

    def thickness(self, u: FloatArray, v: FloatArray) -> FloatArray:
        """Height of the cell's upper surface at (u, v); 0 outside the footprint.

        The higher of a dome (thin lamella at the edge) and the envelope over
        the nucleus, so the nucleus is always covered by 0.5 um of cytoplasm
        and the maximum is ``height_um``.
        """
        rho = self.rho(u, v)
        dome = self.lamella_height_um + (
            self.dome_height_um - self.lamella_height_um
        ) * (np.clip(1.0 - rho * rho, 0.0, 1.0) ** 1.5)
        top = np.maximum(dome, self.nucleus_envelope(u, v))
        return np.where(rho <= 1.0, top, 0.0)

    def to_sample_xyz(
        self, centre_um: tuple[float, float], local: FloatArray
    ) -> FloatArray:
        """Local (u, v, h) rows to sample (x, y, h) for the cell at ``centre_um``."""
        c, s = math.cos(self.orientation_rad), math.sin(self.orientation_rad)
        u, v = local[:, 0], local[:, 1]
        return np.column_stack(
            (centre_um[0] + u * c - v * s, centre_um[1] + u * s + v * c, local[:, 2])
        )


def draw_cell_shape(rng: np.random.Generator) -> CellShape:
    """Draw a cell's shape parameters (everything that placement depends on)."""
    a = rng.uniform(17.0, 27.5)
    b = rng.uniform(17.0, a)
    amps = tuple(float(m * rng.uniform()) for m in _HARMONIC_MAX_AMPLITUDES)
    phases = tuple(
        float(p) for p in rng.uniform(0.0, 2 * math.pi, len(_HARMONIC_ORDERS))
    )
    orientation = rng.uniform(0.0, 2 * math.pi)
    height = rng.uniform(3.0, 8.0)
    lamella = rng.uniform(0.5, 0.8)
    na = rng.uniform(5.0, 9.0)
    nb = rng.uniform(4.0, na)
    bottom = rng.uniform(0.3, 0.8)
    top = height - NUCLEUS_CLEARANCE_UM
    offset_r = rng.uniform(0.0, 3.0)
    offset_t = rng.uniform(0.0, 2 * math.pi)
    nucleus_angle = rng.normal(0.0, math.radians(15.0))
    dome = float(np.clip(rng.uniform(0.35, 0.55) * height, lamella + 0.3, height - 0.5))
    return CellShape(
        semi_major_um=float(a),
        semi_minor_um=float(b),
        orientation_rad=float(orientation),
        harmonic_amplitudes=amps,
        harmonic_phases=phases,
        height_um=float(height),
        lamella_height_um=float(lamella),
        dome_height_um=dome,
        nucleus_uv_um=(offset_r * math.cos(offset_t), offset_r * math.sin(offset_t)),
        nucleus_axes_um=(float(na), float(nb), (top - bottom) / 2),
        nucleus_h_um=(top + bottom) / 2,
        nucleus_angle_rad=float(nucleus_angle),
    )
