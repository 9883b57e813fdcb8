"""Importing confocal z-stacks from OME-TIFF files as ZEN exports them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile

from correlate.pairdb import PairDatabase, PairDatabaseError, read_ome_tiff_stack
from correlate.pairdb.ome_import import length_to_um

if TYPE_CHECKING:
    from pathlib import Path

ZEN_XML = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"
     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Creator="ZEN 3.1 (test)">
  <Instrument ID="Instrument:0">
    <Microscope Manufacturer="Zeiss" Model="LSM 710"/>
    <Objective ID="Objective:1" Model="Plan-Apochromat 40x/1.4 Oil DIC M27"
               NominalMagnification="40" LensNA="1.4" Immersion="Oil"/>
    <Objective ID="Objective:2" Model="EC Plan-Neofluar 10x/0.3"
               NominalMagnification="10" LensNA="0.3" Immersion="Air"/>
  </Instrument>
  <Image ID="Image:0" Name="cell017.czi #1">
    <AcquisitionDate>2026-10-02T09:41:27.133</AcquisitionDate>
    <InstrumentRef ID="Instrument:0"/>
    <ObjectiveSettings ID="Objective:1"/>
    <Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16"
            SizeX="{nx}" SizeY="{ny}" SizeC="{nc}" SizeZ="{nz}" SizeT="1"
            {sizes}>
      {channels}
      <TiffData IFD="0" PlaneCount="{n_planes}"/>
      {planes}
    </Pixels>
  </Image>
</OME>
"""


def zen_tiff(
    path: Path,
    data: np.ndarray,
    *,
    sizes: str = 'PhysicalSizeX="0.0830" PhysicalSizeXUnit="µm" '
    'PhysicalSizeY="0.0830" PhysicalSizeYUnit="µm" '
    'PhysicalSizeZ="350" PhysicalSizeZUnit="nm"',
    position_unit: str = "mm",
) -> Path:
    """Write (z, c, y, x) uint16 pixels with hand-written ZEN-style OME-XML."""
    nz, nc, ny, nx = data.shape
    channels = "\n".join(
        f'<Channel ID="Channel:0:{c}" Name="{name}" SamplesPerPixel="1"/>'
        for c, name in enumerate(["AF488", "AF568", "DAPI"][:nc])
    )
    planes = "\n".join(
        f'<Plane TheZ="{z}" TheC="{c}" TheT="0" '
        f'PositionX="{12.5 + c * 0.001}" PositionXUnit="{position_unit}" '
        f'PositionY="-3.25" PositionYUnit="{position_unit}" '
        f'PositionZ="{4.0 + z * 0.00035}" PositionZUnit="{position_unit}"/>'
        for z in range(nz)
        for c in range(nc)
    )
    xml = ZEN_XML.format(
        nx=nx,
        ny=ny,
        nc=nc,
        nz=nz,
        n_planes=nz * nc,
        sizes=sizes,
        channels=channels,
        planes=planes,
    )
    tifffile.imwrite(
        path,
        data.reshape(nz * nc, ny, nx),
        description=xml.encode(),  # UTF-8, as ZEN writes it (µm)
        metadata=None,
        photometric="minisblack",
    )
    return path


@pytest.fixture
def stack() -> np.ndarray:
    rng = np.random.default_rng(4)
    return rng.integers(0, 4096, (5, 2, 12, 16), dtype=np.uint16)


def test_zen_export_reads_pixels_sizes_position_objective_and_date(
    tmp_path: Path, stack: np.ndarray
) -> None:
    path = zen_tiff(tmp_path / "cell017.ome.tif", stack)
    imported = read_ome_tiff_stack(path, channel=1)
    assert imported.data.dtype == np.float32
    np.testing.assert_array_equal(imported.data, stack[:, 1].astype(np.float32))
    assert imported.voxel_size_um == pytest.approx((0.35, 0.083, 0.083))
    # first plane of channel 1, mm -> um
    assert imported.stage_xyz_um == pytest.approx((12501.0, -3250.0, 4000.0))
    assert imported.objective == "Plan-Apochromat 40x/1.4 Oil DIC M27 40x/1.4 Oil"
    assert imported.microscope == "Zeiss LSM 710"
    assert imported.acquired_at == "2026-10-02T09:41:27.133"
    assert imported.channel == 1 and imported.channel_name == "AF568"
    assert imported.source == str(path)
    meta = imported.stack_meta()
    assert meta.scope == "Zeiss LSM 710"
    assert meta.voxel_size_um == imported.voxel_size_um
    first = read_ome_tiff_stack(path)
    np.testing.assert_array_equal(first.data, stack[:, 0])
    assert first.stage_xyz_um == pytest.approx((12500.0, -3250.0, 4000.0))


