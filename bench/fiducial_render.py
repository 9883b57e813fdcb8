"""Independent renderer of fiducial-mark images with exact truth.

Written from scratch for the fiducial benchmark (``bench/fiducials.py``) and
the mark-detection tests; it imports neither ``acquire`` nor ``correlate``
and shares no code with them. The marks come from a holder description (the
JSON of ``hardware_configs/demo_holder.json``: shape names and outer sizes);
their geometry is re-derived here from the holder's drawing:

========== ==================================================================
disc        a disc of diameter ``size``
ring        an annulus, outer diameter ``size``, inner diameter ``2/3 size``
cross       two bars ``size`` long and ``size / 5`` wide, crossed at their
            middles
triangle    an equilateral triangle of side ``size``, apex towards +v
square      a square of side ``size``
double-disc two discs of diameter ``3/7 size``, centres ``4/7 size`` apart
            along u
L           two arms ``size`` long and ``7/30 size`` wide, one along -u (the
            left side), one along -v (the bottom)
bar         a bar ``size`` long along u and ``2/9 size`` wide
========== ==================================================================

Each shape lives in its own frame ``(u, v)`` with its area centroid at the
origin; a mark turned by ``angle_deg`` has ``u = dx cos a + dy sin a`` and
``v = -dx sin a + dy cos a`` with ``dx`` along image columns and ``dy`` along
rows. The truth of a rendered mark is the pixel position of its area
centroid.

Image formation (all in photo-electrons, then ADU)
--------------------------------------------------
* **Mark and debris.** Coverage of each pixel by the shape, anti-aliased from
  the shape's signed distance: every pixel is split into ``s x s`` sub-pixels
  and each sub-pixel covers ``clip(1/2 - d / h, 0, 1)`` (``d`` the signed
  distance of its centre to the edge, ``h`` its side), which is exact for a
  straight edge through the sub-pixel. Dust and debris are small discs,
  ellipses and fibres of their own brightness, near the mark or anywhere.
* **Defocus.** A Gaussian blur of standard deviation ``blur_px``, applied as
  an exact Gaussian transfer function in Fourier space on a zero-padded grid
  (nothing wraps).
* **Illumination.** The mark, the debris and the autofluorescence are lit by
  a field that falls off radially (vignetting, a fraction ``vignetting`` at
  the field's corner) and is tilted (``tilt`` peak-to-peak across the field).
* **Background.** A smooth additive background (autofluorescence, stray
  light): a base level, a linear ramp rising by ``ramp_fraction`` times the
  mark's brightness across the field along a random direction, and
  low-frequency bumps (a few broad Gaussians, up to ``lowfreq_fraction`` of
  the mark's brightness).
* **Noise.** Poisson photo-electrons, Gaussian read noise, gain, offset,
  rounding to 16-bit ADU with clipping. The signal-to-noise ratio of a scene
  is that of the mark's plateau against its own noise:
  ``A / sqrt(A + b + r**2)`` for a plateau of ``A`` electrons over a base
  background of ``b`` electrons with read noise ``r``.

Usage::

    python bench/fiducial_render.py [--out DIR]

renders one image per pixel size and prints its truth.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft
from numpy.typing import NDArray

if TYPE_CHECKING:
    from collections.abc import Sequence

FloatArray = NDArray[np.float64]

ROOT = Path(__file__).resolve().parents[1]
DEMO_HOLDER = ROOT / "hardware_configs" / "demo_holder.json"

GAIN_ADU_PER_E = 2.0
OFFSET_ADU = 100.0
READ_NOISE_E = 1.6
MAX_ADU = 65535


# -- the holder's marks -------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """One mark of a holder: its identity, shape and outer size."""

    identity: str
    shape: str
    size_um: float


def holder_marks(path: Path = DEMO_HOLDER) -> tuple[Mark, ...]:
    """The marks of a holder description (JSON with a ``marks`` list)."""
    data = json.loads(Path(path).read_text())
    return tuple(
        Mark(str(m["identity"]), str(m["shape"]), float(m["size_um"]))
        for m in data["marks"]
    )


def _box_sdf(
    u: FloatArray, v: FloatArray, cu: float, cv: float, hu: float, hv: float
) -> FloatArray:
    """Signed distance to an axis-aligned box (centre, half sides)."""
    qu = np.abs(u - cu) - hu
    qv = np.abs(v - cv) - hv
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    inside = np.minimum(np.maximum(qu, qv), 0.0)
    return np.asarray(outside + inside, dtype=np.float64)


def _l_centroid(size: float) -> float:
    """Offset of the L's area centroid from its bounding box centre (both axes)."""
    h, w = size / 2, 7.0 / 30.0 * size
    a1 = size * w  # the left arm, full length
    a2 = (size - w) * w  # the bottom arm, less the shared corner
    c1 = -h + w / 2  # u of the left arm's centre
    c2 = (-h + w + h) / 2  # u of the bottom arm's centre
    return (a1 * c1 + a2 * c2) / (a1 + a2)


