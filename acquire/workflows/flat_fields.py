"""Flat-field images for the fiducial search, one per objective.

A flat field is an image of a uniformly fluorescent slide taken through one
objective; dividing a frame by it evens out vignetting and a tilted
illumination field before marks are detected
(:func:`correlate.fiducials.detect.detect_marks`). Users give them on the command
line as ``LABEL=PATH`` (the objective's turret label and a TIFF or ``.npy``
file); a stack of flat frames is averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tifffile

from acquire.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from numpy.typing import NDArray

_HINT = (
    "Give --flat-field as OBJECTIVE=PATH (the objective's turret label and a "
    "TIFF or .npy image of a uniformly fluorescent slide taken through it)."
)


@dataclass(frozen=True)
class FlatField:
    """One objective's flat field.

    Attributes
    ----------
    objective : str
        Turret label of the objective it was taken with.
    image : ndarray
        (rows, cols) mean flat frame, float64.
    source : Path
        The file it was read from (for messages).

    """

    objective: str
    image: NDArray[np.float64]
    source: Path


def parse_flat_field_specs(specs: Iterable[str]) -> dict[str, FlatField]:
    """Read ``LABEL=PATH`` flat-field options into flat fields by objective.

    Parameters
    ----------
    specs : iterable of str
        One ``LABEL=PATH`` each; a label may appear once.

    Returns
    -------
    dict of str to FlatField
        Objective label -> its flat field.

    Raises
    ------
    UserError
        A spec without ``=``, a label given twice, or a file that is missing,
        unreadable, not an image, or not finite.

    """
    flats: dict[str, FlatField] = {}
    for spec in specs:
        label, sep, path_text = spec.partition("=")
        label, path_text = label.strip(), path_text.strip()
        if not sep or not label or not path_text:
            raise UserError(f"--flat-field {spec!r} is not OBJECTIVE=PATH", _HINT)
        if label in flats:
            raise UserError(
                f"--flat-field names objective {label!r} twice",
                "Give one flat field per objective.",
            )
        path = Path(path_text)
        flats[label] = FlatField(label, read_flat_image(path), path)
    return flats


def read_flat_image(path: Path) -> NDArray[np.float64]:
    """One flat frame from a TIFF or ``.npy`` file (a stack is averaged).

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    ndarray
        (rows, cols) float64 image.

    Raises
    ------
    UserError
        If the file is missing, unreadable, not 2-D or 3-D, or not finite.

    """
    if not path.is_file():
        raise UserError(f"flat field {path}: no such file", _HINT)
    try:
        if path.suffix.lower() == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            data = tifffile.imread(path)
        image = np.asarray(data, dtype=np.float64)
    except (OSError, ValueError, TypeError, tifffile.TiffFileError) as error:
        raise UserError(
            f"flat field {path} cannot be read as an image: {error}", _HINT
        ) from None
    image = np.squeeze(image)
    if image.ndim == 3:
        image = image.mean(axis=0)
    if image.ndim != 2 or min(image.shape) < 3:
        raise UserError(
            f"flat field {path} has shape {np.shape(data)}, not one camera frame "
            "(or a stack of them)",
            _HINT,
        )
    if not np.isfinite(image).all():
        raise UserError(f"flat field {path} holds NaN or infinite pixels", _HINT)
    return image


def check_flat_fields(
    flats: Mapping[str, FlatField],
    *,
    objectives: Sequence[str],
    frame_shape: tuple[int, int],
    dark_level: float = 0.0,
) -> None:
    """Refuse flats for objectives not on the turret, of the wrong size or unlit.

    Parameters
    ----------
    flats : mapping of str to FlatField
        Flat fields by objective label.
    objectives : sequence of str
        The turret's labels.
    frame_shape : tuple of int
        The camera's (rows, cols).
    dark_level : float, optional
        Camera offset; every pixel of a flat must be brighter.

    Raises
    ------
    UserError
        Naming the flat field, what is wrong and what the scope has.

    """
    for label, flat in flats.items():
        if label not in objectives:
            raise UserError(
                f"--flat-field {label}={flat.source}: no objective {label!r} on the "
                "turret",
                f"Use one of {list(objectives)}.",
            )
        if flat.image.shape != tuple(frame_shape):
            raise UserError(
                f"flat field {flat.source} is {flat.image.shape[0]} x "
                f"{flat.image.shape[1]} pixels but the camera's frames are "
                f"{frame_shape[0]} x {frame_shape[1]}",
                "Take the flat with the same camera, binning and region of interest.",
            )
        unlit = flat.image <= dark_level
        if unlit.any():
            row, col = (int(i[0]) for i in np.nonzero(unlit))
            raise UserError(
                f"flat field {flat.source} has {int(unlit.sum())} pixels at or below "
                f"the dark level {dark_level:g} (first at row {row}, col {col})",
                "Take the flat on a uniformly fluorescent slide, lit everywhere, "
                "and check --dark-level.",
            )
