"""Real 3D fluorescence volumes as cells of the simulated specimen.

A *volume cell* is a measured 3D image placed on the simulated coverslip beside
the procedural cells of :mod:`acquire.sim.specimen`, so that the simulated
scopes image structures nobody here designed. Ask for one with a
:class:`VolumeRequest` (``build_specimen(..., volumes=(request,))``) or, on a
simulated camera, with the ``SpecimenVolumes`` property
(:func:`parse_volume_property`).

Reading
    OME-TIFF (voxel size from OME ``PhysicalSizeZ/Y/X`` and their units, or
    from ImageJ's calibration), OME-Zarr v0.4/v0.5 (the first dataset of the
    first multiscale, scaled by its ``coordinateTransformations``; axes without
    a unit are taken as micrometres) and ``.npy`` (no voxel size: give one).
    Singleton time or channel axes are dropped. A voxel size in the request
    overrides the file's.

Conversion to point emitters
    1. Voxels finer than half the emitter lattice are averaged in blocks of
       whole voxels; voxels coarser than the lattice are subdivided into
       ``k`` sub-voxels per axis (trilinear interpolation between voxel
       centres). Emitters sit exactly at the centres of the resulting lattice
       cells: voxel ``(iz, iy, ix)`` of spacing ``(dz, dy, dx)`` covers
       ``[ix dx, (ix + 1) dx)`` etc. in the volume frame.
    2. Background = median of the volume (a specimen image is mostly
       background), noise = 1.4826 x median absolute deviation; the signal is
       the volume minus the background, clipped at 0.
    3. Lattice points whose signal is at or below
       ``max(MIN_SIGNAL_FRACTION x max signal, NOISE_SIGMAS x noise)`` are
       dropped, and so are specks of noise, whose signal is set to 0: groups
       of touching voxels above the threshold with fewer than
       ``MIN_COMPONENT_VOXELS`` voxels or none above ``SPECK_PEAK_FACTOR``
       times the threshold.
    4. Weight = ``brightness x VOLUME_PEAK_PHOTONS_PER_MS_PER_UM3 x
       signal / peak x lattice cell volume``, where ``peak`` is the 99.9th
       percentile of the kept signal. At that density a thread blurred to
       confocal resolution (0.25 um x 0.7 um FWHM) carries about 200 photons
       per ms per um, half a procedural stress fibre (400 per um); a solid
       region at the peak is about 8 times the procedural nucleus (120 per
       um^3).

Placement
    The volume's bottom face lies on the glass (``h = height_um`` for a
    non-zero offset) and the centre of its structure's (x, y) bounding box,
    ``pivot_um`` in the volume frame, at the cell centre; the volume is then
    turned by ``rotation_deg`` counter-clockwise about that centre. Volume
    rows (y) run along sample +y, columns (x) along sample +x:
    ``sample_xy = centre + R(rotation) @ (volume_xy - pivot)``,
    ``h = volume_z + height_um``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from acquire.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from acquire.sim.emitter_index import EmitterGroups

__all__ = [
    "DEFAULT_LATTICE_UM",
    "MAX_EMITTERS",
    "MAX_EXTENT_UM",
    "MAX_VOXELS",
    "VOLUME_PEAK_PHOTONS_PER_MS_PER_UM3",
    "VolumeCell",
    "VolumeCellTruth",
    "VolumeRequest",
    "VolumeSpecimenError",
    "add_volume_cell",
    "file_stamp",
    "load_volume_cell",
    "parse_volume_property",
    "read_volume",
    "read_volume_list",
]

FloatArray = NDArray[np.float64]
Voxel = tuple[float, float, float]

#: Peak emitter density of a volume cell at brightness 1 (photons per ms per
#: um^3 at nominal illumination); see the module notes.
VOLUME_PEAK_PHOTONS_PER_MS_PER_UM3 = 1000.0
#: Default emitter spacing (axial, lateral) in um: finer than the sampling of
#: the renderer's layers (0.25 um), and laterally fine enough that a regular
#: lattice seen through the narrowest PSF (63x/1.43, sigma ~0.077 um) ripples by
#: under 0.1 %.
DEFAULT_LATTICE_UM = (0.25, 0.125)
#: Largest extent of a volume along any axis (catches voxel sizes in nm).
MAX_EXTENT_UM = 250.0
#: Most emitters one volume cell may have (24 bytes each in the specimen).
MAX_EMITTERS = 5_000_000
#: Most voxels a volume file may have (512^3).
MAX_VOXELS = 512**3
VOXEL_RANGE_UM = (0.001, 50.0)
"""Accepted voxel size along each axis, in um."""
MIN_SIGNAL_FRACTION = 0.02
NOISE_SIGMAS = 3.0
MIN_COMPONENT_VOXELS = 4
"""Touching voxels above the threshold needed to count as structure."""
SPECK_PEAK_FACTOR = 2.0
"""A structure's brightest voxel exceeds this many times the threshold."""
PEAK_PERCENTILE = 99.9
_MAD_TO_SIGMA = 1.4826
_CHUNK_POINTS = 2_000_000
_CACHE_SIZE = 4

_TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
_LENGTH_UNITS_UM = {
    "pm": 1e-6,
    "picometer": 1e-6,
    "å": 1e-4,
    "angstrom": 1e-4,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "µm": 1.0,
    "μm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "\\u00b5m": 1.0,
    "mm": 1e3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "metre": 1e6,
}
_PROPERTY_SYNTAX = (
    "write 'path[@dz:dy:dx][@brightness=B][@rotation=DEG][@height=UM]"
    "[@lattice=DZ:DXY]', entries separated by ';', "
    "e.g. 'neuron.tif@0.8:0.8:0.8@rotation=30', or the path of a .json list"
)


class VolumeSpecimenError(UserError, ValueError):
    """A volume that cannot become a cell: the file, what is wrong, and the fix.

    Parameters
    ----------
    path : Path or str
        The volume file (or property value) concerned.
    problem : str
        What is wrong with it.
    fix : str
        How to fix it.

    """

    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix[:1].upper() + fix[1:]
        super().__init__(f"volume {self.path}: {problem}", self.fix)


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------


def _floats(
    values: Any, n: int, path: Path | str, name: str
) -> tuple[float, ...] | None:
    if values is None:
        return None
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != n:
        fix = (
            _fix_voxel(path)
            if name == "voxel_um"
            else f"give {name}=(axial, lateral) in um, e.g. {DEFAULT_LATTICE_UM}"
        )
        raise VolumeSpecimenError(
            path, f"{name} must be {n} numbers, got {values!r}", fix
        )
    return numbers


def _fix_voxel(path: Path | str, example: str = "0.25, 0.1, 0.1") -> str:
    return (
        f"give the voxel size in micrometres as voxel_um=({example}) "
        f"(dz, dy, dx), or in the SpecimenVolumes property as "
        f"'{Path(path).name}@{example.replace(', ', ':')}'"
    )


