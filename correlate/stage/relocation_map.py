"""A PNG map of a relocation: marks, targets and their predicted error ellipses."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import ArrayLike

__all__ = ["draw_fiducial_map"]

_BACKGROUND = (255, 255, 255)
_MARK = (200, 30, 30)
_TARGET = (30, 90, 200)
_ELLIPSE = (30, 150, 60)
_TEXT = (20, 20, 20)
_CHI2_95_2DOF = 5.991  # 95 % of a 2-D Gaussian lies inside this Mahalanobis^2


def _ellipse_points(
    centre: np.ndarray, covariance: np.ndarray, scale: float, n: int = 48
) -> np.ndarray:
    values, vectors = np.linalg.eigh(covariance)
    radii = np.sqrt(np.clip(values, 0.0, None) * _CHI2_95_2DOF) * scale
    angles = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.asarray(centre + (circle * radii) @ vectors.T)


def draw_fiducial_map(
    path: Path | str,
    *,
    marks_xy_um: Mapping[str, ArrayLike],
    targets_xy_um: Mapping[str, ArrayLike],
    covariances_um2: Sequence[ArrayLike],
    ellipse_scale: float = 200.0,
    size_px: int = 900,
    title: str = "",
) -> Path:
    """Draw stage x, y of marks and targets with 95 % predicted error ellipses.

    Parameters
    ----------
    path : Path or str
        PNG file to write.
    marks_xy_um : mapping of str to array_like
        Mark identity -> stage (x, y) in um.
    targets_xy_um : mapping of str to array_like
        Target name -> mapped stage (x, y) in um.
    covariances_um2 : sequence of array_like
        One 2x2 predicted covariance per target, in the order of
        ``targets_xy_um``.
    ellipse_scale : float, optional
        Magnification of the ellipses (sub-micrometre errors are invisible
        on a millimetre map); the legend states it.
    size_px : int, optional
        Width and height of the image.
    title : str, optional
        A line of text at the top.

    Returns
    -------
    Path
        The file written.

    """
    points = [np.asarray(v, dtype=np.float64)[:2] for v in marks_xy_um.values()]
    points += [np.asarray(v, dtype=np.float64)[:2] for v in targets_xy_um.values()]
    if not points:
        raise ValueError("nothing to draw: no marks and no targets")
    if len(covariances_um2) != len(targets_xy_um):
        raise ValueError("give one covariance per target")
    xy = np.array(points)
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = float(max(high - low)) or 1.0
    margin = 0.12 * size_px
    scale = (size_px - 2 * margin) / span
    centre = 0.5 * (low + high)

    def to_px(p: np.ndarray) -> tuple[float, float]:
        # stage y up on the page
        return (
            size_px / 2 + (p[0] - centre[0]) * scale,
            size_px / 2 - (p[1] - centre[1]) * scale,
        )

    image = Image.new("RGB", (size_px, size_px), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    for name, value in marks_xy_um.items():
        x, y = to_px(np.asarray(value, dtype=np.float64)[:2])
        draw.rectangle((x - 7, y - 7, x + 7, y + 7), outline=_MARK, width=3)
        draw.text((x + 10, y - 6), name, fill=_MARK)
    for (name, value), covariance in zip(
        targets_xy_um.items(), covariances_um2, strict=True
    ):
        p = np.asarray(value, dtype=np.float64)[:2]
        outline = _ellipse_points(
            p, np.asarray(covariance, dtype=np.float64), ellipse_scale
        )
        draw.polygon([to_px(q) for q in outline], outline=_ELLIPSE, width=2)
        x, y = to_px(p)
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=_TARGET)
        draw.text((x + 6, y + 4), name, fill=_TARGET)
    bar_um = 10 ** np.floor(np.log10(span / 4))
    bar_px = bar_um * scale
    y0 = size_px - margin / 2
    draw.line((margin, y0, margin + bar_px, y0), fill=_TEXT, width=3)
    draw.text((margin, y0 + 6), f"{bar_um:g} um", fill=_TEXT)
    draw.text(
        (margin + bar_px + 30, y0 - 6),
        f"squares: marks; dots: targets; ellipses: 95 % predicted error "
        f"x{ellipse_scale:g}",
        fill=_TEXT,
    )
    if title:
        draw.text((margin, margin / 3), title, fill=_TEXT)
    target = Path(path)
    image.save(target, format="PNG")
    return target
