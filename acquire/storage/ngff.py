"""OME-Zarr NGFF 0.5 group attributes for one (c, z, y, x) stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from acquire.storage.spec import StackSpec

__all__ = ["ARRAY_PATH", "AXES", "NGFF_VERSION", "ngff_attributes"]

NGFF_VERSION = "0.5"
#: Path of the full-resolution array inside a stack group.
ARRAY_PATH = "0"
#: Axis names, in array order.
AXES = ("c", "z", "y", "x")

# Display colors for channels, in order (OMERO hex RGB).
_PALETTE = ("00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")


def ngff_attributes(
    spec: StackSpec, data_ranges: Sequence[tuple[float, float]]
) -> dict[str, Any]:
    """Build the ``"ome"`` attributes of a stack group (NGFF 0.5).

    One multiscale with a single level, array `ARRAY_PATH`, axes (c, z, y, x)
    with spatial units in micrometers and scale ``[1, dz, dy, dx]``; OMERO
    rendering metadata names the channels and sets their display windows.

    Parameters
    ----------
    spec : StackSpec
        What the stack holds.
    data_ranges : Sequence[tuple[float, float]]
        Lowest and highest pixel value of each channel (display windows).

    Returns
    -------
    dict[str, Any]
        ``{"ome": {"version": "0.5", "multiscales": [...], "omero": {...}}}``.

    """
    dz_um, dy_um, dx_um = spec.voxel_size_um
    axes: list[dict[str, str]] = [{"name": "c", "type": "channel"}]
    axes += [{"name": n, "type": "space", "unit": "micrometer"} for n in AXES[1:]]
    multiscale = {
        "name": spec.name,
        "axes": axes,
        "datasets": [
            {
                "path": ARRAY_PATH,
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, dz_um, dy_um, dx_um]}
                ],
            }
        ],
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
        color = "FFFFFF" if spec.n_channels == 1 else _PALETTE[index % len(_PALETTE)]
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
