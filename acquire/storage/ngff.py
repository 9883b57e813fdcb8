"""OME-Zarr NGFF 0.5 group attributes for one (c, z, y, x) stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from acquire.storage.spec import StackSpec

__all__ = [
    "ARRAY_PATH",
    "AXES",
    "NGFF_VERSION",
    "channel_color",
    "ngff_attributes",
    "stack_origin_um",
]

NGFF_VERSION = "0.5"
#: Path of the full-resolution array inside a stack group.
ARRAY_PATH = "0"
#: Axis names, in array order.
AXES = ("c", "z", "y", "x")

# Display colors for channels, in order (OMERO hex RGB).
_PALETTE = ("00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")

#: Display colours of common dyes and channel names (OMERO hex RGB), so a
#: DAPI channel shows blue whatever its position in the sequence. Matched on
#: the lower-case channel name, longest name first.
_DYE_COLORS = {
    "dapi": "0000FF",
    "hoechst": "0000FF",
    "bfp": "0000FF",
    "cfp": "00FFFF",
    "gfp": "00FF00",
    "fitc": "00FF00",
    "alexa488": "00FF00",
    "af488": "00FF00",
    "yfp": "FFFF00",
    "tritc": "FF8000",
    "cy3": "FF8000",
    "alexa555": "FF8000",
    "rfp": "FF0000",
    "mcherry": "FF0000",
    "tdtomato": "FF0000",
    "texasred": "FF0000",
    "alexa568": "FF0000",
    "alexa594": "FF0000",
    "cy5": "FF00FF",
    "alexa647": "FF00FF",
    "af647": "FF00FF",
    "brightfield": "FFFFFF",
    "dic": "FFFFFF",
}


def channel_color(name: str, index: int, n_channels: int) -> str:
    """Display colour of a channel: its dye's, else white alone, else a palette.

    Parameters
    ----------
    name : str
        Channel name (a Micro-Manager preset such as ``"DAPI"`` or ``"GFP"``).
    index : int
        Its position among the stack's channels.
    n_channels : int
        How many channels the stack has.

    Returns
    -------
    str
        OMERO hex RGB, e.g. ``"0000FF"``.

    """
    # "Alexa Fluor 647" and "AF-647" both read "alexa647" / "af647"
    key = "".join(ch for ch in name.lower() if ch.isalnum()).replace("fluor", "")
    for dye in sorted(_DYE_COLORS, key=len, reverse=True):
        if dye in key:
            return _DYE_COLORS[dye]
    return "FFFFFF" if n_channels == 1 else _PALETTE[index % len(_PALETTE)]


def stack_origin_um(
    spec: StackSpec, planes: Mapping[tuple[int, int], Mapping[str, Any]]
) -> tuple[float, float, float] | None:
    """Where voxel (0, 0, 0) of a stack lies in stage coordinates, in um.

    The field is centred on the stage position each plane records, and the
    first plane's z is the stack's; camera rows and columns are taken along
    stage y and x (a camera rotated on its stage places the stack as the
    uncalibrated scope shows it). None when the planes record no position.

    Parameters
    ----------
    spec : StackSpec
        The stack.
    planes : mapping
        Per-plane metadata by ``(c, z)``, with ``stage_x_um``, ``stage_y_um``
        and ``stage_z_um``.

    Returns
    -------
    tuple of float or None
        ``(z, y, x)`` of the first voxel's centre.

    """
    first = planes.get((0, 0), {})
    x, y, z = (first.get(f"stage_{axis}_um") for axis in "xyz")
    if not all(isinstance(v, int | float) for v in (x, y, z)):
        return None
    _, dy_um, dx_um = spec.voxel_size_um
    rows, cols = spec.shape_yx
    return (
        float(z),  # type: ignore[arg-type]
        float(y) - (rows - 1) / 2.0 * dy_um,  # type: ignore[arg-type]
        float(x) - (cols - 1) / 2.0 * dx_um,  # type: ignore[arg-type]
    )


def ngff_attributes(
    spec: StackSpec,
    data_ranges: Sequence[tuple[float, float]],
    *,
    origin_um: tuple[float, float, float] | None = None,
) -> dict[str, Any]:
    """Build the ``"ome"`` attributes of a stack group (NGFF 0.5).

    One multiscale with a single level, array `ARRAY_PATH`, axes (c, z, y, x)
    with spatial units in micrometers, scale ``[1, dz, dy, dx]`` and, when
    the stage position is known, a translation to it (viewers such as napari
    then place every position and tile where it was taken); OMERO rendering
    metadata names the channels, colours them by dye and sets their display
    windows.

    Parameters
    ----------
    spec : StackSpec
        What the stack holds.
    data_ranges : Sequence[tuple[float, float]]
        Lowest and highest pixel value of each channel (display windows).
    origin_um : tuple of float, optional
        ``(z, y, x)`` of the first voxel in stage coordinates (see
        `stack_origin_um`); no translation if None.

    Returns
    -------
    dict[str, Any]
        ``{"ome": {"version": "0.5", "multiscales": [...], "omero": {...}}}``.

    """
    dz_um, dy_um, dx_um = spec.voxel_size_um
    transforms: list[dict[str, Any]] = [
        {"type": "scale", "scale": [1.0, dz_um, dy_um, dx_um]}
    ]
    if origin_um is not None:
        transforms.append({"type": "translation", "translation": [0.0, *origin_um]})
    axes: list[dict[str, str]] = [{"name": "c", "type": "channel"}]
    axes += [{"name": n, "type": "space", "unit": "micrometer"} for n in AXES[1:]]
    multiscale = {
        "name": spec.name,
        "axes": axes,
        "datasets": [{"path": ARRAY_PATH, "coordinateTransformations": transforms}],
    }
    dtype = np.dtype(spec.dtype)
    channels = []
    for index, (label, (low, high)) in enumerate(
        zip(spec.channel_names, data_ranges, strict=True)
    ):
        if dtype.kind in "ui":
            limits = np.iinfo(dtype)
            range_min, range_max = float(limits.min), float(limits.max)
        else:
            range_min, range_max = float(low), float(high)
        color = channel_color(label, index, spec.n_channels)
        channels.append(
            {
                "label": label,
                "color": color,
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
                "window": {
                    "min": range_min,
                    "max": range_max,
                    "start": float(low),
                    "end": float(high),
                },
            }
        )
    omero = {
        "name": spec.name,
        "channels": channels,
        "rdefs": {"defaultT": 0, "defaultZ": spec.n_planes // 2, "model": "color"},
    }
    return {
        "ome": {"version": NGFF_VERSION, "multiscales": [multiscale], "omero": omero}
    }