def shape_sdf(shape: str, size_um: float, u: FloatArray, v: FloatArray) -> FloatArray:
    """Signed distance (um, negative inside) to a mark in its centroid frame.

    Raises
    ------
    ValueError
        For a shape this renderer does not know.

    """
    s = size_um
    r = np.hypot(u, v)
    if shape == "disc":
        return np.asarray(r - s / 2, dtype=np.float64)
    if shape == "ring":
        return np.asarray(np.maximum(r - s / 2, s / 3 - r), dtype=np.float64)
    if shape == "cross":
        w = s / 5
        return np.minimum(
            _box_sdf(u, v, 0, 0, s / 2, w / 2), _box_sdf(u, v, 0, 0, w / 2, s / 2)
        )
    if shape == "triangle":
        inradius = s / (2 * math.sqrt(3))
        # apex towards +v: the centroid (= incentre) is at the origin
        out = np.full(np.shape(u), -np.inf)
        for normal_deg in (-90.0, 30.0, 150.0):
            a = math.radians(normal_deg)
            out = np.maximum(out, u * math.cos(a) + v * math.sin(a) - inradius)
        # exact inside and on the outline; outside a corner, within the
        # half sub-pixel that anti-aliasing looks at, a little short
        return np.asarray(out, dtype=np.float64)
    if shape == "square":
        return _box_sdf(u, v, 0, 0, s / 2, s / 2)
    if shape == "double-disc":
        radius, half = 3 / 14 * s, 2 / 7 * s
        return np.asarray(
            np.minimum(np.hypot(u - half, v), np.hypot(u + half, v)) - radius,
            dtype=np.float64,
        )
    if shape == "L":
        h, w = s / 2, 7 / 30 * s
        c = _l_centroid(s)
        bu, bv = u + c, v + c  # bounding-box frame
        left = _box_sdf(bu, bv, -h + w / 2, 0.0, w / 2, h)
        bottom = _box_sdf(bu, bv, 0.0, -h + w / 2, h, w / 2)
        return np.minimum(left, bottom)
    if shape == "bar":
        return _box_sdf(u, v, 0, 0, s / 2, s / 9)
    raise ValueError(f"the independent renderer does not know the shape {shape!r}")


def shape_radius_um(shape: str, size_um: float) -> float:
    """Largest distance of the mark's outline from its centroid."""
    if shape == "L":
        h, w, c = size_um / 2, 7 / 30 * size_um, _l_centroid(size_um)
        corners = ((-h, -h), (h, -h), (h, -h + w), (-h + w, h), (-h, h))
        return max(math.hypot(u - c, v - c) for u, v in corners)
    if shape == "cross":
        return math.hypot(size_um / 2, size_um / 10)
    if shape == "triangle":
        return size_um / math.sqrt(3)
    if shape == "square":
        return size_um / math.sqrt(2)
    if shape == "bar":
        return math.hypot(size_um / 2, size_um / 9)
    return size_um / 2


def _local_frame(
    rows: FloatArray, cols: FloatArray, centre_px: tuple[float, float], angle: float
) -> tuple[FloatArray, FloatArray]:
    dy = rows - centre_px[0]
    dx = cols - centre_px[1]
    a = math.radians(angle)
    return dx * math.cos(a) + dy * math.sin(a), -dx * math.sin(a) + dy * math.cos(a)


