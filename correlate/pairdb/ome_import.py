"""Import a confocal stack acquired elsewhere from an OME-TIFF (e.g. a ZEN export).

Pixel sizes come from the OME ``Pixels`` element (``PhysicalSizeZ/Y/X`` and
their units; OME's default unit is the micrometer); nothing is guessed: a
missing size is an error. The stage position is the ``PositionX/Y/Z`` of the
first plane of the chosen channel, when all three carry a length unit.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tifffile

from correlate.pairdb.errors import PairDatabaseError
from correlate.pairdb.records import StackMeta

__all__ = ["ImportedStack", "length_to_um", "read_ome_tiff_stack"]

# Micrometers per unit, for the OME UnitsLength values a microscope writes.
_UM_PER_UNIT = {
    "m": 1e6,
    "dm": 1e5,
    "cm": 1e4,
    "mm": 1e3,
    "µm": 1.0,  # MICRO SIGN
    "μm": 1.0,  # GREEK SMALL LETTER MU
    "um": 1.0,
    "nm": 1e-3,
    "pm": 1e-6,
    "Å": 1e-4,
    "in": 25400.0,
}
_DEFAULT_UNIT = "µm"


@dataclass(frozen=True)
class ImportedStack:
    """One channel of a z-stack read from an OME-TIFF, with its metadata.

    Parameters
    ----------
    data : numpy.ndarray
        Pixels, float32, (z, y, x).
    voxel_size_um : tuple of 3 floats
        (dz, dy, dx) in micrometers.
    stage_xyz_um : tuple of 3 floats or None
        Stage (x, y, z) of the first plane, micrometers; None if not recorded.
    objective : str or None
        The objective, e.g. ``"Plan-Apochromat 40x/1.4 Oil DIC 40x/1.4 Oil"``.
    acquired_at : str or None
        OME ``AcquisitionDate`` (ISO 8601).
    microscope : str or None
        OME ``Microscope`` manufacturer and model.
    channel : int
        Index of the channel read.
    channel_name : str or None
        Its OME name.
    source : str
        The file path.
    n_channels : int
        How many channels the file's stack has.

    """

    data: npt.NDArray[np.float32]
    voxel_size_um: tuple[float, float, float]
    stage_xyz_um: tuple[float, float, float] | None
    objective: str | None
    acquired_at: str | None
    microscope: str | None
    channel: int
    channel_name: str | None
    source: str
    n_channels: int = 1

    def stack_meta(self, *, scope: str | None = None) -> StackMeta:
        """Provenance for `PairDatabase.add_pair`.

        Parameters
        ----------
        scope : str or None, optional
            Instrument name; the OME microscope by default.

        Returns
        -------
        StackMeta
            Scope, objective, stage position, voxel size, date and source.

        Raises
        ------
        PairDatabaseError
            No scope given and none in the file.

        """
        name = scope if scope is not None else self.microscope
        if not name:
            raise PairDatabaseError(
                f"{self.source} names no microscope",
                "Pass scope=..., e.g. stack_meta(scope='LSM 710').",
            )
        return StackMeta(
            scope=name,
            objective=self.objective,
            stage_xyz_um=self.stage_xyz_um,
            voxel_size_um=self.voxel_size_um,
            acquired_at=self.acquired_at,
            source=self.source,
        )


def length_to_um(value: float, unit: str, *, where: str) -> float:
    """Convert a length in an OME unit to micrometers.

    Parameters
    ----------
    value : float
        The length.
    unit : str
        OME ``UnitsLength`` symbol (``"nm"``, ``"µm"``, ``"mm"``...).
    where : str
        What the value is, for the error message.

    Returns
    -------
    float
        The length in micrometers.

    Raises
    ------
    PairDatabaseError
        A unit that is not a physical length this reader knows.

    """
    factor = _UM_PER_UNIT.get(unit.strip())
    if factor is None:
        raise PairDatabaseError(
            f"{where} is in the unit {unit!r}, which is not a known length",
            f"Export with lengths in one of {', '.join(_UM_PER_UNIT)}.",
        )
    return value * factor


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _first(element: ET.Element, name: str) -> ET.Element | None:
    found = _children(element, name)
    return found[0] if found else None


def read_ome_tiff_stack(
    path: Path | str, *, channel: int = 0, series: int = 0
) -> ImportedStack:
    """Read one channel of a z-stack and its metadata from an OME-TIFF.

    Parameters
    ----------
    path : Path or str
        The OME-TIFF file (one image, as ZEN exports it).
    channel : int, optional
        Channel to read when the image has several.
    series : int, optional
        OME ``Image`` (series) to read when the file holds several.

    Returns
    -------
    ImportedStack
        Pixels as float32 (z, y, x) and the metadata found.

    Raises
    ------
    PairDatabaseError
        The file is missing, not an OME-TIFF, corrupt or truncated; it lacks a
        pixel size; the channel or series does not exist; or it holds a time
        series or RGB samples.

    """
    source = Path(path)
    name = str(source)
    if not source.is_file():
        raise PairDatabaseError(
            f"the OME-TIFF {name} does not exist", "Check the path."
        )
    corrupt_hint = "Export the stack again from the acquisition software."
    try:
        with tifffile.TiffFile(source) as tif:
            if len(tif.pages) == 0:
                raise PairDatabaseError(
                    f"cannot read {name}: it is corrupt or truncated (no readable "
                    "image in it)",
                    corrupt_hint,
                )
            xml = tif.ome_metadata
            if not xml:
                raise PairDatabaseError(
                    f"{name} is a TIFF without OME-XML metadata, so its voxel size "
                    "is unknown",
                    "Export it as OME-TIFF (ZEN: File > Export > OME-TIFF).",
                )
            pixels, image = _pixels_element(xml, name, series)
            tiff_series = tif.series[series]
            _check_extent(tiff_series, source)
            axes = tiff_series.axes
            raw = tiff_series.asarray()
    except PairDatabaseError:
        raise
    except Exception as exc:  # tifffile raises many types on damaged files
        raise PairDatabaseError(
            f"cannot read {name}: it is corrupt or truncated "
            f"({type(exc).__name__}: {exc})",
            corrupt_hint,
        ) from exc
    data = _select_channel(np.asarray(raw), axes, channel, name)
    voxel = _voxel_size(pixels, name)
    size_z = int(pixels.get("SizeZ") or data.shape[0])
    if data.shape[0] != size_z:
        raise PairDatabaseError(
            f"{name} holds {data.shape[0]} planes but its OME-XML says SizeZ={size_z}",
            corrupt_hint,
        )
    channels = _children(pixels, "Channel")
    channel_name = channels[channel].get("Name") if channel < len(channels) else None
    return ImportedStack(
        data=data,
        voxel_size_um=voxel,
        stage_xyz_um=_stage_position(pixels, channel, name),
        objective=_objective(xml, image),
        acquired_at=_text(image, "AcquisitionDate"),
        microscope=_microscope(xml, image),
        channel=channel,
        channel_name=channel_name,
        source=name,
        n_channels=int(np.shape(raw)[axes.index("C")]) if "C" in axes else 1,
    )


def _pixels_element(xml: str, name: str, series: int) -> tuple[ET.Element, ET.Element]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise PairDatabaseError(
            f"the OME-XML of {name} cannot be parsed: {exc}",
            "Export the stack again from the acquisition software.",
        ) from exc
    images = _children(root, "Image")
    if not 0 <= series < len(images):
        raise PairDatabaseError(
            f"{name} holds {len(images)} OME images; series {series} does not exist",
            f"Pass series between 0 and {len(images) - 1}.",
        )
    pixels = _first(images[series], "Pixels")
    if pixels is None:
        raise PairDatabaseError(
            f"OME image {series} of {name} has no Pixels element",
            "Export the stack again from the acquisition software.",
        )
    return pixels, images[series]


def _check_extent(series: tifffile.TiffPageSeries, source: Path) -> None:
    """Refuse a series with planes missing or running past the end of the file.

    tifffile reads a missing plane as zeros, which would look like data.
    """
    size = source.stat().st_size
    for index, page in enumerate(series.pages):
        if page is None:
            raise PairDatabaseError(
                f"{source} is truncated or damaged: plane {index} of "
                f"{len(series.pages)} cannot be found",
                "Copy or export the file again.",
            )
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            if offset + count > size:
                raise PairDatabaseError(
                    f"{source} is truncated: plane {index} needs bytes up to "
                    f"{offset + count}, the file has {size}",
                    "Copy or export the file again.",
                )


def _select_channel(
    raw: npt.NDArray[np.generic], axes: str, channel: int, name: str
) -> npt.NDArray[np.float32]:
    if "S" in axes:
        raise PairDatabaseError(
            f"{name} holds RGB samples (axes {axes})",
            "Export each channel as a grey-level stack.",
        )
    data = raw
    for axis in ("T", "Q", "I"):
        if axis in axes:
            index = axes.index(axis)
            if data.shape[index] != 1:
                raise PairDatabaseError(
                    f"{name} holds {data.shape[index]} time points or other images "
                    f"(axes {axes}), not one z-stack",
                    "Export a single time point.",
                )
            data = np.take(data, 0, axis=index)
            axes = axes.replace(axis, "")
    if "C" in axes:
        index = axes.index("C")
        if not 0 <= channel < data.shape[index]:
            raise PairDatabaseError(
                f"{name} has {data.shape[index]} channels; channel {channel} does not "
                "exist",
                f"Pass channel between 0 and {data.shape[index] - 1}.",
            )
        data = np.take(data, channel, axis=index)
        axes = axes.replace("C", "")
    elif channel != 0:
        raise PairDatabaseError(
            f"{name} has one channel; channel {channel} does not exist",
            "Leave channel at 0.",
        )
    if "Z" not in axes:
        data = data[None]
        axes = "Z" + axes
    if sorted(axes) != ["X", "Y", "Z"]:
        raise PairDatabaseError(
            f"{name} has axes {axes} after choosing a channel; expected Z, Y, X",
            "Export one z-stack per file.",
        )
    data = np.transpose(data, [axes.index(a) for a in "ZYX"])
    if data.dtype.kind not in "uif":
        raise PairDatabaseError(
            f"{name} holds {data.dtype} pixels", "Export grey-level pixels."
        )
    return np.ascontiguousarray(data, dtype=np.float32)


def _voxel_size(pixels: ET.Element, name: str) -> tuple[float, float, float]:
    sizes = []
    missing = []
    for axis in "ZYX":
        attribute = f"PhysicalSize{axis}"
        text = pixels.get(attribute)
        if text is None:
            missing.append(attribute)
            continue
        where = f"{attribute} of {name}"
        try:
            value = float(text)
        except ValueError as exc:
            raise PairDatabaseError(
                f"{where} is {text!r}, not a number", "Export the stack again."
            ) from exc
        unit = pixels.get(f"{attribute}Unit", _DEFAULT_UNIT)
        size = length_to_um(value, unit, where=where)
        if not size > 0:
            raise PairDatabaseError(
                f"{where} is {text} {unit}; a voxel size must be positive",
                "Set the scaling in the acquisition software and export again.",
            )
        sizes.append(size)
    if missing:
        raise PairDatabaseError(
            f"{name} has no {', '.join(missing)} in its OME-XML Pixels element, so "
            "its voxel size is unknown",
            "Set the scaling (x, y and z step) in the acquisition software and "
            "export the OME-TIFF again; pairscope never guesses a voxel size.",
        )
    return sizes[0], sizes[1], sizes[2]


def _stage_position(
    pixels: ET.Element, channel: int, name: str
) -> tuple[float, float, float] | None:
    planes = _children(pixels, "Plane")
    if not planes:
        return None

    def order(plane: ET.Element) -> tuple[int, int, int]:
        return (
            int(plane.get("TheT", "0")),
            int(plane.get("TheZ", "0")),
            int(plane.get("TheC", "0")),
        )

    of_channel = [p for p in planes if int(p.get("TheC", "0")) == channel]
    first = min(of_channel or planes, key=order)
    position = []
    for axis in "XYZ":
        text = first.get(f"Position{axis}")
        unit = first.get(f"Position{axis}Unit")
        # OME's default position unit is "reference frame": not a length
        if text is None or unit is None or unit.strip() not in _UM_PER_UNIT:
            return None
        position.append(
            length_to_um(float(text), unit, where=f"Position{axis} of {name}")
        )
    return position[0], position[1], position[2]


def _text(element: ET.Element, name: str) -> str | None:
    found = _first(element, name)
    if found is None or not (found.text or "").strip():
        return None
    return (found.text or "").strip()


def _instrument(xml: str, image: ET.Element) -> ET.Element | None:
    root = ET.fromstring(xml)
    instruments = _children(root, "Instrument")
    ref = _first(image, "InstrumentRef")
    if ref is not None:
        for instrument in instruments:
            if instrument.get("ID") == ref.get("ID"):
                return instrument
    return instruments[0] if len(instruments) == 1 else None


def _objective(xml: str, image: ET.Element) -> str | None:
    instrument = _instrument(xml, image)
    if instrument is None:
        return None
    objectives = _children(instrument, "Objective")
    settings = _first(image, "ObjectiveSettings")
    chosen = None
    if settings is not None:
        chosen = next(
            (o for o in objectives if o.get("ID") == settings.get("ID")), None
        )
    elif len(objectives) == 1:
        chosen = objectives[0]
    if chosen is None:
        return None
    parts = [chosen.get("Model") or ""]
    magnification, na = chosen.get("NominalMagnification"), chosen.get("LensNA")
    if magnification and na:
        parts.append(f"{float(magnification):g}x/{float(na):g}")
    parts.append(chosen.get("Immersion") or "")
    text = " ".join(part for part in parts if part)
    return text or None


def _microscope(xml: str, image: ET.Element) -> str | None:
    instrument = _instrument(xml, image)
    if instrument is None:
        return None
    microscope = _first(instrument, "Microscope")
    if microscope is None:
        return None
    parts = [microscope.get("Manufacturer") or "", microscope.get("Model") or ""]
    text = " ".join(part for part in parts if part)
    return text or None
