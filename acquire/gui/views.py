"""Image views: z-stacks shown side by side with one z slider for both.

Each view holds a (z, y, x) stack and its voxel size, and draws the plane
nearest to the slider's physical height, scaled to fit and normalised by the
stack's percentiles (so contrast stays the same while browsing z). Each stack
has a z origin: the height of its first plane. A raw stack and its enhanced
version share their first plane (origin 0); a wide-field stack and its
confocal partner share their centre (origin minus half the depth). The slider
moves in steps of the finest z step shown, over the union of the stacks'
extents; each view shows its plane nearest to the slider's height.

In a view, the mouse wheel zooms about the cursor, a drag pans, a double
click fits the field again, and the pixel under the cursor is read out
(position and stored value) on the caption line. The contrast is automatic
(percentiles) until a range is set by hand (`ContrastBar`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

__all__ = [
    "ContrastBar",
    "ImageView",
    "StackPairView",
    "normalise_to_uint8",
    "plane_qimage",
]

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.8
_PERCENTILE_SAMPLES = 1_000_000
ZOOM_STEP = 1.25
"""Zoom factor of one mouse-wheel notch."""
MAX_ZOOM = 64.0
HISTOGRAM_BINS = 128


def display_range(
    data: NDArray[Any],
    *,
    low_percentile: float = LOW_PERCENTILE,
    high_percentile: float = HIGH_PERCENTILE,
) -> tuple[float, float]:
    """Grey values shown as black and white: percentiles of ``data``.

    Parameters
    ----------
    data : ndarray
        Image or stack.
    low_percentile, high_percentile : float
        Percentiles mapped to black and white.

    Returns
    -------
    tuple of float
        ``(low, high)`` with ``high > low`` (a constant image gets a unit range).

    """
    flat = np.asarray(data).reshape(-1)
    # a regular subsample keeps a large stack's percentiles quick to compute
    step = max(1, flat.size // _PERCENTILE_SAMPLES)
    values = flat[::step].astype(np.float64)
    low, high = np.percentile(values, (low_percentile, high_percentile))
    if not high > low:
        high = low + 1.0
    return float(low), float(high)


def normalise_to_uint8(
    plane: NDArray[Any], display: tuple[float, float]
) -> NDArray[np.uint8]:
    """Map ``display`` = (black, white) of a 2D plane linearly onto 0..255."""
    low, high = display
    scaled = (np.asarray(plane, dtype=np.float64) - low) / (high - low)
    return np.ascontiguousarray(np.clip(scaled * 255.0 + 0.5, 0, 255), dtype=np.uint8)


def plane_qimage(plane: NDArray[Any], display: tuple[float, float]) -> QImage:
    """An 8-bit grey QImage of a 2D plane (owning a copy of its pixels)."""
    grey = normalise_to_uint8(plane, display)
    height, width = grey.shape
    image = QImage(grey.data, width, height, width, QImage.Format.Format_Grayscale8)
    return image.copy()


class ImageView(QWidget):
    """One z-stack, drawing one plane scaled to fit, with a title line.

    Parameters
    ----------
    title : str
        Shown above the image.
    parent : QWidget, optional
        Qt parent.

    """

    rendered = Signal()
    """The plane drawn or its contrast changed."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title = title
        self._caption = "no image"
        self._stack: NDArray[Any] | None = None
        self._voxel_size_um = (1.0, 1.0, 1.0)
        self._z_origin_um = 0.0
        self._display = (0.0, 1.0)
        self._index = 0
        self._image: QImage | None = None
        self._scale_source: Callable[[], float | None] = lambda: None
        self._auto_contrast = True
        self._zoom = 1.0
        self._pan_px = QPointF(0.0, 0.0)  # screen offset of the image centre
        self._drag_from: QPointF | None = None
        self._readout = ""
        self.setMinimumSize(220, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)

    @property
    def stack(self) -> NDArray[Any] | None:
        """The (z, y, x) stack shown, or None."""
        return self._stack

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        """(dz, dy, dx) of the stack shown."""
        return self._voxel_size_um

    @property
    def z_origin_um(self) -> float:
        """Height of the first plane."""
        return self._z_origin_um

    @property
    def plane_index(self) -> int:
        """Index of the plane drawn."""
        return self._index

    def n_planes(self) -> int:
        """Planes of the stack (0 without one)."""
        return 0 if self._stack is None else int(self._stack.shape[0])

    def depth_um(self) -> float:
        """Height of the last plane above the first."""
        return max(self.n_planes() - 1, 0) * self._voxel_size_um[0]

    def displayed_plane(self) -> NDArray[Any] | None:
        """The pixels of the plane drawn (as stored, before normalisation)."""
        return None if self._stack is None else self._stack[self._index]

    def set_stack(
        self,
        stack: NDArray[Any],
        voxel_size_um: tuple[float, float, float],
        caption: str,
        *,
        z_origin_um: float = 0.0,
    ) -> None:
        """Show a (z, y, x) stack, or a 2D image as a one-plane stack."""
        data = np.asarray(stack)
        if data.ndim == 2:
            data = data[np.newaxis]
        if data.ndim != 3 or data.size == 0:
            raise ValueError(f"expected a (z, y, x) stack, got shape {data.shape}")
        self._stack = data
        self._voxel_size_um = voxel_size_um
        self._z_origin_um = z_origin_um
        if self._auto_contrast:
            self._display = display_range(data)
        self._caption = caption
        self._index = min(self._index, data.shape[0] - 1)
        self._render()

    def clear(self, caption: str = "no image") -> None:
        """Show nothing."""
        self._stack = None
        self._image = None
        self._caption = caption
        self.update()

    def set_title(self, title: str) -> None:
        """Change the title line."""
        self._title = title
        self.update()

    def show_height(self, z_um: float) -> None:
        """Draw the plane nearest to the height ``z_um``."""
        if self._stack is None:
            return
        dz = self._voxel_size_um[0]
        index = round((z_um - self._z_origin_um) / dz) if dz else 0
        index = int(np.clip(index, 0, self._stack.shape[0] - 1))
        if index != self._index or self._image is None:
            self._index = index
            self._render()

    def caption(self) -> str:
        """The line under the title: stack name, plane and size."""
        if self._stack is None:
            return self._caption
        n_z, n_y, n_x = self._stack.shape
        dz, _, dx = self._voxel_size_um
        return (
            f"{self._caption}   z {self._index + 1}/{n_z} "
            f"({round(self._z_origin_um + self._index * dz, 6) + 0.0:.2f} um)   "
            f"{n_x}x{n_y} px @ {dx:.3f} um"
        )

    def readout(self) -> str:
        """The pixel under the cursor: ``x, y`` (px) and its stored value."""
        return self._readout

    # -- contrast ------------------------------------------------------------

    @property
    def display(self) -> tuple[float, float]:
        """Grey values drawn black and white."""
        return self._display

    @property
    def auto_contrast(self) -> bool:
        """Whether each new stack gets its own percentile range."""
        return self._auto_contrast

    def set_display_range(self, low: float, high: float) -> None:
        """Draw ``low`` black and ``high`` white from now on (manual contrast)."""
        if not high > low:
            raise ValueError(f"white ({high}) must be above black ({low})")
        self._auto_contrast = False
        self._display = (float(low), float(high))
        self._render()

    def set_auto_contrast(self) -> None:
        """Back to percentiles of the stack shown (and of every new one)."""
        self._auto_contrast = True
        if self._stack is not None:
            self._display = display_range(self._stack)
        self._render()

    # -- zoom, pan and readout -----------------------------------------------

    @property
    def zoom(self) -> float:
        """Magnification over the fitted field (1: the whole field fits)."""
        return self._zoom

    def reset_view(self) -> None:
        """Fit the whole field again."""
        self._zoom = 1.0
        self._pan_px = QPointF(0.0, 0.0)
        self.update()

    def zoom_at(self, factor: float, anchor: QPointF) -> None:
        """Zoom by ``factor`` keeping the image point under ``anchor`` in place."""
        target = self._target_rect()
        new_zoom = float(np.clip(self._zoom * factor, 1.0, MAX_ZOOM))
        if target is None or new_zoom == self._zoom:
            return
        applied = new_zoom / self._zoom
        centre = target.center()
        # the anchor's offset from the image centre scales with the zoom
        offset = anchor - centre
        self._pan_px += offset - offset * applied
        self._zoom = new_zoom
        self.update()

    def pan_by(self, dx_px: float, dy_px: float) -> None:
        """Move the image by screen pixels."""
        self._pan_px += QPointF(dx_px, dy_px)
        self.update()

    def pixel_at(self, point: QPointF) -> tuple[int, int] | None:
        """Image pixel ``(x, y)`` under a widget point, or None outside it."""
        target = self._target_rect()
        if target is None or self._stack is None or not target.contains(point):
            return None
        n_y, n_x = self._stack.shape[1:]
        x = int((point.x() - target.x()) / target.width() * n_x)
        y = int((point.y() - target.y()) / target.height() * n_y)
        if 0 <= x < n_x and 0 <= y < n_y:
            return x, y
        return None

    def wheelEvent(self, event: QWheelEvent) -> None:
        """Zoom about the cursor, one `ZOOM_STEP` per notch."""
        notches = event.angleDelta().y() / 120.0
        if notches:
            self.zoom_at(ZOOM_STEP**notches, event.position())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """Start a pan."""
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = event.position()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Pan while dragging; read out the pixel under the cursor."""
        if self._drag_from is not None:
            delta = event.position() - self._drag_from
            self._drag_from = event.position()
            self.pan_by(delta.x(), delta.y())
        self._update_readout(event.position())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """End a pan."""
        self._drag_from = None

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """Fit the whole field again."""
        self.reset_view()

    def _update_readout(self, point: QPointF) -> None:
        pixel = self.pixel_at(point)
        plane = self.displayed_plane()
        if pixel is None or plane is None:
            text = ""
        else:
            x, y = pixel
            value = plane[y, x]
            shown = f"{value:g}" if np.issubdtype(plane.dtype, np.floating) else value
            text = f"x {x}, y {y}: {shown}"
        if text != self._readout:
            self._readout = text
            self.update()

    def _render(self) -> None:
        if self._stack is not None:
            self._image = plane_qimage(self._stack[self._index], self._display)
        self.update()
        self.rendered.emit()

    def _image_area(self) -> QRectF:
        """Where the plane may be drawn: below the two text lines."""
        top = 2 * self.fontMetrics().height() + 8
        return QRectF(4, top, self.width() - 8, self.height() - top - 4)

    def field_um(self) -> tuple[float, float]:
        """Width and height of the field shown, in um (0 without a stack)."""
        if self._stack is None:
            return (0.0, 0.0)
        _, dy, dx = self._voxel_size_um
        return (self._stack.shape[2] * dx, self._stack.shape[1] * dy)

    def fit_px_per_um(self) -> float | None:
        """Screen pixels per um that fit the whole field (None without one)."""
        width_um, height_um = self.field_um()
        area = self._image_area()
        if width_um <= 0 or height_um <= 0 or area.width() <= 0 or area.height() <= 0:
            return None
        return min(area.width() / width_um, area.height() / height_um)

    def set_scale_source(self, source: Callable[[], float | None]) -> None:
        """Draw at the screen scale ``source`` gives (shared with another view)."""
        self._scale_source = source

    def _target_rect(self) -> QRectF | None:
        """Where the plane is drawn on screen (zoom and pan applied)."""
        px_per_um = self._scale_source() or self.fit_px_per_um()
        if self._image is None or px_per_um is None:
            return None
        area = self._image_area()
        width_um, height_um = self.field_um()
        width = width_um * px_per_um * self._zoom
        height = height_um * px_per_um * self._zoom
        return QRectF(
            area.x() + (area.width() - width) / 2 + self._pan_px.x(),
            area.y() + (area.height() - height) / 2 + self._pan_px.y(),
            width,
            height,
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        """Title, caption, and the plane at its physical size on screen."""
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), QColor(24, 24, 28))
            painter.setPen(QColor(230, 230, 230))
            line = painter.fontMetrics().height()
            painter.drawText(6, line, self._title)
            painter.setPen(QColor(170, 170, 170))
            caption = self.caption()
            if self._readout:
                caption += f"   [{self._readout}]"
            painter.drawText(6, 2 * line + 2, caption)
            target = self._target_rect()
            if self._image is None or target is None:
                return
            painter.setClipRect(self._image_area())
            painter.setRenderHint(
                QPainter.RenderHint.SmoothPixmapTransform,
                target.width() < self._image.width(),
            )
            painter.drawImage(target, self._image)
        finally:
            painter.end()


class ContrastBar(QWidget):
    """Histogram of a view's plane with its black and white points, set by hand.

    "Auto" gives each new stack its own percentile range; typing a black or
    white value switches to that fixed range.

    Parameters
    ----------
    view : ImageView
        The view it controls.
    parent : QWidget, optional
        Qt parent.

    """

    def __init__(self, view: ImageView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.auto = QCheckBox("Auto")
        self.auto.setChecked(view.auto_contrast)
        self.low = QDoubleSpinBox()
        self.high = QDoubleSpinBox()
        for box, tip in ((self.low, "black"), (self.high, "white")):
            box.setRange(-1e12, 1e12)
            box.setDecimals(1)
            box.setKeyboardTracking(False)
            box.setToolTip(f"grey value drawn {tip}")
        self.plot = _HistogramPlot(self)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.plot, 1)
        row.addWidget(self.auto)
        row.addWidget(QLabel("black"))
        row.addWidget(self.low)
        row.addWidget(QLabel("white"))
        row.addWidget(self.high)
        self.auto.toggled.connect(self._on_auto)
        self.low.valueChanged.connect(self._on_typed)
        self.high.valueChanged.connect(self._on_typed)
        view.rendered.connect(self.refresh)
        self.refresh()

    def histogram(self) -> tuple[NDArray[np.float64], NDArray[np.int64]] | None:
        """``(edges, counts)`` of the plane shown, over its value range."""
        plane = self.view.displayed_plane()
        if plane is None:
            return None
        values = np.asarray(plane, dtype=np.float64).ravel()
        low, high = float(values.min()), float(values.max())
        if not high > low:
            high = low + 1.0
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
        return edges, counts

    def refresh(self) -> None:
        """Show the view's present range and histogram."""
        low, high = self.view.display
        for box, value in ((self.low, low), (self.high, high)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.auto.blockSignals(True)
        self.auto.setChecked(self.view.auto_contrast)
        self.auto.blockSignals(False)
        self.plot.update()

    def _on_auto(self, checked: bool) -> None:
        if checked:
            self.view.set_auto_contrast()
        else:
            low, high = self.view.display
            self.view.set_display_range(low, high)

    def _on_typed(self, _value: float) -> None:
        low, high = self.low.value(), self.high.value()
        if high > low:
            self.view.set_display_range(low, high)


class _HistogramPlot(QWidget):
    """Log-count bars of a `ContrastBar`'s histogram, black and white marked."""

    def __init__(self, bar: ContrastBar) -> None:
        super().__init__(bar)
        self._bar = bar
        self.setMinimumSize(120, 36)

    def paintEvent(self, event: QPaintEvent) -> None:
        """Bars, then the black (blue) and white (orange) points."""
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), QColor(24, 24, 28))
            data = self._bar.histogram()
            if data is None:
                return
            edges, counts = data
            heights = np.log1p(counts.astype(np.float64))
            top = max(float(heights.max()), 1e-9)
            w, h = self.width(), self.height()
            bar_w = w / len(counts)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(150, 150, 160))
            for i, value in enumerate(heights):
                bar_h = value / top * (h - 2)
                painter.drawRect(QRectF(i * bar_w, h - bar_h, bar_w, bar_h))
            span = float(edges[-1] - edges[0])
            for value, colour in zip(
                self._bar.view.display,
                (QColor(80, 140, 255), QColor(255, 160, 40)),
                strict=True,
            ):
                x = (value - float(edges[0])) / span * w
                painter.setPen(QPen(colour, 2))
                painter.drawLine(QPointF(x, 0), QPointF(x, h))
        finally:
            painter.end()