def coverage(
    sdf_um: Any,
    *,
    centre_px: tuple[float, float],
    angle_deg: float,
    radius_um: float,
    pixel_size_um: float,
    image_shape: tuple[int, int],
    supersample: int = 4,
) -> FloatArray:
    """Fraction of each pixel covered by a shape given by its signed distance.

    Parameters
    ----------
    sdf_um : callable
        ``sdf_um(u, v)``: signed distance in um in the shape's own frame.
    centre_px : tuple of float
        (row, col) of the shape's origin; pixel ``(i, j)`` spans
        ``[i - 1/2, i + 1/2] x [j - 1/2, j + 1/2]``.
    angle_deg : float
        Rotation of the shape (see the module notes).
    radius_um : float
        Bounding radius of the shape (only pixels within it are evaluated).
    pixel_size_um : float
        Pixel size.
    image_shape : tuple of int
        (rows, cols) of the output.
    supersample : int
        Sub-pixels per pixel along each axis.

    """
    out = np.zeros(image_shape)
    reach = radius_um / pixel_size_um + 2
    r0 = max(math.floor(centre_px[0] - reach), 0)
    r1 = min(math.ceil(centre_px[0] + reach) + 1, image_shape[0])
    c0 = max(math.floor(centre_px[1] - reach), 0)
    c1 = min(math.ceil(centre_px[1] + reach) + 1, image_shape[1])
    if r0 >= r1 or c0 >= c1:
        return out
    s = supersample
    offsets = (np.arange(s) + 0.5) / s - 0.5
    sub_r = (np.arange(r0, r1)[:, None] + offsets[None, :]).ravel()
    sub_c = (np.arange(c0, c1)[:, None] + offsets[None, :]).ravel()
    rows, cols = np.meshgrid(sub_r, sub_c, indexing="ij")
    u, v = _local_frame(rows, cols, centre_px, angle_deg)
    d = sdf_um(u * pixel_size_um, v * pixel_size_um)
    sub = np.clip(0.5 - d / (pixel_size_um / s), 0.0, 1.0)
    block = sub.reshape(r1 - r0, s, c1 - c0, s).mean(axis=(1, 3))
    out[r0:r1, c0:c1] = block
    return out


def gaussian_blur(image: FloatArray, sigma_px: float) -> FloatArray:
    """Gaussian blur through its exact transfer function, zero-padded."""
    if sigma_px <= 0:
        return image.copy()
    pad = math.ceil(5 * sigma_px) + 2
    shape = tuple(scipy.fft.next_fast_len(n + 2 * pad, real=True) for n in image.shape)
    spectrum = scipy.fft.rfft2(image, s=shape)
    fy = scipy.fft.fftfreq(shape[0])[:, None]
    fx = scipy.fft.rfftfreq(shape[1])[None, :]
    spectrum *= np.exp(-2 * math.pi**2 * sigma_px**2 * (fx**2 + fy**2))
    blurred = scipy.fft.irfft2(spectrum, s=shape)
    # light blurred across the far edge wraps to the near one: drop it
    return np.asarray(blurred[: image.shape[0], : image.shape[1]], dtype=np.float64)


# -- scenes --------------------------------------------------------------------


@dataclass(frozen=True)
class Debris:
    """A dust particle or fibre: an ellipse (or a thin long one) of its own light.

    ``centre_px`` is (row, col); ``brightness`` is relative to the mark's.
    """

    centre_px: tuple[float, float]
    half_axes_um: tuple[float, float]
    angle_deg: float
    brightness: float


@dataclass(frozen=True)
class Scene:
    """Everything that makes one image; the truth is ``centre_px``."""

    pixel_size_um: float
    image_shape: tuple[int, int]
    mark: Mark | None
    centre_px: tuple[float, float]
    angle_deg: float
    blur_px: float
    snr: float
    background_e: float
    ramp_fraction: float
    ramp_direction_deg: float
    lowfreq_fraction: float
    vignetting: float
    tilt: float
    tilt_direction_deg: float
    debris: tuple[Debris, ...] = field(default=())
    bumps: tuple[tuple[float, float, float, float], ...] = field(default=())
    read_noise_e: float = READ_NOISE_E

    @property
    def mark_e(self) -> float:
        """Plateau of the mark in photo-electrons for the scene's SNR."""
        s2 = self.snr**2
        b = self.background_e + self.read_noise_e**2
        return 0.5 * (s2 + math.sqrt(s2 * s2 + 4 * s2 * b))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        data = asdict(self)
        data["mark_e"] = self.mark_e
        return data


def _ellipse_sdf(a: float, b: float) -> Any:
    def sdf(u: FloatArray, v: FloatArray) -> FloatArray:
        # distance in the ellipse's scaled metric, back in um (approximate
        # outside, exact on the outline: enough for anti-aliasing)
        k = np.hypot(u / a, v / b)
        return np.asarray((k - 1.0) * min(a, b), dtype=np.float64)

    return sdf