@dataclass(frozen=True)
class VolumeRequest:
    """One real volume to place on the coverslip as a cell.

    Attributes
    ----------
    path : Path
        OME-TIFF, OME-Zarr folder or ``.npy`` file (a str is converted).
        Relative paths are relative to the current working directory when the
        specimen is built (:meth:`resolved` fixes them).
    voxel_um : tuple of float or None
        ``(dz, dy, dx)`` in um; overrides the file's voxel size, and is
        required where the file has none.
    brightness : float
        Factor on :data:`VOLUME_PEAK_PHOTONS_PER_MS_PER_UM3`.
    rotation_deg : float
        Counter-clockwise turn about z.
    height_um : float
        Height of the volume's bottom face above the glass.
    lattice_um : tuple of float
        Target emitter spacing ``(axial, lateral)``, see the module notes.

    Raises
    ------
    VolumeSpecimenError
        A value out of range.

    """

    path: Path
    voxel_um: Voxel | None = None
    brightness: float = 1.0
    rotation_deg: float = 0.0
    height_um: float = 0.0
    lattice_um: tuple[float, float] = DEFAULT_LATTICE_UM

    def __post_init__(self) -> None:
        path = Path(os.fspath(self.path))
        object.__setattr__(self, "path", path)
        voxel = _floats(self.voxel_um, 3, path, "voxel_um")
        if voxel is not None:
            _check_voxel(voxel, path, "given")
        object.__setattr__(self, "voxel_um", voxel)
        lattice = _floats(self.lattice_um, 2, path, "lattice_um") or DEFAULT_LATTICE_UM
        if not all(math.isfinite(v) and 0.01 <= v <= 10.0 for v in lattice):
            raise VolumeSpecimenError(
                path,
                f"lattice_um must lie in [0.01, 10] um, got {lattice}",
                f"use e.g. lattice_um={DEFAULT_LATTICE_UM} (axial, lateral)",
            )
        object.__setattr__(self, "lattice_um", lattice)
        for name, low, high in (
            ("brightness", 0.0, 1e6),
            ("rotation_deg", -3600.0, 3600.0),
            ("height_um", 0.0, MAX_EXTENT_UM),
        ):
            try:
                value = float(getattr(self, name))
            except (TypeError, ValueError):
                value = math.nan
            if not (math.isfinite(value) and low <= value <= high) or (
                name == "brightness" and value == 0.0
            ):
                raise VolumeSpecimenError(
                    path,
                    f"{name} must be a finite number in "
                    f"{'(' if name == 'brightness' else '['}{low:g}, {high:g}], "
                    f"got {getattr(self, name)!r}",
                    f"give a {name} in that range",
                )
            object.__setattr__(self, name, value)

    def resolved(self) -> VolumeRequest:
        """The same request with an absolute path (relative to the cwd now)."""
        return replace(self, path=self.path.expanduser().resolve())

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (the path as a string)."""
        return {
            "path": str(self.path),
            "voxel_um": list(self.voxel_um) if self.voxel_um else None,
            "brightness": self.brightness,
            "rotation_deg": self.rotation_deg,
            "height_um": self.height_um,
            "lattice_um": list(self.lattice_um),
        }


def _check_voxel(voxel: tuple[float, ...], path: Path | str, origin: str) -> None:
    low, high = VOXEL_RANGE_UM
    if not all(math.isfinite(v) for v in voxel):
        raise VolumeSpecimenError(
            path,
            f"the {origin} voxel size {voxel} is not finite",
            _fix_voxel(path),
        )
    if not all(low <= v <= high for v in voxel):
        raise VolumeSpecimenError(
            path,
            f"the {origin} voxel size {tuple(round(v, 6) for v in voxel)} um "
            f"(dz, dy, dx) is outside [{low:g}, {high:g}] um",
            "check its units (micrometres) and " + _fix_voxel(path),
        )


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _unit_um(unit: Any, path: Path, axis: str) -> float:
    if unit is None:
        return 1.0
    key = str(unit).strip().lower()
    if key in _LENGTH_UNITS_UM:
        return _LENGTH_UNITS_UM[key]
    raise VolumeSpecimenError(
        path,
        f"the unit {unit!r} of its {axis} voxel size is not a length pairscope knows",
        _fix_voxel(path),
    )


def _ome_voxel(xml: str | None, path: Path) -> tuple[Voxel | None, str]:
    """Voxel (dz, dy, dx) um from OME-XML, or None and what is missing."""
    if not xml:
        return None, "no OME metadata"
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, "unreadable OME metadata"
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels")), None)
    if pixels is None:
        return None, "no OME Pixels element"
    sizes = []
    missing = []
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            missing.append(f"PhysicalSize{axis}")
            continue
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
        sizes.append(float(value) * _unit_um(unit, path, axis.lower()))
    if missing:
        return None, f"no OME {', '.join(missing)}"
    return (sizes[0], sizes[1], sizes[2]), ""


def _imagej_voxel(tif: Any, path: Path) -> tuple[Voxel | None, str]:
    meta = tif.imagej_metadata or {}
    unit = meta.get("unit")
    if unit is None or str(unit).lower() in ("pixel", "pixels", ""):
        return None, "no ImageJ calibration unit"
    if "spacing" not in meta:
        return None, "no ImageJ z spacing"
    scale = _unit_um(unit, path, "x")
    page = tif.pages.first
    sizes = []
    for tag_name in ("YResolution", "XResolution"):
        tag = page.tags.get(tag_name)
        if tag is None:
            return None, f"no TIFF {tag_name}"
        numerator, denominator = tag.value
        if numerator == 0:
            return None, f"a zero TIFF {tag_name}"
        sizes.append(denominator / numerator * scale)
    return (float(meta["spacing"]) * scale, sizes[0], sizes[1]), ""


def _to_zyx(data: NDArray[Any], axes: str, path: Path) -> NDArray[Any]:
    """Reorder to (z, y, x), dropping singleton non-spatial axes."""
    axes = axes.upper()
    if "Z" not in axes:
        # plain multi-page TIFF: the page axis is z
        stack = [a for a in axes if a in "IQ" and data.shape[axes.index(a)] > 1]
        if len(stack) == 1:
            axes = axes.replace(stack[0], "Z")
    if not all(a in axes for a in "ZYX"):
        raise VolumeSpecimenError(
            path,
            f"is not a 3D volume (shape {data.shape}, axes {axes!r})",
            "give a z-stack with z, y and x axes",
        )
    extra = [(a, n) for a, n in zip(axes, data.shape, strict=True) if a not in "ZYX"]
    if any(n != 1 for _, n in extra):
        raise VolumeSpecimenError(
            path,
            f"has more than one z-stack (shape {data.shape}, axes {axes!r})",
            "save one channel and one time point as its own file",
        )
    order = [axes.index(a) for a in "ZYX"]
    squeezed = np.transpose(data, [*order, *(axes.index(a) for a, _ in extra)])
    return squeezed.reshape(squeezed.shape[:3])


def _check_voxel_count(shape: tuple[int, ...], path: Path) -> None:
    n = math.prod(shape)
    if n > MAX_VOXELS:
        raise VolumeSpecimenError(
            path,
            f"has {n:,} voxels (shape {shape}); the limit is {MAX_VOXELS:,}",
            "crop or bin the volume to the cell of interest",
        )


def _read_tiff(path: Path) -> tuple[NDArray[Any], Voxel | None, str]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise VolumeSpecimenError(path, "holds no image", "give a z-stack")
        series = tif.series[0]
        _check_voxel_count(tuple(series.shape), path)
        data = _to_zyx(np.asarray(series.asarray()), str(series.axes), path)
        if tif.is_ome:
            voxel, why = _ome_voxel(tif.ome_metadata, path)
        elif tif.is_imagej:
            voxel, why = _imagej_voxel(tif, path)
        else:
            voxel, why = None, "no OME or ImageJ metadata"
    return data, voxel, why


def _read_npy(path: Path) -> tuple[NDArray[Any], Voxel | None, str]:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    shape = tuple(array.shape)
    if array.ndim < 3 or any(n != 1 for n in shape[:-3]):
        raise VolumeSpecimenError(
            path,
            f"is not a 3D volume (shape {shape})",
            "save a (z, y, x) array, optionally with leading axes of length 1",
        )
    _check_voxel_count(shape, path)
    return np.array(array.reshape(shape[-3:])), None, ".npy files carry none"


def _scale_of(transforms: Any, n: int) -> list[float] | None:
    scale = [1.0] * n
    found = False
    for transform in transforms or ():
        if isinstance(transform, dict) and transform.get("type") == "scale":
            values = transform.get("scale")
            if not isinstance(values, list) or len(values) != n:
                return None
            scale = [a * float(b) for a, b in zip(scale, values, strict=True)]
            found = True
    return scale if found else None


def _read_zarr(path: Path) -> tuple[NDArray[Any], Voxel | None, str]:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    ome = attrs.get("ome")
    meta = ome if isinstance(ome, dict) else attrs
    multiscales = meta.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        raise VolumeSpecimenError(
            path,
            "is a Zarr group without OME 'multiscales' metadata",
            "write it as OME-Zarr (v0.4 or v0.5), or save the (z, y, x) array as "
            ".npy and " + _fix_voxel(path),
        )
    multiscale = multiscales[0]
    dataset = multiscale["datasets"][0]
    array = group[str(dataset["path"])]
    if not isinstance(array, zarr.Array):
        raise VolumeSpecimenError(
            path,
            f"has no array at its first dataset path {dataset['path']!r}",
            "fix the OME-Zarr metadata or give the array's own folder",
        )
    shape = tuple(int(n) for n in array.shape)
    raw_axes = multiscale.get("axes") or list("tczyx"[-len(shape) :])
    names = [str(a.get("name") if isinstance(a, dict) else a).lower() for a in raw_axes]
    units = [a.get("unit") if isinstance(a, dict) else None for a in raw_axes]
    if len(names) != len(shape):
        raise VolumeSpecimenError(
            path,
            f"declares axes {names} for an array of shape {shape}",
            "fix the OME-Zarr metadata",
        )
    _check_voxel_count(shape, path)
    index = tuple(slice(None) if a in ("z", "y", "x") else 0 for a in names)
    if any(n != 1 for a, n in zip(names, shape, strict=True) if a not in "zyx"):
        raise VolumeSpecimenError(
            path,
            f"has more than one z-stack (shape {shape}, axes {names})",
            "save one channel and one time point as its own OME-Zarr",
        )
    kept = [a for a in names if a in ("z", "y", "x")]
    data = np.asarray(array[index])
    data = _to_zyx(data, "".join(kept), path)
    scale = _scale_of(dataset.get("coordinateTransformations"), len(shape))
    outer = _scale_of(multiscale.get("coordinateTransformations"), len(shape))
    if scale is None:
        return data, None, "no OME-Zarr scale transform"
    if outer is not None:
        scale = [a * b for a, b in zip(scale, outer, strict=True)]
    sizes = {
        a: s * _unit_um(u, path, a)
        for a, s, u in zip(names, scale, units, strict=True)
        if a in ("z", "y", "x")
    }
    return data, (sizes["z"], sizes["y"], sizes["x"]), ""


def read_volume(
    path: Path | str, voxel_um: Voxel | None = None
) -> tuple[NDArray[Any], Voxel, str]:
    """Read a 3D volume and its voxel size.

    Parameters
    ----------
    path : Path or str
        OME-TIFF (or ImageJ TIFF), OME-Zarr folder, or ``.npy``.
    voxel_um : tuple of float, optional
        ``(dz, dy, dx)`` in um, overriding the file's.

    Returns
    -------
    data : ndarray
        The volume, axes (z, y, x), in its own dtype.
    voxel_um : tuple of float
        ``(dz, dy, dx)`` in um.
    voxel_from : str
        ``"file"`` or ``"given"``.

    Raises
    ------
    VolumeSpecimenError
        Missing, unreadable or not 3D; no voxel size in the file and none
        given; a voxel size out of range.

    """
    path = Path(path)
    if not path.exists():
        raise VolumeSpecimenError(
            path,
            "does not exist",
            f"check the path (a relative path is relative to the current working "
            f"directory, {Path.cwd()})",
        )
    name = path.name.lower()
    if path.is_dir():
        reader, kind = _read_zarr, "OME-Zarr"
    elif name.endswith(_TIFF_SUFFIXES):
        reader, kind = _read_tiff, "TIFF"
    elif name.endswith(".npy"):
        reader, kind = _read_npy, ".npy"
    else:
        raise VolumeSpecimenError(
            path,
            "is not a volume format pairscope reads",
            "give an OME-TIFF (.ome.tif), an OME-Zarr folder or a .npy file",
        )
    try:
        data, file_voxel, why = reader(path)
    except VolumeSpecimenError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise VolumeSpecimenError(
            path,
            f"cannot be read as {kind} ({type(exc).__name__}: {detail[:200]})",
            f"check that it is a complete, uncorrupted {kind} z-stack",
        ) from None
    if data.dtype.kind not in "buif":
        raise VolumeSpecimenError(
            path,
            f"has {data.dtype} values",
            "save the intensities as integers or real floats",
        )
    if voxel_um is not None:
        _check_voxel(tuple(voxel_um), path, "given")
        return (
            data,
            (float(voxel_um[0]), float(voxel_um[1]), float(voxel_um[2])),
            "given",
        )
    if file_voxel is None:
        raise VolumeSpecimenError(
            path,
            f"has no voxel size ({why})",
            _fix_voxel(path),
        )
    _check_voxel(file_voxel, path, "file's")
    return data, file_voxel, "file"


# --------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class VolumeCell:
    """A volume turned into emitters, before placement on the coverslip.

    Attributes
    ----------
    request : VolumeRequest
        The (resolved) request.
    shape : tuple of int
        (nz, ny, nx) of the volume read.
    voxel_um : tuple of float
        (dz, dy, dx) used; ``voxel_from`` says whether from the file or given.
    lattice_um : tuple of float
        (dz, dy, dx) spacing of the emitter lattice.
    pivot_um : tuple of float
        Volume-frame (x, y) put at the cell centre: the middle of the kept
        emitters' (x, y) bounding box.
    extent_um : tuple of float
        (x, y, h) size of the whole volume.
    background, noise_sigma, threshold, peak_signal : float
        In the file's intensity units (``threshold`` and ``peak_signal``
        above the background).
    local_xyz_um : ndarray of float64
        (N, 3): x, y relative to the pivot, h above the glass.
    photons_per_ms : ndarray of float64
        (N,) emitter weights.
    radius_um : float
        Footprint radius about the pivot (for placement).
    load_s : float
        Seconds spent reading and converting.

    """

    request: VolumeRequest
    shape: tuple[int, int, int]
    voxel_um: Voxel
    voxel_from: str
    lattice_um: Voxel
    pivot_um: tuple[float, float]
    extent_um: Voxel
    background: float
    noise_sigma: float
    threshold: float
    peak_signal: float
    local_xyz_um: FloatArray = field(repr=False)
    photons_per_ms: FloatArray = field(repr=False)
    radius_um: float
    load_s: float

    @property
    def n_emitters(self) -> int:
        """Number of emitters."""
        return int(self.photons_per_ms.size)


def _factors(voxel: float, target: float) -> tuple[int, int]:
    """(bin, subdivide) for one axis: average fine voxels, split coarse ones."""
    if voxel > target * (1 + 1e-9):
        return 1, math.ceil(voxel / target - 1e-9)
    if 2 * voxel <= target * (1 + 1e-9):
        return math.floor(target / voxel + 1e-9), 1
    return 1, 1


def _bin(
    data: NDArray[np.float32], bins: tuple[int, ...], fill: float
) -> NDArray[np.float32]:
    """Block means, the far edge padded with ``fill``."""
    if all(b == 1 for b in bins):
        return data
    pad = [(0, -n % b) for n, b in zip(data.shape, bins, strict=True)]
    padded = np.pad(data, pad, constant_values=fill)
    shape: list[int] = []
    for n, b in zip(padded.shape, bins, strict=True):
        shape += [n // b, b]
    means = padded.reshape(shape).mean(axis=(1, 3, 5), dtype=np.float64)
    binned: NDArray[np.float32] = means.astype(np.float32)
    return binned


def _drop_specks(signal: NDArray[np.float32], threshold: float) -> NDArray[np.bool_]:
    """Voxels above the threshold, less the specks of noise among them.

    A group of touching voxels above ``threshold`` is structure if it has at
    least :data:`MIN_COMPONENT_VOXELS` voxels and one of them exceeds
    ``SPECK_PEAK_FACTOR x threshold`` (hysteresis thresholding).
    """
    above = signal > threshold
    labels, n = ndimage.label(above, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return above
    index = np.arange(1, n + 1)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    peaks = np.asarray(ndimage.maximum(signal, labels, index))
    structure = np.zeros(n + 1, dtype=bool)
    structure[1:] = (sizes >= MIN_COMPONENT_VOXELS) & (
        peaks > SPECK_PEAK_FACTOR * threshold
    )
    kept: NDArray[np.bool_] = structure[labels]
    return kept


def _lattice_plan(
    voxel: Voxel, lattice: tuple[float, float]
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    targets = (lattice[0], lattice[1], lattice[1])
    pairs = [_factors(v, t) for v, t in zip(voxel, targets, strict=True)]
    bins = (pairs[0][0], pairs[1][0], pairs[2][0])
    subs = (pairs[0][1], pairs[1][1], pairs[2][1])
    return bins, subs


def _too_many(
    request: VolumeRequest, estimate: float, kept_voxels: int, voxel: Voxel
) -> VolumeSpecimenError:
    """The error for a volume over :data:`MAX_EMITTERS`, with a lattice that fits."""
    ladder = [(0.25, 0.15), (0.3, 0.2), (0.4, 0.25), (0.5, 0.3), (0.5, 0.4)]
    ladder += [(0.75, 0.5), (1.0, 0.75), (1.0, 1.0), (2.0, 1.5)]
    hint = "crop the volume to the structure of interest"
    for lattice in ladder:
        bins, subs = _lattice_plan(voxel, lattice)
        if kept_voxels * math.prod(subs) / math.prod(bins) <= 0.8 * MAX_EMITTERS:
            hint = (
                f"give a coarser emitter lattice, e.g. lattice_um={lattice} "
                f"('@lattice={lattice[0]:g}:{lattice[1]:g}' in SpecimenVolumes; "
                "a coarse lattice can show as a grid at high NA), or " + hint
            )
            break
    lattice_text = f"{request.lattice_um[0]:g}:{request.lattice_um[1]:g}"
    return VolumeSpecimenError(
        request.path,
        f"needs about {estimate:,.0f} emitters at the emitter lattice "
        f"{lattice_text} um (voxel {voxel} um); the limit is {MAX_EMITTERS:,}",
        hint,
    )


def _sample_lattice(
    signal: NDArray[np.float32],
    keep: NDArray[np.bool_],
    subs: tuple[int, int, int],
    threshold: float,
    too_many: Callable[[float], VolumeSpecimenError],
) -> tuple[FloatArray, FloatArray]:
    """Voxel-centred coordinates and signal of the kept lattice points."""
    if subs == (1, 1, 1):
        coords = np.argwhere(keep).astype(np.float64)
        return coords, signal[keep].astype(np.float64)
    candidates = np.argwhere(ndimage.maximum_filter(keep, size=3))
    grids = np.meshgrid(*[(np.arange(k) + 0.5) / k - 0.5 for k in subs], indexing="ij")
    offsets = np.column_stack([g.ravel() for g in grids])
    per_chunk = max(1, _CHUNK_POINTS // offsets.shape[0])
    coord_parts: list[FloatArray] = []
    value_parts: list[FloatArray] = []
    total = 0
    for start in range(0, candidates.shape[0], per_chunk):
        block = candidates[start : start + per_chunk].astype(np.float64)
        points = (block[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        values = ndimage.map_coordinates(
            signal, points.T, order=1, mode="nearest", prefilter=False
        )
        inside = values > threshold
        total += int(inside.sum())
        if total > MAX_EMITTERS:
            estimate = total * candidates.shape[0] / (start + block.shape[0])
            raise too_many(estimate)
        coord_parts.append(points[inside])
        value_parts.append(values[inside].astype(np.float64))
    return np.concatenate(coord_parts), np.concatenate(value_parts)


def _convert(request: VolumeRequest) -> VolumeCell:
    started = time.perf_counter()
    path = request.path
    raw, voxel, voxel_from = read_volume(path, request.voxel_um)
    shape = (int(raw.shape[0]), int(raw.shape[1]), int(raw.shape[2]))
    extent = (shape[2] * voxel[2], shape[1] * voxel[1], shape[0] * voxel[0])
    if max(extent) > MAX_EXTENT_UM:
        raise VolumeSpecimenError(
            path,
            f"is {extent[0]:.4g} x {extent[1]:.4g} x {extent[2]:.4g} um (x, y, z) "
            f"at voxel {voxel} um; the limit is {MAX_EXTENT_UM:g} um along each "
            "axis",
            "check the voxel size and its units (micrometres), or crop the volume",
        )
    if min(shape) < 1 or raw.size == 0:
        raise VolumeSpecimenError(path, f"is empty (shape {shape})", "give a z-stack")
    data = raw.astype(np.float32)
    del raw
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - finite.sum())
        raise VolumeSpecimenError(
            path,
            f"has {bad:,} non-finite values (NaN or infinity)",
            "replace them (e.g. numpy.nan_to_num) and save the volume again",
        )
    del finite
    bins, subs = _lattice_plan(voxel, request.lattice_um)
    data = _bin(data, bins, float(np.median(data)))
    coarse = (voxel[0] * bins[0], voxel[1] * bins[1], voxel[2] * bins[2])
    background = float(np.median(data))
    noise = _MAD_TO_SIGMA * float(np.median(np.abs(data - background)))
    signal = np.maximum(data - np.float32(background), 0).astype(np.float32)
    del data
    top = float(signal.max())
    if top <= 0.0:
        raise VolumeSpecimenError(
            path,
            "has no structure (the volume is constant or empty)",
            "give a fluorescence z-stack of a cell",
        )
    threshold = max(MIN_SIGNAL_FRACTION * top, NOISE_SIGMAS * noise)
    keep = _drop_specks(signal, threshold)
    signal[~keep & (signal > threshold)] = 0.0
    kept_voxels = int(keep.sum())
    if kept_voxels == 0:
        raise VolumeSpecimenError(
            path,
            f"has no structure above the noise (signal peak {top:g}, noise "
            f"{noise:g} above the median {background:g})",
            "give a z-stack where the cell stands out of the background",
        )
    raw_kept = kept_voxels * math.prod(bins)

    def too_many(estimate: float) -> VolumeSpecimenError:
        return _too_many(request, estimate, raw_kept, voxel)

    if kept_voxels * math.prod(subs) > 1.5 * MAX_EMITTERS:
        raise too_many(kept_voxels * math.prod(subs))
    peak = float(np.percentile(signal[keep], PEAK_PERCENTILE))
    coords, values = _sample_lattice(signal, keep, subs, threshold, too_many)
    del signal, keep
    lattice = (coarse[0] / subs[0], coarse[1] / subs[1], coarse[2] / subs[2])
    # voxel-centred (z, y, x) coordinates -> volume-frame (x, y, h) in um
    xyz = np.column_stack(
        (
            (coords[:, 2] + 0.5) * coarse[2],
            (coords[:, 1] + 0.5) * coarse[1],
            (coords[:, 0] + 0.5) * coarse[0] + request.height_um,
        )
    )
    pivot = (
        0.5 * float(xyz[:, 0].min() + xyz[:, 0].max()),
        0.5 * float(xyz[:, 1].min() + xyz[:, 1].max()),
    )
    xyz[:, 0] -= pivot[0]
    xyz[:, 1] -= pivot[1]
    photons = (
        request.brightness
        * VOLUME_PEAK_PHOTONS_PER_MS_PER_UM3
        * math.prod(lattice)
        * values
        / peak
    )
    radius = float(np.hypot(xyz[:, 0], xyz[:, 1]).max()) + max(lattice[1:])
    for array in (xyz, photons):
        array.setflags(write=False)
    return VolumeCell(
        request=request,
        shape=shape,
        voxel_um=voxel,
        voxel_from=voxel_from,
        lattice_um=lattice,
        pivot_um=pivot,
        extent_um=(extent[0], extent[1], extent[2]),
        background=background,
        noise_sigma=noise,
        threshold=threshold,
        peak_signal=peak,
        local_xyz_um=xyz,
        photons_per_ms=photons,
        radius_um=radius,
        load_s=time.perf_counter() - started,
    )


def file_stamp(path: Path) -> tuple[int, ...]:
    """Modification time and size of a file (or an OME-Zarr's metadata)."""
    stamp: list[int] = []
    names = ("", "zarr.json", ".zattrs", ".zarray", ".zgroup")
    for name in names if path.is_dir() else ("",):
        try:
            st = (path / name).stat() if name else path.stat()
        except OSError:
            continue
        stamp += [st.st_mtime_ns, st.st_size]
    return tuple(stamp)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _load_cached(request: VolumeRequest, stamp: tuple[int, ...]) -> VolumeCell:
    del stamp  # part of the cache key only: a rewritten file is read again
    return _convert(request)


def load_volume_cell(request: VolumeRequest) -> VolumeCell:
    """Read a volume and turn it into emitters (cached per file version).

    Parameters
    ----------
    request : VolumeRequest
        What to load; a relative path is resolved against the cwd now.

    Returns
    -------
    VolumeCell
        The emitters in the volume frame and what was measured on the way.

    Raises
    ------
    VolumeSpecimenError
        The file cannot become a cell (the message says why and how to fix
        it).

    """
    resolved = request.resolved()
    return _load_cached(resolved, file_stamp(resolved.path))


# --------------------------------------------------------------------------
# Placement and ground truth
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeCellTruth:
    """Ground truth of a volume cell on the coverslip.

    Attributes
    ----------
    index : int
        Volume cell index.
    identity : str
        ``"V00"``, ``"V01"`` ...; emitter group ``volume_cells/<identity>``.
    source : str
        Absolute path of the volume file.
    centre_um : tuple of float
        Sample (x, y) where the volume's ``pivot_um`` lies.
    rotation_deg : float
        Counter-clockwise turn about z of the volume.
    height_um, top_um : float
        Heights of the volume's bottom and top faces above the glass.
    shape : tuple of int
        (nz, ny, nx) of the volume.
    voxel_um : tuple of float
        (dz, dy, dx); ``voxel_from`` is ``"file"`` or ``"given"``.
    lattice_um : tuple of float
        (dz, dy, dx) spacing of the emitters.
    pivot_um : tuple of float
        Volume-frame (x, y), from the corner of voxel (0, 0), at ``centre_um``.
    extent_um : tuple of float
        (x, y, h) size of the volume.
    radius_um : float
        Footprint radius about ``centre_um`` used for the layout.
    background, noise_sigma, threshold, peak_signal : float
        Conversion levels in the file's intensity units.
    brightness : float
        Brightness factor of the request.
    n_emitters : int
        Number of emitters.
    photons_per_ms : float
        Summed brightness of the emitters.

    """

    index: int
    identity: str
    source: str
    centre_um: tuple[float, float]
    rotation_deg: float
    height_um: float
    top_um: float
    shape: tuple[int, int, int]
    voxel_um: Voxel
    voxel_from: str
    lattice_um: Voxel
    pivot_um: tuple[float, float]
    extent_um: Voxel
    radius_um: float
    background: float
    noise_sigma: float
    threshold: float
    peak_signal: float
    brightness: float
    n_emitters: int
    photons_per_ms: float

    def volume_to_sample(self, xyz_volume_um: FloatArray) -> FloatArray:
        """Volume-frame (x, y, z) in um (from voxel (0, 0, 0)'s corner) to sample."""
        p = np.asarray(xyz_volume_um, dtype=np.float64).reshape(-1, 3)
        a = math.radians(self.rotation_deg)
        rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        xy = (p[:, :2] - np.array(self.pivot_um)) @ rotation.T + np.array(
            self.centre_um
        )
        return np.column_stack((xy, p[:, 2] + self.height_um))


def add_volume_cell(
    cell: VolumeCell,
    index: int,
    centre_um: tuple[float, float],
    groups: EmitterGroups,
) -> VolumeCellTruth:
    """Place a volume cell, add its emitter group and return its ground truth.

    Parameters
    ----------
    cell : VolumeCell
        The loaded volume.
    index : int
        Its index among the volume cells (names it ``V<index>``).
    centre_um : tuple of float
        Sample (x, y) for the volume's pivot.
    groups : EmitterGroups
        Receives the group ``volume_cells/V<index>``.

    Returns
    -------
    VolumeCellTruth
        The placed cell's ground truth.

    """
    identity = f"V{index:02d}"
    request = cell.request
    a = math.radians(request.rotation_deg)
    local = cell.local_xyz_um
    xyz = np.column_stack(
        (
            centre_um[0] + math.cos(a) * local[:, 0] - math.sin(a) * local[:, 1],
            centre_um[1] + math.sin(a) * local[:, 0] + math.cos(a) * local[:, 1],
            local[:, 2],
        )
    )
    total = groups.add(f"volume_cells/{identity}", xyz, cell.photons_per_ms)
    return VolumeCellTruth(
        index=index,
        identity=identity,
        source=str(request.path),
        centre_um=(float(centre_um[0]), float(centre_um[1])),
        rotation_deg=request.rotation_deg,
        height_um=request.height_um,
        top_um=request.height_um + cell.extent_um[2],
        shape=cell.shape,
        voxel_um=cell.voxel_um,
        voxel_from=cell.voxel_from,
        lattice_um=cell.lattice_um,
        pivot_um=cell.pivot_um,
        extent_um=cell.extent_um,
        radius_um=cell.radius_um,
        background=cell.background,
        noise_sigma=cell.noise_sigma,
        threshold=cell.threshold,
        peak_signal=cell.peak_signal,
        brightness=request.brightness,
        n_emitters=cell.n_emitters,
        photons_per_ms=total,
    )


# --------------------------------------------------------------------------
# The SpecimenVolumes property and JSON lists
# --------------------------------------------------------------------------


def _numbers(text: str, n: int, entry: str, what: str) -> tuple[float, ...]:
    parts = [p for p in text.replace(",", ":").split(":") if p.strip()]
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != n:
        raise VolumeSpecimenError(
            entry,
            f"{what} {text!r} is not {n} numbers separated by ':'",
            _PROPERTY_SYNTAX,
        )
    return numbers


def _parse_entry(entry: str, base: Path) -> VolumeRequest:
    path_text, *options = (part.strip() for part in entry.split("@"))
    if not path_text:
        raise VolumeSpecimenError(entry, "has no path", _PROPERTY_SYNTAX)
    kwargs: dict[str, Any] = {}
    keys = {
        "voxel": "voxel_um",
        "brightness": "brightness",
        "rotation": "rotation_deg",
        "height": "height_um",
        "lattice": "lattice_um",
    }
    for option in options:
        key, sep, value = option.partition("=")
        key = key.strip().lower() if sep else "voxel"
        value = value if sep else option
        if key not in keys:
            raise VolumeSpecimenError(
                entry, f"has an unknown option {key!r}", _PROPERTY_SYNTAX
            )
        if key == "voxel":
            kwargs["voxel_um"] = _numbers(value, 3, entry, "voxel size")
        elif key == "lattice":
            kwargs["lattice_um"] = _numbers(value, 2, entry, "lattice")
        else:
            kwargs[keys[key]] = _numbers(value, 1, entry, key)[0]
    path = Path(path_text).expanduser()
    return VolumeRequest(base / path if not path.is_absolute() else path, **kwargs)


def read_volume_list(path: Path | str) -> tuple[VolumeRequest, ...]:
    """Requests from a JSON list of objects with :class:`VolumeRequest` fields.

    Each object has ``path`` (relative paths are relative to the JSON file's
    folder) and optionally ``voxel_um``, ``brightness``, ``rotation_deg``,
    ``height_um`` and ``lattice_um``; a ``{"volumes": [...]}`` object works too.

    Raises
    ------
    VolumeSpecimenError
        Unreadable JSON, unknown keys or bad values.

    """
    path = Path(path)
    fix = (
        'write a JSON list like [{"path": "neuron.tif", "voxel_um": [0.8, 0.8, '
        '0.8], "rotation_deg": 30}]'
    )
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VolumeSpecimenError(
            path, "does not exist", f"check the path (cwd: {Path.cwd()})"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VolumeSpecimenError(path, f"is not readable JSON ({exc})", fix) from None
    if isinstance(items, dict) and set(items) == {"volumes"}:
        items = items["volumes"]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise VolumeSpecimenError(path, "is not a list of volume objects", fix)
    allowed = {"path", "voxel_um", "brightness", "rotation_deg", "height_um"}
    allowed.add("lattice_um")
    requests = []
    for item in items:
        unknown = sorted(set(item) - allowed)
        if unknown or not isinstance(item.get("path"), str):
            raise VolumeSpecimenError(
                path,
                f"has an entry with unknown keys {unknown}"
                if unknown
                else "has an entry without a 'path' string",
                fix + f"; keys: {sorted(allowed)}",
            )
        volume = Path(item["path"]).expanduser()
        requests.append(
            VolumeRequest(
                volume if volume.is_absolute() else path.parent / volume,
                **{k: v for k, v in item.items() if k != "path"},
            )
        )
    return tuple(requests)


def parse_volume_property(
    value: str, *, cwd: Path | None = None
) -> tuple[VolumeRequest, ...]:
    """Requests from a ``SpecimenVolumes`` property value.

    The value is empty (no volumes), the path of a ``.json`` list (see
    :func:`read_volume_list`), or entries separated by ``;``, each
    ``path[@dz:dy:dx][@brightness=B][@rotation=DEG][@height=UM]
    [@lattice=DZ:DXY]`` (``:`` separates numbers: Micro-Manager config lines
    cannot hold commas). Paths may not contain ``@`` or ``;``.

    Parameters
    ----------
    value : str
        The property value.
    cwd : Path, optional
        Folder for relative paths; the current working directory if None.

    Returns
    -------
    tuple of VolumeRequest
        With absolute paths.

    Raises
    ------
    VolumeSpecimenError
        A malformed value (the message gives the syntax).

    """
    text = str(value).strip()
    if not text:
        return ()
    base = Path.cwd() if cwd is None else Path(cwd)
    if text.lower().endswith(".json") and "@" not in text and ";" not in text:
        listing = Path(text).expanduser()
        return tuple(
            r.resolved()
            for r in read_volume_list(
                listing if listing.is_absolute() else base / listing
            )
        )
    entries = [e.strip() for e in text.split(";") if e.strip()]
    return tuple(_parse_entry(e, base).resolved() for e in entries)
