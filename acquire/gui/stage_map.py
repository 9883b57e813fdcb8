"""The stage map: fiducial marks, targets with predicted errors, the stage.

Everything is drawn in this scope's stage coordinates (um), fitted into the
widget with a margin; y grows downwards as in the camera image. Each target
carries a circle whose radius is its predicted target registration error, so
an uncertain target is visibly a large circle (red when too uncertain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["MapTarget", "StageMap", "nice_length_um"]

_MARGIN_PX = 28
_TOP_PX = 44  # room for the title above the top-most label
_BOTTOM_PX = 44  # room for the scale bar below the map
_MIN_SPAN_UM = 50.0


@dataclass(frozen=True)
class MapTarget:
    """A target on the map.

    Attributes
    ----------
    name : str
        Target name.
    xy_um : tuple of float
        Stage (x, y) on this scope.
    error_um : float
        Predicted lateral error (radius of its circle; 0 for none).
    too_uncertain : bool
        Drawn in red.

    """

    name: str
    xy_um: tuple[float, float]
    error_um: float = 0.0
    too_uncertain: bool = False


def nice_length_um(at_most_um: float) -> float:
    """The longest 1, 2 or 5 times a power of ten not above ``at_most_um``."""
    if at_most_um <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(at_most_um))
    for factor in (5.0, 2.0, 1.0):
        if factor * power <= at_most_um:
            return factor * power
    return power


class StageMap(QWidget):
    """Paints the holder's marks, the targets and the stage position.

    A left click asks for the stage there: ``move_requested(x_um, y_um)``.

    Parameters
    ----------
    parent : QWidget, optional
        Qt parent.

    """

    move_requested = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.marks: dict[str, tuple[float, float]] = {}
        self.targets: tuple[MapTarget, ...] = ()
        self.stage_xy_um: tuple[float, float] | None = None
        self.setMinimumSize(260, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_marks(self, marks: Mapping[str, tuple[float, ...]]) -> None:
        """Fiducial marks found: identity -> stage (x, y[, z])."""
        self.marks = {name: (xyz[0], xyz[1]) for name, xyz in marks.items()}
        self.update()

    def set_targets(self, targets: Iterable[MapTarget]) -> None:
        """Targets to draw."""
        self.targets = tuple(targets)
        self.update()

    def set_stage(self, x_um: float, y_um: float) -> None:
        """Current stage position."""
        self.stage_xy_um = (x_um, y_um)
        self.update()

    def bounds_um(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) that the map shows: every item and circle."""
        xs: list[float] = []
        ys: list[float] = []
        for x, y in self.marks.values():
            xs.append(x)
            ys.append(y)
        for target in self.targets:
            x, y = target.xy_um
            xs += [x - target.error_um, x + target.error_um]
            ys += [y - target.error_um, y + target.error_um]
        if self.stage_xy_um is not None:
            xs.append(self.stage_xy_um[0])
            ys.append(self.stage_xy_um[1])
        if not xs:
            return (-_MIN_SPAN_UM, -_MIN_SPAN_UM, _MIN_SPAN_UM, _MIN_SPAN_UM)
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        span = max(x1 - x0, y1 - y0, _MIN_SPAN_UM)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return (cx - span / 2, cy - span / 2, cx + span / 2, cy + span / 2)

    def _transform(self) -> tuple[float, float, float]:
        """Pixels per um and the pixel offsets of the fitted map."""
        x0, y0, x1, y1 = self.bounds_um()
        width = max(self.width() - 2 * _MARGIN_PX, 1)
        height = max(self.height() - _TOP_PX - _BOTTOM_PX, 1)
        scale = min(width / (x1 - x0), height / (y1 - y0))
        off_x = _MARGIN_PX + (width - scale * (x1 - x0)) / 2 - scale * x0
        off_y = _TOP_PX + (height - scale * (y1 - y0)) / 2 - scale * y0
        return scale, off_x, off_y

    def to_pixels(self, x_um: float, y_um: float) -> QPointF:
        """Widget position of a stage position."""
        scale, off_x, off_y = self._transform()
        return QPointF(off_x + scale * x_um, off_y + scale * y_um)

    def to_stage_um(self, point: QPointF) -> tuple[float, float]:
        """Stage position of a widget position (the inverse of `to_pixels`)."""
        scale, off_x, off_y = self._transform()
        return ((point.x() - off_x) / scale, (point.y() - off_y) / scale)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """Ask for the stage at the clicked place (left button)."""
        if event.button() == Qt.MouseButton.LeftButton:
            self.move_requested.emit(*self.to_stage_um(event.position()))
        super().mousePressEvent(event)

    def scale_bar_um(self) -> float:
        """Length of the scale bar: a round number at most a fifth of the width."""
        scale, _, _ = self._transform()
        return nice_length_um(0.2 * self.width() / scale)

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw marks (squares), targets (crosses, error circles), the stage."""
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.fillRect(self.rect(), QColor(250, 250, 247))
            painter.setPen(QColor(60, 60, 60))
            painter.drawText(6, painter.fontMetrics().height(), "Stage map (um)")
            self._draw_marks(painter)
            self._draw_targets(painter)
            self._draw_stage(painter)
            self._draw_scale_bar(painter)
        finally:
            painter.end()

    def _draw_marks(self, painter: QPainter) -> None:
        painter.setPen(QPen(QColor(30, 90, 200), 2))
        for name, (x, y) in self.marks.items():
            point = self.to_pixels(x, y)
            painter.drawRect(QRectF(point.x() - 5, point.y() - 5, 10, 10))
            painter.drawText(point + QPointF(8, -6), name)

    def _draw_targets(self, painter: QPainter) -> None:
        scale, _, _ = self._transform()
        for target in self.targets:
            colour = (
                QColor(200, 40, 40) if target.too_uncertain else QColor(20, 140, 60)
            )
            point = self.to_pixels(*target.xy_um)
            painter.setPen(QPen(colour, 1.5))
            painter.drawLine(point + QPointF(-5, 0), point + QPointF(5, 0))
            painter.drawLine(point + QPointF(0, -5), point + QPointF(0, 5))
            radius = target.error_um * scale
            if radius > 0:
                painter.setPen(QPen(colour, 1, Qt.PenStyle.DashLine))
                painter.drawEllipse(point, max(radius, 2.0), max(radius, 2.0))
            painter.drawText(point + QPointF(7, 12), target.name)

    def _draw_stage(self, painter: QPainter) -> None:
        if self.stage_xy_um is None:
            return
        point = self.to_pixels(*self.stage_xy_um)
        painter.setPen(QPen(QColor(230, 120, 0), 2))
        painter.drawEllipse(point, 6.0, 6.0)
        painter.drawLine(point + QPointF(-10, 0), point + QPointF(10, 0))
        painter.drawLine(point + QPointF(0, -10), point + QPointF(0, 10))

    def _draw_scale_bar(self, painter: QPainter) -> None:
        scale, _, _ = self._transform()
        length_um = self.scale_bar_um()
        length_px = length_um * scale
        y = self.height() - 12.0
        x = self.width() - 14.0 - length_px
        painter.setPen(QPen(QColor(20, 20, 20), 3))
        painter.drawLine(QPointF(x, y), QPointF(x + length_px, y))
        painter.setPen(QColor(20, 20, 20))
        label = f"{length_um:g} um"
        painter.drawText(QPointF(x, y - 6), label)