def draw_scene(
    rng: np.random.Generator,
    *,
    mark: Mark | None,
    pixel_size_um: float,
    snr: float,
    blur_px: float,
    ramp_fraction: float,
    debris: bool,
    image_shape: tuple[int, int] = (512, 512),
    uneven: bool = True,
) -> Scene:
    """A random scene: sub-pixel centre, rotation, background and debris.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    mark : Mark or None
        The mark to show (None: an empty field).
    pixel_size_um, snr, blur_px, ramp_fraction : float
        The scene's condition.
    debris : bool
        Put 1-3 dust particles (and sometimes a fibre) near the mark.
    image_shape : tuple of int
        (rows, cols).
    uneven : bool
        Vignetting, illumination tilt and low-frequency background variation
        (random strengths); off: a flat field with only the ramp.

    """
    rows, cols = image_shape
    angle = float(rng.uniform(0, 360))
    radius_px = (
        shape_radius_um(mark.shape, mark.size_um) / pixel_size_um if mark else 0.0
    )
    margin = radius_px + 4 * blur_px + 4
    if mark is not None and 2 * margin >= min(rows, cols):
        raise ValueError(
            f"a {mark.size_um} um {mark.shape} does not fit a {rows} x {cols} "
            f"field of {pixel_size_um} um pixels"
        )
    centre = (
        float(rng.uniform(margin, rows - 1 - margin)) if mark else rows / 2,
        float(rng.uniform(margin, cols - 1 - margin)) if mark else cols / 2,
    )
    particles: list[Debris] = []
    if debris:
        for k in range(int(rng.integers(1, 4))):
            fibre = k == 0 and rng.random() < 0.3
            if fibre:
                half_axes = (float(rng.uniform(4, 12)), float(rng.uniform(0.3, 0.6)))
            else:
                a = float(rng.uniform(0.3, 2.0))
                half_axes = (a, a * float(rng.uniform(0.5, 1.0)))
            phi = rng.uniform(0, 2 * math.pi)
            if mark is not None:
                gap_um = float(rng.uniform(0.5, 8.0))
                dist = radius_px + (gap_um + max(half_axes)) / pixel_size_um
            else:
                dist = float(rng.uniform(0, 0.4 * min(rows, cols)))
            where = (centre[0] + dist * math.sin(phi), centre[1] + dist * math.cos(phi))
            particles.append(
                Debris(
                    where,
                    half_axes,
                    float(rng.uniform(0, 180)),
                    float(rng.uniform(0.3, 2.0)),
                )
            )
    bumps = []
    lowfreq = float(rng.uniform(0.05, 0.2)) if uneven else 0.0
    if uneven:
        for _ in range(3):
            bumps.append(
                (
                    float(rng.uniform(0, rows)),
                    float(rng.uniform(0, cols)),
                    float(rng.uniform(0.3, 0.7) * max(rows, cols)),
                    float(rng.uniform(-1, 1)),
                )
            )
    return Scene(
        pixel_size_um=pixel_size_um,
        image_shape=image_shape,
        mark=mark,
        centre_px=centre,
        angle_deg=angle,
        blur_px=blur_px,
        snr=snr,
        background_e=float(np.exp(rng.uniform(np.log(10), np.log(200)))),
        ramp_fraction=ramp_fraction,
        ramp_direction_deg=float(rng.uniform(0, 360)),
        lowfreq_fraction=lowfreq,
        vignetting=float(rng.uniform(0.0, 0.3)) if uneven else 0.0,
        tilt=float(rng.uniform(0.0, 0.2)) if uneven else 0.0,
        tilt_direction_deg=float(rng.uniform(0, 360)),
        debris=tuple(particles),
        bumps=tuple(bumps),
    )


