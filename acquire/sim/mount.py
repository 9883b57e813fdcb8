"""How a microscope holds the sample: the hidden sample-to-stage transform.

Coordinates
-----------
* **sample**: ``(x, y, h)`` in um; ``x, y`` on the coverslip around its centre,
  ``h`` the height above the coverslip's top surface.
* **physical**: where things really are in the stage's frame, in um.
* **stage**: what the stage controller reports. A commanded move of ``d`` really
  moves ``d * scale`` (encoder scale error) and lands with a repeatability error.

A sample point ``p`` sits at physical ``R p + t``. The coverslip surface lies at
physical height ``z_offset + g . q`` (tilt gradient ``g``). The point of the
sample on the optical axis when the stage reports ``(X, Y)`` is the one at
physical ``scale * (X, Y) + noise``; the focal plane for a reported ``Z`` is at
physical height ``scale_z * Z + noise``.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class MountLimits:
    """Ranges from which a random mount is drawn (uniformly within +-limit)."""

    max_rotation_deg: float = 5.0
    max_translation_um: float = 1000.0
    max_z_offset_um: float = 100.0
    max_tilt_deg: float = 0.3
    max_scale_error: float = 0.005
    xy_repeatability_um: float = 0.2
    z_repeatability_um: float = 0.02

    def __post_init__(self) -> None:
        if not 0 <= self.max_rotation_deg <= 180:
            raise ValueError("max_rotation_deg must lie in [0, 180]")
        if not 0 <= self.max_tilt_deg <= 5:
            raise ValueError("max_tilt_deg must lie in [0, 5]")
        if not 0 <= self.max_scale_error < 0.1:
            raise ValueError("max_scale_error must lie in [0, 0.1)")
        for name in (
            "max_translation_um",
            "max_z_offset_um",
            "xy_repeatability_um",
            "z_repeatability_um",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


@dataclass(frozen=True)
class Mount:
    """One microscope's hidden sample-to-stage transform and stage errors."""

    rotation_deg: float
    translation_um: tuple[float, float]
    z_offset_um: float
    tilt_gradient: tuple[float, float]
    scale: tuple[float, float, float]
    xy_repeatability_um: float
    z_repeatability_um: float

    @property
    def rotation_matrix(self) -> NDArray[np.float64]:
        """R: sample xy to physical xy (before translation)."""
        a = np.deg2rad(self.rotation_deg)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    def sample_to_physical(self, xyh_um: ArrayLike) -> NDArray[np.float64]:
        """Physical (x, y, z) of sample points (N, 3) or (3,)."""
        p = np.asarray(xyh_um, dtype=np.float64)
        q = p[..., :2] @ self.rotation_matrix.T + np.asarray(self.translation_um)
        z = self.surface_height_um(q) + p[..., 2]
        return np.concatenate([q, z[..., None]], axis=-1)

    def physical_to_sample(self, xyz_um: ArrayLike) -> NDArray[np.float64]:
        """Sample (x, y, h) of physical points (N, 3) or (3,)."""
        q = np.asarray(xyz_um, dtype=np.float64)
        p = (q[..., :2] - np.asarray(self.translation_um)) @ self.rotation_matrix
        h = q[..., 2] - self.surface_height_um(q[..., :2])
        return np.concatenate([p, h[..., None]], axis=-1)

    def surface_height_um(self, q_xy_um: ArrayLike) -> NDArray[np.float64]:
        """Physical height of the coverslip's top surface at physical xy."""
        q = np.asarray(q_xy_um, dtype=np.float64)
        height: NDArray[np.float64] = self.z_offset_um + q @ np.asarray(
            self.tilt_gradient
        )
        return height

    def stage_to_physical(self, stage_xyz_um: ArrayLike) -> NDArray[np.float64]:
        """Physical position the optical axis/focal plane reaches, without noise."""
        physical: NDArray[np.float64] = np.asarray(
            stage_xyz_um, dtype=np.float64
        ) * np.asarray(self.scale)
        return physical

    def physical_to_stage(self, xyz_um: ArrayLike) -> NDArray[np.float64]:
        """Reported stage coordinates that put a physical point on axis and in focus."""
        stage: NDArray[np.float64] = np.asarray(xyz_um, dtype=np.float64) / np.asarray(
            self.scale
        )
        return stage

    def sample_to_stage(self, xyh_um: ArrayLike) -> NDArray[np.float64]:
        """Stage coordinates (X, Y, Z) that centre and focus sample points."""
        return self.physical_to_stage(self.sample_to_physical(xyh_um))

    def stage_to_sample(self, stage_xyz_um: ArrayLike) -> NDArray[np.float64]:
        """Sample point on axis and in focus at the given stage coordinates."""
        return self.physical_to_sample(self.stage_to_physical(stage_xyz_um))

    def repeatability_error_um(
        self, key: tuple[object, ...], axis: str
    ) -> NDArray[np.float64]:
        """Deterministic landing error of one move, identified by ``key``.

        Parameters
        ----------
        key : tuple
            Anything that identifies the move uniquely and reproducibly (the
            commanded position and how often it has been visited).
        axis : {"xy", "z"}
            Which drive moved.

        Returns
        -------
        ndarray
            (2,) for "xy", (1,) for "z", in um.

        """
        digest = hashlib.blake2b(repr((axis, *key)).encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        if axis == "xy":
            return rng.normal(0.0, self.xy_repeatability_um, 2)
        return rng.normal(0.0, self.z_repeatability_um, 1)


# cached: each simulated camera asks for its mount on every snap
@functools.lru_cache(maxsize=32)
def draw_mount(seed: int, limits: MountLimits | None = None) -> Mount:
    """Draw a random mount.

    Parameters
    ----------
    seed : int
        Seed of the draw; the same seed and limits give the same mount.
    limits : MountLimits, optional
        Ranges; defaults to a few degrees of rotation, +-1 mm, +-100 um,
        0.3 degree tilt, 0.5 % scale error, 0.2 um repeatability.

    Returns
    -------
    Mount
        The mount.

    """
    lim = limits or MountLimits()
    rng = np.random.default_rng([seed, 0x6D6F756E74])
    tilt = np.tan(np.deg2rad(rng.uniform(0.0, lim.max_tilt_deg)))
    tilt_direction = rng.uniform(0.0, 2 * np.pi)
    return Mount(
        rotation_deg=float(rng.uniform(-lim.max_rotation_deg, lim.max_rotation_deg)),
        translation_um=(
            float(rng.uniform(-lim.max_translation_um, lim.max_translation_um)),
            float(rng.uniform(-lim.max_translation_um, lim.max_translation_um)),
        ),
        z_offset_um=float(rng.uniform(-lim.max_z_offset_um, lim.max_z_offset_um)),
        tilt_gradient=(
            float(tilt * np.cos(tilt_direction)),
            float(tilt * np.sin(tilt_direction)),
        ),
        scale=tuple(  # type: ignore[arg-type]
            float(1.0 + e)
            for e in rng.uniform(-lim.max_scale_error, lim.max_scale_error, 3)
        ),
        xy_repeatability_um=lim.xy_repeatability_um,
        z_repeatability_um=lim.z_repeatability_um,
    )
