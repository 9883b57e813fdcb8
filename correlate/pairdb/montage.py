"""A PNG montage of an aligned pair: XY and XZ views, WF | confocal | overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from correlate.pairdb.errors import PairDatabaseError
from correlate.pairdb.records import check_voxel_size

__all__ = ["montage_array", "write_montage_png"]

_PROJECTIONS = ("max", "middle")
_GAP_VALUE = 64


def _resample_rows(
    image: npt.NDArray[np.float64], factor: float
) -> npt.NDArray[np.float64]:
    """Stretch an image's rows by ``factor`` (linear interpolation, centres kept)."""
    rows_in = image.shape[0]
    rows_out = max(1, round(rows_in * factor))
    if rows_out == rows_in:
        return image
    position = (np.arange(rows_out) + 0.5) * rows_in / rows_out - 0.5
    position = np.clip(position, 0.0, rows_in - 1.0)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, rows_in - 1)
    weight = (position - below)[:, None]
    out: npt.NDArray[np.float64] = image[below] * (1.0 - weight)
    out += image[above] * weight
    return out


def _views(
    stack: npt.NDArray[np.float32],
    voxel_size_um: tuple[float, float, float],
    projection: str,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    dz_um, dy_um, dx_um = voxel_size_um
    data = stack.astype(np.float64)
    if projection == "max":
        xy, xz = data.max(axis=0), data.max(axis=1)
    else:
        xy, xz = data[data.shape[0] // 2], data[:, data.shape[1] // 2]
    return _resample_rows(xy, dy_um / dx_um), _resample_rows(xz, dz_um / dx_um)


def _normalise(
    images: tuple[npt.NDArray[np.float64], ...], percentiles: tuple[float, float]
) -> list[npt.NDArray[np.float64]]:
    values = np.concatenate([image.ravel() for image in images])
    low, high = np.percentile(values, percentiles)
    scale = float(high - low) if high > low else 1.0
    return [np.clip((image - low) / scale, 0.0, 1.0) for image in images]


def montage_array(
    widefield: npt.ArrayLike,
    confocal: npt.ArrayLike,
    voxel_size_um: tuple[float, float, float],
    *,
    projection: str = "max",
    overlay: bool = True,
    percentiles: tuple[float, float] = (1.0, 99.8),
    gap_px: int = 4,
) -> npt.NDArray[np.uint8]:
    """Build the montage image of an aligned pair.

    Top row XY, bottom row XZ; columns wide-field, confocal and (optionally)
    an overlay with wide-field in magenta and confocal in green (white where
    they agree). Rows are resampled so one pixel is ``dx`` square in every
    view (XZ at its true aspect). Each stack is scaled from its own
    ``percentiles`` (over both of its views) to black..white.

    Parameters
    ----------
    widefield, confocal : array_like
        The two (z, y, x) stacks on the same grid.
    voxel_size_um : tuple of 3 floats
        (dz, dy, dx) in micrometers.
    projection : str, optional
        ``"max"`` (maximum intensity projections) or ``"middle"`` (the middle
        plane and the middle XZ section).
    overlay : bool, optional
        Add the overlay column.
    percentiles : tuple of 2 floats, optional
        Percentiles mapped to black and white.
    gap_px : int, optional
        Grey gap between panels, pixels.

    Returns
    -------
    numpy.ndarray
        RGB image, uint8, (rows, columns, 3).

    Raises
    ------
    PairDatabaseError
        Stacks not 3D, of different shapes, or a bad option.

    """
    voxel = check_voxel_size(voxel_size_um, "voxel_size_um")
    wf, cf = np.asarray(widefield), np.asarray(confocal)
    if wf.ndim != 3 or wf.shape != cf.shape:
        raise PairDatabaseError(
            f"a montage needs two 3D stacks of one shape, got {wf.shape} and "
            f"{cf.shape}",
            "Pass the registered wide-field and confocal stacks (z, y, x).",
        )
    if projection not in _PROJECTIONS:
        raise PairDatabaseError(
            f"unknown projection {projection!r}", "Use 'max' or 'middle'."
        )
    if gap_px < 0:
        raise PairDatabaseError(f"gap_px is {gap_px}", "Pass 0 or more pixels.")
    low, high = percentiles
    if not 0.0 <= low < high <= 100.0:
        raise PairDatabaseError(
            f"percentiles {percentiles} are not 0 <= low < high <= 100",
            "Pass e.g. (1.0, 99.8).",
        )
    wf_xy, wf_xz = _normalise(_views(wf, voxel, projection), (low, high))
    cf_xy, cf_xz = _normalise(_views(cf, voxel, projection), (low, high))

    def grey(image: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.repeat(image[..., None], 3, axis=2)

    def merged(
        magenta: npt.NDArray[np.float64], green: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        return np.stack([magenta, green, magenta], axis=2)

    rows = [[grey(wf_xy), grey(cf_xy)], [grey(wf_xz), grey(cf_xz)]]
    if overlay:
        rows[0].append(merged(wf_xy, cf_xy))
        rows[1].append(merged(wf_xz, cf_xz))
    heights = [row[0].shape[0] for row in rows]
    width = rows[0][0].shape[1]
    n_columns = len(rows[0])
    out = np.full(
        (sum(heights) + gap_px, n_columns * width + (n_columns - 1) * gap_px, 3),
        _GAP_VALUE,
        dtype=np.uint8,
    )
    top = 0
    for row, height in zip(rows, heights, strict=True):
        for column, panel in enumerate(row):
            left = column * (width + gap_px)
            out[top : top + height, left : left + width] = np.round(panel * 255.0)
        top += height + gap_px
    return out


def write_montage_png(
    path: Path | str,
    widefield: npt.ArrayLike,
    confocal: npt.ArrayLike,
    voxel_size_um: tuple[float, float, float],
    *,
    projection: str = "max",
    overlay: bool = True,
    percentiles: tuple[float, float] = (1.0, 99.8),
    gap_px: int = 4,
) -> Path:
    """Write the `montage_array` of an aligned pair as a PNG file.

    Parameters
    ----------
    path : Path or str
        The PNG file to write (replaced if it exists).
    widefield, confocal : array_like
        The two (z, y, x) stacks on the same grid.
    voxel_size_um : tuple of 3 floats
        (dz, dy, dx) in micrometers.
    projection, overlay, percentiles, gap_px
        As for `montage_array`.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    PairDatabaseError
        Bad stacks or options, or the file cannot be written.

    """
    image = montage_array(
        widefield,
        confocal,
        voxel_size_um,
        projection=projection,
        overlay=overlay,
        percentiles=percentiles,
        gap_px=gap_px,
    )
    target = Path(path)
    try:
        Image.fromarray(image).save(target, format="PNG")
    except OSError as exc:
        raise PairDatabaseError(
            f"cannot write the montage {target}: {exc}",
            "Pick a writable folder.",
        ) from exc
    return target