def _unit_ramp(shape: tuple[int, int], direction_deg: float) -> FloatArray:
    """0 at one end of the field, 1 at the other, along a direction."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    a = math.radians(direction_deg)
    t = cols * math.cos(a) + rows * math.sin(a)
    return np.asarray((t - t.min()) / max(float(np.ptp(t)), 1e-12), dtype=np.float64)


def illumination(scene: Scene) -> FloatArray:
    """Relative illumination of every pixel (vignetting times tilt)."""
    rows, cols = scene.image_shape
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    r2 = ((r - (rows - 1) / 2) ** 2 + (c - (cols - 1) / 2) ** 2) / (
        ((rows - 1) / 2) ** 2 + ((cols - 1) / 2) ** 2
    )
    vignette = 1.0 - scene.vignetting * r2
    ramp = _unit_ramp(scene.image_shape, scene.tilt_direction_deg)
    tilt = 1.0 + scene.tilt * (ramp - 0.5)
    return np.asarray(vignette * tilt, dtype=np.float64)


def expected_electrons(scene: Scene) -> FloatArray:
    """Noise-free photo-electrons per pixel."""
    a = scene.mark_e
    light = np.zeros(scene.image_shape)
    if scene.mark is not None:
        mark = scene.mark

        def sdf(u: FloatArray, v: FloatArray) -> FloatArray:
            return shape_sdf(mark.shape, mark.size_um, u, v)

        light += coverage(
            sdf,
            centre_px=scene.centre_px,
            angle_deg=scene.angle_deg,
            radius_um=shape_radius_um(mark.shape, mark.size_um),
            pixel_size_um=scene.pixel_size_um,
            image_shape=scene.image_shape,
        )
    for particle in scene.debris:
        light += particle.brightness * coverage(
            _ellipse_sdf(*particle.half_axes_um),
            centre_px=particle.centre_px,
            angle_deg=particle.angle_deg,
            radius_um=max(particle.half_axes_um),
            pixel_size_um=scene.pixel_size_um,
            image_shape=scene.image_shape,
        )
    # the transfer function's ringing dips a hair below zero
    light = np.maximum(gaussian_blur(light, scene.blur_px), 0.0) * a
    rows, cols = np.mgrid[0 : scene.image_shape[0], 0 : scene.image_shape[1]]
    glow = np.full(scene.image_shape, scene.background_e)
    for r0, c0, width, sign in scene.bumps:
        glow += (
            sign
            * scene.lowfreq_fraction
            * a
            * np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / (2 * width**2))
        )
    # stray light and autofluorescence: never below zero
    glow = np.maximum(glow, 0.0)
    ramp = (
        scene.ramp_fraction
        * a
        * _unit_ramp(scene.image_shape, scene.ramp_direction_deg)
    )
    return np.asarray((light + glow) * illumination(scene) + ramp, dtype=np.float64)


def render(scene: Scene, rng: np.random.Generator) -> NDArray[np.uint16]:
    """One noisy 16-bit camera frame of a scene."""
    electrons = rng.poisson(expected_electrons(scene)).astype(np.float64)
    electrons += rng.normal(0.0, scene.read_noise_e, scene.image_shape)
    adu = np.rint(GAIN_ADU_PER_E * electrons + OFFSET_ADU)
    return np.clip(adu, 0, MAX_ADU).astype(np.uint16)


def render_mark(
    mark: Mark | None,
    *,
    pixel_size_um: float,
    snr: float,
    blur_px: float,
    ramp_fraction: float = 0.0,
    debris: bool = False,
    uneven: bool = True,
    seed: int = 0,
    image_shape: tuple[int, int] = (512, 512),
) -> tuple[NDArray[np.uint16], Scene]:
    """Draw a scene with ``seed`` and render it: (image, scene)."""
    rng = np.random.default_rng(seed)
    scene = draw_scene(
        rng,
        mark=mark,
        pixel_size_um=pixel_size_um,
        snr=snr,
        blur_px=blur_px,
        ramp_fraction=ramp_fraction,
        debris=debris,
        image_shape=image_shape,
        uneven=uneven,
    )
    return render(scene, rng), scene


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="write PNGs here")
    args = parser.parse_args(argv)
    marks = holder_marks()
    for k, pixel in enumerate((0.65, 0.4, 0.1625, 0.1)):
        image, scene = render_mark(
            marks[k % len(marks)],
            pixel_size_um=pixel,
            snr=15,
            blur_px=1.0,
            ramp_fraction=0.3,
            debris=True,
            seed=k,
        )
        print(
            f"{pixel} um: {scene.mark.identity if scene.mark else '-'} at "
            f"({scene.centre_px[0]:.2f}, {scene.centre_px[1]:.2f}) px, "
            f"{scene.angle_deg:.1f} deg, range {image.min()}-{image.max()} ADU"
        )
        if args.out is not None:
            import imageio.v3 as iio

            args.out.mkdir(parents=True, exist_ok=True)
            low, high = np.percentile(image, (0.5, 99.5))
            scaled = np.clip((image - low) / max(high - low, 1) * 255, 0, 255)
            iio.imwrite(args.out / f"mark_{pixel}.png", scaled.astype(np.uint8))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
