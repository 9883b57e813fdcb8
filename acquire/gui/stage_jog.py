"""Stage and focus jog buttons: move by a step, in micrometres, along one axis."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QWidget,
)

__all__ = ["StageJog"]

#: Default XY and focus steps (um): a fraction of a 40x field, a depth of field.
DEFAULT_XY_STEP_UM = 50.0
DEFAULT_Z_STEP_UM = 1.0


class StageJog(QGroupBox):
    """Buttons that ask for a relative stage or focus move.

    ``jog_requested(dx_um, dy_um, dz_um)`` carries the move; the window checks
    it against the soft limits and makes it.

    Parameters
    ----------
    parent : QWidget, optional
        Qt parent.

    """

    jog_requested = Signal(float, float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Stage", parent)
        self.xy_step = _step_box(DEFAULT_XY_STEP_UM, maximum_um=5000.0)
        self.z_step = _step_box(DEFAULT_Z_STEP_UM, maximum_um=100.0)
        self.x_minus = QPushButton("x -")
        self.x_plus = QPushButton("x +")
        self.y_minus = QPushButton("y -")
        self.y_plus = QPushButton("y +")
        self.z_minus = QPushButton("z -")
        self.z_plus = QPushButton("z +")
        self._directions = {
            self.x_minus: (-1, 0, 0),
            self.x_plus: (1, 0, 0),
            self.y_minus: (0, -1, 0),
            self.y_plus: (0, 1, 0),
            self.z_minus: (0, 0, -1),
            self.z_plus: (0, 0, 1),
        }
        for button in self._directions:
            button.clicked.connect(self._jog)
        layout = QGridLayout(self)
        layout.addWidget(QLabel("XY step (um)"), 0, 0)
        layout.addWidget(self.xy_step, 0, 1)
        layout.addWidget(self.x_minus, 0, 2)
        layout.addWidget(self.x_plus, 0, 3)
        layout.addWidget(self.y_minus, 0, 4)
        layout.addWidget(self.y_plus, 0, 5)
        layout.addWidget(QLabel("Focus step (um)"), 1, 0)
        layout.addWidget(self.z_step, 1, 1)
        layout.addWidget(self.z_minus, 1, 2)
        layout.addWidget(self.z_plus, 1, 3)

    def buttons(self) -> tuple[QPushButton, ...]:
        """The six jog buttons."""
        return (
            self.x_minus,
            self.x_plus,
            self.y_minus,
            self.y_plus,
            self.z_minus,
            self.z_plus,
        )

    @Slot()
    def _jog(self) -> None:
        # slots, not lambdas holding the widget: no reference cycles for
        # Python's collector to break in the wrong order at exit
        sx, sy, sz = self._directions[self.sender()]  # type: ignore[index]
        xy, z = self.xy_step.value(), self.z_step.value()
        self.jog_requested.emit(sx * xy, sy * xy, sz * z)


def _step_box(value_um: float, *, maximum_um: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(2)
    box.setRange(0.01, maximum_um)
    box.setValue(value_um)
    return box