class StackPairView(QWidget):
    """The camera view and the enhanced view side by side, with one z slider.

    Parameters
    ----------
    parent : QWidget, optional
        Qt parent.

    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.camera = ImageView("Camera (raw)")
        self.enhanced = ImageView("Enhanced")
        # one screen scale for both: equal lengths in um look equally long
        self.camera.set_scale_source(self.px_per_um)
        self.enhanced.set_scale_source(self.px_per_um)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self._on_slider)
        self.z_label = QLabel("z 0.00 um")
        self.z_label.setMinimumWidth(90)
        self.camera_contrast = ContrastBar(self.camera)
        self.enhanced_contrast = ContrastBar(self.enhanced)
        views = QHBoxLayout()
        for view, bar in (
            (self.camera, self.camera_contrast),
            (self.enhanced, self.enhanced_contrast),
        ):
            column = QVBoxLayout()
            column.addWidget(view, 1)
            column.addWidget(bar)
            views.addLayout(column)
        row = QHBoxLayout()
        row.addWidget(QLabel("z"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.z_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(views, 1)
        layout.addLayout(row)
        self._step_um = 1.0
        self._bottom_um = 0.0

    def views(self) -> tuple[ImageView, ImageView]:
        """The camera view and the enhanced view."""
        return self.camera, self.enhanced

    def px_per_um(self) -> float | None:
        """Screen scale at which both fields fit their views."""
        scales = [s for v in self.views() if (s := v.fit_px_per_um()) is not None]
        return min(scales, default=None)

    def height_um(self) -> float:
        """Height that the slider selects."""
        return self._bottom_um + self.slider.value() * self._step_um

    def show_camera(
        self,
        stack: NDArray[Any],
        voxel_size_um: tuple[float, float, float],
        caption: str,
        *,
        z_origin_um: float = 0.0,
    ) -> None:
        """Show a raw stack (or a single frame) in the camera view."""
        self.camera.set_stack(stack, voxel_size_um, caption, z_origin_um=z_origin_um)
        self._rescale()

    def show_enhanced(
        self,
        stack: NDArray[Any],
        voxel_size_um: tuple[float, float, float],
        caption: str,
        *,
        z_origin_um: float = 0.0,
        title: str = "Enhanced",
    ) -> None:
        """Show an enhanced (or partner) stack in the right-hand view."""
        self.enhanced.set_title(title)
        self.enhanced.set_stack(stack, voxel_size_um, caption, z_origin_um=z_origin_um)
        self._rescale()

    def _rescale(self) -> None:
        """Slider steps: the finest z step shown, over every stack's extent."""
        shown = [v for v in self.views() if v.n_planes() > 1]
        height = self.height_um()
        self._step_um = min((v.voxel_size_um[0] for v in shown), default=1.0)
        self._bottom_um = min((v.z_origin_um for v in shown), default=0.0)
        top = max((v.z_origin_um + v.depth_um() for v in shown), default=0.0)
        steps = round((top - self._bottom_um) / self._step_um) if shown else 0
        value = round((height - self._bottom_um) / self._step_um)
        self.slider.blockSignals(True)
        self.slider.setRange(0, steps)
        self.slider.setValue(min(max(value, 0), steps))
        self.slider.blockSignals(False)
        self._on_slider(self.slider.value())
        for view in self.views():
            view.update()  # the shared screen scale may have changed

    def _on_slider(self, value: int) -> None:
        z_um = self._bottom_um + value * self._step_um
        self.z_label.setText(f"z {round(z_um, 6) + 0.0:.2f} um")
        for view in self.views():
            view.show_height(z_um)