def test_tifffile_ome_writer_with_nm_and_default_units(tmp_path: Path) -> None:
    data = np.arange(4 * 8 * 9, dtype=np.float32).reshape(4, 8, 9)
    path = tmp_path / "single.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 103.0,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 0.103,  # no unit: OME's default, micrometer
            "PhysicalSizeZ": 0.0005,
            "PhysicalSizeZUnit": "mm",
            "Plane": {
                "PositionX": [100.0, 100.0, 100.0, 100.0],
                "PositionXUnit": ["µm"] * 4,
                "PositionY": [200.0] * 4,
                "PositionYUnit": ["µm"] * 4,
                "PositionZ": [10.0, 10.5, 11.0, 11.5],
                "PositionZUnit": ["µm"] * 4,
            },
        },
    )
    imported = read_ome_tiff_stack(path)
    np.testing.assert_array_equal(imported.data, data)
    assert imported.voxel_size_um == pytest.approx((0.5, 0.103, 0.103))
    assert imported.stage_xyz_um == pytest.approx((100.0, 200.0, 10.0))
    assert imported.objective is None and imported.acquired_at is None
    with pytest.raises(PairDatabaseError, match="names no microscope"):
        imported.stack_meta()
    assert imported.stack_meta(scope="LSM 710").scope == "LSM 710"


def test_positions_without_a_length_unit_are_not_guessed(tmp_path: Path) -> None:
    data = np.zeros((2, 6, 5), np.uint16)
    path = tmp_path / "noposunit.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.1,
            "PhysicalSizeY": 0.1,
            "PhysicalSizeZ": 0.3,
            "Plane": {
                "PositionX": [1.0, 1.0],
                "PositionY": [2.0, 2.0],
                "PositionZ": [3.0, 3.3],
            },
        },
    )
    assert read_ome_tiff_stack(path).stage_xyz_um is None


def test_missing_pixel_size_names_the_file_and_the_attribute(
    tmp_path: Path, stack: np.ndarray
) -> None:
    path = zen_tiff(
        tmp_path / "nosize.ome.tif",
        stack,
        sizes='PhysicalSizeX="0.083" PhysicalSizeY="0.083"',
    )
    with pytest.raises(
        PairDatabaseError, match=r"nosize\.ome\.tif has no PhysicalSizeZ"
    ):
        read_ome_tiff_stack(path)


def test_non_length_units_and_bad_channels_are_refused(
    tmp_path: Path, stack: np.ndarray
) -> None:
    path = zen_tiff(
        tmp_path / "pixelunit.ome.tif",
        stack,
        sizes='PhysicalSizeX="1" PhysicalSizeXUnit="pixel" PhysicalSizeY="1" '
        'PhysicalSizeZ="1"',
    )
    with pytest.raises(PairDatabaseError, match="'pixel', which is not a known length"):
        read_ome_tiff_stack(path)
    good = zen_tiff(tmp_path / "good.ome.tif", stack)
    with pytest.raises(PairDatabaseError, match="2 channels; channel 2 does not exist"):
        read_ome_tiff_stack(good, channel=2)
    with pytest.raises(PairDatabaseError, match="series 1 does not exist"):
        read_ome_tiff_stack(good, series=1)


def test_plain_truncated_and_garbage_files_are_refused(
    tmp_path: Path, stack: np.ndarray
) -> None:
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, stack[:, 0])
    with pytest.raises(PairDatabaseError, match="without OME-XML"):
        read_ome_tiff_stack(plain)
    good = zen_tiff(tmp_path / "full.ome.tif", stack)
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.ome.tif"
    for keep in (len(raw) - 700, len(raw) // 2, 12):
        truncated.write_bytes(raw[:keep])
        with pytest.raises(PairDatabaseError, match=r"truncated\.ome\.tif.*truncated"):
            read_ome_tiff_stack(truncated)
    garbage = tmp_path / "garbage.ome.tif"
    garbage.write_bytes(b"II*\x00" + bytes(range(256)) * 3)
    with pytest.raises(PairDatabaseError, match=r"garbage\.ome\.tif.*corrupt"):
        read_ome_tiff_stack(garbage)
    with pytest.raises(PairDatabaseError, match="does not exist"):
        read_ome_tiff_stack(tmp_path / "absent.ome.tif")


def test_unit_conversion() -> None:
    assert length_to_um(350.0, "nm", where="z") == pytest.approx(0.35)
    assert length_to_um(0.002, "mm", where="z") == pytest.approx(2.0)
    assert length_to_um(1.5, "μm", where="z") == 1.5  # Greek mu
    assert length_to_um(20.0, "Å", where="z") == pytest.approx(0.002)
    with pytest.raises(PairDatabaseError, match="reference frame"):
        length_to_um(1.0, "reference frame", where="PositionX")


def test_imported_confocal_stack_goes_into_the_database(
    tmp_path: Path, stack: np.ndarray
) -> None:
    confocal = read_ome_tiff_stack(zen_tiff(tmp_path / "cf.ome.tif", stack))
    db = PairDatabase.create(tmp_path / "db")
    widefield = confocal.data[::-1].copy()  # stands in for a registered WF stack
    pair_id = db.add_pair(
        widefield=widefield,
        confocal=confocal.data,
        voxel_size_um=confocal.voxel_size_um,
        cell_id="cell017",
        transform={"kind": "identity"},
        metrics={"ncc": 0.9},
        accepted=True,
        widefield_meta=confocal.stack_meta(scope="WF-1"),
        confocal_meta=confocal.stack_meta(),
    )
    record = db.record(pair_id)
    assert record.confocal.objective == confocal.objective
    assert record.confocal.stage_xyz_um == pytest.approx(confocal.stage_xyz_um)
    assert record.confocal.acquired_at == "2026-10-02T09:41:27.133"
    np.testing.assert_array_equal(db.load(pair_id)[1], stack[:, 0])
