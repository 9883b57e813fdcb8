"""Write a z-stack (or one plane) and its metadata as an OME-TIFF file.

The file is written under a temporary name next to the target and renamed into
place, so a reader never sees half a file; an existing file is only replaced
when asked.
"""

from __future__ import annotations

import contextlib
import datetime
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import tifffile

from acquire._version import __version__
from acquire.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

    from acquire.hardware.microscope import ObjectiveInfo

__all__ = ["OmeImage", "ome_xml", "write_ome_tiff"]


_OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_UM = "\u00b5m"
_IMMERSION_OME = {"oil": "Oil", "water": "Water", "glycerol": "Glycerol", "air": "Air"}


@dataclass
class OmeImage:
    """A z-stack (or one plane) and what OME-TIFF readers need to know about it.

    Attributes
    ----------
    data : numpy.ndarray
        Pixels, shape (planes, rows, columns).
    pixel_size_um : float
        Pixel size at the sample.
    z_step_um : float or None
        Distance between planes (None for a single plane).
    positions_um : list of (x, y, z)
        Stage position of every plane.
    exposure_ms : float
        Exposure time per plane.
    objective : ObjectiveInfo or None
        The objective in the light path.
    camera : str
        Camera device label.
    channel : str
        Channel preset name ("" if none).
    annotations : dict
        Extra key/value pairs stored as an OME MapAnnotation.

    """

    data: NDArray[Any]
    pixel_size_um: float
    z_step_um: float | None
    positions_um: list[tuple[float, float, float]]
    exposure_ms: float
    objective: ObjectiveInfo | None
    camera: str
    channel: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


def _sub(parent: ET.Element, tag: str, **attrs: object) -> ET.Element:
    return ET.SubElement(
        parent, f"{{{_OME_NS}}}{tag}", {k: str(v) for k, v in attrs.items()}
    )


def ome_xml(image: OmeImage, name: str) -> str:
    """OME-XML (2016-06 schema) describing ``image``, as 7-bit ASCII text.

    Parameters
    ----------
    image : OmeImage
        The image and its metadata.
    name : str
        Image name.

    Returns
    -------
    str
        The XML document, non-ASCII characters as character references.

    Raises
    ------
    ValueError
        ``image.data`` is not 3-D, or there is not one position per plane.

    """
    if image.data.ndim != 3:
        raise ValueError(
            f"OME-TIFF data must be (planes, rows, columns), got {image.data.shape}"
        )
    if len(image.positions_um) != image.data.shape[0]:
        raise ValueError(
            f"{len(image.positions_um)} stage positions for "
            f"{image.data.shape[0]} planes"
        )
    ET.register_namespace("", _OME_NS)
    ET.register_namespace("xsi", _XSI_NS)
    root = ET.Element(
        f"{{{_OME_NS}}}OME",
        {
            "Creator": f"pairscope {__version__}",
            f"{{{_XSI_NS}}}schemaLocation": f"{_OME_NS} {_OME_NS}/ome.xsd",
        },
    )
    instrument = _sub(root, "Instrument", ID="Instrument:0")
    _sub(instrument, "Detector", ID="Detector:0", Model=image.camera)
    obj = image.objective
    if obj is not None:
        attrs: dict[str, object] = {"ID": "Objective:0", "Model": obj.label}
        if obj.magnification:
            attrs["NominalMagnification"] = obj.magnification
        if obj.numerical_aperture:
            attrs["LensNA"] = obj.numerical_aperture
        if obj.immersion:
            attrs["Immersion"] = _IMMERSION_OME.get(obj.immersion.lower(), "Other")
        _sub(instrument, "Objective", **attrs)
    img = _sub(root, "Image", ID="Image:0", Name=name)
    date = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    _sub(img, "AcquisitionDate").text = date.isoformat()
    _sub(img, "InstrumentRef", ID="Instrument:0")
    if obj is not None:
        _sub(img, "ObjectiveSettings", ID="Objective:0")
    n_planes, rows, cols = image.data.shape
    pixels_attrs: dict[str, object] = {
        "ID": "Pixels:0",
        "DimensionOrder": "XYZCT",
        "Type": np.dtype(image.data.dtype).name,
        "SizeX": cols,
        "SizeY": rows,
        "SizeZ": n_planes,
        "SizeC": 1,
        "SizeT": 1,
        "PhysicalSizeX": image.pixel_size_um,
        "PhysicalSizeXUnit": _UM,
        "PhysicalSizeY": image.pixel_size_um,
        "PhysicalSizeYUnit": _UM,
    }
    if image.z_step_um is not None:
        pixels_attrs.update(PhysicalSizeZ=image.z_step_um, PhysicalSizeZUnit=_UM)
    pixels = _sub(img, "Pixels", **pixels_attrs)
    channel = _sub(pixels, "Channel", ID="Channel:0:0", SamplesPerPixel=1)
    if image.channel:
        channel.set("Name", image.channel)
    _sub(channel, "DetectorSettings", ID="Detector:0")
    _sub(pixels, "TiffData", IFD=0, PlaneCount=n_planes)
    for z_index, (x_um, y_um, z_um) in enumerate(image.positions_um):
        _sub(
            pixels,
            "Plane",
            TheZ=z_index,
            TheC=0,
            TheT=0,
            ExposureTime=image.exposure_ms,
            ExposureTimeUnit="ms",
            PositionX=x_um,
            PositionXUnit=_UM,
            PositionY=y_um,
            PositionYUnit=_UM,
            PositionZ=z_um,
            PositionZUnit=_UM,
        )
    if image.annotations:
        _sub(img, "AnnotationRef", ID="Annotation:0")
        annotations = _sub(root, "StructuredAnnotations")
        mapping = _sub(
            annotations, "MapAnnotation", ID="Annotation:0", Namespace="pairscope"
        )
        value = _sub(mapping, "Value")
        for key, text in image.annotations.items():
            _sub(value, "M", K=key).text = text
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode(
        "ascii", "xmlcharrefreplace"
    ).decode("ascii")


def write_ome_tiff(path: Path, image: OmeImage, *, overwrite: bool = False) -> None:
    """Write ``image`` as an OME-TIFF, atomically (temporary file + rename).

    Parameters
    ----------
    path : Path
        Target file (``.ome.tif``).
    image : OmeImage
        Pixels and metadata.
    overwrite : bool
        Replace an existing file; otherwise an existing file is an error.

    Raises
    ------
    UserError
        ``path`` exists and ``overwrite`` is False.
    ValueError
        ``image`` has the wrong shape (see `ome_xml`).

    """
    if path.exists() and not overwrite:
        raise UserError(f"output file {str(path)!r} already exists", "Use --overwrite.")
    name = path.name.split(".")[0]
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        tifffile.imwrite(
            tmp,
            image.data,
            description=ome_xml(image, name),
            metadata=None,
            photometric="minisblack",
        )
        tmp.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
