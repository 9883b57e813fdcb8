"""OME-TIFF writing: pixels and metadata read back, atomic and no overwrite."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile

from acquire.errors import UserError
from acquire.hardware.microscope import ObjectiveInfo
from acquire.storage.ome_tiff import OmeImage, write_ome_tiff

if TYPE_CHECKING:
    from pathlib import Path

OME = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}


def _image(planes: int = 3) -> OmeImage:
    rng = np.random.default_rng(0)
    return OmeImage(
        data=rng.integers(0, 4096, size=(planes, 24, 32), dtype=np.uint16),
        pixel_size_um=0.1625,
        z_step_um=0.25,
        positions_um=[(10.0, -5.0, 2.0 + 0.25 * k) for k in range(planes)],
        exposure_ms=30.0,
        objective=ObjectiveInfo(
            state=1,
            label="Plan-Apochromat 40x/1.3 Oil",
            pixel_size_um=0.1625,
            magnification=40.0,
            numerical_aperture=1.3,
            immersion="oil",
        ),
        camera="Camera",
        channel="GFP \u03bb520",
        annotations={"pairscope.cell": "7"},
    )


def test_write_ome_tiff_reads_back_with_tifffile(tmp_path: Path) -> None:
    path = tmp_path / "stack.ome.tif"
    image = _image()
    write_ome_tiff(path, image)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]

    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        assert tif.series[0].shape == image.data.shape
        data = tif.asarray()
        root = ET.fromstring(tif.ome_metadata or "")
    np.testing.assert_array_equal(data, image.data)

    pixels = root.find("ome:Image/ome:Pixels", OME)
    assert pixels is not None
    assert pixels.get("Type") == "uint16"
    assert (pixels.get("SizeX"), pixels.get("SizeY"), pixels.get("SizeZ")) == (
        "32",
        "24",
        "3",
    )
    assert float(pixels.get("PhysicalSizeX", "nan")) == pytest.approx(0.1625)
    assert float(pixels.get("PhysicalSizeZ", "nan")) == pytest.approx(0.25)
    planes = pixels.findall("ome:Plane", OME)
    assert [float(p.get("PositionZ", "nan")) for p in planes] == pytest.approx(
        [2.0, 2.25, 2.5]
    )
    assert all(p.get("ExposureTime") == "30.0" for p in planes)
    channel = pixels.find("ome:Channel", OME)
    assert channel is not None
    assert channel.get("Name") == "GFP \u03bb520"
    objective = root.find("ome:Instrument/ome:Objective", OME)
    assert objective is not None
    assert objective.get("Immersion") == "Oil"
    assert float(objective.get("LensNA", "nan")) == pytest.approx(1.3)
    value = root.find(
        "ome:StructuredAnnotations/ome:MapAnnotation/ome:Value/ome:M", OME
    )
    assert value is not None
    assert (value.get("K"), value.text) == ("pairscope.cell", "7")


def test_write_ome_tiff_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "stack.ome.tif"
    write_ome_tiff(path, _image(planes=3))
    before = path.read_bytes()
    with pytest.raises(UserError, match="already exists"):
        write_ome_tiff(path, _image(planes=2))
    assert path.read_bytes() == before

    write_ome_tiff(path, _image(planes=2), overwrite=True)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].shape == (2, 24, 32)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_write_ome_tiff_rejects_a_mismatched_image(tmp_path: Path) -> None:
    image = _image()
    image.positions_um = image.positions_um[:1]
    with pytest.raises(ValueError, match="positions"):
        write_ome_tiff(tmp_path / "bad.ome.tif", image)
    image = _image()
    image.data = image.data[0]
    with pytest.raises(ValueError, match="planes, rows, columns"):
        write_ome_tiff(tmp_path / "bad.ome.tif", image)
    assert list(tmp_path.iterdir()) == []
