"""Measured point spread functions: a bead stack from a file instead of psfmodels.

A measured PSF is a z-stack of one sub-resolution bead (OME-TIFF, ImageJ TIFF or
NumPy ``.npy``), planes ordered by increasing focus position (the focus moving
away from the coverslip into the sample, as a stage z-stack is). Loading it
(:func:`load_measured_psf`) subtracts the background (median of the stack's
border), clips what is left at zero, and finds the bead's sub-voxel centre: the
axial one at the maximum of the per-plane peak (parabola-refined, the same
definition of best focus as :mod:`acquire.sim.focal_shift`), the lateral one as
the intensity centroid around the brightest voxel of that plane.

:func:`resample_planes` then gives the bead's planes at any defocus relative to
that centre (linear interpolation in z) and at any camera pixel, integrated over
the pixel (sub-sampling a bilinear interpolant of the measured planes; a
confocal's scan positions are point-sampled), optionally averaged radially
around the centre. Normalising them is the caller's business
(:mod:`acquire.sim.depth_psf`).

Every problem with the file raises :class:`MeasuredPSFError`: one message that
names the file and says how to fix it.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from acquire.errors import UserError

if TYPE_CHECKING:
    import os

    from numpy.typing import NDArray

MIN_PLANES = 5
"""Fewest planes a bead stack may have (its focus must lie inside)."""
_MIN_LATERAL_PX = 7
_MAX_HALF_PX = 255
_PROCESSING_VERSION = 1
_UNIT_TO_UM = {
    "um": 1.0,
    "µm": 1.0,
    "\u03bcm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
}
_FILE_HINT = (
    "Point MeasuredPsfFile at a 3-D bead stack (z, y, x) saved as OME-TIFF, "
    "ImageJ TIFF or .npy, or set it to '' to use the computed PSF"
)


_Voxel = tuple[float, float, float] | None


class MeasuredPSFError(UserError, ValueError):
    """A measured PSF file that cannot be used: what is wrong and how to fix it."""


@dataclass(frozen=True, eq=False)
class MeasuredPSF:
    """A background-subtracted, centred bead stack.

    Equality and hash go by ``digest`` (content, voxel, options), so a setup
    holding one is a cheap cache key.

    Attributes
    ----------
    stack : ndarray of float32
        (z, y, x) bead stack, background subtracted, >= 0.
    voxel_um : tuple of float
        (dz, dy, dx) in um at the sample.
    centre_vox : tuple of float
        Sub-voxel (z, y, x) of the bead's centre and best focus.
    symmetrize : bool
        Average each plane radially around the centre when resampling.
    source : str
        The file it came from (for messages).
    digest : str
        Hash of the content and options.

    """

    stack: NDArray[np.float32] = field(repr=False)
    voxel_um: tuple[float, float, float]
    centre_vox: tuple[float, float, float]
    symmetrize: bool = False
    source: str = ""
    digest: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            h = hashlib.sha256()
            h.update(np.ascontiguousarray(self.stack, np.float32).tobytes())
            h.update(repr((self.stack.shape, self.voxel_um)).encode())
            h.update(repr((self.symmetrize, _PROCESSING_VERSION)).encode())
            object.__setattr__(self, "digest", h.hexdigest()[:24])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeasuredPSF) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    @property
    def z_range_um(self) -> tuple[float, float]:
        """Defocus (um) of the first and last plane relative to the centre."""
        dz = self.voxel_um[0]
        cz = self.centre_vox[0]
        return (-cz * dz, (self.stack.shape[0] - 1 - cz) * dz)


def parse_voxel_um(text: str, source: str = "") -> tuple[float, float, float] | None:
    """Parse ``"dz:dy:dx"`` or ``"dz,dy,dx"`` (um); an empty text gives None.

    A Micro-Manager configuration line cannot hold commas: write colons there.

    Raises
    ------
    MeasuredPSFError
        If the text is not three positive numbers.

    """
    if not text.strip():
        return None
    parts = [p.strip() for p in text.replace(";", ",").replace(":", ",").split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        where = f" for {source!r}" if source else ""
        raise MeasuredPSFError(
            f"MeasuredPsfVoxelUm {text!r}{where} is not a voxel size",
            "Give three positive numbers in um, 'dz:dy:dx', e.g. '0.1:0.05:0.05'",
        )
    return (values[0], values[1], values[2])


def _stat(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    file = Path(path).expanduser()
    try:
        stat = file.stat()
    except OSError:
        raise MeasuredPSFError(
            f"measured PSF file {str(file)!r} does not exist or cannot be opened",
            _FILE_HINT,
        ) from None
    if not file.is_file():
        raise MeasuredPSFError(
            f"measured PSF path {str(file)!r} is not a file", _FILE_HINT
        )
    return str(file.resolve()), stat.st_size, stat.st_mtime_ns


def check_measured_psf_file(
    path: str | os.PathLike[str],
) -> tuple[float, float, float] | None:
    """Read and check a bead stack; its voxel size from the file, if it has one.

    Everything :func:`load_measured_psf` checks except the voxel size, which
    may come separately (``MeasuredPsfVoxelUm``).

    Raises
    ------
    MeasuredPSFError
        As :func:`load_measured_psf`, but for a missing voxel size.

    """
    return _read_checked(*_stat(path))[2]


def load_measured_psf(
    path: str | os.PathLike[str],
    voxel_um: tuple[float, float, float] | None = None,
    *,
    symmetrize: bool = False,
) -> MeasuredPSF:
    """Read and prepare a bead stack (cached by path, size and modification time).

    Parameters
    ----------
    path : str or path-like
        OME-TIFF / ImageJ TIFF (``.tif``, ``.tiff``) or NumPy ``.npy`` file.
    voxel_um : tuple of float, optional
        (dz, dy, dx) in um; overrides the file's own. Required for ``.npy`` and
        for TIFFs without physical sizes.
    symmetrize : bool
        Average every plane radially around the bead when resampling.

    Returns
    -------
    MeasuredPSF
        The prepared stack.

    Raises
    ------
    MeasuredPSFError
        The file is missing, unreadable or corrupt, not one 3-D stack, has no
        voxel size, too few planes, NaN or infinite values, or no bead (all
        zero or constant), or the bead's focus lies at the stack's edge.

    """
    return _load_cached(*_stat(path), voxel_um, symmetrize)


@lru_cache(maxsize=8)
def _read_checked(
    path: str, _size: int, _mtime_ns: int
) -> tuple[NDArray[np.float32], tuple[float, float, float], _Voxel]:
    data, file_voxel = _read(Path(path))
    stack, centre = prepare_stack(data, path)
    return stack.astype(np.float32), centre, file_voxel


@lru_cache(maxsize=8)
def _load_cached(
    path: str,
    size: int,
    mtime_ns: int,
    voxel_um: tuple[float, float, float] | None,
    symmetrize: bool,
) -> MeasuredPSF:
    stack, centre, file_voxel = _read_checked(path, size, mtime_ns)
    voxel = voxel_um or file_voxel
    if voxel is None:
        raise MeasuredPSFError(
            f"measured PSF file {path!r} carries no voxel size",
            "Set MeasuredPsfVoxelUm to 'dz:dy:dx' in um (e.g. '0.1:0.05:0.05')",
        )
    if not all(np.isfinite(v) and v > 0 for v in voxel):
        raise MeasuredPSFError(
            f"measured PSF file {path!r} has voxel size {voxel}, not positive",
            "Set MeasuredPsfVoxelUm to 'dz:dy:dx' in um",
        )
    return MeasuredPSF(
        stack,
        (float(voxel[0]), float(voxel[1]), float(voxel[2])),
        centre,
        symmetrize=symmetrize,
        source=path,
    )


def _read(path: Path) -> tuple[NDArray[Any], _Voxel]:
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return np.asarray(np.load(path, allow_pickle=False)), None
        if name.endswith((".tif", ".tiff")):
            return _read_tiff(path)
    except MeasuredPSFError:
        raise
    except (OSError, ValueError, EOFError, KeyError, IndexError, TypeError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise MeasuredPSFError(
            f"cannot read measured PSF file {str(path)!r} ({detail[:160]})",
            "The file is damaged or not an image stack. " + _FILE_HINT,
        ) from None
    raise MeasuredPSFError(
        f"measured PSF file {str(path)!r} is neither a TIFF nor a .npy file",
        _FILE_HINT,
    )


def _read_tiff(path: Path) -> tuple[NDArray[Any], _Voxel]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ValueError("no image series")
        series = tif.series[0]
        data = np.asarray(series.asarray())
        axes = str(series.axes)
        voxel = None
        if tif.is_ome and tif.ome_metadata:
            voxel = _ome_voxel(tif.ome_metadata)
        if voxel is None and tif.is_imagej:
            voxel = _imagej_voxel(tif)
    kept = "".join(a for a, n in zip(axes, data.shape, strict=False) if n > 1)
    if data.ndim - sum(1 for n in data.shape if n == 1) == 3 and kept not in (
        "ZYX",
        "QYX",
        "IYX",
        "TYX",
    ):
        raise MeasuredPSFError(
            f"measured PSF file {str(path)!r} holds axes {kept!r}, not a z-stack",
            "Save one channel of one bead as a z-stack (axes ZYX)",
        )
    return data, voxel


def _ome_voxel(xml: str) -> tuple[float, float, float] | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Pixels":
            continue
        sizes = []
        for axis in ("Z", "Y", "X"):
            value = element.get(f"PhysicalSize{axis}")
            unit = element.get(f"PhysicalSize{axis}Unit", "µm")
            if value is None or unit not in _UNIT_TO_UM:
                return None
            sizes.append(float(value) * _UNIT_TO_UM[unit])
        return (sizes[0], sizes[1], sizes[2])
    return None


def _imagej_voxel(tif: Any) -> tuple[float, float, float] | None:
    meta = tif.imagej_metadata or {}
    unit = str(meta.get("unit", "")).replace("\\u00B5", "µ")
    scale = _UNIT_TO_UM.get(unit)
    spacing = meta.get("spacing")
    if scale is None or spacing is None:
        return None
    tags = tif.pages[0].tags
    try:
        x_num, x_den = tags["XResolution"].value
        y_num, y_den = tags["YResolution"].value
    except (KeyError, TypeError, ValueError):
        return None
    if not (x_num and y_num):
        return None
    return (
        float(spacing) * scale,
        float(y_den) / float(y_num) * scale,
        float(x_den) / float(x_num) * scale,
    )


def prepare_stack(
    data: NDArray[Any], source: str = "array"
) -> tuple[NDArray[np.float64], tuple[float, float, float]]:
    """Background-subtract a bead stack and find its sub-voxel centre.

    Parameters
    ----------
    data : ndarray
        The raw stack; singleton axes are dropped, three must remain (z, y, x).
    source : str
        Named in error messages.

    Returns
    -------
    stack : ndarray of float64
        Background subtracted and clipped at zero.
    centre : tuple of float
        Sub-voxel (z, y, x) of the bead's best focus.

    Raises
    ------
    MeasuredPSFError
        As :func:`load_measured_psf`.

    """
    from scipy.ndimage import gaussian_filter

    name = repr(source)
    if data.dtype.kind not in "uif":
        raise MeasuredPSFError(
            f"measured PSF {name} holds {data.dtype} values, not numbers", _FILE_HINT
        )
    stack = np.squeeze(np.asarray(data, dtype=np.float64))
    if stack.ndim != 3:
        raise MeasuredPSFError(
            f"measured PSF {name} has shape {tuple(data.shape)}: it is not one "
            "3-D stack",
            "Save a single bead z-stack with axes (z, y, x)",
        )
    n_planes, rows, cols = stack.shape
    if n_planes < MIN_PLANES:
        raise MeasuredPSFError(
            f"measured PSF {name} has {n_planes} planes, too few for a bead stack",
            f"Record at least {MIN_PLANES} planes with the bead's focus inside "
            "(typically 0.1-0.2 um apart, several um either side)",
        )
    if rows < _MIN_LATERAL_PX or cols < _MIN_LATERAL_PX:
        raise MeasuredPSFError(
            f"measured PSF {name} planes are {rows}x{cols} pixels, too small",
            f"Crop at least {_MIN_LATERAL_PX}x{_MIN_LATERAL_PX} pixels around the bead",
        )
    if not np.all(np.isfinite(stack)):
        raise MeasuredPSFError(
            f"measured PSF {name} contains NaN or infinite values",
            "Replace them (e.g. with the background level) and save the stack again",
        )
    if float(stack.max()) == float(stack.min()):
        raise MeasuredPSFError(
            f"measured PSF {name} is constant (every voxel is {stack.flat[0]:g}): "
            "there is no bead in it",
            "Save the bead stack itself, not an empty or blank one",
        )
    border = max(1, min(rows, cols) // 10)
    frame = np.ones((rows, cols), bool)
    frame[border:-border, border:-border] = False
    stack = np.clip(stack - float(np.median(stack[:, frame])), 0.0, None)
    if not stack.any():
        raise MeasuredPSFError(
            f"measured PSF {name} has nothing above its background",
            "Save a stack with one bright bead well inside the field",
        )
    smooth = gaussian_filter(stack, 1.0)
    _, y0, x0 = (int(i) for i in np.unravel_index(np.argmax(smooth), smooth.shape))
    window = max(2, min(rows, cols) // 16)
    ys = slice(max(0, y0 - window), y0 + window + 1)
    xs = slice(max(0, x0 - window), x0 + window + 1)
    peaks = smooth[:, ys, xs].max(axis=(1, 2))
    z_peak = int(np.argmax(peaks))
    cz = float(z_peak)
    if 0 < z_peak < n_planes - 1:
        a, b, c = peaks[z_peak - 1 : z_peak + 2]
        curvature = a - 2 * b + c
        if curvature < 0:
            cz += float(np.clip(0.5 * (a - c) / curvature, -0.5, 0.5))
    plane = stack[z_peak, ys, xs]
    total = float(plane.sum())
    if total <= 0:
        plane = smooth[z_peak, ys, xs]
        total = float(plane.sum())
    yy, xx = np.mgrid[ys, xs]
    cy = float((plane * yy).sum() / total)
    cx = float((plane * xx).sum() / total)
    if z_peak in (0, n_planes - 1) or min(cy, cx) < 2 or cy > rows - 3 or cx > cols - 3:
        raise MeasuredPSFError(
            f"measured PSF {name}: the brightest bead (plane {z_peak}, pixel "
            f"({cy:.0f}, {cx:.0f})) lies at the edge of the stack",
            "Crop the stack around one bead, with its best focus inside the z range",
        )
    return stack, (cz, cy, cx)


def resample_planes(
    measured: MeasuredPSF,
    pixel_um: float,
    defocus_um: NDArray[np.float64],
    *,
    integrate: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The bead's planes at the given defocus values on a camera pixel grid.

    Parameters
    ----------
    measured : MeasuredPSF
        The bead stack.
    pixel_um : float
        Target pixel at the sample.
    defocus_um : ndarray
        Signed focus positions relative to the bead's best focus.
    integrate : bool
        Integrate over the target pixel (a camera); False point-samples at
        the pixel centres (a confocal's scan positions).

    Returns
    -------
    planes : ndarray
        (len(defocus_um), N, N), N odd, centred on the bead, integrated over
        the target pixel; zero for defocus values outside the stack.
    inside : ndarray of bool
        Which defocus values lie within the stack's z range.

    """
    from scipy.ndimage import map_coordinates

    stack = measured.stack.astype(np.float64)
    n_planes, rows, cols = stack.shape
    dz, dy, dx = measured.voxel_um
    cz, cy, cx = measured.centre_vox
    radius_um = min(cy * dy, (rows - 1 - cy) * dy, cx * dx, (cols - 1 - cx) * dx)
    half = min(int(np.floor(radius_um / pixel_um)), _MAX_HALF_PX)
    if half < 1:
        raise MeasuredPSFError(
            f"measured PSF {measured.source!r} spans {2 * radius_um:.2f} um around "
            f"its bead, less than three {pixel_um:.3f} um camera pixels",
            "Record a laterally larger field around the bead",
        )
    size = 2 * half + 1
    sub = int(np.clip(np.ceil(2 * pixel_um / min(dy, dx)), 1, 7)) if integrate else 1
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    fine_um = ((np.arange(size) - half)[:, None] + offsets[None, :]).ravel() * pixel_um
    # each measured plane resampled once; z interpolation commutes with it
    if measured.symmetrize:
        r_src = np.hypot(
            (np.arange(rows)[:, None] - cy) * dy, (np.arange(cols)[None, :] - cx) * dx
        )
        step = 0.5 * min(dy, dx)
        bins = np.floor(r_src / step).astype(np.int64).ravel()
        counts = np.bincount(bins)
        centres = (np.arange(counts.size) + 0.5) * step
        valid = counts > 0
        r_out = np.hypot(fine_um[:, None], fine_um[None, :])
        lateral = np.empty((n_planes, size, size))
        for k in range(n_planes):
            sums = np.bincount(bins, stack[k].ravel(), minlength=counts.size)
            profile = sums[valid] / counts[valid]
            values = np.interp(r_out, centres[valid], profile, left=profile[0])
            lateral[k] = values.reshape(size, sub, size, sub).mean(axis=(1, 3))
    else:
        ys = cy + fine_um / dy
        xs = cx + fine_um / dx
        grid = np.meshgrid(ys, xs, indexing="ij")
        lateral = np.empty((n_planes, size, size))
        for k in range(n_planes):
            values = map_coordinates(stack[k], grid, order=1, mode="constant")
            lateral[k] = values.reshape(size, sub, size, sub).mean(axis=(1, 3))
    z_index = cz + np.asarray(defocus_um, dtype=np.float64) / dz
    inside = (z_index >= -1e-9) & (z_index <= n_planes - 1 + 1e-9)
    z_clamped = np.clip(z_index, 0.0, n_planes - 1.0)
    lower = np.minimum(np.floor(z_clamped).astype(np.int64), n_planes - 2)
    t = (z_clamped - lower)[:, None, None]
    planes = (1.0 - t) * lateral[lower] + t * lateral[lower + 1]
    planes[~inside] = 0.0
    return planes, inside
